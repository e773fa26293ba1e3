namespace ModelCompression.Quantization;

/// <summary>How a tensor's float range maps onto 8-bit integers.</summary>
public enum QuantizationScheme
{
    /// <summary>uint8 with a zero point: the range [min, max] (widened to include 0) maps onto 0..255.</summary>
    Asymmetric,

    /// <summary>int8 with zero point 0: [-a, a] maps onto -127..127, a = max(|min|, |max|).</summary>
    Symmetric,
}

/// <summary>
/// The scale and zero point of a linearly quantized tensor, as ONNX QuantizeLinear defines it:
/// q = saturate(round(x / scale) + zero_point), x ≈ (q - zero_point) * scale.
/// </summary>
/// <param name="Scale">The float step between two integer values.</param>
/// <param name="ZeroPoint">The integer that represents 0.0 exactly.</param>
public readonly record struct QuantizationParameters(float Scale, int ZeroPoint)
{
    /// <summary>
    /// The parameters that cover [<paramref name="min"/>, <paramref name="max"/>]. The range is widened to
    /// include 0 so that 0 (padding, ReLU's floor) is represented exactly; an empty range gets scale 1.
    /// </summary>
    public static QuantizationParameters ForRange(float min, float max, QuantizationScheme scheme)
    {
        if (!float.IsFinite(min) || !float.IsFinite(max) || min > max)
        {
            throw new ArgumentException($"[{min}, {max}] is not a finite range.", nameof(min));
        }

        double low = Math.Min(min, 0f), high = Math.Max(max, 0f);
        if (scheme == QuantizationScheme.Symmetric)
        {
            var bound = Math.Max(-low, high);
            return new QuantizationParameters(bound > 0 ? (float)(bound / 127) : 1f, 0);
        }

        if (high == low)
        {
            return new QuantizationParameters(1f, 0);
        }

        var scale = (float)((high - low) / 255);
        var zeroPoint = (int)Math.Clamp(Math.Round(-low / scale, MidpointRounding.ToEven), 0, 255);
        return new QuantizationParameters(scale, zeroPoint);
    }

    /// <summary>
    /// Symmetric int8 quantization of a weight: one scale over the whole tensor, or one per slice along
    /// <paramref name="axis"/> (per output channel); q = round(w / scale), zero point 0. An all-zero tensor or
    /// channel gets scale 1.
    /// <para>Without <paramref name="pairSumAxis"/> the scale is max|w| / 127 (full range, -127..127). With it,
    /// the scale is also large enough that in every slice along that axis (every output channel) the two largest
    /// |q| sum to at most <see cref="SaturationCheck.MaxPairSum"/>: the u8 x s8 kernels of CPUs without VNNI add
    /// pairs of products into a saturating int16, and 255 * 128 fits. A channel with one outlier keeps nearly 8
    /// bits; one whose two largest |w| are equal gets 7.</para>
    /// </summary>
    /// <param name="values">The weight, row-major.</param>
    /// <param name="dims">Its shape.</param>
    /// <param name="axis">The channel axis, or null for one scale per tensor.</param>
    /// <param name="pairSumAxis">The output-channel axis whose pair sums must stay bounded, or null for full range
    /// (a weight no integer GEMM reads, such as an embedding table, or a target CPU with VNNI).</param>
    /// <exception cref="ArgumentException">Both axes are given and differ.</exception>
    public static (sbyte[] Values, float[] Scales) QuantizeWeight(ReadOnlySpan<float> values, IReadOnlyList<long> dims, int? axis, int? pairSumAxis = null)
    {
        ArgumentNullException.ThrowIfNull(dims);
        if (axis is int a && pairSumAxis is int p && a != p)
        {
            throw new ArgumentException($"Per-channel axis {a} differs from the pair-sum axis {p}.", nameof(pairSumAxis));
        }

        var (channels, stride) = Layout(dims, axis);
        var scales = new float[channels];
        for (var i = 0; i < values.Length; i++)
        {
            var channel = (i / stride) % channels;
            scales[channel] = Math.Max(scales[channel], Math.Abs(values[i]));
        }

        for (var c = 0; c < channels; c++)
        {
            scales[c] /= 127f;
        }

        if (pairSumAxis is not int pairAxis)
        {
            return Quantize(values, Ones(scales), channels, stride);
        }

        // Each output channel's two largest |w|: a scale of (|w1| + |w2|) / 128 maps them onto |q1| + |q2| = 128
        // exactly (round-half-even rounds n.5 and (127 - n).5 to a sum of 128).
        var (outputs, outputStride) = Layout(dims, pairAxis);
        var top = TopTwo(values, outputs, outputStride);
        for (var c = 0; c < outputs; c++)
        {
            var pair = (top[c].First + top[c].Second) / SaturationCheck.MaxPairSum;
            var s = axis is null ? 0 : c;
            scales[s] = Math.Max(scales[s], pair);
        }

        var quantized = Quantize(values, Ones(scales), channels, stride);
        if (SaturationCheck.MaxPairSum >= PairSum(quantized.Values, dims, pairAxis).Sum)
        {
            return quantized;
        }

        // Float rounding pushed a sum to 129: (|w1| + |w2|) / 127 leaves a whole step of room.
        for (var c = 0; c < outputs; c++)
        {
            var s = axis is null ? 0 : c;
            scales[s] = Math.Max(scales[s], (top[c].First + top[c].Second) / (SaturationCheck.MaxPairSum - 1));
        }

        quantized = Quantize(values, scales, channels, stride);
        var (sum, at) = PairSum(quantized.Values, dims, pairAxis);
        return sum <= SaturationCheck.MaxPairSum
            ? quantized
            : throw new InvalidOperationException($"Output channel {at} still has a pair sum of {sum} after widening its scale.");
    }

    /// <summary>
    /// The largest |q_a| + |q_b| of two values in one slice along <paramref name="axis"/>, and that slice: the
    /// worst an integer kernel that adds adjacent products in pairs can meet in any packing order.
    /// </summary>
    internal static (int Sum, long Channel) PairSum(ReadOnlySpan<sbyte> values, IReadOnlyList<long> dims, int axis)
    {
        var (channels, stride) = Layout(dims, axis);
        var top = new (int First, int Second)[channels];
        for (var i = 0; i < values.Length; i++)
        {
            var c = (i / stride) % channels;
            var q = Math.Abs((int)values[i]);
            top[c] = q > top[c].First ? (q, top[c].First) : (top[c].First, Math.Max(top[c].Second, q));
        }

        var worst = (Sum: 0, Channel: 0L);
        for (var c = 0; c < channels; c++)
        {
            if (top[c].First + top[c].Second > worst.Sum)
            {
                worst = (top[c].First + top[c].Second, c);
            }
        }

        return worst;
    }

    /// <summary>Channels along <paramref name="axis"/> (one when null) and the distance between a channel's neighbours.</summary>
    private static (int Channels, int Stride) Layout(IReadOnlyList<long> dims, int? axis) =>
        axis is int a ? ((int)dims[a], (int)dims.Skip(a + 1).Aggregate(1L, (x, y) => x * y)) : (1, 1);

    private static (float First, float Second)[] TopTwo(ReadOnlySpan<float> values, int channels, int stride)
    {
        var top = new (float First, float Second)[channels];
        for (var i = 0; i < values.Length; i++)
        {
            var c = (i / stride) % channels;
            var w = Math.Abs(values[i]);
            top[c] = w > top[c].First ? (w, top[c].First) : (top[c].First, Math.Max(top[c].Second, w));
        }

        return top;
    }

    /// <summary>An all-zero tensor or channel has scale 0 so far; 1 keeps DequantizeLinear well defined.</summary>
    private static float[] Ones(float[] scales)
    {
        for (var c = 0; c < scales.Length; c++)
        {
            scales[c] = scales[c] > 0 ? scales[c] : 1f;
        }

        return scales;
    }

    private static (sbyte[] Values, float[] Scales) Quantize(ReadOnlySpan<float> values, float[] scales, int channels, int stride)
    {
        var quantized = new sbyte[values.Length];
        for (var i = 0; i < values.Length; i++)
        {
            var scale = scales[(i / stride) % channels];
            quantized[i] = (sbyte)Math.Clamp(MathF.Round(values[i] / scale, MidpointRounding.ToEven), -127, 127);
        }

        return (quantized, scales);
    }

    /// <summary>
    /// An int32 bias for an integer kernel: q = round(b / (input_scale * weight_scale[c])), the scale the
    /// kernel's int32 accumulator already has, so the bias adds in without rescaling.
    /// </summary>
    public static (int[] Values, float[] Scales) QuantizeBias(ReadOnlySpan<float> bias, float inputScale, IReadOnlyList<float> weightScales)
    {
        ArgumentNullException.ThrowIfNull(weightScales);
        var scales = weightScales.Select(s => inputScale * s).ToArray();
        var values = new int[bias.Length];
        for (var i = 0; i < bias.Length; i++)
        {
            var scale = scales[scales.Length == 1 ? 0 : i];
            values[i] = (int)Math.Clamp(Math.Round(bias[i] / (double)scale, MidpointRounding.ToEven), int.MinValue + 1, int.MaxValue);
        }

        return (values, scales);
    }
}
