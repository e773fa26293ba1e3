namespace ModelCompression.Quantization;

/// <summary>How an activation's quantization range is chosen from calibration data.</summary>
public enum CalibrationMethod
{
    /// <summary>The observed minimum and maximum.</summary>
    MinMax,

    /// <summary>|x| is clipped at a percentile of its distribution (outliers saturate).</summary>
    Percentile,

    /// <summary>
    /// |x| is clipped at the threshold whose 8-bit histogram has the smallest KL divergence from the float
    /// histogram (the TensorRT calibration as published by Migacz, 2017).
    /// </summary>
    Entropy,
}

/// <summary>
/// Collects the values one tensor takes over the calibration data and turns them into a quantization range.
/// Two passes: the first finds the range, the second (only for percentile and entropy) fills a histogram of
/// |x| over [0, max|x|] with <see cref="Bins"/> bins.
/// </summary>
public sealed class TensorCalibrator
{
    /// <summary>Histogram bins of |x| (TensorRT's choice).</summary>
    public const int Bins = 2048;

    private long[]? _histogram;
    private long _zeros;
    private double _absMax;

    /// <summary>The smallest value seen.</summary>
    public float Min { get; private set; } = float.PositiveInfinity;

    /// <summary>The largest value seen.</summary>
    public float Max { get; private set; } = float.NegativeInfinity;

    /// <summary>Values seen in the first pass.</summary>
    public long Count { get; private set; }

    /// <summary>True when <paramref name="method"/> needs the second (histogram) pass.</summary>
    public static bool NeedsHistogram(CalibrationMethod method) => method != CalibrationMethod.MinMax;

    /// <summary>First pass: widens the range; false when a value is NaN or infinite.</summary>
    public bool ObserveRange(ReadOnlySpan<float> values)
    {
        var (min, max) = (Min, Max);
        foreach (var v in values)
        {
            if (!float.IsFinite(v))
            {
                return false;
            }

            min = Math.Min(min, v);
            max = Math.Max(max, v);
        }

        (Min, Max) = (min, max);
        Count += values.Length;
        return true;
    }

    /// <summary>Second pass: adds values to the |x| histogram (whose range the first pass fixed).</summary>
    public void ObserveHistogram(ReadOnlySpan<float> values)
    {
        if (_histogram is null)
        {
            if (Count == 0)
            {
                throw new InvalidOperationException("The histogram pass needs the range pass first.");
            }

            _absMax = Math.Max(Math.Abs((double)Min), Math.Abs((double)Max));
            _histogram = new long[Bins];
        }

        if (_absMax == 0)
        {
            _zeros += values.Length;
            return;
        }

        var perUnit = Bins / _absMax;
        foreach (var v in values)
        {
            if (v == 0)
            {
                _zeros++;
            }
            else
            {
                _histogram[Math.Min((int)(Math.Abs(v) * perUnit), Bins - 1)]++;
            }
        }
    }

    /// <summary>
    /// The range to quantize: the observed one for min-max; otherwise [max(min, -T), min(max, T)] with T the
    /// percentile or entropy threshold of |x|. <paramref name="levels"/> is the number of integer steps |x|
    /// gets (128 for int8 and signed uint8 data, 256 for uint8 data that is never negative).
    /// </summary>
    public (float Min, float Max) Range(CalibrationMethod method, double percentile, int levels)
    {
        if (Count == 0)
        {
            throw new InvalidOperationException("No values were observed.");
        }

        if (method == CalibrationMethod.MinMax)
        {
            return (Min, Max);
        }

        var histogram = _histogram ?? throw new InvalidOperationException($"{method} calibration needs the histogram pass.");
        var binWidth = _absMax / Bins;
        if (_absMax == 0)
        {
            return (Min, Max);
        }

        // Exact zeros are exact in every range (it always includes 0), so they say nothing about where to clip.
        // The percentile counts them as values; the KL search leaves them out, because the spike a ReLU puts at
        // 0 would otherwise be smeared over its merged bin and push the search to the smallest cuts.
        var threshold = (float)(method == CalibrationMethod.Percentile
            ? PercentileThreshold([histogram[0] + _zeros, .. histogram.Skip(1)], binWidth, percentile)
            : EntropyThreshold(histogram, binWidth, levels));
        return (Math.Max(Min, -threshold), Math.Min(Max, threshold));
    }

