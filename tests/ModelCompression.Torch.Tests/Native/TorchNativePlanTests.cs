using ModelCompression.Diagnostics;
using ModelCompression.Torch.Native;

namespace ModelCompression.Torch.Tests.Native;

/// <summary>The pure planning step: finding files and deciding about the patch, without loading anything.</summary>
public sealed class TorchNativePlanTests
{
    private static TorchNativeEnvironment Environment(
        IReadOnlyDictionary<string, string> variables,
        string? appBase = null,
        Func<string?>? libStdCxx = null)
    {
        var real = TorchNativeEnvironment.Current();
        return new TorchNativeEnvironment
        {
            GetVariable = name => variables.TryGetValue(name, out var value) ? value : real.GetVariable(name),
            AppBaseDirectory = appBase ?? real.AppBaseDirectory,
            HomeDirectory = real.HomeDirectory,
            LibTorchVersion = real.LibTorchVersion,
            TorchSharpVersion = real.TorchSharpVersion,
            FindHostLibStdCxx = libStdCxx ?? real.FindHostLibStdCxx,
        };
    }

    [Fact]
    public void Versions_come_from_assembly_metadata()
    {
        var env = TorchNativeEnvironment.Current();
        Assert.Equal("2.10.0", env.LibTorchVersion);
        Assert.Equal("0.107.0", env.TorchSharpVersion);
    }

    [Fact]
    public void Real_environment_finds_libtorch_and_decides_about_the_patch_without_writing()
    {
        using var temp = NativeTestFiles.NewTempDir();
        var cache = Path.Combine(temp.Path, "cache");
        var plan = TorchNativeLoader.Plan(Environment(new Dictionary<string, string> { [TorchNativeLoader.NativeCacheVariable] = cache }));

        Assert.All(TorchNativeLoader.LibTorchFiles, f => Assert.True(File.Exists(Path.Combine(plan.LibTorchDirectory, f))));
        Assert.True(File.Exists(plan.LibTorchSharpPath));
        Assert.Equal(plan.Check.IsCompatible, plan.PatchedContent is null);
        if (plan.PatchedContent is not null)
        {
            Assert.StartsWith(cache + Path.DirectorySeparatorChar, plan.PatchedPath, StringComparison.Ordinal);
        }

        Assert.False(Directory.Exists(cache), "planning must not write");
    }

