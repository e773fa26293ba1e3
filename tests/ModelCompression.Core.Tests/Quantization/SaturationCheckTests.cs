using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using ModelCompression.Core.Tests.Pipeline;
using ModelCompression.Data;
using ModelCompression.Diagnostics;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Quantization;
using ModelCompression.Stages;
using Xunit.Abstractions;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Core.Tests.Quantization;

/// <summary>
/// The static proof that no int16 pair sum of ONNX Runtime's u8 x s8 kernels (AVX2, AVX-512 without VNNI) can
/// saturate. It reads only the weights, so these tests give the same answer on every CPU.
/// </summary>
public sealed class SaturationCheckTests(ITestOutputHelper output)
{
    private static readonly string Fixtures = Path.Join(Repo.Root, "tests", "fixtures", "pytorch");

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    [InlineData(64)]
    public void The_one_node_MatMulInteger_of_255s_and_127s_is_refused(int k)
    {
        // On an AVX2-only EPYC, ONNX Runtime 1.31.1 returns 32767 (K=2), 65534 (K=4) and 1048544 (K=64) for this
        // model instead of 255 * 127 * K: every pair of products saturates its int16.
        var model = OneMatMulInteger(k, Enumerable.Repeat((sbyte)127, k).ToArray());

        var bound = Assert.Single(SaturationCheck.Analyze(model));
        var error = Assert.Throws<CompressionException>(() => SaturationCheck.ThrowIfUnproven(model, "one.onnx"));

        Assert.Equal(("mm", "u8s8", 254, false), (bound.Layer, bound.Kernel, bound.MaxPairSum, bound.Proven));
        var diagnostic = Assert.Single(error.Diagnostics);
        Assert.Equal(DiagnosticCodes.QuantizedLayerSaturates, diagnostic.Code);
        Assert.Equal("one.onnx", diagnostic.File);
        Assert.Contains("mm (MatMulInteger): output channel 0 of weight 'b' has two int8 values with |q_a| + |q_b| = 254 > 128", diagnostic.Message, StringComparison.Ordinal);
        // What this CPU computes is no evidence either way: with VNNI it is exact, on AVX2 it is not.
        output.WriteLine($"K={k}: ONNX Runtime here gives {Run(model, k)} (exact {255 * 127 * k})");
    }

    [Theory]
    [InlineData(new sbyte[] { 64, 64, 64, 64 }, 128, true)]
    [InlineData(new sbyte[] { -65, 63, 10, 0 }, 128, true)]
    [InlineData(new sbyte[] { 1, 65, -64, 2 }, 129, false)]
    [InlineData(new sbyte[] { -128, 0, 0, 0 }, 128, true)]
    public void The_bound_is_the_two_largest_magnitudes_of_a_channel(sbyte[] column, int sum, bool proven)
    {
        var bound = Assert.Single(SaturationCheck.Analyze(OneMatMulInteger(column.Length, column)));

        Assert.Equal((sum, proven), (bound.MaxPairSum, bound.Proven));
    }

    [Fact]
    public void Uint8_weights_run_u8u8_and_cannot_saturate()
    {
        var model = new GraphBuilder("u8u8")
            .Input("a", DataType.Uint8, 1, 4)
            .Initializer("b", new byte[] { 255, 255, 255, 255 }, [4, 1])
            .Node("MatMulInteger", ["a", "b"], ["y"], "mm", "")
            .Output("y", DataType.Int32, 1, 1)
            .Build();

        var bound = Assert.Single(SaturationCheck.Analyze(model));

        Assert.Equal("u8u8", bound.Kernel);
        SaturationCheck.ThrowIfUnproven(model, "u8u8.onnx");
    }

