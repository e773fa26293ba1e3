using System.Security.Cryptography;
using ModelCompression.Diagnostics;
using ModelCompression.Torch.Native.Packages;
using NuGet.Configuration;
using NuGet.Packaging;
using NuGet.Versioning;

namespace ModelCompression.Torch.Tests.Native.Packages;

/// <summary>
/// The fetcher against real local feeds of real .nupkg files (made with NuGet's PackageBuilder), read through a
/// real nuget.config, into a fresh global packages folder.
/// </summary>
public sealed class NativePackageFetcherTests : IDisposable
{
    private const string Id = "ModelCompression.Test.Native";

    private readonly NativeTestFiles.TempDir _temp = NativeTestFiles.NewTempDir();
    private readonly byte[] _payload = RandomNumberGenerator.GetBytes(300_000);

    private string Feed => Path.Combine(_temp.Path, "feed");

    private string Packages => Path.Combine(_temp.Path, "packages");

    public void Dispose() => _temp.Dispose();

    [Fact]
    public async Task Lowest_version_in_the_range_is_fetched_and_laid_out_as_restore_does()
    {
        foreach (var version in new[] { "1.0.0", "1.2.0", "1.5.0", "2.0.0" })
        {
            Pack(Feed, version);
        }

        var progress = new RecordingProgress();
        var fetcher = Fetcher([Feed], progress);
        var result = await fetcher.EnsureAsync(Request("[1.1.0, 2.0.0)"));

        Assert.True(result.Fetched);
        Assert.Equal(NuGetVersion.Parse("1.2.0"), result.Version);
        Assert.Equal(Path.GetFullPath(Feed), Path.GetFullPath(result.Source!));
        var folder = Path.Combine(Packages, "modelcompression.test.native", "1.2.0");
        Assert.Equal(folder, result.Folder);
        // Restore's layout: lower-case folders, the .nupkg with its hash, the nuspec, the files, .nupkg.metadata.
        foreach (var file in new[] { ".nupkg.metadata", "modelcompression.test.native.1.2.0.nupkg", "modelcompression.test.native.1.2.0.nupkg.sha512", "modelcompression.test.native.nuspec" })
        {
            Assert.True(File.Exists(Path.Combine(folder, file)), file);
        }

        Assert.Equal(_payload, File.ReadAllBytes(Path.Combine(folder, "runtimes", "linux-x64", "native", "libpayload.so")));
        var nupkgSize = new FileInfo(Path.Combine(Feed, $"{Id}.1.2.0.nupkg")).Length;
        Assert.Equal(nupkgSize, result.PackageBytes);
        Assert.Equal(Path.GetFullPath(Feed), Path.GetFullPath(progress.Reports[0].Source));
        Assert.Equal(nupkgSize, progress.Reports[^1].Received);
        Assert.Equal(nupkgSize, progress.Reports[^1].Total);
        Assert.True(result.FolderBytes() > nupkgSize + _payload.Length - 1);
        Assert.Single(Directory.GetDirectories(Path.Combine(Packages, "modelcompression.test.native")));
    }

    [Fact]
    public async Task An_installed_package_is_found_without_asking_any_source()
    {
        Pack(Feed, "1.2.0");
        await Fetcher([Feed]).EnsureAsync(Request("[1.2.0]"));
        Directory.Delete(Feed, recursive: true);

        var again = await Fetcher([Path.Combine(_temp.Path, "gone")]).EnsureAsync(Request("[1.2.0]"));

        Assert.False(again.Fetched);
        Assert.Null(again.Source);
        Assert.Equal(NuGetVersion.Parse("1.2.0"), again.Version);
    }

    [Fact]
    public async Task A_folder_without_nupkg_metadata_is_an_interrupted_extraction_and_is_fetched_again()
    {
        Pack(Feed, "1.2.0");
        var partial = Path.Combine(Packages, "modelcompression.test.native", "1.2.0", "runtimes", "linux-x64", "native");
        Directory.CreateDirectory(partial);
        File.WriteAllBytes(Path.Combine(partial, "libpayload.so"), _payload[..1000]);
        var fetcher = Fetcher([Feed]);
        Assert.Null(fetcher.FindInstalled(Request("[1.2.0]")));

        var result = await fetcher.EnsureAsync(Request("[1.2.0]"));

        Assert.True(result.Fetched);
        Assert.Equal(_payload, File.ReadAllBytes(Path.Combine(partial, "libpayload.so")));
        Assert.True(File.Exists(Path.Combine(result.Folder, ".nupkg.metadata")));
    }

