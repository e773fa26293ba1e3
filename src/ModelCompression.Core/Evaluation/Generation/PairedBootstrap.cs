namespace ModelCompression.Evaluation;

/// <summary>A bootstrap interval of one system's mean per-sample score.</summary>
/// <param name="Mean">The mean over the samples themselves.</param>
/// <param name="Interval">The percentile interval of the resampled means.</param>
public sealed record MeanInterval(double Mean, ConfidenceInterval Interval);

/// <summary>
/// The paired bootstrap of a candidate against a baseline on the same samples (e.g. ROUGE-L of a student and of its
/// labels-only twin).
/// </summary>
/// <param name="BaselineMean">The baseline's mean score.</param>
/// <param name="CandidateMean">The candidate's mean score.</param>
/// <param name="Difference">CandidateMean − BaselineMean.</param>
/// <param name="DifferenceInterval">The percentile interval of the resampled differences.</param>
/// <param name="PValue">Two-sided p-value of "no difference" (see <see cref="PairedBootstrap.Compare"/>).</param>
public sealed record PairedBootstrapResult(
    double BaselineMean, double CandidateMean, double Difference, ConfidenceInterval DifferenceInterval, double PValue)
{
    /// <summary>The candidate's mean is higher than the baseline's and the difference is significant at <paramref name="alpha"/>.</summary>
    public bool CandidateSignificantlyBetter(double alpha = 0.05) => Difference > 0 && PValue < alpha;

    /// <summary>The candidate's mean is lower than the baseline's and the difference is significant at <paramref name="alpha"/>.</summary>
    public bool CandidateSignificantlyWorse(double alpha = 0.05) => Difference < 0 && PValue < alpha;
}

/// <summary>
/// Significance for per-sample scores that are not right/wrong (ROUGE, F1): a seeded bootstrap (Efron and Tibshirani
/// 1993; paired as in Koehn 2004). Every resample draws n sample indices with replacement and, for a comparison, uses
/// the same indices for both systems, so what the samples share (hard prompts) cancels out. Deterministic: the same
/// scores, resamples and seed always give the same result. For right/wrong scores use
/// <see cref="GenerationStatistics.McNemar"/> instead, which is exact.
/// </summary>
public static class PairedBootstrap
{
    /// <summary>
    /// The mean of <paramref name="scores"/> and the percentile interval (numpy's linear percentiles, as
    /// <see cref="Statistics.Percentile"/>) of the means of <paramref name="resamples"/> resamples.
    /// </summary>
    public static MeanInterval Mean(
        ReadOnlySpan<double> scores, double confidence = 0.95, int resamples = Statistics.BootstrapResamples, int seed = Statistics.BootstrapSeed)
    {
        Check(scores.Length, confidence, resamples);
        var mean = Average(scores);
        var random = new Random(seed);
        var means = new double[resamples];
        for (var r = 0; r < resamples; r++)
        {
            var sum = 0.0;
            for (var i = 0; i < scores.Length; i++)
            {
                sum += scores[random.Next(scores.Length)];
            }

            means[r] = sum / scores.Length;
        }

        return new MeanInterval(mean, Interval(means, confidence));
    }

    /// <summary>
    /// Compares <paramref name="candidate"/> with <paramref name="baseline"/> (one score each per sample, same order).
    /// The p-value is two-sided: with d* the resampled differences, p = min(1, 2 (1 + min(#{d* ≤ 0}, #{d* ≥ 0})) / (B + 1)),
    /// the add-one form (Davison and Hinkley 1997) so that B resamples never claim p = 0; equal systems give p = 1.
    /// </summary>
    public static PairedBootstrapResult Compare(
        ReadOnlySpan<double> baseline, ReadOnlySpan<double> candidate,
        double confidence = 0.95, int resamples = Statistics.BootstrapResamples, int seed = Statistics.BootstrapSeed)
    {
        if (baseline.Length != candidate.Length)
        {
            throw new ArgumentException($"Paired scores need one per sample on each side: {baseline.Length} baseline, {candidate.Length} candidate.", nameof(candidate));
        }

        Check(baseline.Length, confidence, resamples);
        var n = baseline.Length;
        var baselineMean = Average(baseline);
        var candidateMean = Average(candidate);
        var random = new Random(seed);
        var differences = new double[resamples];
        int atOrBelowZero = 0, atOrAboveZero = 0;
        for (var r = 0; r < resamples; r++)
        {
            var sum = 0.0;
            for (var i = 0; i < n; i++)
            {
                var k = random.Next(n);
                sum += candidate[k] - baseline[k];
            }

            var difference = sum / n;
            differences[r] = difference;
            atOrBelowZero += difference <= 0 ? 1 : 0;
            atOrAboveZero += difference >= 0 ? 1 : 0;
        }

        var p = Math.Min(1, 2.0 * (1 + Math.Min(atOrBelowZero, atOrAboveZero)) / (resamples + 1));
        return new PairedBootstrapResult(baselineMean, candidateMean, candidateMean - baselineMean, Interval(differences, confidence), p);
    }

    private static double Average(ReadOnlySpan<double> scores)
    {
        var sum = 0.0;
        foreach (var s in scores)
        {
            // A NaN score would make every resample NaN and the interval meaningless without saying so.
            if (!double.IsFinite(s))
            {
                throw new ArgumentException($"Scores are finite numbers, not {s}.", nameof(scores));
            }

            sum += s;
        }

        return sum / scores.Length;
    }

    private static ConfidenceInterval Interval(double[] values, double confidence)
    {
        Array.Sort(values);
        var tail = (1 - confidence) / 2 * 100;
        return new ConfidenceInterval(Statistics.Percentile(values, tail), Statistics.Percentile(values, 100 - tail));
    }

    private static void Check(int samples, double confidence, int resamples)
    {
        if (samples == 0)
        {
            throw new ArgumentException("No samples.");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(resamples, 1);
        if (confidence is <= 0 or >= 1 || double.IsNaN(confidence))
        {
            throw new ArgumentOutOfRangeException(nameof(confidence), confidence, "Confidence is between 0 and 1.");
        }
    }
}
