using ModelCompression.Diagnostics;
using ModelCompression.Quantization;
using ModelCompression.Recipes;
using ModelCompression.Stages;

namespace ModelCompression.Core.Tests.Quantization;

public sealed class QuantizeOptionsTests
{
    [Fact]
    public void Every_quantize_option_binds_from_a_recipe()
    {
        using var dir = new TempDir();
        var recipe = RecipeLoader.Load(WriteRecipe(dir, """
            { mode: static, per_channel: true, target: vnni, activation_scheme: symmetric, calibration_method: entropy,
              calibration_samples: 128, percentile: 99.9, exclude_nodes: "fc1, fc2", exclude_op_types: Conv,
              sensitivity: false, sensitivity_samples: 300, keep_sensitive_float: true, max_accuracy_drop: 0.01,
              keep_float_if_slower: true, latency_batch_sizes: [1, 8], latency_threads: [1], latency_runs: 7, seed: 3,
              block_size: 128, int4_scheme: asymmetric }
            """));

        var options = Assert.IsType<QuantizeOptions>(recipe.Stages.Single(s => s.Kind == "quantize").Options);

        Assert.Equal(
            new QuantizeOptions
            {
                Mode = QuantizeMode.Static,
                PerChannel = true,
                Target = Int8Target.Vnni,
                ActivationScheme = QuantizationScheme.Symmetric,
                CalibrationMethod = CalibrationMethod.Entropy,
                CalibrationSamples = 128,
                Percentile = 99.9,
                ExcludeNodes = "fc1, fc2",
                ExcludeOpTypes = "Conv",
                Sensitivity = false,
                SensitivitySamples = 300,
                KeepSensitiveFloat = true,
                MaxAccuracyDrop = 0.01,
                KeepFloatIfSlower = true,
                LatencyBatchSizes = options.LatencyBatchSizes,
                LatencyThreads = options.LatencyThreads,
                LatencyRuns = 7,
                Seed = 3,
                BlockSize = 128,
                Int4Scheme = QuantizationScheme.Asymmetric,
            },
            options);
        Assert.Equal([1, 8], options.LatencyBatchSizes);
        Assert.Equal([1], options.LatencyThreads);
        Assert.Equal(["fc1", "fc2"], options.ExcludedNodes.Order());
        Assert.Equal(["Conv"], options.ExcludedOpTypes);
    }

    [Fact]
    public void Bad_quantize_options_are_all_reported_with_their_lines()
    {
        using var dir = new TempDir();
        var path = WriteRecipe(dir, "{ mode: int2, calibration_method: kl, percentile: 20, latency_threads: [0] }");

        var error = Assert.Throws<CompressionException>(() => RecipeLoader.Load(path));

        Assert.Equal(4, error.Diagnostics.Count);
        Assert.All(error.Diagnostics, d => Assert.Equal((DiagnosticCodes.RecipeInvalidValue, 10), (d.Code, d.Line ?? 0)));
        Assert.Contains("'int2' is not one of dynamic, static, fp16, int4", error.Diagnostics[0].Message, StringComparison.Ordinal);
        Assert.Contains("'kl' is not one of minmax, percentile, entropy", error.Diagnostics[1].Message, StringComparison.Ordinal);
        Assert.Contains("20 is out of range [50, 100]", error.Diagnostics[2].Message, StringComparison.Ordinal);
        Assert.Contains("0 is out of range [1, 1024]", error.Diagnostics[3].Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_options_listing_describes_the_modes_and_calibration_methods()
    {
        var quantize = RecipeSchema.Stages()["quantize"];

        Assert.Contains(quantize, o => o is { Name: "mode", Type: "one of dynamic, static, fp16, int4", Default: "dynamic" });
        Assert.Contains(quantize, o => o is { Name: "calibration_method", Type: "one of minmax, percentile, entropy", Default: "minmax" });
        Assert.Contains(quantize, o => o is { Name: "calibration_samples", Default: "256" });
        Assert.Contains(quantize, o => o is { Name: "percentile", Default: "99.99" });
        Assert.Contains(quantize, o => o is { Name: "sensitivity_samples", Default: "1000" });
        Assert.Contains(quantize, o => o is { Name: "max_accuracy_drop", Default: "0.005" });
        Assert.Contains(quantize, o => o is { Name: "keep_float_if_slower", Default: "false" });
        Assert.Contains(quantize, o => o is { Name: "latency_batch_sizes", Default: "[1, 64]" });
    }

    [Theory]
    [InlineData(48)]
    [InlineData(96)]
    public void A_block_size_MatMulNBits_does_not_take_is_a_recipe_error_at_the_stage_line(int blockSize)
    {
        using var dir = new TempDir();
        var path = WriteRecipe(dir, $"{{ mode: int4, block_size: {blockSize} }}");

        var error = Assert.Throws<CompressionException>(() => RecipeLoader.Load(path));

        var diagnostic = Assert.Single(error.Diagnostics);
        Assert.Equal((DiagnosticCodes.RecipeInvalidValue, 10, path), (diagnostic.Code, diagnostic.Line ?? 0, diagnostic.File));
        Assert.Contains($"block_size {blockSize} is not one MatMulNBits takes (16, 32, 64, 128, 256: a power of two from 16 to 256)", diagnostic.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(8, "8 is out of range [16, 256]")]
    [InlineData(512, "512 is out of range [16, 256]")]
    public void A_block_size_out_of_range_is_a_recipe_error(int blockSize, string message)
    {
        using var dir = new TempDir();
        var path = WriteRecipe(dir, $"{{ mode: int4, block_size: {blockSize}, int4_scheme: lopsided }}");

        var error = Assert.Throws<CompressionException>(() => RecipeLoader.Load(path));

        Assert.Equal(2, error.Diagnostics.Count);
        Assert.All(error.Diagnostics, d => Assert.Equal((DiagnosticCodes.RecipeInvalidValue, 10), (d.Code, d.Line ?? 0)));
        Assert.Contains(message, error.Diagnostics[0].Message, StringComparison.Ordinal);
        Assert.Contains("'lopsided' is not one of asymmetric, symmetric", error.Diagnostics[1].Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Int4_defaults_to_symmetric_blocks_of_32()
    {
        var quantize = RecipeSchema.Stages()["quantize"];

        Assert.Contains(quantize, o => o is { Name: "block_size", Default: "32" });
        Assert.Contains(quantize, o => o is { Name: "int4_scheme", Type: "one of asymmetric, symmetric", Default: "symmetric" });
    }

    /// <summary>A recipe over the sample's data and teacher; the quantize options are on line 10.</summary>
    private static string WriteRecipe(TempDir dir, string quantizeOptions) => dir.Write("q.compress.yaml", $"""
        task: classification
        data:
          format: idx
          train: {"{"} inputs: {Repo.SampleData("train-images-idx3-ubyte.gz")}, labels: {Repo.SampleData("train-labels-idx1-ubyte.gz")} {"}"}
          test:  {"{"} inputs: {Repo.SampleData("t10k-images-idx3-ubyte.gz")}, labels: {Repo.SampleData("t10k-labels-idx1-ubyte.gz")} {"}"}
        teacher: {Repo.Teacher}
        student: {"{"} architecture: mlp {"}"}
        stages:
          - distill: {"{"} epochs: 1 {"}"}
          - quantize: {quantizeOptions.ReplaceLineEndings(" ")}
        gates: []
        outputs: {"{"} model: q.onnx {"}"}
        """);
}
