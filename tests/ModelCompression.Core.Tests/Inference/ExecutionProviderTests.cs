using System.Text.Json.Nodes;
using ModelCompression.Diagnostics;
using ModelCompression.Inference;
using ModelCompression.Recipes;

namespace ModelCompression.Core.Tests.Inference;

/// <summary>
/// 'execution_provider: cuda' / --execution-provider cuda: what it needs is checked before any work, and what is
/// missing is an MC4008 or MC4009 naming it, never a crash or a run that quietly stays on the CPU. The real GPU build
/// (Microsoft.ML.OnnxRuntime.Gpu.Linux, downloaded by this project's restore) is loaded in a fresh process: on a
/// machine without CUDA the run stops with MC4008 listing the missing libraries; on one with a GPU it runs.
/// </summary>
public sealed class ExecutionProviderTests : IDisposable
{
    private readonly TempDir _dir = new();

    private static string PackagesRoot => OnnxRuntimeGpuBuild.PackagesRoot(Environment.GetEnvironmentVariable);

    [Fact]
    public void Cpu_is_the_default_and_runs_on_the_cpu_build_the_engine_ships_with()
    {
        ExecutionProviders.Use(ExecutionProvider.Cpu);

        Assert.Equal(ExecutionProvider.Cpu, ExecutionProviders.Current);
        Assert.Equal([0f], OnnxRunner.Probe(ExecutionProvider.Cpu, -1f));
        Assert.Equal([2.5f], OnnxRunner.Probe(ExecutionProvider.Cpu, 2.5f));
        Assert.Contains("CPUExecutionProvider", ExecutionProviders.Available());
        Assert.DoesNotContain(ExecutionProviders.CudaProviderName, ExecutionProviders.Available());
        var gpuBuild = OnnxRuntimeGpuBuild.NativeDirectory(PackagesRoot);
        var loaded = Assert.Single(OnnxRuntimeGpuBuild.LoadedOnnxRuntimeLibraries());
        Assert.False(loaded.StartsWith(gpuBuild, StringComparison.Ordinal), loaded);
    }

    [Fact]
    public void Names_parse_case_insensitively_and_nothing_else_does()
    {
        Assert.True(ExecutionProviderNames.TryParse("cuda", out var cuda));
        Assert.Equal(ExecutionProvider.Cuda, cuda);
        Assert.True(ExecutionProviderNames.TryParse(" CPU ", out var cpu));
        Assert.Equal(ExecutionProvider.Cpu, cpu);
        Assert.False(ExecutionProviderNames.TryParse("gpu", out _));
        Assert.False(ExecutionProviderNames.TryParse(null, out _));
        Assert.Equal("cuda", ExecutionProvider.Cuda.Name());
        Assert.Equal(ExecutionProvider.Cuda, ExecutionProviders.Resolve(ExecutionProvider.Cuda, ExecutionProvider.Cpu));
        Assert.Equal(ExecutionProvider.Cuda, ExecutionProviders.Resolve(null, ExecutionProvider.Cuda));
        Assert.Equal(ExecutionProvider.Cpu, ExecutionProviders.Resolve(ExecutionProvider.Cpu, ExecutionProvider.Cuda));
    }

    [Fact]
    public void Cuda_without_the_gpu_build_in_the_packages_folder_is_MC4009_with_the_command_that_fetches_it()
    {
        var empty = _dir.Dir("packages");

        var e = Assert.Throws<CompressionException>(() => ExecutionProviders.Use(ExecutionProvider.Cuda, [empty]));

        Assert.Equal(DiagnosticCodes.OnnxRuntimeGpuBuildMissing, e.Code);
        Assert.Contains($"dotnet package download Microsoft.ML.OnnxRuntime.Gpu.Linux@{OnnxRuntimeGpuBuild.Version} -o {empty}", e.Message, StringComparison.Ordinal);
        Assert.Contains(OnnxRuntimeGpuBuild.NativeDirectory(empty), e.Message, StringComparison.Ordinal);
        Assert.Equal(ExecutionProvider.Cpu, ExecutionProviders.Current);
        Assert.Null(OnnxRuntimeGpuBuild.LoadedFrom);
    }

    [Fact]
    public void Cuda_in_a_process_that_holds_the_cpu_build_is_MC4008_not_a_run_on_the_cpu()
    {
        // This test host runs ONNX Runtime's CPU build; a process cannot swap it for the GPU build.
        OnnxRunner.Probe(ExecutionProvider.Cpu, 1f);

        var e = Assert.Throws<CompressionException>(() => ExecutionProviders.Use(ExecutionProvider.Cuda, [PackagesRoot]));

        Assert.Equal(DiagnosticCodes.CudaUnavailable, e.Code);
        Assert.Contains("loaded ONNX Runtime's CPU build already", e.Message, StringComparison.Ordinal);
        Assert.Equal(ExecutionProvider.Cpu, ExecutionProviders.Current);
        Assert.Null(OnnxRuntimeGpuBuild.LoadedFrom);
    }