    [Fact]
    public async Task Unreachable_and_missing_sources_give_MC4005_naming_each_source_and_the_remedy_and_leave_nothing()
    {
        var missingFolder = Path.Combine(_temp.Path, "no-such-feed");
        var emptyFolder = Path.Combine(_temp.Path, "empty-feed");
        Directory.CreateDirectory(emptyFolder);
        // Port 9 (discard) on loopback: nothing listens, the connection is refused at once, as on an offline machine.
        const string offline = "http://127.0.0.1:9/v3/index.json";

        var error = await Assert.ThrowsAsync<CompressionException>(() => Fetcher([missingFolder, emptyFolder, offline]).EnsureAsync(Request("[1.2.0]")));

        Assert.Equal(DiagnosticCodes.NativePackageUnavailable, error.Code);
        Assert.Contains(missingFolder, error.Message, StringComparison.Ordinal);
        Assert.Contains($"{emptyFolder}: has no package {Id}", error.Message, StringComparison.Ordinal);
        Assert.Contains(offline, error.Message, StringComparison.Ordinal);
        Assert.Contains($"{Id} 1.2.0 is not in the NuGet packages folder ({Packages})", error.Message, StringComparison.Ordinal);
        Assert.Contains("To fix: run the fix command", error.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(Packages, "modelcompression.test.native")));
    }

    [Fact]
    public async Task Versions_outside_the_range_are_listed_in_MC4005()
    {
        Pack(Feed, "1.0.0");
        Pack(Feed, "3.0.0");

        var error = await Assert.ThrowsAsync<CompressionException>(() => Fetcher([Feed]).EnsureAsync(Request("[2.0.0, 3.0.0)")));

        Assert.Equal(DiagnosticCodes.NativePackageUnavailable, error.Code);
        Assert.Contains($"has {Id} 3.0.0, 1.0.0 but none in [2.0.0, 3.0.0)", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("truncated")]
    [InlineData("damaged")]
    public async Task A_corrupt_package_gives_MC4006_and_nothing_is_installed(string how)
    {
        var nupkg = Pack(Feed, "1.2.0");
        var bytes = File.ReadAllBytes(nupkg);
        if (how == "truncated")
        {
            // An interrupted upload or copy: the zip's central directory (at the end) is gone.
            bytes = bytes[..(bytes.Length / 2)];
        }
        else
        {
            // Flipped bits inside the payload's compressed data: the archive opens, the entry does not check out.
            // The 300 KB random payload, stored nearly as it is, fills the middle of the file.
            var at = (bytes.Length / 2) - 2048;
            for (var i = 0; i < 4096; i++)
            {
                bytes[at + i] ^= 0x5a;
            }
        }

        File.WriteAllBytes(nupkg, bytes);

        var error = await Assert.ThrowsAsync<CompressionException>(() => Fetcher([Feed]).EnsureAsync(Request("[1.2.0]")));

        Assert.Equal(DiagnosticCodes.NativePackageCorrupt, error.Code);
        Assert.Contains(Feed, error.Message, StringComparison.Ordinal);
        Assert.Contains("nothing of it was installed", error.Message, StringComparison.Ordinal);
        var idFolder = Path.Combine(Packages, "modelcompression.test.native");
        Assert.True(!Directory.Exists(idFolder) || Directory.GetDirectories(idFolder).Length == 0, string.Join(", ", Directory.Exists(idFolder) ? Directory.GetFileSystemEntries(idFolder, "*", SearchOption.AllDirectories) : []));
        Assert.Null(Fetcher([Feed]).FindInstalled(Request("[1.2.0]")));
    }

    [Fact]
    public async Task Two_fetches_at_once_download_once_and_both_get_the_package()
    {
        Pack(Feed, "1.2.0");

        // Both fetchers are made before the race: making one writes nuget.config, and a config rewritten while
        // the other reads it is half a file (the race under test is the download, not the test's own setup).
        var first = Fetcher([Feed]);
        var second = Fetcher([Feed]);
        var results = await Task.WhenAll(
            Task.Run(() => first.EnsureAsync(Request("[1.2.0]"))),
            Task.Run(() => second.EnsureAsync(Request("[1.2.0]"))));

        Assert.Single(results, r => r.Fetched);
        Assert.All(results, r => Assert.Equal(results[0].Folder, r.Folder));
        Assert.Equal(_payload, File.ReadAllBytes(Path.Combine(results[0].Folder, "runtimes", "linux-x64", "native", "libpayload.so")));
    }

    [Fact]
    public async Task Package_source_mapping_is_applied_as_restore_applies_it()
    {
        var other = Path.Combine(_temp.Path, "other-feed");
        Pack(Feed, "1.2.0");
        Pack(other, "1.2.0");
        File.WriteAllText(Path.Combine(_temp.Path, "nuget.config"), $"""
            <configuration>
              <packageSources>
                <clear />
                <add key="other" value="{other}" />
                <add key="mapped" value="{Feed}" />
              </packageSources>
              <packageSourceMapping>
                <packageSource key="other"><package pattern="Something.Else.*" /></packageSource>
                <packageSource key="mapped"><package pattern="ModelCompression.*" /></packageSource>
              </packageSourceMapping>
            </configuration>
            """);

        var result = await new NativePackageFetcher(NativePackageFetcher.LoadSettings(_temp.Path), Packages).EnsureAsync(Request("[1.2.0]"));

        Assert.Equal(Path.GetFullPath(Feed), Path.GetFullPath(result.Source!));
    }

    [Fact]
    public void Settings_come_from_the_nuget_config_hierarchy_of_the_working_folder()
    {
        WriteConfig([Feed]);
        var settings = NativePackageFetcher.LoadSettings(_temp.Path);

        var sources = new PackageSourceProvider(settings).LoadPackageSources().Where(s => s.IsEnabled).Select(s => s.Source).ToList();

        Assert.Equal([Feed], sources);
        // NUGET_PACKAGES wins over the config's globalPackagesFolder, as for restore (a CI job may set it).
        var variable = Environment.GetEnvironmentVariable("NUGET_PACKAGES");
        var expected = string.IsNullOrEmpty(variable) ? Path.Combine(_temp.Path, "from-config") : variable;
        Assert.Equal(Path.GetFullPath(expected), Path.GetFullPath(SettingsUtility.GetGlobalPackagesFolder(settings)));
    }

    [Fact]
    public void A_broken_nuget_config_gives_MC4005_naming_the_file()
    {
        var config = Path.Combine(_temp.Path, "nuget.config");
        File.WriteAllText(config, "<configuration><packageSources>");

        var error = Assert.Throws<CompressionException>(() => NativePackageFetcher.LoadSettings(_temp.Path));

        Assert.Equal(DiagnosticCodes.NativePackageUnavailable, error.Code);
        Assert.Contains(config, error.Message, StringComparison.OrdinalIgnoreCase);
    }

    private static NativePackageRequest Request(string range) => new(Id, VersionRange.Parse(range), "run the fix command.");

    private NativePackageFetcher Fetcher(IReadOnlyList<string> sources, IProgress<DownloadProgress>? progress = null)
    {
        WriteConfig(sources);
        return new NativePackageFetcher(NativePackageFetcher.LoadSettings(_temp.Path), Packages, progress);
    }

    private void WriteConfig(IReadOnlyList<string> sources)
    {
        // <clear/> drops the user's sources (nuget.org): the tests never reach the network.
        var adds = string.Concat(sources.Select((s, i) => $"    <add key=\"s{i}\" value=\"{s}\" />\n"));
        File.WriteAllText(Path.Combine(_temp.Path, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <config>
                <add key="globalPackagesFolder" value="{Path.Combine(_temp.Path, "from-config")}" />
              </config>
              <packageSources>
                <clear />
            {adds}  </packageSources>
            </configuration>
            """);
    }

    private string Pack(string feed, string version)
    {
        Directory.CreateDirectory(feed);
        var builder = new PackageBuilder
        {
            Id = Id,
            Version = NuGetVersion.Parse(version),
            Description = "A native payload for the fetcher's tests.",
        };
        builder.Authors.Add("ModelCompression tests");
        builder.Files.Add(new PhysicalPackageFile(new MemoryStream(_payload)) { TargetPath = "runtimes/linux-x64/native/libpayload.so" });
        var path = Path.Combine(feed, $"{Id}.{version}.nupkg");
        using (var stream = File.Create(path))
        {
            builder.Save(stream);
        }

        return path;
    }

    private sealed class RecordingProgress : IProgress<DownloadProgress>
    {
        public List<DownloadProgress> Reports { get; } = [];

        public void Report(DownloadProgress value) => Reports.Add(value);
    }
}
