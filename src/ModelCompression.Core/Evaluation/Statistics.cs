namespace ModelCompression.Evaluation;

/// <summary>
/// The statistics behind "is this model worse, or was the test set unlucky?": a bootstrap interval for accuracy
/// and McNemar's exact test on paired predictions. Both are deterministic: the bootstrap uses a fixed seed.
/// </summary>
public static class Statistics
{
    /// <summary>Bootstrap resamples for <see cref="BootstrapAccuracyInterval"/>.</summary>
    public const int BootstrapResamples = 1000;

    /// <summary>The bootstrap's fixed seed: the same predictions always give the same interval.</summary>
    public const int BootstrapSeed = 20261125;

    /// <summary>
    /// Percentile bootstrap interval of accuracy: <paramref name="resamples"/> times, draw as many samples as
    /// there are with replacement and take their accuracy; the interval is the (1 − confidence) / 2 and
    /// (1 + confidence) / 2 percentiles of those accuracies (linear interpolation, as numpy's default).
    /// </summary>
    public static ConfidenceInterval BootstrapAccuracyInterval(
        ReadOnlySpan<bool> correct, double confidence = 0.95, int resamples = BootstrapResamples, int seed = BootstrapSeed)
    {
        if (correct.IsEmpty)
        {
            throw new ArgumentException("No samples.", nameof(correct));
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(resamples, 1);
        if (confidence is <= 0 or >= 1)
        {
            throw new ArgumentOutOfRangeException(nameof(confidence), confidence, "Confidence is between 0 and 1.");
        }

        var random = new Random(seed);
        var accuracies = new double[resamples];
        for (var r = 0; r < resamples; r++)
        {
            var hits = 0;
            for (var i = 0; i < correct.Length; i++)
            {
                hits += correct[random.Next(correct.Length)] ? 1 : 0;
            }

            accuracies[r] = (double)hits / correct.Length;
        }

        Array.Sort(accuracies);
        var tail = (1 - confidence) / 2 * 100;
        return new ConfidenceInterval(Percentile(accuracies, tail), Percentile(accuracies, 100 - tail));
    }

    /// <summary>
    /// The <paramref name="percent"/>-th percentile (0 to 100) of ascending <paramref name="sorted"/> values,
    /// interpolating linearly between the two nearest ranks (numpy.percentile's default "linear" method).
    /// </summary>
    public static double Percentile(ReadOnlySpan<double> sorted, double percent)
    {
        if (sorted.IsEmpty)
        {
            throw new ArgumentException("No values.", nameof(sorted));
        }

        if (percent is < 0 or > 100 || double.IsNaN(percent))
        {
            throw new ArgumentOutOfRangeException(nameof(percent), percent, "A percentile is between 0 and 100.");
        }

        var rank = percent / 100 * (sorted.Length - 1);
        var below = (int)Math.Floor(rank);
        var above = Math.Min(below + 1, sorted.Length - 1);
        return sorted[below] + ((rank - below) * (sorted[above] - sorted[below]));
    }

    /// <summary>
    /// McNemar's exact test of a candidate against a baseline on the same labelled samples.
    /// </summary>
    public static McNemarResult McNemar(ReadOnlySpan<int> baselinePredictions, ReadOnlySpan<int> candidatePredictions, ReadOnlySpan<long> labels)
    {
        if (baselinePredictions.Length != labels.Length || candidatePredictions.Length != labels.Length)
        {
            throw new ArgumentException(
                $"Paired predictions need one per label: {baselinePredictions.Length} baseline, {candidatePredictions.Length} candidate, {labels.Length} labels.",
                nameof(labels));
        }

        int baselineOnly = 0, candidateOnly = 0;
        for (var i = 0; i < labels.Length; i++)
        {
            var baselineRight = baselinePredictions[i] == labels[i];
            var candidateRight = candidatePredictions[i] == labels[i];
            baselineOnly += baselineRight && !candidateRight ? 1 : 0;
            candidateOnly += candidateRight && !baselineRight ? 1 : 0;
        }

        return new McNemarResult(baselineOnly, candidateOnly, McNemarExactPValue(baselineOnly, candidateOnly));
    }

    /// <summary>
    /// Two-sided exact McNemar p-value of <paramref name="b"/> and <paramref name="c"/> discordant pairs:
    /// min(1, 2 Σ_{i ≤ min(b, c)} C(b + c, i) / 2^(b + c)). Summed in log space, so tens of thousands of
    /// discordant pairs neither overflow the binomial coefficients nor underflow 2^-(b + c).
    /// </summary>
    public static double McNemarExactPValue(int b, int c)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(b);
        ArgumentOutOfRangeException.ThrowIfNegative(c);
        var n = b + c;
        var smaller = Math.Min(b, c);
        if (2 * smaller >= n)
        {
            // b = c: the lower tail alone holds at least half the mass, so the two-sided p is 1.
            return 1;
        }

        // log C(n, i) grows from 0 by log((n - i) / (i + 1)); every term is below C(n, smaller), so scaling by
        // the largest keeps the sum's exponentials in range.
        var logTerms = new double[smaller + 1];
        var logChoose = 0.0;
        for (var i = 0; i <= smaller; i++)
        {
            logTerms[i] = logChoose;
            logChoose += Math.Log(n - i) - Math.Log(i + 1);
        }

        var largest = logTerms[smaller];
        var sum = 0.0;
        foreach (var term in logTerms)
        {
            sum += Math.Exp(term - largest);
        }

        var logP = Math.Log(2) + largest + Math.Log(sum) - (n * Math.Log(2));
        return Math.Min(1, Math.Exp(logP));
    }
}
