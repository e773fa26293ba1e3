namespace ModelCompression.Evaluation;

/// <summary>A candidate's metric against a baseline's on the same test records, with the paired test that decides it.</summary>
/// <param name="Metric">The metric's gate name.</param>
/// <param name="Baseline">The baseline's value.</param>
/// <param name="Candidate">The candidate's value.</param>
/// <param name="McNemar">For right/wrong metrics (exact_match, label_accuracy): McNemar's exact test on per-sample correctness; else null.</param>
/// <param name="Bootstrap">For graded metrics (f1, rouge1, rouge2, rouge_l): the paired bootstrap of per-sample scores; else null.</param>
public sealed record GenerationComparison(string Metric, double Baseline, double Candidate, McNemarResult? McNemar, PairedBootstrapResult? Bootstrap)
{
    /// <summary>The two-sided p-value of "no difference".</summary>
    public double PValue => McNemar?.PValue ?? Bootstrap!.PValue;

    /// <summary>The candidate is better than the baseline and the difference is significant at <paramref name="alpha"/>.</summary>
    public bool CandidateSignificantlyBetter(double alpha = 0.05) => Candidate > Baseline && PValue < alpha;

    /// <summary>The candidate is worse than the baseline and the difference is significant at <paramref name="alpha"/>.</summary>
    public bool CandidateSignificantlyWorse(double alpha = 0.05) => Candidate < Baseline && PValue < alpha;
}

/// <summary>
/// Significance of a generative model's metric against a baseline on the same records (e.g. the distilled student
/// against its labels-only twin, or against a committed baseline): McNemar's exact test where each answer is right or
/// wrong, the seeded paired bootstrap where it is graded. Only metrics <see cref="MetricInfo.Generation"/> marks as
/// supporting significance can be compared; perplexity and the rates cannot.
/// </summary>
public static class GenerationSignificance
{
    /// <summary>Compares <paramref name="metric"/> of <paramref name="candidate"/> with <paramref name="baseline"/>; both scored on the same records in the same order.</summary>
    /// <exception cref="ArgumentException">The metric does not support significance, one side lacks it, or the sides differ in their number of records.</exception>
    public static GenerationComparison Compare(string metric, GenerationScores baseline, GenerationScores candidate)
    {
        ArgumentNullException.ThrowIfNull(metric);
        ArgumentNullException.ThrowIfNull(baseline);
        ArgumentNullException.ThrowIfNull(candidate);
        if (!MetricInfo.Generation.Any(m => m.Name == metric && m.SupportsSignificance))
        {
            var supported = string.Join(", ", MetricInfo.Generation.Where(m => m.SupportsSignificance).Select(m => m.Name));
            throw new ArgumentException($"'{metric}' has no significance test; these do: {supported}.", nameof(metric));
        }

        if (!baseline.PerSample.TryGetValue(metric, out var before) || !candidate.PerSample.TryGetValue(metric, out var after))
        {
            throw new ArgumentException($"'{metric}' is not a metric of both evaluations (baseline: {baseline.Task.Type}, candidate: {candidate.Task.Type}).", nameof(metric));
        }

        if (before.Count != after.Count)
        {
            throw new ArgumentException($"A paired test needs the same records on both sides: {before.Count} baseline, {after.Count} candidate.", nameof(candidate));
        }

        var (baselineValue, candidateValue) = (before.Average(), after.Average());
        var rightOrWrong = metric is GenerationMetricNames.ExactMatch or GenerationMetricNames.LabelAccuracy;
        return rightOrWrong && baseline.Correct is { } baselineCorrect && candidate.Correct is { } candidateCorrect
            ? new GenerationComparison(metric, baselineValue, candidateValue, GenerationStatistics.McNemar(baselineCorrect, candidateCorrect), null)
            : new GenerationComparison(metric, baselineValue, candidateValue, null, PairedBootstrap.Compare([.. before], [.. after]));
    }
}
