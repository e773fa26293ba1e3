using ModelCompression.Evaluation;

namespace ModelCompression.Core.Tests.Evaluation.Generation;

public sealed class PairedBootstrapTests
{
    [Fact]
    public void One_sample_resamples_to_itself()
    {
        var mean = PairedBootstrap.Mean([0.25], resamples: 50);
        Assert.Equal(new MeanInterval(0.25, new ConfidenceInterval(0.25, 0.25)), mean);
    }

    [Fact]
    public void Equal_systems_differ_by_exactly_zero_with_p_one()
    {
        double[] scores = [0.1, 0.9, 0.4, 0.7, 0.3];
        var result = PairedBootstrap.Compare(scores, scores);
        Assert.Equal((0.48, 0.48), (result.BaselineMean, result.CandidateMean), (a, b) => Math.Abs(a.Item1 - b.Item1) + Math.Abs(a.Item2 - b.Item2) < 1e-12);
        Assert.Equal((0.0, new ConfidenceInterval(0, 0), 1.0), (result.Difference, result.DifferenceInterval, result.PValue));
        Assert.False(result.CandidateSignificantlyBetter());
        Assert.False(result.CandidateSignificantlyWorse());
    }

    [Fact]
    public void A_candidate_better_on_every_sample_gets_the_smallest_p_the_resamples_allow()
    {
        double[] baseline = [0.1, 0.5, 0.2, 0.6, 0.3, 0.0];
        double[] candidate = [.. baseline.Select(s => s + 0.25)];

        var result = PairedBootstrap.Compare(baseline, candidate, resamples: 999);

        // Every resampled difference is 0.25 (up to rounding): none is <= 0, so p = 2 (1 + 0) / 1000.
        Assert.Equal(0.002, result.PValue, 1e-15);
        Assert.Equal(0.25, result.Difference, 1e-12);
        Assert.Equal(0.25, result.DifferenceInterval.Lower, 1e-12);
        Assert.Equal(0.25, result.DifferenceInterval.Upper, 1e-12);
        Assert.True(result.CandidateSignificantlyBetter());

        var reversed = PairedBootstrap.Compare(candidate, baseline, resamples: 999);
        Assert.True(reversed.CandidateSignificantlyWorse());
        Assert.Equal(0.002, reversed.PValue, 1e-15);
    }

    [Fact]
    public void A_mixed_difference_is_not_significant_and_its_interval_covers_zero()
    {
        // The candidate wins half the samples and loses the other half by the same amount.
        double[] baseline = [.. Enumerable.Range(0, 40).Select(i => i % 2 == 0 ? 0.2 : 0.6)];
        double[] candidate = [.. Enumerable.Range(0, 40).Select(i => i % 2 == 0 ? 0.6 : 0.2)];

        var result = PairedBootstrap.Compare(baseline, candidate);

        Assert.Equal(0, result.Difference, 1e-12);
        Assert.True(result.DifferenceInterval.Lower < 0 && result.DifferenceInterval.Upper > 0, $"{result.DifferenceInterval}");
        Assert.True(result.PValue > 0.5, $"p = {result.PValue}");
    }

    [Fact]
    public void The_same_seed_gives_the_same_interval_and_another_seed_another()
    {
        double[] scores = [.. Enumerable.Range(0, 30).Select(i => (i * 37 % 11) / 10.0)];

        var first = PairedBootstrap.Mean(scores);
        Assert.Equal(first, PairedBootstrap.Mean(scores));
        Assert.NotEqual(first.Interval, PairedBootstrap.Mean(scores, seed: 7).Interval);
        Assert.True(first.Interval.Lower < first.Mean && first.Mean < first.Interval.Upper, $"{first}");

        // A wider confidence gives a wider interval from the same resamples.
        var wide = PairedBootstrap.Mean(scores, confidence: 0.99);
        Assert.True(wide.Interval.Lower <= first.Interval.Lower && wide.Interval.Upper >= first.Interval.Upper);
    }

    [Fact]
    public void Bad_arguments_are_refused()
    {
        Assert.Throws<ArgumentException>(() => PairedBootstrap.Mean([]));
        Assert.Throws<ArgumentException>(() => PairedBootstrap.Compare([1.0], [1.0, 2.0]));
        Assert.Throws<ArgumentException>(() => PairedBootstrap.Compare([1.0, 0.5], [double.NaN, 0.5]));
        Assert.Throws<ArgumentException>(() => PairedBootstrap.Mean([double.PositiveInfinity]));
        Assert.Throws<ArgumentOutOfRangeException>(() => PairedBootstrap.Mean([1.0], confidence: 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => PairedBootstrap.Mean([1.0], resamples: 0));
    }
}
