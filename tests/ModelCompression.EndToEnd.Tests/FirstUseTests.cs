namespace ModelCompression.EndToEnd.Tests;

/// <summary>
/// The packed tool on a fresh machine: an empty HOME and an empty NuGet packages folder. Its first command fetches
/// libtorch through the user's nuget.config (here a folder feed holding the real libtorch package, so no network is
/// needed; the code path is NuGet's, as for nuget.org), then the sample recipe makes its student. Offline, the
/// first command fails at once with MC4005 and the fix, and leaves nothing behind.
/// </summary>
public sealed class FirstUseTests(FirstUseTests.InstalledTool tool) : IClassFixture<FirstUseTests.InstalledTool>, IDisposable
{
    private const string LibTorchNupkg = "libtorch-cpu-linux-x64.2.10.0.nupkg";

    private readonly string _root = Path.Combine(Path.GetTempPath(), $"mc-first-use-{Guid.NewGuid():N}");

    [Fact]
    public void First_doctor_fetches_libtorch_with_progress_and_the_sample_recipe_makes_the_student()
    {
        var feed = Path.Combine(_root, "libtorch-feed");
        Directory.CreateDirectory(feed);
        var machineCopy = Path.Combine(PackedPackageFixture.MachinePackages, "libtorch-cpu-linux-x64", "2.10.0", LibTorchNupkg);
        Assert.True(File.Exists(machineCopy), $"the machine's restore should have {machineCopy}");
        File.Copy(machineCopy, Path.Combine(feed, LibTorchNupkg));
        var machine = FreshMachine([feed]);

        var doctor = machine.Tool("doctor");

        Assert.True(doctor.ExitCode == 0, doctor.ToString());
        Assert.Contains($"Fetching libtorch-cpu-linux-x64 2.10.0 from {feed}", doctor.Output, StringComparison.Ordinal);
        Assert.Contains("100% of 128.2 MB", doctor.Output, StringComparison.Ordinal);
        Assert.Contains($"libtorch package    libtorch-cpu-linux-x64 2.10.0 fetched now from {feed}", doctor.Output, StringComparison.Ordinal);
        var installed = Path.Combine(machine.Packages, "libtorch-cpu-linux-x64", "2.10.0");
        Assert.Contains($"libtorch            {installed}/runtimes/linux-x64/native  [NuGet packages folder]", doctor.Output, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(installed, ".nupkg.metadata")), doctor.ToString());
        Assert.True(File.Exists(Path.Combine(installed, LibTorchNupkg + ".sha512")), doctor.ToString());

        var again = machine.Tool("doctor");
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.DoesNotContain("Fetching", again.Output, StringComparison.Ordinal);
        Assert.Contains($"libtorch-cpu-linux-x64 2.10.0 found in {installed}", again.Output, StringComparison.Ordinal);

