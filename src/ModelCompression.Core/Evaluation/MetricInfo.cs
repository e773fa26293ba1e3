namespace ModelCompression.Evaluation;

/// <summary>
/// A metric a gate can name: the one list of names, meanings and directions (each task offers its own quality
/// metrics plus <see cref="Cost"/>; <see cref="ModelEvaluation.Metrics"/> holds the measured values by these names).
/// </summary>
/// <param name="Name">The gate name, as in <c>accuracy &gt;= 0.85</c>.</param>
/// <param name="Description">What it means, for error messages, the schema and docs.</param>
/// <param name="HigherIsBetter">True for accuracy-like metrics, false for errors, size and latency.</param>
/// <param name="NeedsTeacher">Measured against the teacher's outputs: a run without a teacher has none.</param>
/// <param name="SupportsSignificance">Whether a <c>significant</c> gate on it can be decided (a paired test against a baseline, or a bootstrap interval).</param>
public sealed record MetricInfo(string Name, string Description, bool HigherIsBetter, bool NeedsTeacher = false, bool SupportsSignificance = false)
{
    /// <summary>Classification's quality metrics, in the order gates and docs list them.</summary>
    public static IReadOnlyList<MetricInfo> Classification { get; } =
    [
        new("accuracy", "fraction of held-out samples classified correctly (0 to 1)", HigherIsBetter: true, SupportsSignificance: true),
        new("top_k_accuracy", "fraction whose label is among the k highest outputs (k = min(5, classes - 1))", HigherIsBetter: true),
        new("macro_f1", "F1 score averaged over classes, each class counting alike", HigherIsBetter: true),
        new("agreement_with_teacher", "fraction of samples where the model's arg-max equals the teacher's", HigherIsBetter: true, NeedsTeacher: true),
        new("kl_to_teacher", "mean KL divergence of the model's softmax from the teacher's, in nats", HigherIsBetter: false, NeedsTeacher: true),
        new("ece", "expected calibration error, 15 confidence bins", HigherIsBetter: false),
    ];

    /// <summary>Regression's quality metrics.</summary>
    public static IReadOnlyList<MetricInfo> Regression { get; } =
    [
        new("mae", "mean absolute error (single-output regression models)", HigherIsBetter: false),
        new("rmse", "root mean squared error (single-output regression models)", HigherIsBetter: false),
    ];

    /// <summary>
    /// Generative models' metrics (<see cref="GenerationMetricNames"/>; which of the quality metrics a model has depends
    /// on its <see cref="GenerativeTask"/>). In <see cref="All"/> but agreement_with_teacher, which is listed there
    /// with classification's meaning.
    /// </summary>
    public static IReadOnlyList<MetricInfo> Generation { get; } =
    [
        new(GenerationMetricNames.ExactMatch, "math: share of answers whose final number equals the gold one; qa: share of SQuAD-normalised answers equal to the gold answer (0 to 1)", HigherIsBetter: true, SupportsSignificance: true),
        new(GenerationMetricNames.LabelAccuracy, "nli: share of answers that are exactly the gold label word (0 to 1)", HigherIsBetter: true, SupportsSignificance: true),
        new(GenerationMetricNames.F1, "qa: mean SQuAD token F1 of the answers against the gold answers (0 to 1)", HigherIsBetter: true, SupportsSignificance: true),
        new(GenerationMetricNames.Rouge1, "summarization: mean ROUGE-1 F-measure against the gold summaries (0 to 1)", HigherIsBetter: true, SupportsSignificance: true),
        new(GenerationMetricNames.Rouge2, "summarization: mean ROUGE-2 F-measure (0 to 1)", HigherIsBetter: true, SupportsSignificance: true),
        new(GenerationMetricNames.RougeL, "summarization: mean ROUGE-L (longest common subsequence) F-measure (0 to 1)", HigherIsBetter: true, SupportsSignificance: true),
        new(GenerationMetricNames.Perplexity, "exp of the mean negative log-likelihood of the gold assistant tokens of the test split (teacher-forced)", HigherIsBetter: false),
        new(GenerationMetricNames.ParseFailureRate, "share of generated answers the task's parser refused (no final number, not a label word, empty)", HigherIsBetter: false),
        new(GenerationMetricNames.AgreementWithTeacher, "math, nli: share of answers equal to the teacher's parsed answer; qa, summarization, conversation: mean SQuAD token F1 against the teacher's answer", HigherIsBetter: true, NeedsTeacher: true),
        new(GenerationMetricNames.TokensPerSecond, "generated tokens per second at batch 1, greedy, with the KV cache", HigherIsBetter: true),
        new(GenerationMetricNames.TokensPerSecondBatch, "generated tokens per second at the larger batch (8 by default), greedy, with the KV cache", HigherIsBetter: true),
    ];

    /// <summary>What a model costs, whatever its task.</summary>
    public static IReadOnlyList<MetricInfo> Cost { get; } =
    [
        new("size_mb", "model file size in MB (10^6 bytes), external data included", HigherIsBetter: false),
        new("size_bytes", "model file size in bytes, external data included", HigherIsBetter: false),
        new("parameters", "number of weights (initializer elements)", HigherIsBetter: false),
        new("nonzero_parameters", "weights that are not zero", HigherIsBetter: false),
        new("flops", "estimated floating-point operations per sample", HigherIsBetter: false),
        new("latency_p50_ms", "median latency of one sample (batch 1), ms", HigherIsBetter: false),
        new("latency_p95_ms", "95th-percentile latency at batch 1, ms", HigherIsBetter: false),
        new("latency_p99_ms", "99th-percentile latency at batch 1, ms", HigherIsBetter: false),
        new("latency_batch_p50_ms", "median latency of one batch of latency_batch_size samples, ms", HigherIsBetter: false),
        new("latency_batch_p95_ms", "95th-percentile latency of one batch, ms", HigherIsBetter: false),
        new("latency_batch_p99_ms", "99th-percentile latency of one batch, ms", HigherIsBetter: false),
        new("peak_memory_mb", "native memory ONNX Runtime holds for the model after runs at batch 1 and latency_batch_size (weights, pre-packed weights, activation arena), MB", HigherIsBetter: false),
    ];

    /// <summary>
    /// Every metric of every task, then the cost metrics: the names <see cref="ModelEvaluation.Metrics"/> can hold. A name
    /// two tasks share (agreement_with_teacher) is listed once, with its first task's description; which metrics a recipe
    /// may gate on is its task's list.
    /// </summary>
    public static IReadOnlyList<MetricInfo> All { get; } =
        [.. Classification, .. Regression, .. Cost, .. Generation.Where(g => !Classification.Concat(Regression).Concat(Cost).Any(m => m.Name == g.Name))];
}
