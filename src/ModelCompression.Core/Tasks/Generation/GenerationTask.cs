using System.Collections.Concurrent;
using System.Globalization;
using ModelCompression.Evaluation;

namespace ModelCompression.Tasks;

/// <summary>
/// Generation: a decoder writes an answer to each conversation's prompt. Its data are chat records, its models decoders
/// of the <c>Onnx.DecoderConvention</c>, and its run is the generation pipeline's; what it says here is what every task
/// says: the metrics gates may name (the task type's quality metrics, perplexity, the parse-failure rate, agreement with
/// the teacher, generation speed, then the cost metrics), the headline (the task type's first quality metric), and the
/// gain over the labels-only twin (the student fine-tuned on the gold answers alone, same steps).
/// </summary>
public sealed class GenerationTask : ITask
{
    private static readonly ConcurrentDictionary<GenerativeTaskType, GenerationTask> ByType = new();

    private GenerationTask(GenerativeTask? type)
    {
        Type = type;
        var quality = type is null
            ? MetricInfo.Generation
            : [.. MetricInfo.Generation.Where(m => type.QualityMetrics.Contains(m.Name) || Always.Contains(m.Name))];
        Metrics = [.. quality, .. MetricInfo.Cost.Where(m => Cost.Contains(m.Name))];
        Headline = Metrics.First(m => m.Name == (type?.QualityMetrics[0] ?? GenerationMetricNames.Perplexity));
        // Training validates a decoder on the perplexity of held-out answers, whatever the headline.
        Report = new ReportStyle(Headline.Name, Headline.Name.Replace('_', ' '), IsFraction: Headline.Name != GenerationMetricNames.Perplexity, HasConfusionMatrix: false)
        {
            ValidationTitle = GenerationMetricNames.Perplexity,
            ValidationIsFraction = false,
        };
    }

    /// <summary>The task as the catalog lists it, before a recipe says its type: every generation metric may be named.</summary>
    public static GenerationTask Instance { get; } = new(null);

    /// <summary>Measured for every task type (beside the type's own quality metrics).</summary>
    private static readonly string[] Always =
    [
        GenerationMetricNames.Perplexity, GenerationMetricNames.ParseFailureRate, GenerationMetricNames.AgreementWithTeacher,
        GenerationMetricNames.TokensPerSecond, GenerationMetricNames.TokensPerSecondBatch,
    ];

    /// <summary>The cost metrics a generative model is measured with (size and weights; latency is tokens per second here).</summary>
    private static readonly string[] Cost = ["size_mb", "size_bytes", "parameters", "nonzero_parameters"];

    /// <summary>The task type, or null for <see cref="Instance"/>.</summary>
    public GenerativeTask? Type { get; }

    /// <inheritdoc />
    public string Name => "generation";

    /// <inheritdoc />
    public string Description => "write an answer to each conversation (chat data; a decoder student): math, nli, qa, summarization or conversation";

    /// <inheritdoc />
    public IReadOnlyList<MetricInfo> Metrics { get; }

    /// <inheritdoc />
    public MetricInfo Headline { get; }

    /// <inheritdoc />
    public bool HasLabelsOnlyTwin => true;

    /// <inheritdoc />
    public ReportStyle Report { get; }

    /// <summary>The task of a recipe whose generation section says <paramref name="type"/>: only that type's quality metrics may be gated.</summary>
    public static GenerationTask For(GenerativeTask type)
    {
        ArgumentNullException.ThrowIfNull(type);
        // Answer patterns and label words do not change the metrics; the type alone decides them.
        return ByType.GetOrAdd(type.Type, t => new GenerationTask(new GenerativeTask(t)));
    }

    /// <inheritdoc />
    /// <remarks>The headline's difference, positive when distillation helped (perplexity: lower is better).</remarks>
    public double? Gain(ModelEvaluation student, ModelEvaluation twin)
    {
        ArgumentNullException.ThrowIfNull(student);
        ArgumentNullException.ThrowIfNull(twin);
        if (!student.Metrics.TryGetValue(Headline.Name, out var ours) || !twin.Metrics.TryGetValue(Headline.Name, out var theirs))
        {
            return null;
        }

        return Headline.HigherIsBetter ? ours - theirs : theirs - ours;
    }

    /// <inheritdoc />
    public string Describe(ModelEvaluation evaluation)
    {
        ArgumentNullException.ThrowIfNull(evaluation);
        var metrics = evaluation.Metrics;
        var invariant = CultureInfo.InvariantCulture;
        var parts = new List<string>();
        foreach (var name in (Type?.QualityMetrics ?? []).Append(GenerationMetricNames.Perplexity).Distinct())
        {
            if (metrics.TryGetValue(name, out var value))
            {
                parts.Add(name == GenerationMetricNames.Perplexity ? $"perplexity {value.ToString("0.###", invariant)}" : $"{name} {value.ToString("P2", invariant)}");
            }
        }

        return parts.Count > 0 ? string.Join(", ", parts) : "not measured";
    }
}
