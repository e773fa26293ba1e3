using System.Globalization;
using ModelCompression.Architectures;
using ModelCompression.Core.Tests.Pipeline;
using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Quantization;
using ModelCompression.Stages;
using Xunit.Abstractions;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Core.Tests.Quantization;

/// <summary>The quantize stage on a trained Fashion-MNIST MLP student (784-64-10), measured on the 2000 test images.</summary>
[Trait("Category", "Slow")] // trains a Fashion-MNIST student
public sealed class QuantizeStageMlpTests(MlpStudentFixture fixture, ITestOutputHelper output) : IClassFixture<MlpStudentFixture>
{
    /// <summary>Few timed runs at one thread: the tests check the stage's logic, not the machine's speed.</summary>
    private static readonly QuantizeOptions Quick = new() { LatencyRuns = 5, LatencyThreads = [1] };

    [Theory]
    [InlineData(CalibrationMethod.MinMax, true)]
    [InlineData(CalibrationMethod.Percentile, true)]
    [InlineData(CalibrationMethod.Entropy, true)]
    [InlineData(CalibrationMethod.MinMax, false)]
    public void Static_int8_is_at_most_0_30x_of_fp32_and_loses_at_most_half_a_point(CalibrationMethod method, bool perChannel)
    {
        var inputBytes = File.ReadAllBytes(fixture.Student);

        var (result, model, _) = Run(Quick with { Mode = QuantizeMode.Static, CalibrationMethod = method, PerChannel = perChannel });

        Assert.Equal(inputBytes, File.ReadAllBytes(fixture.Student));
        var ratio = (double)new FileInfo(model).Length / inputBytes.Length;
        var before = ModelEvaluation.Measure("fp32", fixture.Student, FashionStudentFixture.Test, new EvaluateOptions { BatchSize = 500, MeasureLatency = false });
        var after = ModelEvaluation.Measure("int8", model, FashionStudentFixture.Test, new EvaluateOptions { BatchSize = 500, MeasureLatency = false });
        output.WriteLine($"{method} per_channel={perChannel}: {inputBytes.Length} -> {new FileInfo(model).Length} bytes ({ratio:0.000}x); test accuracy {before.Accuracy:0.0000} -> {after.Accuracy:0.0000} on {after.Samples} images");
        output.WriteLine(result.Summary);
        Assert.True(ratio <= 0.30, $"size ratio {ratio}");
        // 2000 test images: half a point is 10 images.
        Assert.Equal(2000, after.Samples);
        Assert.True(before.Accuracy - after.Accuracy <= 0.005, $"accuracy {before.Accuracy} -> {after.Accuracy}");

        var details = result.Details;
        Assert.Equal("fc1, fc2", details["quantized"]);
        Assert.Equal("QGemm x2", details["onnxruntime_integer_kernels"]);
        Assert.Equal("256", details["calibration_samples"]);
        Assert.Equal("1000", details["check_samples"]);
        Assert.Equal("false", details["check_overlaps_calibration"]);
        Assert.True(double.Parse(details["agreement"], CultureInfo.InvariantCulture) >= 0.97);
        Assert.Equal(["fc1", "fc2"], details["sensitivity_order"].Split(", ").Order());
        Assert.All(["fc1", "fc2"], n => Assert.InRange(double.Parse(details[$"sensitivity.{n}"], CultureInfo.InvariantCulture), -0.05, 0.05));
        Assert.Contains(details["faster"], new[] { "quantized", "float" });
        Assert.True(double.Parse(details["latency_ms.float.batch64.threads1"], CultureInfo.InvariantCulture) > 0);
        Assert.True(double.Parse(details["latency_ms.quantized.batch1.threads1"], CultureInfo.InvariantCulture) > 0);
        Assert.Contains("faster than float", result.Summary, StringComparison.Ordinal);
        Assert.Contains("sensitivity (accuracy drop of each layer alone, points): fc", result.Summary, StringComparison.Ordinal);

        var saved = OnnxModelFile.Load(model);
        Assert.DoesNotContain(saved.Graph.Initializer, i => i.DataType == (int)DataType.Float && !i.Name.EndsWith("scale", StringComparison.Ordinal));
    }

    [Fact]
    public void Symmetric_int8_activations_also_fuse_and_stay_close()
    {
        var (result, model, _) = Run(Quick with { Mode = QuantizeMode.Static, ActivationScheme = QuantizationScheme.Symmetric, PerChannel = true });

        Assert.Equal("QGemm x2", result.Details["onnxruntime_integer_kernels"]);
        Assert.Equal("symmetric", result.Details["activation_scheme"]);
        Assert.Contains(OnnxModelFile.Load(model).Graph.Initializer, i => i.Name == "flatten.zero_point" && i.DataType == (int)DataType.Int8);
        Assert.True(double.Parse(result.Details["accuracy_drop"], CultureInfo.InvariantCulture) <= 0.01, result.Summary);
    }

