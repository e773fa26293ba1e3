using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using ModelCompression.Onnx;
using ModelCompression.Quantization;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Core.Tests.Quantization;

public sealed class QuantizationParametersTests
{
    // A 2x3 weight, rows = output channels (as Conv and Gemm with transB store them):
    //   row 0: [ 0.3, -1.2,   0.9 ]   max|w| 1.2,  min -1.2,   max 0.9
    //   row 1: [ 2.54, -0.127, 1.0 ]  max|w| 2.54, min -0.127, max 2.54
    private static readonly float[] Weight = [0.3f, -1.2f, 0.9f, 2.54f, -0.127f, 1.0f];

    [Fact]
    public void Symmetric_per_tensor_weight_gets_known_int8_values_and_scale()
    {
        // scale = 2.54 / 127 = 0.02; q = round(w / 0.02):
        //   0.3 -> 15, -1.2 -> -60, 0.9 -> 45, 2.54 -> 127, -0.127 -> -6.35 -> -6, 1.0 -> 50. Zero point 0.
        var (values, scales) = QuantizationParameters.QuantizeWeight(Weight, [2, 3], axis: null);

        Assert.Equal(new sbyte[] { 15, -60, 45, 127, -6, 50 }, values);
        Assert.Equal(0.02f, Assert.Single(scales), 1e-8f);
    }

    [Fact]
    public void Symmetric_per_channel_weight_gets_one_scale_per_row()
    {
        // Row 0: scale 1.2 / 127 = 0.0094488; 0.3 -> 31.75 -> 32, -1.2 -> -127, 0.9 -> 95.25 -> 95.
        // Row 1: scale 2.54 / 127 = 0.02; 127, -6, 50 as per tensor.
        var (values, scales) = QuantizationParameters.QuantizeWeight(Weight, [2, 3], axis: 0);

        Assert.Equal(new sbyte[] { 32, -127, 95, 127, -6, 50 }, values);
        Assert.Equal(2, scales.Length);
        Assert.Equal(1.2f / 127f, scales[0], 1e-9f);
        Assert.Equal(0.02f, scales[1], 1e-8f);
    }

    [Fact]
    public void Symmetric_per_channel_along_the_last_axis_uses_columns()
    {
        // Columns: max|w| 2.54, 1.2, 1.0 -> scales 0.02, 0.0094488, 0.0078740.
        //   col 0: 0.3 / 0.02 = 15, 2.54 / 0.02 = 127; col 1: -127, -0.127 / 0.0094488 = -13.44 -> -13;
        //   col 2: 0.9 / 0.007874 = 114.3 -> 114, 127.
        var (values, scales) = QuantizationParameters.QuantizeWeight(Weight, [2, 3], axis: 1);

        Assert.Equal(new sbyte[] { 15, -127, 114, 127, -13, 127 }, values);
        Assert.Equal([0.02f, 1.2f / 127f, 1.0f / 127f], scales);
    }

    [Fact]
    public void Pair_bounded_per_channel_weight_keeps_each_rows_two_largest_q_within_128()
    {
        // Row 0: the two largest |w| are 1.2 and 0.9: scale max(1.2 / 127, 2.1 / 128) = 0.01640625;
        //   0.3 -> 18.29 -> 18, -1.2 -> -73.14 -> -73, 0.9 -> 54.86 -> 55 (73 + 55 = 128).
        // Row 1: 2.54 and 1.0: scale 3.54 / 128 = 0.02765625; 2.54 -> 91.84 -> 92, -0.127 -> -4.59 -> -5, 1.0 -> 36.16 -> 36.
        var (values, scales) = QuantizationParameters.QuantizeWeight(Weight, [2, 3], axis: 0, pairSumAxis: 0);

        Assert.Equal(new sbyte[] { 18, -73, 55, 92, -5, 36 }, values);
        Assert.Equal([2.1f / 128f, 3.54f / 128f], scales);
        Assert.Equal((128, 0L), QuantizationParameters.PairSum(values, [2, 3], 0));
    }

    [Fact]
    public void Pair_bounded_per_tensor_weight_bounds_every_channel_under_one_scale()
    {
        // One scale for both rows: the larger of the rows' bounds, 3.54 / 128; row 0 then sums to 43 + 33 = 76.
        var (values, scales) = QuantizationParameters.QuantizeWeight(Weight, [2, 3], axis: null, pairSumAxis: 0);

        Assert.Equal(new sbyte[] { 11, -43, 33, 92, -5, 36 }, values);
        Assert.Equal(3.54f / 128f, Assert.Single(scales));
    }

