using ModelCompression.Diagnostics;

namespace ModelCompression.Data;

/// <summary>
/// The recipe's scale and normalisation as a <see cref="FeatureTransform"/> per tensor: fixed means and stds, or
/// statistics of the training split (per position or over all values) that every split is then normalised with.
/// </summary>
internal static class FeatureNormalization
{
    /// <summary>The recipe's scale and normalisation, per float-capable tensor; auto statistics come from the training split.</summary>
    public static Dictionary<string, FeatureTransform> Transforms(Dataset train, DataSpec spec)
    {
        var transforms = new Dictionary<string, FeatureTransform>(StringComparer.Ordinal);
        foreach (var tensor in train.Tensors)
        {
            var scaled = new FeatureTransform(spec.Scale, null, null);
            var transform = spec.Normalize switch
            {
                null => scaled,
                { Mode: NormalizeMode.Fixed, Mean: { } mean, Std: { } std } => FixedNormalization(tensor, scaled, mean, std, spec),
                { Mode: var mode } => Statistics(tensor.WithTransform(scaled), mode == NormalizeMode.Global, scaled),
            };
            if (!transform.IsIdentity)
            {
                transforms[tensor.Name] = transform;
            }
        }

        return transforms;
    }

    private static FeatureTransform FixedNormalization(DataTensor tensor, FeatureTransform scaled, float[] mean, float[] std, DataSpec spec)
    {
        // One mean or one std serves every position when the other is given per position.
        var width = Math.Max(mean.Length, std.Length);
        if (width > 1)
        {
            mean = mean.Length == 1 ? [.. Enumerable.Repeat(mean[0], width)] : mean;
            std = std.Length == 1 ? [.. Enumerable.Repeat(std[0], width)] : std;
        }

        if ((mean.Length != 1 && mean.Length != tensor.SampleSize) || std.Length != mean.Length)
        {
            throw CompressionException.Error(
                DiagnosticCodes.DataSchemaMismatch,
                $"normalize: {mean.Length} means and {std.Length} stds for tensor '{tensor.Name}' with samples of {tensor.SampleSize} values; give one of each, or one per value.",
                null,
                spec.Line);
        }

        return scaled with { Mean = mean, Std = std };
    }

    /// <summary>Mean and (population) standard deviation per position or over all, in one streaming pass; a std of 0 becomes 1.</summary>
    private static FeatureTransform Statistics(DataTensor tensor, bool global, FeatureTransform scaled)
    {
        var width = tensor.SampleSize;
        var sums = new double[width];
        var squares = new double[width];
        const int Batch = 256;
        var buffer = new float[Batch * width];
        for (var start = 0; start < tensor.Count; start += Batch)
        {
            var size = Math.Min(Batch, tensor.Count - start);
            tensor.CopyRange(start, size, buffer);
            for (var row = 0; row < size; row++)
            {
                var sample = buffer.AsSpan(row * width, width);
                for (var f = 0; f < width; f++)
                {
                    double v = sample[f];
                    sums[f] += v;
                    squares[f] += v * v;
                }
            }
        }

        float[] mean, std;
        if (global)
        {
            var n = (double)tensor.Count * width;
            var m = sums.Sum() / n;
            mean = [(float)m];
            std = [StdOf((squares.Sum() / n) - (m * m))];
        }
        else
        {
            mean = new float[width];
            std = new float[width];
            for (var f = 0; f < width; f++)
            {
                var m = sums[f] / tensor.Count;
                mean[f] = (float)m;
                std[f] = StdOf((squares[f] / tensor.Count) - (m * m));
            }
        }

        return scaled with { Mean = mean, Std = std };
    }

    private static float StdOf(double variance)
    {
        var std = (float)Math.Sqrt(Math.Max(0, variance));
        // A constant input (a border pixel that is always 0) is only centred.
        return std > 1e-12f ? std : 1f;
    }
}
