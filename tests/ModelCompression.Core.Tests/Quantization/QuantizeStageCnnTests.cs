using ModelCompression.Core.Tests.Pipeline;
using ModelCompression.Evaluation;
using ModelCompression.Inference;
using ModelCompression.Onnx;
using ModelCompression.Stages;
using Xunit.Abstractions;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Core.Tests.Quantization;

/// <summary>The quantize stage on a trained Fashion-MNIST CNN (Conv-BN-ReLU-pool x2, global average pool, Gemm).</summary>
[Trait("Category", "Slow")] // trains a Fashion-MNIST CNN student
public sealed class QuantizeStageCnnTests(CnnStudentFixture fixture, ITestOutputHelper output) : IClassFixture<CnnStudentFixture>
{
    private static readonly QuantizeOptions Quick = new() { LatencyRuns = 3, LatencyThreads = [1], SensitivitySamples = 500 };

    [Fact]
    public void Static_int8_cnn_runs_as_QLinearConv_and_agrees_with_float_on_97_percent_of_the_test_images()
    {
        var model = fixture.Dir.File($"cnn-int8-{Guid.NewGuid():N}.onnx");

        var result = new QuantizeStage(Quick with { Mode = QuantizeMode.Static, PerChannel = true }).Run(fixture.Context(new RecordingReporter()), fixture.Student, model);

        output.WriteLine(result.Summary);
        Assert.Equal("block1.bn, block2.bn", result.Details["folded_batch_norms"]);
        Assert.Equal("block1.conv, block2.conv, classifier", result.Details["quantized"]);
        Assert.Equal("QGemm x1, QLinearConv x2", result.Details["onnxruntime_integer_kernels"]);
        var test = FashionStudentFixture.Test;
        var agreement = Agreement(fixture.Student, model, test);
        var (before, after) = (ModelEvaluation.Measure("fp32", fixture.Student, test, new EvaluateOptions { BatchSize = 500, MeasureLatency = false }), ModelEvaluation.Measure("int8", model, test, new EvaluateOptions { BatchSize = 500, MeasureLatency = false }));
        output.WriteLine($"agreement {agreement:0.0000} on {test.Count} test images; accuracy {before.Accuracy:0.0000} -> {after.Accuracy:0.0000}; size {before.SizeBytes} -> {after.SizeBytes} bytes");
        Assert.True(agreement >= 0.97, $"agreement {agreement}");
    }

    [Fact]
    public void Dynamic_int8_leaves_the_convolutions_in_float()
    {
        var model = fixture.Dir.File($"cnn-dynamic-{Guid.NewGuid():N}.onnx");

        var result = new QuantizeStage(Quick with { Mode = QuantizeMode.Dynamic }).Run(fixture.Context(new RecordingReporter()), fixture.Student, model);

        Assert.Equal("classifier", result.Details["quantized"]);
        var saved = OnnxModelFile.Load(model);
        Assert.Equal(2, saved.Graph.Node.Count(n => n.OpType == "Conv"));
        Assert.All(
            saved.Graph.Node.Where(n => n.OpType == "Conv"),
            conv => Assert.Equal((int)DataType.Float, saved.Graph.Initializer.Single(i => i.Name == conv.Input[1]).DataType));
    }

    private static double Agreement(string floatModel, string quantizedModel, ModelCompression.Data.Dataset data)
    {
        float[] expected, actual;
        using (var runner = new OnnxRunner(floatModel))
        {
            expected = runner.Run(data, 500);
        }

        using (var runner = new OnnxRunner(quantizedModel))
        {
            actual = runner.Run(data, 500);
        }

        return (double)Enumerable.Range(0, data.Count).Count(i =>
            ModelEvaluation.ArgMax(expected.AsSpan(i * 10, 10)) == ModelEvaluation.ArgMax(actual.AsSpan(i * 10, 10))) / data.Count;
    }
}