    /// <summary>
    /// The upper edge of the first bin at which the cumulative count reaches <paramref name="percentile"/>
    /// percent of all values: at most one bin width above the exact percentile.
    /// </summary>
    internal static double PercentileThreshold(IReadOnlyList<long> histogram, double binWidth, double percentile)
    {
        var total = histogram.Sum();
        var target = total * percentile / 100;
        long cumulative = 0;
        for (var i = 0; i < histogram.Count; i++)
        {
            cumulative += histogram[i];
            if (cumulative >= target)
            {
                return (i + 1) * binWidth;
            }
        }

        return histogram.Count * binWidth;
    }

    /// <summary>
    /// The KL-divergence threshold: for every candidate cut i (from <paramref name="levels"/> bins up), P is the
    /// first i bins with everything beyond folded into bin i-1 (what clipping does), Q is the first i bins
    /// merged into <paramref name="levels"/> groups and spread back evenly over each group's non-empty bins
    /// (what quantizing to that many levels keeps). The cut m with the smallest KL(P || Q) wins and the
    /// threshold is (m + 0.5) bin widths, as the published description has it.
    /// </summary>
    internal static double EntropyThreshold(IReadOnlyList<long> histogram, double binWidth, int levels)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(levels, 2);
        var bins = histogram.Count;
        if (bins <= levels)
        {
            return bins * binWidth;
        }

        var suffix = new long[bins + 1];
        for (var i = bins - 1; i >= 0; i--)
        {
            suffix[i] = suffix[i + 1] + histogram[i];
        }

        var best = bins;
        var bestDivergence = double.PositiveInfinity;
        var p = new double[bins];
        var q = new double[bins];
        for (var cut = levels; cut <= bins; cut++)
        {
            for (var j = 0; j < cut; j++)
            {
                p[j] = histogram[j];
            }

            p[cut - 1] += suffix[cut];

            // Merge the first `cut` bins (without the outliers) into `levels` groups of nearly equal width.
            for (var level = 0; level < levels; level++)
            {
                var start = (int)((long)level * cut / levels);
                var end = (int)((long)(level + 1) * cut / levels);
                double sum = 0;
                var nonEmpty = 0;
                for (var j = start; j < end; j++)
                {
                    sum += histogram[j];
                    nonEmpty += histogram[j] > 0 ? 1 : 0;
                }

                for (var j = start; j < end; j++)
                {
                    q[j] = histogram[j] > 0 ? sum / nonEmpty : 0;
                }
            }

            var divergence = KlDivergence(p.AsSpan(0, cut), q.AsSpan(0, cut));
            if (divergence < bestDivergence)
            {
                (best, bestDivergence) = (cut, divergence);
            }
        }

        return (best + 0.5) * binWidth;
    }

    /// <summary>
    /// KL(P || Q) of two unnormalised histograms. A bin that P has and Q lacks (the folded outliers landing
    /// in an empty bin) costs as if Q held a tiny probability there, rather than making the cut impossible.
    /// </summary>
    private static double KlDivergence(ReadOnlySpan<double> p, ReadOnlySpan<double> q)
    {
        double pSum = 0, qSum = 0;
        for (var i = 0; i < p.Length; i++)
        {
            pSum += p[i];
            qSum += q[i];
        }

        if (pSum == 0)
        {
            return 0;
        }

        if (qSum == 0)
        {
            return double.PositiveInfinity;
        }

        const double Floor = 1e-10;
        double divergence = 0;
        for (var i = 0; i < p.Length; i++)
        {
            if (p[i] > 0)
            {
                var pi = p[i] / pSum;
                var qi = Math.Max(q[i] / qSum, Floor);
                divergence += pi * Math.Log(pi / qi);
            }
        }

        return divergence;
    }
}
