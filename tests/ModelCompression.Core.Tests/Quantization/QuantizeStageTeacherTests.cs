using ModelCompression.Core.Tests.Pipeline;
using ModelCompression.Evaluation;
using ModelCompression.Stages;
using Xunit.Abstractions;

namespace ModelCompression.Core.Tests.Quantization;

/// <summary>
/// Static int8 of a network trained and exported by real PyTorch: the sample's Fashion-MNIST teacher
/// (Conv-ReLU-MaxPool x2, Flatten, Gemm-ReLU-Gemm; 1.7 MB, 91.9% on the full test set).
/// </summary>
[Trait("Category", "Slow")] // calibrates and evaluates the PyTorch teacher on the test slice
public sealed class QuantizeStageTeacherTests(ITestOutputHelper output)
{
    [Fact]
    public void Static_int8_of_the_pytorch_teacher_is_under_0_30x_loses_at_most_half_a_point_and_runs_as_integer_kernels()
    {
        using var dir = new TempDir();
        var model = dir.File("teacher.int8.onnx");
        var options = new QuantizeOptions { Mode = QuantizeMode.Static, PerChannel = true, LatencyRuns = 3, LatencyThreads = [1], Sensitivity = false };

        var result = new QuantizeStage(options).Run(FashionStudentFixture.Context(new RecordingReporter(), dir), Repo.Teacher, model);

        var test = FashionStudentFixture.Test;
        var (before, after) = (ModelEvaluation.Measure("fp32", Repo.Teacher, test, new EvaluateOptions { BatchSize = 500, MeasureLatency = false }), ModelEvaluation.Measure("int8", model, test, new EvaluateOptions { BatchSize = 500, MeasureLatency = false }));
        output.WriteLine(result.Summary);
        output.WriteLine($"{before.SizeBytes} -> {after.SizeBytes} bytes ({(double)after.SizeBytes / before.SizeBytes:0.000}x); accuracy {before.Accuracy:0.0000} -> {after.Accuracy:0.0000} on {test.Count} test images");
        Assert.True(after.SizeBytes <= 0.30 * before.SizeBytes, $"{after.SizeBytes} vs {before.SizeBytes}");
        Assert.True(before.Accuracy - after.Accuracy <= 0.005, $"accuracy {before.Accuracy} -> {after.Accuracy}");
        Assert.Contains("QLinearConv x2", result.Details["onnxruntime_integer_kernels"], StringComparison.Ordinal);
        Assert.Contains("QGemm x2", result.Details["onnxruntime_integer_kernels"], StringComparison.Ordinal);
    }
}