        var sample = CopySample();
        var run = machine.ToolIn(sample, "run", "fashion.compress.yaml", "--cache", Path.Combine(_root, "cache"));
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.DoesNotContain("Fetching", run.Output, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(sample, "fashion.student.onnx")), run.ToString());
    }

    [Fact]
    public void Offline_the_first_run_fails_before_any_work_with_MC4005_and_the_fix_and_leaves_nothing()
    {
        // Port 9 on loopback: nothing listens, the connection is refused, as on a machine without network.
        const string offline = "http://127.0.0.1:9/v3/index.json";
        var machine = FreshMachine([offline]);
        var sample = CopySample();

        var run = machine.ToolIn(sample, "run", "fashion.compress.yaml", "--cache", Path.Combine(_root, "cache"));

        Assert.True(run.ExitCode == 1, run.ToString());
        Assert.Contains("error MC4005: libtorch-cpu-linux-x64 2.10.0 is not in the NuGet packages folder", run.Output, StringComparison.Ordinal);
        Assert.Contains(offline, run.Output, StringComparison.Ordinal);
        Assert.Contains("run `dotnet compress doctor`", run.Output, StringComparison.Ordinal);
        Assert.Contains("dotnet nuget add source", run.Output, StringComparison.Ordinal);
        // Checked before any work: the teacher never ran, no stage started.
        Assert.DoesNotContain("distill", run.Output, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(machine.Packages));
        Assert.False(Directory.Exists(Path.Combine(_root, "cache")), run.ToString());
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
            // Left for the OS to clean.
        }
    }

    private Machine FreshMachine(IReadOnlyList<string> sources)
    {
        var home = Path.Combine(_root, "home");
        var packages = Path.Combine(_root, "packages");
        Directory.CreateDirectory(home);
        Directory.CreateDirectory(packages);
        // The user's nuget.config, found from the working folder up: only these sources (no nuget.org).
        var adds = string.Concat(sources.Select((s, i) => $"    <add key=\"source{i}\" value=\"{s}\" />\n"));
        File.WriteAllText(Path.Combine(_root, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
            {adds}  </packageSources>
            </configuration>
            """);
        var environment = new Dictionary<string, string>
        {
            ["HOME"] = home,
            ["XDG_CACHE_HOME"] = Path.Combine(home, ".cache"),
            ["NUGET_PACKAGES"] = packages,
            ["MODELCOMPRESSION_LIBTORCH_DIR"] = string.Empty,
            ["MODELCOMPRESSION_NATIVE_CACHE"] = string.Empty,
        };
        return new Machine(tool.Program, _root, packages, environment);
    }

    private string CopySample()
    {
        var from = Path.Combine(tool.RepoRoot, "samples", "FashionMnist");
        var to = Path.Combine(_root, "sample");
        Directory.CreateDirectory(Path.Combine(to, "data"));
        Directory.CreateDirectory(Path.Combine(to, "teacher"));
        File.Copy(Path.Combine(from, "fashion.compress.yaml"), Path.Combine(to, "fashion.compress.yaml"));
        File.Copy(Path.Combine(from, "teacher", "teacher.onnx"), Path.Combine(to, "teacher", "teacher.onnx"));
        foreach (var data in Directory.GetFiles(Path.Combine(from, "data"), "*.gz"))
        {
            File.Copy(data, Path.Combine(to, "data", Path.GetFileName(data)));
        }

        return to;
    }

    private sealed record Machine(string Program, string Root, string Packages, IReadOnlyDictionary<string, string> Environment)
    {
        public DotnetCli.Result Tool(params string[] arguments) => ToolIn(Root, arguments);

        public DotnetCli.Result ToolIn(string workingDirectory, params string[] arguments) =>
            DotnetCli.RunProgram(Program, workingDirectory, Environment, arguments);
    }

    /// <summary>The CLI packed from this repository and installed with `dotnet tool install`, once for the class.</summary>
    public sealed class InstalledTool : IDisposable
    {
        private readonly string _root = Path.Combine(Path.GetTempPath(), $"mc-first-use-tool-{Guid.NewGuid():N}");

        public InstalledTool()
        {
            RepoRoot = Tests.RepoRoot.Find();
            Directory.CreateDirectory(_root);
            var feed = Path.Combine(_root, "feed");
            var version = $"1.0.0-e2e.{DateTime.UtcNow:yyyyMMddHHmmss}";
            var pack = DotnetCli.Pack(RepoRoot, "ModelCompression.Cli", feed, version);
            Assert.True(pack.ExitCode == 0, pack.ToString());
            // Installed into an empty packages folder and home too: the tool package carries no libtorch.
            var environment = new Dictionary<string, string>
            {
                ["HOME"] = Path.Combine(_root, "home"),
                ["NUGET_PACKAGES"] = Path.Combine(_root, "packages"),
            };
            Directory.CreateDirectory(environment["HOME"]);
            File.WriteAllText(Path.Combine(_root, "nuget.config"), "<configuration><packageSources><clear /></packageSources></configuration>");
            var tools = Path.Combine(_root, "tools");
            var install = DotnetCli.Run(_root, environment, "tool", "install", "ModelCompression.Cli", "--version", version, "--tool-path", tools, "--add-source", feed);
            Assert.True(install.ExitCode == 0, install.ToString());
            Assert.False(Directory.Exists(Path.Combine(_root, "packages", "libtorch-cpu-linux-x64")), "installing the tool must not bring libtorch");
            Program = Path.Combine(tools, "dotnet-compress");
        }

        public string RepoRoot { get; }

        public string Program { get; }

        public void Dispose()
        {
            try
            {
                Directory.Delete(_root, recursive: true);
            }
            catch (IOException)
            {
                // Left for the OS to clean.
            }
        }
    }
}