    [Fact]
    public void A_computed_int8_weight_cannot_be_proven()
    {
        var model = new GraphBuilder("computed")
            .Input("a", DataType.Uint8, 1, 4)
            .Input("b", DataType.Int8, 4, 1)
            .Initializer("b_zero_point", new sbyte[] { 0 }, [])
            .Initializer("a_zero_point", new byte[] { 0 }, [])
            .Node("MatMulInteger", ["a", "b", "a_zero_point", "b_zero_point"], ["y"], "mm", "")
            .Output("y", DataType.Int32, 1, 1)
            .Build();

        var error = Assert.Throws<CompressionException>(() => SaturationCheck.ThrowIfUnproven(model, "computed.onnx"));

        Assert.Equal(DiagnosticCodes.QuantizedLayerUnproven, error.Code);
        Assert.Contains("mm (MatMulInteger): cannot prove", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("mlp_opset13.onnx")]
    [InlineData("transformer_opset17.onnx")]
    [InlineData("bert_opset13.onnx")]
    public void Dynamic_int8_of_pytorch_fixtures_is_proven_for_target_any_and_not_for_full_range(string file)
    {
        var model = OnnxModelFile.Load(Path.Join(Fixtures, file));

        var (any, report) = DynamicQuantizer.Quantize(model, perChannel: true, target: Int8Target.Any);
        var (vnni, _) = DynamicQuantizer.Quantize(model, perChannel: true, target: Int8Target.Vnni);

        var bounds = SaturationCheck.Analyze(any);
        Assert.Equal(report.QuantizedNodes.Count(n => model.Graph.Node.Single(m => m.Name == n).OpType != "Gather"), bounds.Count);
        Assert.All(bounds, b => Assert.True(b.Proven, $"{b.Layer}: {b.MaxPairSum}"));
        SaturationCheck.ThrowIfUnproven(any, file);
        // Full-range weights put 127 next to a large second value in some layer.
        var error = Assert.Throws<CompressionException>(() => SaturationCheck.ThrowIfUnproven(vnni, file));
        Assert.All(error.Diagnostics, d => Assert.Equal(DiagnosticCodes.QuantizedLayerSaturates, d.Code));
        output.WriteLine($"{file}: full range, {error.Diagnostics.Count}/{bounds.Count} layers can saturate; target any, max pair sums {string.Join(", ", bounds.Select(b => b.MaxPairSum))}");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Static_QDQ_weights_of_the_pytorch_cnn_are_proven_for_target_any(bool perChannel)
    {
        var model = OnnxModelFile.Load(Path.Join(Fixtures, "cnn_opset13.onnx"));
        var images = StaticQuantizerTests.Images(16, seed: 21);
        var data = new Dataset(images.Inputs, [1, 28, 28], null, images.Source);
        var plan = StaticQuantizer.Plan(model, QuantizationScheme.Asymmetric);
        var ranges = ActivationCalibration.Collect(plan.Model, plan.TensorsToCalibrate, data, CalibrationMethod.MinMax, 99.99, QuantizationScheme.Asymmetric);

        var (any, _) = StaticQuantizer.Quantize(plan, ranges, plan.Candidates, perChannel, Int8Target.Any);
        var (vnni, _) = StaticQuantizer.Quantize(plan, ranges, plan.Candidates, perChannel, Int8Target.Vnni);

        // Two convolutions (DequantizeLinear weight into Conv, output channels on axis 0) and the Gemm.
        var bounds = SaturationCheck.Analyze(any);
        Assert.Equal(["Conv", "Conv", "Gemm"], bounds.Select(b => b.OpType));
        Assert.All(bounds, b => Assert.True(b.Proven && b.MaxPairSum <= 128, $"{b.Layer}: {b.MaxPairSum}"));
        Assert.Contains(SaturationCheck.Analyze(vnni), b => !b.Proven);
    }

    [Fact]
    public void The_quantize_stage_refuses_an_output_with_a_layer_that_can_saturate()
    {
        // An already int8 layer with full-range weights (127 twice in a column) before a float Gemm: the stage
        // quantizes the Gemm and must not pass the old layer on as correct.
        using var dir = new TempDir();
        var path = dir.File("partly-int8.onnx");
        var random = new Random(5);
        var b = Enumerable.Range(0, 784 * 16).Select(_ => (sbyte)random.Next(-20, 21)).ToArray();
        b[0] = 127;
        b[16] = 127;
        OnnxModelFile.Save(
            new GraphBuilder("partly_int8")
                .Input("input", DataType.Float, "batch", 28, 28)
                .Initializer("b", b, [784, 16])
                .Initializer("zero", new sbyte[] { 0 }, [])
                .Initializer("scale", [1e-4f], [])
                .Initializer("shape", [-1L, 784L], [2])
                .Initializer("w", [.. Enumerable.Range(0, 160).Select(_ => (float)(random.NextDouble() - 0.5))], [16, 10])
                .Initializer("c", new float[10], [10])
                .Node("Reshape", ["input", "shape"], ["flat"], "flatten", "")
                .Node("DynamicQuantizeLinear", ["flat"], ["q", "q_scale", "q_zero_point"], "quantize", "")
                .Node("MatMulInteger", ["q", "b", "q_zero_point", "zero"], ["acc"], "int8_layer", "")
                .Node("Cast", ["acc"], ["accf"], "cast", "", Attr.Int("to", (long)DataType.Float))
                .Node("Mul", ["accf", "q_scale"], ["h1"], "rescale", "")
                .Node("Mul", ["h1", "scale"], ["h"], "weight_scale", "")
                .Node("Gemm", ["h", "w", "c"], ["logits"], "classifier", "")
                .Output("logits", DataType.Float, "batch", 10)
                .Build(),
            path);
        var options = new QuantizeOptions { Sensitivity = false, LatencyRuns = 1, LatencyThreads = [1], LatencyBatchSizes = [1], SensitivitySamples = 50 };

        var error = Assert.Throws<CompressionException>(() =>
            new QuantizeStage(options).Run(FashionStudentFixture.Context(new RecordingReporter(), dir), path, dir.File("int8.onnx")));
        var vnni = new QuantizeStage(options with { Target = Int8Target.Vnni }).Run(FashionStudentFixture.Context(new RecordingReporter(), dir), path, dir.File("int8-vnni.onnx"));

        var diagnostic = Assert.Single(error.Diagnostics);
        Assert.Equal(DiagnosticCodes.QuantizedLayerSaturates, diagnostic.Code);
        Assert.Equal(path, diagnostic.File);
        Assert.StartsWith("int8_layer (MatMulInteger): output channel 0 of weight 'b' has two int8 values with |q_a| + |q_b| = 254", diagnostic.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(dir.File("int8.onnx")));
        Assert.Equal("254 (int8_layer)", vnni.Details["max_pair_sum"]);
        Assert.Equal("vnni", vnni.Details["target"]);
        Assert.Contains("target vnni: full-range s8 weights", vnni.Summary, StringComparison.Ordinal);
    }

    /// <summary>MatMulInteger(A uint8 [1, K], B int8 [K, 1] constant).</summary>
    private static ModelProto OneMatMulInteger(int k, sbyte[] column) =>
        new GraphBuilder("one")
            .Input("a", DataType.Uint8, 1, k)
            .Initializer("b", column, [k, 1])
            .Node("MatMulInteger", ["a", "b"], ["y"], "mm", "")
            .Output("y", DataType.Int32, 1, 1)
            .Build();

    private static int Run(ModelProto model, int k)
    {
        using var session = new InferenceSession(model.ToByteArray());
        using var input = OrtValue.CreateTensorValueFromMemory(Enumerable.Repeat((byte)255, k).ToArray(), [1, k]);
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, ["a"], [input], ["y"]);
        return outputs[0].GetTensorDataAsSpan<int>()[0];
    }
}
