using System.Text;
using System.Text.RegularExpressions;
using ModelCompression.Torch.Native;

namespace ModelCompression.Torch.Tests.Native;

public sealed partial class LibStdCxxCompatibilityTests
{
    [Fact]
    public void Host_libstdcxx_is_found_in_this_process()
    {
        var path = NativeTestFiles.HostLibStdCxx();
        Assert.True(File.Exists(path), path);
        Assert.StartsWith("libstdc++.so", Path.GetFileName(path), StringComparison.Ordinal);
    }

    [Fact]
    public void Host_verdef_agrees_with_the_version_strings_in_the_file()
    {
        var path = NativeTestFiles.HostLibStdCxx();
        var defined = ElfImage.Load(path).VersionDefinitions;

        // What `strings libstdc++.so.6 | grep GLIBCXX_` shows: libstdc++ names its own versions only.
        var inFile = GlibcxxVersion().Matches(Encoding.Latin1.GetString(File.ReadAllBytes(path)))
            .Select(m => m.Value).ToHashSet(StringComparer.Ordinal);
        var glibcxxDefined = defined.Where(v => v.StartsWith("GLIBCXX_", StringComparison.Ordinal)).ToHashSet(StringComparer.Ordinal);

        Assert.Contains("GLIBCXX_3.4", glibcxxDefined);
        Assert.Contains("CXXABI_1.3", defined);
        Assert.Equal(inFile.Order(), glibcxxDefined.Order());
    }

    [Fact]
    public void Host_check_matches_what_the_host_defines()
    {
        var host = ElfImage.Load(NativeTestFiles.HostLibStdCxx()).VersionDefinitions;
        var check = LibStdCxxCompatibility.Check(ElfImage.Load(NativeTestFiles.LibTorchSharp()), host);

        if (host.Contains("GLIBCXX_3.4.32"))
        {
            // GCC 13+ host (not Debian 12): nothing to patch.
            Assert.True(check.IsCompatible);
            Assert.False(check.CanPatch);
        }
        else
        {
            // Debian 12 (GCC 12): GLIBCXX_3.4.30 is the newest defined, 3.4.32 is missing, and only a harmless symbol needs it.
            Assert.Contains("GLIBCXX_3.4.30", host);
            Assert.Equal(["GLIBCXX_3.4.32"], check.MissingVersions);
            Assert.Equal(["_ZSt21ios_base_library_initv"], check.SymbolsByMissingVersion["GLIBCXX_3.4.32"]);
            Assert.Empty(check.UnexpectedSymbols);
            Assert.True(check.CanPatch);
        }
    }

    [Fact]
    public void A_host_lacking_versions_that_real_symbols_need_is_refused()
    {
        var library = ElfImage.Load(NativeTestFiles.LibTorchSharp());
        var host = ElfImage.Load(NativeTestFiles.HostLibStdCxx()).VersionDefinitions
            .Where(v => v is not "GLIBCXX_3.4.30" and not "GLIBCXX_3.4.32");

        var check = LibStdCxxCompatibility.Check(library, host);

        Assert.Contains("GLIBCXX_3.4.30", check.MissingVersions);
        Assert.NotEmpty(check.UnexpectedSymbols);
        Assert.All(check.UnexpectedSymbols, s => Assert.EndsWith("@GLIBCXX_3.4.30", s, StringComparison.Ordinal));
        Assert.False(check.CanPatch);
    }

    [Fact]
    public void Every_version_defined_means_compatible()
    {
        var library = ElfImage.Load(NativeTestFiles.LibTorchSharp());
        var all = library.VersionNeeds.Select(n => n.Version);

        var check = LibStdCxxCompatibility.Check(library, all);

        Assert.True(check.IsCompatible);
        Assert.Empty(check.MissingVersions);
    }

    [GeneratedRegex(@"GLIBCXX_\d+(\.\d+)+")]
    private static partial Regex GlibcxxVersion();
}