    [Fact]
    public void An_excluded_node_stays_float()
    {
        var (result, model, _) = Run(Quick with { Mode = QuantizeMode.Static, ExcludeNodes = "fc1" });

        Assert.Equal("fc2", result.Details["quantized"]);
        Assert.Equal("fc1 (Gemm): excluded", result.Details["skipped"]);
        Assert.Equal("QGemm x1", result.Details["onnxruntime_integer_kernels"]);
        var saved = OnnxModelFile.Load(model);
        var fc1 = saved.Graph.Node.Single(n => n.Name == "fc1");
        Assert.Equal("fc1.weight", fc1.Input[1]);
        Assert.Equal((int)DataType.Float, saved.Graph.Initializer.Single(i => i.Name == "fc1.weight").DataType);
        Assert.DoesNotContain(saved.Graph.Initializer, i => i.Name == "fc2.weight");
    }

    [Fact]
    public void Excluding_every_quantizable_op_type_leaves_the_model_float_with_a_warning()
    {
        var (result, model, reporter) = Run(Quick with { Mode = QuantizeMode.Static, ExcludeOpTypes = "Gemm" });

        Assert.Equal("", result.Details["quantized"]);
        Assert.Contains(reporter.Diagnostics, d => d.Code == DiagnosticCodes.NothingToTransform);
        Assert.Contains("nothing to quantize", result.Summary, StringComparison.Ordinal);
        Assert.False(result.Details.ContainsKey("speedup"));
        Assert.DoesNotContain(OnnxModelFile.Load(model).Graph.Node, n => n.OpType.Contains("Quantize", StringComparison.Ordinal));
    }

