namespace ModelCompression.EndToEnd.Tests;

/// <summary>
/// Packs ModelCompression.Build once per test run into a fresh local feed, with a version of its own so no
/// copy cached by an earlier run can stand in for it.
/// </summary>
public sealed class PackedPackageFixture : IDisposable
{
    public PackedPackageFixture()
    {
        RepoRoot = Tests.RepoRoot.Find();
        Root = Path.Combine(Path.GetTempPath(), $"mc-e2e-{Guid.NewGuid():N}");
        Feed = Path.Combine(Root, "feed");
        Packages = Path.Combine(Root, "packages");
        SharedCache = Path.Combine(Root, "compress-cache");
        Directory.CreateDirectory(Feed);
        Version = $"1.0.0-e2e.{DateTime.UtcNow:yyyyMMddHHmmss}";
        var pack = DotnetCli.Pack(RepoRoot, "ModelCompression.Build", Feed, Version);
        if (pack.ExitCode != 0)
        {
            throw new InvalidOperationException($"Packing ModelCompression.Build failed:\n{pack}");
        }
    }

    public string RepoRoot { get; }

    /// <summary>Temporary folder holding everything this run makes.</summary>
    public string Root { get; }

    /// <summary>The local feed with the packed package.</summary>
    public string Feed { get; }

    /// <summary>The NUGET_PACKAGES folder of the test builds.</summary>
    public string Packages { get; }

    /// <summary>A stage cache the test projects share, as CI would keep one between builds.</summary>
    public string SharedCache { get; }

    /// <summary>The packed version.</summary>
    public string Version { get; }

    /// <summary>The machine's global packages folder, used as a fallback so libtorch is not fetched again.</summary>
    public static string MachinePackages =>
        Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } configured
            ? configured
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");

    /// <summary>
    /// Makes <paramref name="project"/> a project of its own that restores the packed package: empty Directory.Build.props,
    /// .targets and Directory.Packages.props (nothing of the repository's), and a nuget.config with the local feed,
    /// nuget.org and the machine's packages folder as a fallback.
    /// </summary>
    public void WriteRestoreFiles(string project)
    {
        File.WriteAllText(Path.Combine(project, "Directory.Build.props"), "<Project />");
        File.WriteAllText(Path.Combine(project, "Directory.Build.targets"), "<Project />");
        File.WriteAllText(Path.Combine(project, "Directory.Packages.props"), "<Project />");
        File.WriteAllText(Path.Combine(project, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="local" value="{Feed}" />
                <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
              </packageSources>
              <fallbackPackageFolders>
                <add key="machine" value="{MachinePackages}" />
              </fallbackPackageFolders>
            </configuration>
            """);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
            // A build server may still hold a file for a moment; the temp folder is cleaned by the OS later.
        }
    }
}
