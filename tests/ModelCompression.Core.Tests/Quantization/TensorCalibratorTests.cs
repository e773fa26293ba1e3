using ModelCompression.Quantization;

namespace ModelCompression.Core.Tests.Quantization;

public sealed class TensorCalibratorTests
{
    [Fact]
    public void Min_max_is_the_exact_observed_range_over_all_batches()
    {
        var calibrator = new TensorCalibrator();
        Assert.True(calibrator.ObserveRange([-1f, 0.5f]));
        Assert.True(calibrator.ObserveRange([7.25f, -3f, 2f]));

        Assert.Equal((-3f, 7.25f), calibrator.Range(CalibrationMethod.MinMax, 99.99, 128));
        Assert.Equal(5, calibrator.Count);
    }

    [Fact]
    public void A_nan_or_infinite_value_is_refused()
    {
        Assert.False(new TensorCalibrator().ObserveRange([1f, float.NaN]));
        Assert.False(new TensorCalibrator().ObserveRange([float.NegativeInfinity]));
    }

    [Fact]
    public void Percentile_of_a_known_array_is_within_one_bin_of_the_exact_value()
    {
        // 0, 1, …, 9999: 99% of the values are at most 9899. The histogram has 2048 bins of 9999/2048 = 4.88,
        // and the threshold is the upper edge of the bin holding the 9900th value.
        var values = Enumerable.Range(0, 10000).Select(i => (float)i).ToArray();
        var calibrator = Calibrate(values);

        var (min, max) = calibrator.Range(CalibrationMethod.Percentile, 99, 128);

        var binWidth = 9999.0 / TensorCalibrator.Bins;
        Assert.Equal(0f, min);
        Assert.InRange(max, 9899f, (float)(9899 + binWidth + 1e-3));
    }

    [Fact]
    public void Percentile_clips_both_sides_at_the_same_magnitude()
    {
        // Symmetric values -5000..4999 with one far outlier at -100000: 99.9% of |x| is at most ~4995,
        // so the range is about [-4995, 4999] and the outlier saturates.
        var values = Enumerable.Range(-5000, 10000).Select(i => (float)i).Append(-100000f).ToArray();
        var calibrator = Calibrate(values);

        var (min, max) = calibrator.Range(CalibrationMethod.Percentile, 99.9, 128);

        var binWidth = 100000.0 / TensorCalibrator.Bins;
        Assert.InRange(-min, 4990f, (float)(4995 + binWidth));
        Assert.InRange(max, 4990f, 4999f);
    }

    [Fact]
    public void Entropy_clips_a_heavy_tailed_distribution_well_below_its_maximum()
    {
        // Laplace(0, 1) plus a few outliers at 40: the KL threshold keeps the bulk and lets the tail saturate.
        var random = new Random(5);
        var values = Enumerable.Range(0, 200_000)
            .Select(_ =>
            {
                var u = random.NextDouble() - 0.5;
                return (float)(-Math.Sign(u) * Math.Log(1 - (2 * Math.Abs(u))));
            })
            .Concat(Enumerable.Repeat(40f, 5))
            .ToArray();
        var calibrator = Calibrate(values);

        var (min, max) = calibrator.Range(CalibrationMethod.Entropy, 99.99, 128);

        Assert.Equal(40f, calibrator.Max);
        Assert.InRange(max, 4f, 20f);
        Assert.Equal(-max, min);
    }

    [Fact]
    public void Entropy_keeps_about_the_whole_range_of_a_uniform_distribution()
    {
        // Nothing to gain by clipping a uniform distribution: every value is as likely as the extremes.
        var random = new Random(6);
        var values = Enumerable.Range(0, 200_000).Select(_ => (float)((random.NextDouble() * 2) - 1)).ToArray();
        var calibrator = Calibrate(values);

        var (_, max) = calibrator.Range(CalibrationMethod.Entropy, 99.99, 128);

        Assert.InRange(max, 0.9f * calibrator.Max, calibrator.Max);
    }

    [Fact]
    public void Entropy_ignores_the_exact_zeros_a_relu_produces()
    {
        // A ReLU output: 80% exact zeros, the rest uniform on (0, 1]. Zero is exact in any range, so the
        // threshold must be that of the uniform part (about the whole range), not pulled down by the spike.
        var random = new Random(7);
        var values = Enumerable.Range(0, 200_000).Select(i => i % 5 == 0 ? (float)(1 - random.NextDouble()) : 0f).ToArray();
        var calibrator = Calibrate(values);

        var (min, max) = calibrator.Range(CalibrationMethod.Entropy, 99.99, 256);

        Assert.Equal(0f, min);
        Assert.InRange(max, 0.9f * calibrator.Max, calibrator.Max);

        // The percentile counts the zeros as values: 99% of all values are at most ~0.95.
        var (_, percentileMax) = calibrator.Range(CalibrationMethod.Percentile, 99, 256);
        Assert.InRange(percentileMax, 0.94f, 0.96f);
    }

    [Fact]
    public void Histogram_methods_need_the_second_pass()
    {
        var calibrator = new TensorCalibrator();
        calibrator.ObserveRange([1f, 2f]);

        Assert.True(TensorCalibrator.NeedsHistogram(CalibrationMethod.Entropy));
        Assert.False(TensorCalibrator.NeedsHistogram(CalibrationMethod.MinMax));
        Assert.Throws<InvalidOperationException>(() => calibrator.Range(CalibrationMethod.Percentile, 99, 128));
    }

    /// <summary>Both passes, in batches of 1000 as calibration feeds them.</summary>
    private static TensorCalibrator Calibrate(float[] values)
    {
        var calibrator = new TensorCalibrator();
        foreach (var chunk in values.Chunk(1000))
        {
            Assert.True(calibrator.ObserveRange(chunk));
        }

        foreach (var chunk in values.Chunk(1000))
        {
            calibrator.ObserveHistogram(chunk);
        }

        return calibrator;
    }
}
