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
    /// Symmetric int8 quantization of a weight: scale = max|w| / 127 over the whole tensor, or over each slice
    /// along <paramref name="axis"/> (one scale per output channel); q = round(w / scale) in -127..127.
    /// An all-zero tensor or channel gets scale 1.
    /// </summary>
    /// <param name="values">The weight, row-major.</param>
    /// <param name="dims">Its shape.</param>
    /// <param name="axis">The channel axis, or null for one scale per tensor.</param>
    public static (sbyte[] Values, float[] Scales) QuantizeWeight(ReadOnlySpan<float> values, IReadOnlyList<long> dims, int? axis)
    {
        ArgumentNullException.ThrowIfNull(dims);
        var (channels, stride) = axis is int a ? ((int)dims[a], (int)dims.Skip(a + 1).Aggregate(1L, (x, y) => x * y)) : (1, 1);
        var scales = new float[channels];
        for (var i = 0; i < values.Length; i++)
        {
            var channel = (i / stride) % channels;
            scales[channel] = Math.Max(scales[channel], Math.Abs(values[i]));
        }

        for (var c = 0; c < channels; c++)
        {
            scales[c] = scales[c] > 0 ? scales[c] / 127f : 1f;
        }

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