    [Fact]
    public void The_recipe_key_is_in_the_json_schema_with_its_values_and_default()
    {
        var key = JsonNode.Parse(RecipeSchema.JsonSchema())!["properties"]!["execution_provider"]!;

        Assert.Equal(["cpu", "cuda"], key["enum"]!.AsArray().Select(v => v!.GetValue<string>()));
        Assert.Equal("cpu", key["default"]!.GetValue<string>());
        Assert.Contains("--execution-provider", key["description"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    [Trait("Category", "Slow")]
    public void A_run_asking_for_cuda_loads_the_gpu_build_and_stops_before_any_work_naming_what_is_missing_or_runs_where_cuda_is()
    {
        var libraries = CudaRuntime.Probe();
        var missing = libraries.Where(l => !l.Found).ToList();
        var cache = _dir.Dir("cache");
        var output = _dir.Dir("out");

        // The command line's choice, on the sample recipe (which says nothing about providers).
        var (exitCode, stdout, errors) = Safety.ChildProcessProgram.Run(["run-on", "cuda", Repo.SampleRecipe, cache, output], new Dictionary<string, string?>());

        var gpuBuild = Path.Join(OnnxRuntimeGpuBuild.NativeDirectory(PackagesRoot), "libonnxruntime.so");
        var loaded = stdout.Split('\n').Where(l => l.StartsWith("onnxruntime: ", StringComparison.Ordinal)).Select(l => l["onnxruntime: ".Length..].Trim()).ToList();
        Assert.True(loaded.SequenceEqual([gpuBuild]), $"exit {exitCode}\n{stdout}\n{errors}");
        if (missing.Count > 0 || CudaRuntime.Gpus().Count == 0)
        {
            Assert.True(exitCode == 1, $"exit {exitCode}\n{stdout}\n{errors}");
            Assert.Contains($"error {DiagnosticCodes.CudaUnavailable}: execution provider cuda", stdout, StringComparison.Ordinal);
            Assert.All(missing, l => Assert.Contains($"{l.FileName} ({l.Role})", stdout, StringComparison.Ordinal));
            Assert.All(libraries.Where(l => l.Found), l => Assert.DoesNotContain($"{l.FileName} ({l.Role})", stdout, StringComparison.Ordinal));
            // Checked before any work: no teacher output in the cache, no model written.
            Assert.Empty(Directory.EnumerateFileSystemEntries(output));
            Assert.DoesNotContain(Directory.EnumerateDirectories(cache, "*", SearchOption.AllDirectories), d => d.Contains("teacher-logits", StringComparison.Ordinal));
        }
        else
        {
            Assert.True(exitCode == 0, $"exit {exitCode}\n{stdout}\n{errors}");
            Assert.Contains("teacher accuracy: 0.9", stdout, StringComparison.Ordinal);
        }
    }

    [Fact]
    [Trait("Category", "Slow")]
    public void A_recipe_asking_for_cuda_without_the_gpu_build_is_MC4009_and_loads_no_onnx_runtime()
    {
        var empty = _dir.Dir("packages");
        var sample = Path.GetDirectoryName(Repo.SampleRecipe)!;
        // The recipe's own key this time, with its files where the sample keeps them.
        var recipe = _dir.Write("cuda.compress.yaml", File.ReadAllText(Repo.SampleRecipe)
            .Replace("data/", sample + "/data/", StringComparison.Ordinal)
            .Replace("teacher: teacher/", $"teacher: {sample}/teacher/", StringComparison.Ordinal)
            .Replace("epochs: 8", "epochs: 1", StringComparison.Ordinal)
            + "execution_provider: cuda\n");
        Assert.Equal(ExecutionProvider.Cuda, RecipeLoader.Load(recipe).ExecutionProvider);
        // A packages folder without the GPU build; libtorch still comes from the real one.
        var environment = new Dictionary<string, string?>
        {
            ["NUGET_PACKAGES"] = empty,
            [OnnxRuntimeGpuBuild.PackageFoldersVariable] = null,
            ["MODELCOMPRESSION_LIBTORCH_DIR"] = Path.Join(PackagesRoot, "libtorch-cpu-linux-x64", "2.10.0", "runtimes", "linux-x64", "native"),
        };

        var (exitCode, stdout, errors) = Safety.ChildProcessProgram.Run(["run-on", "cpu", recipe, _dir.Dir("cache"), _dir.Dir("out")], environment);

        // --execution-provider cpu overrides the recipe: the run works on the CPU.
        Assert.True(exitCode == 0, $"exit {exitCode}\n{stdout}\n{errors}");

        (exitCode, stdout, errors) = Safety.ChildProcessProgram.Run(["run-on", "recipe", recipe, _dir.Dir("cache2"), _dir.Dir("out2")], environment);

        Assert.True(exitCode == 1, $"exit {exitCode}\n{stdout}\n{errors}");
        Assert.Contains($"error {DiagnosticCodes.OnnxRuntimeGpuBuildMissing}: execution provider cuda needs ONNX Runtime's GPU build", stdout, StringComparison.Ordinal);
        Assert.Contains($"dotnet package download Microsoft.ML.OnnxRuntime.Gpu.Linux@{OnnxRuntimeGpuBuild.Version} -o {empty}", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("onnxruntime: ", stdout, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFileSystemEntries(_dir.File("out2")));
    }

    public void Dispose() => _dir.Dispose();
}
