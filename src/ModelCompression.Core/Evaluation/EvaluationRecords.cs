namespace ModelCompression.Evaluation;

/// <summary>Precision, recall and F1 of one class, one-vs-rest.</summary>
/// <param name="Class">The class index.</param>
/// <param name="Precision">Of the samples predicted as this class, the fraction that are; 0 when none were predicted.</param>
/// <param name="Recall">Of the samples of this class, the fraction predicted as it; 0 when it has no samples.</param>
/// <param name="F1">Harmonic mean of precision and recall; 0 when both are 0.</param>
/// <param name="Support">Samples of this class in the test set.</param>
public sealed record ClassMetrics(int Class, double Precision, double Recall, double F1, int Support);

/// <summary>Latency percentiles of one batch size, in milliseconds of wall-clock time per ONNX Runtime call.</summary>
/// <param name="BatchSize">Samples per call.</param>
/// <param name="P50Ms">Median.</param>
/// <param name="P95Ms">95th percentile.</param>
/// <param name="P99Ms">99th percentile.</param>
/// <param name="Runs">Timed calls the percentiles come from (warm-up runs excluded).</param>
public sealed record LatencyStats(int BatchSize, double P50Ms, double P95Ms, double P99Ms, int Runs);

/// <summary>Latency at batch 1 and at a larger batch, measured with the same session.</summary>
/// <param name="Threads">ONNX Runtime intra-op threads the session used.</param>
/// <param name="Batch1">Batch size 1: the latency one request sees.</param>
/// <param name="Batch">The chosen larger batch: throughput-oriented serving.</param>
public sealed record LatencyReport(int Threads, LatencyStats Batch1, LatencyStats Batch);

/// <summary>A two-sided confidence interval.</summary>
/// <param name="Lower">Lower bound.</param>
/// <param name="Upper">Upper bound.</param>
public readonly record struct ConfidenceInterval(double Lower, double Upper);

/// <summary>Which of two models a paired comparison favours.</summary>
public enum PairedWinner
{
    /// <summary>Both got the same number of samples right that the other got wrong.</summary>
    Neither,

    /// <summary>The baseline got more of the discordant samples right.</summary>
    Baseline,

    /// <summary>The candidate got more of the discordant samples right.</summary>
    Candidate,
}

/// <summary>
/// McNemar's exact test of two models' predictions on the same samples: only the discordant samples (one right,
/// the other wrong) carry information, and under "equally good" each is a fair coin.
/// </summary>
/// <param name="BaselineOnlyCorrect">b: samples the baseline got right and the candidate wrong.</param>
/// <param name="CandidateOnlyCorrect">c: samples the candidate got right and the baseline wrong.</param>
/// <param name="PValue">Two-sided exact binomial p-value of b against c.</param>
public sealed record McNemarResult(int BaselineOnlyCorrect, int CandidateOnlyCorrect, double PValue)
{
    /// <summary>The model that got more of the discordant samples right.</summary>
    public PairedWinner Better => BaselineOnlyCorrect.CompareTo(CandidateOnlyCorrect) switch
    {
        > 0 => PairedWinner.Baseline,
        < 0 => PairedWinner.Candidate,
        _ => PairedWinner.Neither,
    };

    /// <summary>
    /// True when the candidate is worse than the baseline at significance level <paramref name="alpha"/>
    /// (0.05: worse with 95% confidence): it lost more discordant samples and the p-value is below alpha.
    /// </summary>
    public bool CandidateSignificantlyWorse(double alpha = 0.05) => Better == PairedWinner.Baseline && PValue < alpha;
}
