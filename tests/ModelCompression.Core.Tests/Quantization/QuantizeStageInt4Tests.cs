using System.Globalization;
using ModelCompression.Architectures;
using ModelCompression.Core.Tests.Pipeline;
using ModelCompression.Onnx;
using ModelCompression.Quantization;
using ModelCompression.Stages;
using Xunit.Abstractions;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Core.Tests.Quantization;

/// <summary>
/// The quantize stage in int4 mode on an MLP 784-64-10 (two Gemms with transB, K = 784 not a multiple of any block
/// size) over the Fashion-MNIST slice: it needs no training, since the checks compare the int4 model with the float one.
/// </summary>
public sealed class QuantizeStageInt4Tests(ITestOutputHelper output) : IDisposable
{
    private static readonly QuantizeOptions Quick = new() { Mode = QuantizeMode.Int4, SensitivitySamples = 300, LatencyRuns = 2, LatencyThreads = [1], LatencyBatchSizes = [1, 8] };

    private readonly TempDir _dir = new();

    [Theory]
    [InlineData(32, QuantizationScheme.Symmetric, 32_000, 400)]
    [InlineData(128, QuantizationScheme.Asymmetric, 30_720, 690)]
    public void Int4_packs_both_layers_and_reports_their_bytes_kernels_and_sensitivity(int blockSize, QuantizationScheme scheme, int fc1Bytes, int fc2Bytes)
    {
        var (result, model) = Run(Quick with { BlockSize = blockSize, Int4Scheme = scheme });

        output.WriteLine(result.Summary);
        var details = result.Details;
        Assert.Equal("int4", details["mode"]);
        Assert.Equal("fc1, fc2", details["quantized"]);
        Assert.Equal("MatMulNBits x2", details["onnxruntime_integer_kernels"]);
        Assert.Equal(blockSize.ToString(CultureInfo.InvariantCulture), details["block_size"]);
        Assert.Equal(scheme.ToString().ToLowerInvariant(), details["int4_scheme"]);
        // fc1: N = 64 columns of K = 784 in ceil(784 / block) blocks of block / 2 bytes and a float scale (and, asymmetric,
        // 4 packed zero-point bytes per column): 64 x 25 x (16 + 4) = 32,000 or 64 x 7 x (64 + 4) + 64 x 4 = 30,720.
        // fc2: 10 columns of K = 64: 10 x 2 x (16 + 4) = 400 or 10 x 1 x (64 + 4) + 10 x 1 = 690.
        Assert.Equal(fc1Bytes.ToString(CultureInfo.InvariantCulture), details["int4_bytes.fc1"]);
        Assert.Equal((784 * 64 * 4).ToString(CultureInfo.InvariantCulture), details["float_bytes.fc1"]);
        Assert.Equal(fc2Bytes.ToString(CultureInfo.InvariantCulture), details["int4_bytes.fc2"]);
        Assert.Equal(["fc1", "fc2"], details["sensitivity_order"].Split(", ").Order());
        Assert.All(["fc1", "fc2"], n => Assert.InRange(double.Parse(details[$"sensitivity_agreement.{n}"], CultureInfo.InvariantCulture), 0.5, 1));
        Assert.False(details.ContainsKey("target"));
        Assert.Contains($"int4 weight-only ({scheme.ToString().ToLowerInvariant()} blocks of {blockSize}", result.Summary, StringComparison.Ordinal);
        var (bytes, floatBytes) = ((fc1Bytes + fc2Bytes).ToString("N0", CultureInfo.InvariantCulture), ((784 * 64 * 4) + (64 * 10 * 4)).ToString("N0", CultureInfo.InvariantCulture));
        Assert.Contains($"2 weights in 4-bit blocks: {bytes} bytes, {floatBytes} as float32", result.Summary, StringComparison.Ordinal);

        var saved = OnnxModelFile.Load(model);
        Assert.Equal(2, saved.Graph.Node.Count(n => n is { OpType: "MatMulNBits", Domain: "com.microsoft" }));
        // The only float matrices left are the block scales, [N, blocks].
        Assert.All(saved.Graph.Initializer.Where(i => i.DataType == (int)DataType.Float && i.Dims.Count == 2), i => Assert.EndsWith(".weight_scales", i.Name, StringComparison.Ordinal));
        // An untrained MLP's classes are nearly tied, so the agreement is a sanity bound, not a quality measure.
        Assert.True(double.Parse(details["agreement"], CultureInfo.InvariantCulture) >= 0.8, details["agreement"]);
        output.WriteLine($"file {new FileInfo(_dir.File("float.onnx")).Length} -> {new FileInfo(model).Length} bytes");
    }

    [Fact]
    public void Excluded_and_sensitive_layers_stay_float()
    {
        var (excluded, _) = Run(Quick with { ExcludeNodes = "fc1", Sensitivity = false });
        var (kept, model) = Run(Quick with { KeepSensitiveFloat = true, MaxAccuracyDrop = -1 });

        Assert.Equal("fc2", excluded.Details["quantized"]);
        Assert.Equal("fc1 (Gemm): excluded", excluded.Details["skipped"]);
        Assert.False(excluded.Details.ContainsKey("sensitivity_order"));
        // No drop is small enough: both layers go back to float, most sensitive first.
        Assert.Equal("", kept.Details["quantized"]);
        Assert.Equal(kept.Details["sensitivity_order"], kept.Details["kept_float"]);
        Assert.DoesNotContain(OnnxModelFile.Load(model).Graph.Node, n => n.OpType == "MatMulNBits");
    }

    public void Dispose() => _dir.Dispose();

    private (StageResult Result, string Model) Run(QuantizeOptions options)
    {
        var input = _dir.File("float.onnx");
        if (!File.Exists(input))
        {
            OnnxModelFile.Save(ArchitectureRegistry.Build("mlp", new MlpOptions { Hidden = [64] }, new ArchitectureInputs([28, 28], 10)), input);
        }

        var model = _dir.File($"int4-{Guid.NewGuid():N}.onnx");
        return (new QuantizeStage(options).Run(FashionStudentFixture.Context(new RecordingReporter(), _dir), input, model), model);
    }
}