    [Fact]
    public void Libtorch_dir_variable_pointing_to_an_empty_folder_fails_with_MC4001_and_says_what_to_do()
    {
        using var temp = NativeTestFiles.NewTempDir();
        var env = Environment(new Dictionary<string, string> { [TorchNativeLoader.LibTorchDirVariable] = temp.Path });

        var e = Assert.Throws<CompressionException>(() => TorchNativeLoader.Plan(env));

        Assert.Equal(DiagnosticCodes.TorchNativeLoadFailed, e.Code);
        Assert.Contains(temp.Path, e.Message, StringComparison.Ordinal);
        Assert.Contains("libtorch_cpu.so", e.Message, StringComparison.Ordinal);
        Assert.Contains(TorchNativeLoader.LibTorchDirVariable, e.Message, StringComparison.Ordinal);
        Assert.Contains("dotnet restore", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("doesn't contain a reference", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_packages_folder_and_app_folder_fail_with_MC4001_listing_every_place_tried()
    {
        using var temp = NativeTestFiles.NewTempDir();
        var packages = Path.Combine(temp.Path, "packages");
        var app = Path.Combine(temp.Path, "app");
        Directory.CreateDirectory(app);
        var env = Environment(new Dictionary<string, string> { ["NUGET_PACKAGES"] = packages, [TorchNativeLoader.LibTorchDirVariable] = "" }, appBase: app);

        var e = Assert.Throws<CompressionException>(() => TorchNativeLoader.Plan(env));

        Assert.Equal(DiagnosticCodes.TorchNativeLoadFailed, e.Code);
        Assert.Contains(Path.Combine(app, "runtimes", "linux-x64", "native"), e.Message, StringComparison.Ordinal);
        Assert.Contains(Path.Combine(packages, "libtorch-cpu-linux-x64", "2.10.0"), e.Message, StringComparison.Ordinal);
        Assert.Contains(Path.Combine(packages, "torchsharp", "0.107.0"), e.Message, StringComparison.Ordinal);
        Assert.Contains("folder does not exist", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_package_folder_without_nupkg_metadata_is_an_interrupted_extraction_and_is_not_loaded()
    {
        // The files of a whole package, linked from the real one, in a packages folder of this test's own.
        var real = TorchNativeLoader.Plan(TorchNativeEnvironment.Current());
        using var temp = NativeTestFiles.NewTempDir();
        var packages = Path.Combine(temp.Path, "packages");
        var libtorch = Path.Combine(packages, "libtorch-cpu-linux-x64", "2.10.0");
        var native = Path.Combine(libtorch, "runtimes", "linux-x64", "native");
        Directory.CreateDirectory(native);
        foreach (var file in TorchNativeLoader.LibTorchFiles)
        {
            File.CreateSymbolicLink(Path.Combine(native, file), Path.Combine(real.LibTorchDirectory, file));
        }

        var torchSharp = Path.Combine(packages, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native");
        Directory.CreateDirectory(torchSharp);
        File.CreateSymbolicLink(Path.Combine(torchSharp, "libLibTorchSharp.so"), real.LibTorchSharpPath);
        var app = Path.Combine(temp.Path, "app");
        Directory.CreateDirectory(app);
        var env = Environment(new Dictionary<string, string> { ["NUGET_PACKAGES"] = packages, [TorchNativeLoader.LibTorchDirVariable] = "" }, appBase: app);

        var e = Assert.Throws<CompressionException>(() => TorchNativeLoader.Plan(env));

        Assert.Equal(DiagnosticCodes.TorchNativeLoadFailed, e.Code);
        Assert.Contains($"{libtorch}: no .nupkg.metadata", e.Message, StringComparison.Ordinal);
        Assert.Contains("dotnet compress doctor", e.Message, StringComparison.Ordinal);

        // Restore and the tool's fetch write the marker last: with it, the same files are a package.
        File.WriteAllText(Path.Combine(libtorch, ".nupkg.metadata"), "{}");
        var plan = TorchNativeLoader.Plan(env);
        Assert.Equal(native, plan.LibTorchDirectory);
        Assert.Equal("NuGet packages folder", plan.LibTorchSource);
    }

    [Fact]
    public void Libtorch_dir_variable_is_used_when_it_holds_libtorch()
    {
        var real = TorchNativeLoader.Plan(TorchNativeEnvironment.Current());
        var env = Environment(new Dictionary<string, string> { [TorchNativeLoader.LibTorchDirVariable] = real.LibTorchDirectory });

        var plan = TorchNativeLoader.Plan(env);

        Assert.Equal(Path.GetFullPath(real.LibTorchDirectory), plan.LibTorchDirectory);
        Assert.Equal(TorchNativeLoader.LibTorchDirVariable, plan.LibTorchSource);
    }

    [Fact]
    public void A_host_libstdcxx_without_the_needed_versions_is_refused_with_MC4001()
    {
        // libm defines GLIBC_* versions only: every GLIBCXX version libLibTorchSharp needs is missing, and real
        // symbols need them, so a weak copy would crash later. The loader must refuse now.
        var libm = TorchNativeEnvironment.FindProcessLibStdCxx() is { } stdcxx
            ? Path.Combine(Path.GetDirectoryName(stdcxx)!, "libm.so.6")
            : null;
        Assert.True(libm is not null && File.Exists(libm), "libm.so.6 is expected next to libstdc++");
        var env = Environment(new Dictionary<string, string>(), libStdCxx: () => libm);

        var e = Assert.Throws<CompressionException>(() => TorchNativeLoader.Plan(env));

        Assert.Equal(DiagnosticCodes.TorchNativeLoadFailed, e.Code);
        Assert.Contains("GLIBCXX_3.4.30", e.Message, StringComparison.Ordinal);
        Assert.Contains("install a libstdc++", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Cache_root_honours_the_variable_then_XDG_then_home()
    {
        var env = Environment(new Dictionary<string, string> { [TorchNativeLoader.NativeCacheVariable] = "/x/native" });
        Assert.Equal("/x/native", TorchNativeLoader.CacheRoot(env));

        env = Environment(new Dictionary<string, string> { [TorchNativeLoader.NativeCacheVariable] = "", ["XDG_CACHE_HOME"] = "/xdg" });
        Assert.Equal("/xdg/modelcompression/native", TorchNativeLoader.CacheRoot(env));

        env = Environment(new Dictionary<string, string> { [TorchNativeLoader.NativeCacheVariable] = "", ["XDG_CACHE_HOME"] = "" });
        Assert.Equal(Path.Combine(env.HomeDirectory!, ".cache", "modelcompression", "native"), TorchNativeLoader.CacheRoot(env));
    }
}
