using ModelCompression.Evaluation;

namespace ModelCompression.Core.Tests.Evaluation;

/// <summary>
/// McNemar p-values are scipy.stats.binomtest(min(b, c), b + c, 0.5).pvalue (scipy 1.10, see reference.py);
/// percentiles are numpy.percentile's default (linear).
/// </summary>
public sealed class StatisticsTests
{
    [Theory]
    [InlineData(0, 0, 1.0)]
    [InlineData(5, 5, 1.0)]
    [InlineData(0, 1, 1.0)]
    [InlineData(0, 6, 0.03125)]
    [InlineData(10, 2, 0.03857421875)]
    [InlineData(2, 10, 0.03857421875)]
    [InlineData(3, 12, 0.03515625)]
    [InlineData(40, 25, 0.08168153394154003)]
    [InlineData(5200, 4800, 6.593515598672341e-05)]
    [InlineData(15000, 14700, 0.0827436823418942)]
    [InlineData(12000, 10000, 1.877958905094942e-41)]
    public void McNemar_exact_p_value_matches_scipy_binomtest(int b, int c, double expected)
    {
        var p = Statistics.McNemarExactPValue(b, c);

        Assert.True(Math.Abs(p - expected) <= 1e-9 * expected, $"b={b}, c={c}: {p:R}, scipy {expected:R}");
    }

    [Fact]
    public void McNemar_with_50000_discordant_pairs_underflows_to_0_not_NaN()
    {
        // scipy also reports 0.0: the true p is near e^-1000.
        Assert.Equal(0.0, Statistics.McNemarExactPValue(30000, 20000));
        Assert.Equal(1.0, Statistics.McNemarExactPValue(25000, 25000));
    }

    [Fact]
    public void McNemar_on_predictions_counts_discordant_pairs_and_names_the_better_side()
    {
        long[] labels = [0, 1, 2, 0, 1, 2, 0, 1];
        int[] baseline = [0, 1, 2, 0, 1, 2, 1, 2]; // right on 0-5
        int[] candidate = [0, 2, 0, 1, 1, 2, 0, 2]; // right on 0, 4, 5, 6

        var result = Statistics.McNemar(baseline, candidate, labels);

        // b: baseline-only right on samples 1, 2, 3; c: candidate-only right on sample 6.
        Assert.Equal(3, result.BaselineOnlyCorrect);
        Assert.Equal(1, result.CandidateOnlyCorrect);
        Assert.Equal(0.625, result.PValue, 1e-12); // 2 * (1 + 4) / 16
        Assert.Equal(PairedWinner.Baseline, result.Better);
        Assert.False(result.CandidateSignificantlyWorse());

        var reversed = Statistics.McNemar(candidate, baseline, labels);
        Assert.Equal((1, 3, PairedWinner.Candidate), (reversed.BaselineOnlyCorrect, reversed.CandidateOnlyCorrect, reversed.Better));
        Assert.Equal(PairedWinner.Neither, Statistics.McNemar(baseline, baseline, labels).Better);
        Assert.Throws<ArgumentException>(() => Statistics.McNemar(baseline, candidate.AsSpan(1), labels));
    }

    [Fact]
    public void A_real_regression_is_significant_and_a_small_one_is_not()
    {
        // 1000 samples; the candidate loses 30 samples the baseline got right and wins 5: p = 2.24e-5 (scipy binomtest(5, 35)).
        var (labels, baseline, candidate) = Paired(1000, baselineOnly: 30, candidateOnly: 5);
        var regression = Statistics.McNemar(baseline, candidate, labels);
        Assert.True(regression.CandidateSignificantlyWorse(), $"p = {regression.PValue}");

        // 3 lost against 1 won on a tiny set is no evidence (p = 0.625).
        (labels, baseline, candidate) = Paired(50, baselineOnly: 3, candidateOnly: 1);
        Assert.False(Statistics.McNemar(baseline, candidate, labels).CandidateSignificantlyWorse());
    }

    [Fact]
    public void Percentile_interpolates_linearly_like_numpy()
    {
        double[] sorted = [1, 2, 3, 4, 10];

        Assert.Equal(3.0, Statistics.Percentile(sorted, 50), 1e-12);
        Assert.Equal(8.799999999999999, Statistics.Percentile(sorted, 95), 1e-12);
        Assert.Equal(9.76, Statistics.Percentile(sorted, 99), 1e-12);
        Assert.Equal(1.1, Statistics.Percentile(sorted, 2.5), 1e-12);
        Assert.Equal(1.0, Statistics.Percentile(sorted, 0));
        Assert.Equal(10.0, Statistics.Percentile(sorted, 100));
        Assert.Equal(7.0, Statistics.Percentile([7.0], 99));
    }

    [Fact]
    public void Bootstrap_interval_is_deterministic_and_brackets_the_accuracy()
    {
        var correct = Bernoulli(500, 0.8, seed: 3);
        var accuracy = correct.Count(c => c) / 500.0;

        var first = Statistics.BootstrapAccuracyInterval(correct);
        var second = Statistics.BootstrapAccuracyInterval(correct);
        var otherSeed = Statistics.BootstrapAccuracyInterval(correct, seed: 7);

        Assert.Equal(first, second);
        Assert.NotEqual(first, otherSeed);
        Assert.InRange(accuracy, first.Lower, first.Upper);
        // The normal approximation's width, 2 * 1.96 * sqrt(p (1 - p) / n) = 0.070 at p = 0.8, n = 500.
        Assert.InRange(first.Upper - first.Lower, 0.06, 0.08);
    }

    [Trait("Category", "Slow")] // 200 bootstrap intervals of 200 samples each
    [Fact]
    public void Bootstrap_interval_covers_the_true_accuracy_about_95_percent_of_the_time()
    {
        const int Trials = 200;
        var covered = 0;
        for (var trial = 0; trial < Trials; trial++)
        {
            var interval = Statistics.BootstrapAccuracyInterval(Bernoulli(200, 0.8, seed: 100 + trial));
            covered += interval.Lower <= 0.8 && 0.8 <= interval.Upper ? 1 : 0;
        }

        // Binomial(200, 0.95) lies in [181, 197] with probability above 99.9%; a broken interval (too narrow or
        // too wide, e.g. 90% or 99.9%) falls outside it.
        Assert.InRange(covered, 181, 197);
    }

    [Fact]
    public void Bootstrap_of_all_right_or_all_wrong_is_a_point()
    {
        Assert.Equal(new ConfidenceInterval(1, 1), Statistics.BootstrapAccuracyInterval(Enumerable.Repeat(true, 40).ToArray()));
        Assert.Equal(new ConfidenceInterval(0, 0), Statistics.BootstrapAccuracyInterval(new bool[40]));
        Assert.Throws<ArgumentException>(() => Statistics.BootstrapAccuracyInterval([]));
    }

    private static bool[] Bernoulli(int count, double p, int seed)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(_ => random.NextDouble() < p)];
    }

    /// <summary>Labels 0; both right except where exactly one of them is.</summary>
    private static (long[] Labels, int[] Baseline, int[] Candidate) Paired(int count, int baselineOnly, int candidateOnly)
    {
        var labels = new long[count];
        var baseline = new int[count];
        var candidate = new int[count];
        for (var i = 0; i < baselineOnly; i++)
        {
            candidate[i] = 1;
        }

        for (var i = baselineOnly; i < baselineOnly + candidateOnly; i++)
        {
            baseline[i] = 1;
        }

        return (labels, baseline, candidate);
    }
}