    [Fact]
    public void A_channel_with_one_outlier_keeps_the_full_range()
    {
        // |w| 1.0 and 0.004: max(1 / 127, 1.004 / 128) = 1 / 127, so the outlier maps to 127 and the next to 0.508 -> 1.
        var (values, scales) = QuantizationParameters.QuantizeWeight([1.0f, 0.004f, -0.002f], [3, 1], axis: 1, pairSumAxis: 1);

        Assert.Equal(new sbyte[] { 127, 1, 0 }, values);
        Assert.Equal(1f / 127f, Assert.Single(scales));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Pair_bounded_weights_never_exceed_128_and_beat_7_bit_weights(int seed)
    {
        // Random [K, N] weights, about one outlier per column (as trained layers have), per channel along the columns.
        var random = new Random(seed);
        const int K = 64, N = 48;
        var w = new float[K * N];
        for (var i = 0; i < w.Length; i++)
        {
            var v = (float)((random.NextDouble() * 2) - 1);
            w[i] = random.Next(K) == 0 ? v * 6 : v;
        }

        var (values, scales) = QuantizationParameters.QuantizeWeight(w, [K, N], axis: 1, pairSumAxis: 1);

        Assert.True(QuantizationParameters.PairSum(values, [K, N], 1).Sum <= SaturationCheck.MaxPairSum);
        double error = 0, sevenBitError = 0;
        for (var n = 0; n < N; n++)
        {
            // ONNX Runtime's reduce_range: 7-bit weights, scale max|w| / 64, |q| <= 64.
            var column = Enumerable.Range(0, K).Select(k => w[(k * N) + n]).ToArray();
            var sevenBit = column.Max(MathF.Abs) / 64f;
            Assert.True(scales[n] <= sevenBit, $"column {n}: scale {scales[n]} > 7-bit scale {sevenBit}");
            error += Enumerable.Range(0, K).Sum(k => Math.Abs((values[(k * N) + n] * scales[n]) - column[k]));
            sevenBitError += column.Sum(v => Math.Abs((MathF.Round(v / sevenBit, MidpointRounding.ToEven) * sevenBit) - v));
        }

        Assert.True(error < 0.9 * sevenBitError, $"mean |w - q * scale| {error / w.Length} vs 7-bit {sevenBitError / w.Length}");
    }

    [Fact]
    public void Different_per_channel_and_pair_sum_axes_are_refused()
    {
        Assert.Throws<ArgumentException>(() => QuantizationParameters.QuantizeWeight(Weight, [2, 3], axis: 0, pairSumAxis: 1));
    }

    [Fact]
    public void Asymmetric_per_tensor_range_gets_known_scale_zero_point_and_uint8_values()
    {
        // min -1.2, max 2.54: scale = 3.74 / 255 = 0.0146667, zero point = round(1.2 / 0.0146667) = round(81.82) = 82.
        // q = round(w / scale) + 82: 0.3 -> 20 + 82 = 102; -1.2 -> -82 + 82 = 0; 0.9 -> 61 + 82 = 143;
        //   2.54 -> 173 + 82 = 255; -0.127 -> -9 + 82 = 73; 1.0 -> 68 + 82 = 150.
        var parameters = QuantizationParameters.ForRange(Weight.Min(), Weight.Max(), QuantizationScheme.Asymmetric);

        Assert.Equal(3.74f / 255f, parameters.Scale, 1e-8f);
        Assert.Equal(82, parameters.ZeroPoint);
        Assert.Equal(new byte[] { 102, 0, 143, 255, 73, 150 }, QuantizeLinear([parameters.Scale], [(byte)parameters.ZeroPoint], axis: null));
    }

    [Fact]
    public void Asymmetric_per_channel_ranges_get_known_scales_zero_points_and_uint8_values()
    {
        // Row 0: [-1.2, 0.9] -> scale 2.1 / 255 = 0.0082353, zero point round(145.71) = 146;
        //   0.3 -> 36 + 146 = 182, -1.2 -> 0, 0.9 -> 109 + 146 = 255.
        // Row 1: [-0.127, 2.54] -> scale 2.667 / 255 = 0.0104588, zero point round(12.14) = 12;
        //   2.54 -> 243 + 12 = 255, -0.127 -> 0, 1.0 -> 95.6 -> 96 + 12 = 108.
        var row0 = QuantizationParameters.ForRange(-1.2f, 0.9f, QuantizationScheme.Asymmetric);
        var row1 = QuantizationParameters.ForRange(-0.127f, 2.54f, QuantizationScheme.Asymmetric);

        Assert.Equal((2.1f / 255f, 146), (row0.Scale, row0.ZeroPoint), new ScaleComparer());
        Assert.Equal((2.667f / 255f, 12), (row1.Scale, row1.ZeroPoint), new ScaleComparer());
        Assert.Equal(
            new byte[] { 182, 0, 255, 255, 0, 108 },
            QuantizeLinear([row0.Scale, row1.Scale], [(byte)row0.ZeroPoint, (byte)row1.ZeroPoint], axis: 0));
    }

    [Fact]
    public void Symmetric_range_has_zero_point_zero_and_covers_the_larger_side()
    {
        var parameters = QuantizationParameters.ForRange(-1.2f, 2.54f, QuantizationScheme.Symmetric);

        Assert.Equal(0.02f, parameters.Scale, 1e-8f);
        Assert.Equal(0, parameters.ZeroPoint);
    }

    [Fact]
    public void Ranges_are_widened_to_include_zero_and_empty_ranges_get_scale_one()
    {
        // [0.5, 2.55] becomes [0, 2.55]: scale 0.01, zero point 0, so a ReLU's 0 stays exact.
        var positive = QuantizationParameters.ForRange(0.5f, 2.55f, QuantizationScheme.Asymmetric);
        Assert.Equal(0.01f, positive.Scale, 1e-8f);
        Assert.Equal(0, positive.ZeroPoint);

        // [-2.55, -0.5] becomes [-2.55, 0]: zero point 255.
        Assert.Equal(255, QuantizationParameters.ForRange(-2.55f, -0.5f, QuantizationScheme.Asymmetric).ZeroPoint);

        Assert.Equal(new QuantizationParameters(1f, 0), QuantizationParameters.ForRange(0f, 0f, QuantizationScheme.Asymmetric));
        Assert.Equal(new QuantizationParameters(1f, 0), QuantizationParameters.ForRange(0f, 0f, QuantizationScheme.Symmetric));
        Assert.Throws<ArgumentException>(() => QuantizationParameters.ForRange(float.NaN, 1f, QuantizationScheme.Symmetric));
    }

    [Fact]
    public void Bias_is_int32_at_the_accumulator_scale()
    {
        // Accumulator scale = input scale 0.1 x weight scale: 0.002 and 0.001; 0.5 / 0.002 = 250, -0.25 / 0.001 = -250.
        var (values, scales) = QuantizationParameters.QuantizeBias([0.5f, -0.25f], 0.1f, [0.02f, 0.01f]);

        Assert.Equal([250, -250], values);
        Assert.Equal([0.1f * 0.02f, 0.1f * 0.01f], scales);

        // One weight scale (per tensor) serves every bias value.
        Assert.Equal([250, -125], QuantizationParameters.QuantizeBias([0.5f, -0.25f], 0.1f, [0.02f]).Values);
    }

    /// <summary>Runs ONNX QuantizeLinear in ONNX Runtime over the 2x3 weight: the parameters mean what the runtime does with them.</summary>
    private static byte[] QuantizeLinear(float[] scales, byte[] zeroPoints, int? axis)
    {
        long[] dims = axis is null ? [] : [scales.Length];
        var model = new GraphBuilder("q")
            .Opset(13)
            .Input("x", DataType.Float, 2, 3)
            .Initializer("scale", scales, dims)
            .Initializer("zero_point", zeroPoints, dims)
            .Node("QuantizeLinear", ["x", "scale", "zero_point"], ["y"], "q", "", axis is int a ? [Attr.Int("axis", a)] : [])
            .Output("y", DataType.Uint8, 2, 3)
            .Build();
        using var session = new InferenceSession(model.ToByteArray());
        using var input = OrtValue.CreateTensorValueFromMemory(Weight, [2, 3]);
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, ["x"], [input], ["y"]);
        return outputs[0].GetTensorDataAsSpan<byte>().ToArray();
    }

    private sealed class ScaleComparer : IEqualityComparer<(float Scale, int ZeroPoint)>
    {
        public bool Equals((float Scale, int ZeroPoint) x, (float Scale, int ZeroPoint) y) =>
            Math.Abs(x.Scale - y.Scale) <= 1e-7f && x.ZeroPoint == y.ZeroPoint;

        public int GetHashCode((float Scale, int ZeroPoint) obj) => obj.ZeroPoint;
    }
}
