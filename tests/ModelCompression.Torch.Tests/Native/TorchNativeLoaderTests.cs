using ModelCompression.Torch.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelCompression.Torch.Tests.Native;

/// <summary>Loads TorchSharp for real, in this process and in child processes.</summary>
[Trait("Category", "Slow")] // starts child processes
public sealed class TorchNativeLoaderTests
{
    private const string SystemLibDir = "/usr/lib/x86_64-linux-gnu";

    [Fact]
    public void EnsureLoaded_is_idempotent_and_thread_safe()
    {
        var results = Enumerable.Range(0, 8).AsParallel().Select(_ => TorchNativeLoader.EnsureLoaded()).ToList();
        Assert.All(results, r => Assert.Same(results[0], r));
        Assert.Same(results[0], TorchNativeLoader.EnsureLoaded());
    }

    [Fact]
    public void Info_says_what_was_found_and_whether_a_patch_was_needed()
    {
        var info = TorchNativeLoader.EnsureLoaded();
        var hostHasNewVersion = ElfImage.Load(NativeTestFiles.HostLibStdCxx()).VersionDefinitions.Contains("GLIBCXX_3.4.32");

        Assert.True(info.Managed);
        Assert.NotNull(info.LibTorchDirectory);
        Assert.Equal("2.10.0", info.LibTorchPackageVersion);
        Assert.Equal(NativeTestFiles.HostLibStdCxx(), info.HostLibStdCxxPath);
        Assert.Equal(!hostHasNewVersion, info.PatchApplied);
        if (info.PatchApplied)
        {
            Assert.Equal(["GLIBCXX_3.4.32"], info.MissingLibStdCxxVersions);
            Assert.Equal(["_ZSt21ios_base_library_initv"], info.WeakSymbols);
            Assert.NotEqual(info.LibTorchSharpPath, info.LoadedLibTorchSharpPath);
            // The original (bin folder or NuGet cache) is never modified.
            Assert.All(ElfImage.Load(info.LibTorchSharpPath!).VersionNeeds, n => Assert.False(n.IsWeak));
            Assert.Contains(ElfImage.Load(info.LoadedLibTorchSharpPath!).VersionNeeds, n => n.Version == "GLIBCXX_3.4.32" && n.IsWeak);
        }
        else
        {
            Assert.Equal(info.LibTorchSharpPath, info.LoadedLibTorchSharpPath);
        }
    }

    [Fact]
    public void Matmul_gives_the_known_result()
    {
        TorchNativeLoader.EnsureLoaded();
        using var scope = NewDisposeScope();

        var a = tensor(new float[] { 1, 2, 3, 4, 5, 6 }, [2, 3]);
        var b = tensor(new float[] { 7, 8, 9, 10, 11, 12 }, [3, 2]);
        var c = matmul(a, b);

        Assert.Equal([2L, 2L], c.shape);
        Assert.Equal([58f, 64f, 139f, 154f], c.data<float>().ToArray());
    }

    [Fact]
    public void One_optimizer_step_reduces_the_loss()
    {
        TorchNativeLoader.EnsureLoaded();
        using var scope = NewDisposeScope();
        manual_seed(1);
        var model = nn.Linear(3, 1);
        var x = randn(64, 3);
        var y = matmul(x, tensor(new float[] { 2, -1, 0.5f }, [3, 1])) + 0.3f;
        var optimizer = optim.SGD(model.parameters(), 0.1);

        float Loss() => nn.functional.mse_loss(model.forward(x), y).item<float>();
        var before = Loss();
        optimizer.zero_grad();
        nn.functional.mse_loss(model.forward(x), y).backward();
        optimizer.step();
        var after = Loss();

        Assert.True(after < before * 0.9, $"loss {before} -> {after}");
    }

    [Fact]
    public void Only_our_libtorch_is_mapped_and_nothing_was_copied_beside_TorchSharp()
    {
        var info = TorchNativeLoader.EnsureLoaded();

        var ours = ProcessMaps.RealPath(Path.Combine(info.LibTorchDirectory!, "libtorch_cpu.so"));
        var mapped = ProcessMaps.MappedFilesNamed("libtorch_cpu.so");
        Assert.Equal([ours], mapped);
        Assert.DoesNotContain(ProcessMaps.MappedFiles(), p => p.StartsWith(SystemLibDir + "/libtorch", StringComparison.Ordinal));
        Assert.DoesNotContain(ProcessMaps.MappedFiles(), p => p.StartsWith(SystemLibDir + "/libc10", StringComparison.Ordinal));

        // TorchSharp's fallback copies 600 MB into a cpu/ folder beside TorchSharp.dll; it must not have run.
        var torchSharpDir = Path.GetDirectoryName(typeof(torch).Assembly.Location)!;
        Assert.False(Directory.Exists(Path.Combine(torchSharpDir, "cpu")));
    }

    [Fact]
    public void A_libtorch_2_only_op_works()
    {
        TorchNativeLoader.EnsureLoaded();
        using var scope = NewDisposeScope();

        // scaled_dot_product_attention exists from libtorch 2.0; with equal keys the attention is uniform, so
        // the output is the mean of the values.
        var q = ones(1, 1, 3, 4);
        var v = arange(12, dtype: ScalarType.Float32).reshape(1, 1, 3, 4);
        var output = nn.functional.scaled_dot_product_attention(q, q, v);

        Assert.Equal([4f, 5f, 6f, 7f], output[0, 0, 0].data<float>().ToArray());
    }

    [Fact]
    public void Loads_libtorch_2_10_even_with_the_system_libtorch_first_on_the_loader_path()
    {
        // Debian's python3-torch puts libtorch 1.13 in the system library folder; put it first on the search path
        // too, the worst case for a loader that goes by name.
        var systemLibTorch = File.Exists(Path.Combine(SystemLibDir, "libtorch_cpu.so"));
        var (exitCode, output, errors) = NativeProbeProgram.RunChild(
            ["probe"],
            new Dictionary<string, string> { ["LD_LIBRARY_PATH"] = SystemLibDir });

        Assert.True(exitCode == 0, $"probe failed ({exitCode}): {output} {errors}");
        Assert.Contains("sdpa=8", output, StringComparison.Ordinal);
        var mapped = output.Split('\n').Where(l => l.StartsWith("mapped=", StringComparison.Ordinal)).Select(l => l[7..].Trim()).ToList();
        Assert.Contains(mapped, p => Path.GetFileName(p) == "libtorch_cpu.so");
        Assert.DoesNotContain(mapped, p => p.StartsWith(SystemLibDir, StringComparison.Ordinal));
        Assert.DoesNotContain(mapped, p => p.Contains("1.13", StringComparison.Ordinal));
        Assert.True(systemLibTorch || mapped.Count > 0); // The test is strongest where python3-torch is installed (CI).
    }

    [Fact]
    public void A_child_with_a_bad_libtorch_dir_fails_with_MC4001_not_TorchSharps_message()
    {
        using var temp = NativeTestFiles.NewTempDir();
        var (exitCode, output, errors) = NativeProbeProgram.RunChild(
            ["probe"],
            new Dictionary<string, string> { [TorchNativeLoader.LibTorchDirVariable] = temp.Path });

        Assert.Equal(1, exitCode);
        Assert.Contains("error MC4001", errors, StringComparison.Ordinal);
        Assert.Contains(temp.Path, errors, StringComparison.Ordinal);
        Assert.DoesNotContain("doesn't contain a reference", output + errors, StringComparison.Ordinal);
    }
}
