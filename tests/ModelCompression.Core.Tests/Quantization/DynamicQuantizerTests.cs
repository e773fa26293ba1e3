using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Quantization;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Core.Tests.Quantization;

public sealed class DynamicQuantizerTests
{
    // W is [K=2, N=3]; its output channels are the columns.
    private static readonly float[] Weight = [1.0f, -0.5f, 0.0f, -2.54f, 0.26f, 0.1f];

    // Full range (target vnni), per tensor: max|W| = 2.54, scale 2.54 / 127 = 0.02; round(W / 0.02).
    private static readonly sbyte[] FullRangePerTensorValues = [50, -25, 0, -127, 13, 5];

    // Full range per column: maxima 2.54, 0.5, 0.1; col0 / 0.02 = [50, -127]; col1 / (0.5/127) = [-127, 66.04 -> 66];
    // col2 / (0.1/127) = [0, 127].
    private static readonly sbyte[] FullRangePerChannelValues = [50, -127, 0, -127, 66, 127];

    // Target any: in every column the two largest |q| may sum to at most 128. The columns' two largest |w| sum to
    // 3.54, 0.76 and 0.1, so per tensor the scale is max(2.54 / 127, 3.54 / 128) = 0.02765625:
    // 1.0 -> 36.16 -> 36, -0.5 -> -18.08 -> -18, -2.54 -> -91.84 -> -92, 0.26 -> 9.40 -> 9, 0.1 -> 3.62 -> 4.
    private static readonly sbyte[] PerTensorValues = [36, -18, 0, -92, 9, 4];

    // Per column: col0 0.02765625 -> [36, -92] (sum 128); col1 max(0.5 / 127, 0.76 / 128) = 0.0059375 ->
    // [-84.21 -> -84, 43.79 -> 44] (sum 128); col2 has one non-zero value, so max(0.1 / 127, 0.1 / 128) = 0.1 / 127
    // keeps it at 127 (sum 127): a lone outlier keeps the full 8 bits.
    private static readonly sbyte[] PerChannelValues = [36, -84, 0, -92, 44, 127];

    [Fact]
    public void Per_tensor_weights_quantize_to_known_values()
    {
        var (values, scales) = DynamicQuantizer.QuantizeWeights(Weight, 2, 3, perChannel: false);

        Assert.Equal(PerTensorValues, values);
        Assert.Equal(3.54f / 128f, Assert.Single(scales), 1e-8f);
    }