    [Fact]
    public void Unknown_names_in_the_exclusions_are_errors_that_list_what_exists()
    {
        var error = Assert.Throws<CompressionException>(() => Run(Quick with { Mode = QuantizeMode.Static, ExcludeNodes = "fc9", ExcludeOpTypes = "conv" }));

        Assert.Equal(2, error.Diagnostics.Count);
        Assert.All(error.Diagnostics, d => Assert.Equal(DiagnosticCodes.RecipeInvalidValue, d.Code));
        Assert.Contains("'fc9', which is not a node of the model (nodes: flatten, fc1, fc1.relu, fc2)", error.Diagnostics[0].Message, StringComparison.Ordinal);
        Assert.Contains("'conv', which no node of the model has (op types: Flatten, Gemm, Relu)", error.Diagnostics[1].Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Names_checked_when_the_stage_starts_point_at_their_options_lines()
    {
        // After a stage that changes the graph the plan leaves these to the stage, which knows where the recipe writes them.
        var site = new StageSite("recipe.compress.yaml", 20, new Dictionary<string, int> { ["exclude_nodes"] = 22, ["exclude_op_types"] = 23 });
        var stage = new QuantizeStage(Quick with { ExcludeNodes = "fc9", ExcludeOpTypes = "conv", LatencyThreads = [] }, site);

        var error = Assert.Throws<CompressionException>(() => stage.Run(fixture.Context(new RecordingReporter()), fixture.Student, fixture.Dir.File($"sited-{Guid.NewGuid():N}.onnx")));

        Assert.Equal([("recipe.compress.yaml", 22), ("recipe.compress.yaml", 23), ("recipe.compress.yaml", 20)], error.Diagnostics.Select(d => (d.File!, d.Line!.Value)));
    }

    [Fact]
    public void Empty_latency_lists_are_errors()
    {
        var error = Assert.Throws<CompressionException>(() => Run(Quick with { LatencyBatchSizes = [], LatencyThreads = [] }));

        Assert.Equal(
            ["quantize: latency_batch_sizes needs at least one batch size.", "quantize: latency_threads needs at least one thread count."],
            error.Diagnostics.Select(d => d.Message));
    }

    [Fact]
    public void Keep_sensitive_float_puts_the_layer_that_breaks_back_to_float()
    {
        // One huge weight on the corner pixel (0 in almost every image, so the float model hardly changes)
        // makes fc1's per-tensor scale 1000 / 127: every other fc1 weight rounds to 0, and fc1 alone in int8
        // ruins the model. fc2 quantizes fine.
        var student = OnnxModelFile.Load(fixture.Student);
        var weight = student.Graph.Initializer.Single(i => i.Name == "fc1.weight");
        var values = TensorData.ToFloats(weight);
        values[0] = 1000f;
        student.Graph.Initializer[student.Graph.Initializer.IndexOf(weight)] = TensorData.FromFloats(weight.Name, values, [.. weight.Dims]);
        var fragile = fixture.Dir.File($"fragile-{Guid.NewGuid():N}.onnx");
        OnnxModelFile.Save(student, fragile);
        var options = Quick with { Mode = QuantizeMode.Static, PerChannel = false };

        var (plain, _, plainReporter) = Run(options, fragile);
        var (kept, model, keptReporter) = Run(options with { KeepSensitiveFloat = true }, fragile);

        Assert.StartsWith("fc1, ", plain.Details["sensitivity_order"], StringComparison.Ordinal);
        Assert.True(double.Parse(plain.Details["sensitivity.fc1"], CultureInfo.InvariantCulture) > 0.2, plain.Details["sensitivity.fc1"]);
        Assert.Contains(plainReporter.Diagnostics, d => d.Code == DiagnosticCodes.QuantizedAccuracyDrop);

        Assert.Equal("fc1", kept.Details["kept_float"]);
        Assert.Equal("fc2", kept.Details["quantized"]);
        Assert.True(double.Parse(kept.Details["accuracy_drop"], CultureInfo.InvariantCulture) <= 0.005, kept.Summary);
        Assert.DoesNotContain(keptReporter.Diagnostics, d => d.Code == DiagnosticCodes.QuantizedAccuracyDrop);
        Assert.Contains("kept in float by sensitivity: fc1", kept.Summary, StringComparison.Ordinal);
        Assert.Equal("fc1.weight", OnnxModelFile.Load(model).Graph.Node.Single(n => n.Name == "fc1").Input[1]);
    }

    [Fact]
    public void Dynamic_int8_measures_sensitivity_and_runs_as_integer_kernels()
    {
        var (result, model, _) = Run(Quick with { Mode = QuantizeMode.Dynamic, PerChannel = true });

        Assert.Equal("fc1, fc2", result.Details["quantized"]);
        Assert.True(result.Details.ContainsKey("sensitivity.fc1"));
        Assert.True(result.Details.ContainsKey("sensitivity.fc2"));
        Assert.NotEqual("", result.Details["onnxruntime_integer_kernels"]);
        Assert.Contains(OnnxModelFile.Load(model).Graph.Node, n => n.OpType == "MatMulInteger");
        Assert.True(double.Parse(result.Details["agreement"], CultureInfo.InvariantCulture) >= 0.97);
    }

    [Fact]
    public void Fp16_halves_the_file_and_agrees_with_float()
    {
        var (result, model, _) = Run(Quick with { Mode = QuantizeMode.Fp16 });

        var ratio = (double)new FileInfo(model).Length / new FileInfo(fixture.Student).Length;
        Assert.InRange(ratio, 0.45, 0.55);
        Assert.Equal("4", result.Details["float16_initializers"]);
        Assert.True(double.Parse(result.Details["agreement"], CultureInfo.InvariantCulture) >= 0.99);
        var test = FashionStudentFixture.Test;
        var (before, after) = (ModelEvaluation.Measure("fp32", fixture.Student, test, new EvaluateOptions { BatchSize = 500, MeasureLatency = false }), ModelEvaluation.Measure("fp16", model, test, new EvaluateOptions { BatchSize = 500, MeasureLatency = false }));
        Assert.True(Math.Abs(before.Accuracy - after.Accuracy) <= 0.002, $"{before.Accuracy} vs {after.Accuracy}");
    }

    [Fact]
    public void Keep_float_if_slower_keeps_the_float_model_exactly_when_int8_loses()
    {
        // A 784-8-10 MLP at batch 1: quantizing 784 inputs per call costs more than the tiny float product saves,
        // so the float model usually wins here; whichever wins, the stage must act on it.
        var tiny = fixture.Dir.File($"tiny-{Guid.NewGuid():N}.onnx");
        OnnxModelFile.Save(ArchitectureRegistry.Build("mlp", new MlpOptions { Hidden = [8] }, new ArchitectureInputs([28, 28], 10)), tiny);

        var (result, model, reporter) = Run(Quick with { KeepFloatIfSlower = true, LatencyBatchSizes = [1], LatencyRuns = 30, Sensitivity = false }, tiny);

        output.WriteLine(result.Summary);
        var floatWon = result.Details["faster"] == "float";
        Assert.Equal(floatWon ? "true" : "false", result.Details["kept_float_model"]);
        Assert.Equal(floatWon, reporter.Diagnostics.Any(d => d.Code == DiagnosticCodes.QuantizedNotFaster));
        Assert.Equal(floatWon, OnnxModelFile.Load(model).Equals(OnnxModelFile.Load(tiny)));
        Assert.Equal(!floatWon, OnnxModelFile.Load(model).Graph.Node.Any(n => n.OpType == "MatMulInteger"));
        Assert.Contains(floatWon ? "float model kept" : "faster than float", result.Summary, StringComparison.Ordinal);
    }

    private (StageResult Result, string Model, RecordingReporter Reporter) Run(QuantizeOptions options, string? input = null)
    {
        var reporter = new RecordingReporter();
        var model = fixture.Dir.File($"quantized-{Guid.NewGuid():N}.onnx");
        var result = new QuantizeStage(options).Run(fixture.Context(reporter), input ?? fixture.Student, model);
        return (result, model, reporter);
    }
}