    [Fact]
    public void Per_channel_weights_quantize_to_known_values()
    {
        var (values, scales) = DynamicQuantizer.QuantizeWeights(Weight, 2, 3, perChannel: true);

        Assert.Equal(PerChannelValues, values);
        Assert.Equal(3, scales.Length);
        Assert.Equal(3.54f / 128f, scales[0], 1e-8f);
        Assert.Equal(0.76f / 128f, scales[1], 1e-9f);
        Assert.Equal(0.1f / 127f, scales[2], 1e-9f);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Target_vnni_weights_use_the_full_int8_range(bool perChannel)
    {
        var (values, scales) = DynamicQuantizer.QuantizeWeights(Weight, 2, 3, perChannel, target: Int8Target.Vnni);

        Assert.Equal(perChannel ? FullRangePerChannelValues : FullRangePerTensorValues, values);
        Assert.Equal(perChannel ? [0.02f, 0.5f / 127f, 0.1f / 127f] : [0.02f], scales);
    }

    [Fact]
    public void Gemm_alpha_folds_into_the_scales_and_a_zero_column_gets_scale_one()
    {
        // Column 0 is all zero; column 1 has max 1.27, so its full-range scale is 0.01 before alpha.
        var (values, scales) = DynamicQuantizer.QuantizeWeights([0f, 1.27f, 0f, -0.6f], 2, 2, perChannel: true, alpha: 2f, target: Int8Target.Vnni);

        Assert.Equal(new sbyte[] { 0, 127, 0, -60 }, values);
        Assert.Equal(2f, scales[0]);
        Assert.Equal(2f * 0.01f, scales[1], 1e-8f);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Gemm_with_transB_is_transposed_then_quantized(bool perChannel)
    {
        // The Gemm stores W^T as [N=3, K=2], as PyTorch exports nn.Linear.
        float[] transposed = [1.0f, -2.54f, -0.5f, 0.26f, 0.0f, 0.1f];
        var model = new GraphBuilder("g")
            .Input("x", DataType.Float, "batch", 2)
            .Initializer("w", transposed, [3, 2])
            .Initializer("b", [1f, 2f, 3f], [3])
            .Node("Gemm", ["x", "w", "b"], ["y"], "fc", "", Attr.Int("transB", 1), Attr.Float("beta", 0.5f))
            .Output("y", DataType.Float, "batch", 3)
            .Build();

        var (quantized, report) = DynamicQuantizer.Quantize(model, perChannel);

        Assert.Equal(["fc"], report.QuantizedNodes);
        Assert.Empty(report.SkippedNodes);
        SaturationCheck.ThrowIfUnproven(quantized, "test model");
        // The new initializers are named after the node; the float weight and bias are gone.
        var initializers = quantized.Graph.Initializer.ToDictionary(i => i.Name[(i.Name.IndexOf('.', StringComparison.Ordinal) + 1)..]);
        Assert.All(quantized.Graph.Initializer, i => Assert.StartsWith("fc", i.Name, StringComparison.Ordinal));
        Assert.Equal(["bias", "weight_int8", "weight_scale", "weight_zero_point"], initializers.Keys.Order(StringComparer.Ordinal));
        Assert.Equal([2L, 3L], initializers["weight_int8"].Dims);
        Assert.Equal(perChannel ? PerChannelValues : PerTensorValues, TensorData.ToInt8s(initializers["weight_int8"]));
        Assert.Equal(perChannel ? [3L] : [], initializers["weight_scale"].Dims);
        Assert.Equal(new sbyte[] { 0 }, TensorData.ToInt8s(initializers["weight_zero_point"]));
        Assert.Equal([0.5f, 1f, 1.5f], TensorData.ToFloats(initializers["bias"]));
        Assert.Equal(
            ["DynamicQuantizeLinear", "MatMulInteger", "Cast", "Mul", "Mul", "Add"],
            quantized.Graph.Node.Select(n => n.OpType));
        Assert.Equal("y", quantized.Graph.Node[^1].Output.Single());
    }

    [Fact]
    public void Weights_that_are_not_constants_or_transA_are_skipped()
    {
        var model = new GraphBuilder("g")
            .Input("x", DataType.Float, 2, 2)
            .Input("w", DataType.Float, 2, 2)
            .Initializer("c", [1f, 0f, 0f, 1f], [2, 2])
            .Node("MatMul", ["x", "w"], ["h"], "dynamic_weight", "")
            .Node("Gemm", ["h", "c"], ["y"], "transposed_a", "", Attr.Int("transA", 1))
            .Output("y", DataType.Float, 2, 2)
            .Build();

        var (quantized, report) = DynamicQuantizer.Quantize(model, perChannel: false);

        Assert.Empty(report.QuantizedNodes);
        Assert.Equal(2, report.SkippedNodes.Count);
        Assert.Contains("dynamic_weight (MatMul): the weight is not a constant", report.SkippedNodes);
        Assert.Contains("transposed_a (Gemm): transA is set", report.SkippedNodes);
        Assert.Equal(model, quantized);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Quantized_mlp_runs_in_onnx_runtime_close_to_the_float_model(bool perChannel)
    {
        var model = Mlp();
        var before = model.ToByteArray();

        var (quantized, report) = DynamicQuantizer.Quantize(model, perChannel);
        SaturationCheck.ThrowIfUnproven(quantized, "test model");

        // The input model is untouched.
        Assert.Equal(before, model.ToByteArray());
        Assert.Equal(["fc1", "fc2"], report.QuantizedNodes);
        Assert.DoesNotContain(quantized.Graph.Node, n => n.OpType is "Gemm" or "MatMul");
        Assert.DoesNotContain(quantized.Graph.Initializer, i => i.Name is "w1" or "w2");
        Assert.Equal(2, quantized.Graph.Initializer.Count(i => i.DataType == (int)DataType.Int8 && i.Dims.Count == 2));

        var random = new Random(7);
        const int Batch = 64;
        var x = Enumerable.Range(0, Batch * 16).Select(_ => (float)((random.NextDouble() * 2) - 1)).ToArray();
        var expected = Run(model, x, Batch);
        var actual = Run(quantized, x, Batch);

        Assert.Equal(expected.Length, actual.Length);
        var scale = expected.Max(MathF.Abs);
        var worst = expected.Zip(actual, (e, a) => MathF.Abs(e - a)).Max();
        Assert.True(worst <= 0.03f * scale, $"max |float - int8| = {worst}, output scale {scale}");
        Assert.True(worst > 0f, "the quantized model gave exactly the float outputs: nothing was quantized");
        // The class decisions almost never change.
        var agree = Enumerable.Range(0, Batch).Count(r => ArgMax(expected, r) == ArgMax(actual, r));
        Assert.True(agree >= Batch - 2, $"{agree}/{Batch} rows agree");
    }

    /// <summary>x[batch,16] -> Gemm(transB=1) -> Relu -> Gemm(transB=0, alpha 1.5, beta 0.5) -> y[batch,5].</summary>
    private static ModelProto Mlp()
    {
        var random = new Random(3);
        float[] Values(int n, double bound) => [.. Enumerable.Range(0, n).Select(_ => (float)(((random.NextDouble() * 2) - 1) * bound))];
        return new GraphBuilder("mlp")
            .Input("x", DataType.Float, "batch", 16)
            .Initializer("w1", Values(32 * 16, 0.4), [32, 16])
            .Initializer("b1", Values(32, 0.2), [32])
            .Initializer("w2", Values(32 * 5, 0.4), [32, 5])
            .Initializer("b2", Values(5, 0.2), [5])
            .Node("Gemm", ["x", "w1", "b1"], ["h"], "fc1", "", Attr.Int("transB", 1))
            .Node("Relu", ["h"], ["r"], "relu", "")
            .Node("Gemm", ["r", "w2", "b2"], ["y"], "fc2", "", Attr.Float("alpha", 1.5f), Attr.Float("beta", 0.5f))
            .Output("y", DataType.Float, "batch", 5)
            .Build();
    }

    private static float[] Run(ModelProto model, float[] x, int batch)
    {
        using var options = new SessionOptions { IntraOpNumThreads = 1 };
        using var session = new InferenceSession(model.ToByteArray(), options);
        using var input = OrtValue.CreateTensorValueFromMemory(x, [batch, 16]);
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, ["x"], [input], ["y"]);
        return outputs[0].GetTensorDataAsSpan<float>().ToArray();
    }

    private static int ArgMax(float[] values, int row) =>
        Enumerable.Range(0, 5).MaxBy(c => values[(row * 5) + c]);
}
