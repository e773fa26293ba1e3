using ModelCompression.Diagnostics;

namespace ModelCompression.Evaluation;

/// <summary>The kinds of generative task the engine scores (the five of Azure's distillation guidance).</summary>
public enum GenerativeTaskType
{
    /// <summary>Math word problems: exact match of the final number (<see cref="MathAnswerParser"/>).</summary>
    Math,

    /// <summary>Natural-language inference: accuracy over the label words (<see cref="LabelAnswerParser"/>).</summary>
    Nli,

    /// <summary>Question answering: SQuAD exact match and token F1 (<see cref="SquadMetrics"/>).</summary>
    Qa,

    /// <summary>Summarization: ROUGE-1, ROUGE-2 and ROUGE-L (<see cref="Rouge"/>).</summary>
    Summarization,

    /// <summary>Open conversation: perplexity of the gold answers and agreement with the teacher's answers.</summary>
    Conversation,
}

/// <summary>
/// A generative task: its type and the options of its answer parser. It says how answers are parsed
/// (<see cref="CreateParser"/>), which quality metrics it has (<see cref="QualityMetrics"/>) and how many new tokens
/// generation allows by default (<see cref="DefaultMaxNewTokens"/>: 128, 1024 for summaries, as Azure's distillation
/// job defaults).
/// </summary>
/// <param name="Type">The kind of task.</param>
/// <param name="AnswerPattern">Math only: a regular expression with one capture group around the final number; null for GSM8K's <c>#### n</c>.</param>
/// <param name="LabelWords">NLI only: the label words; null for entailment, neutral, contradiction.</param>
public sealed record GenerativeTask(GenerativeTaskType Type, string? AnswerPattern = null, IReadOnlyList<string>? LabelWords = null)
{
    /// <summary>Max new tokens of every task but summarization.</summary>
    public const int ShortAnswerTokens = 128;

    /// <summary>Max new tokens of summarization.</summary>
    public const int SummaryTokens = 1024;

    /// <summary>The new tokens generation allows when the options do not say.</summary>
    public int DefaultMaxNewTokens => Type == GenerativeTaskType.Summarization ? SummaryTokens : ShortAnswerTokens;

    /// <summary>
    /// Whether each answer is right or wrong (math, NLI): per-sample correctness for McNemar. QA's exact match is 0/1
    /// too and is also given as correctness; its F1 and every ROUGE score are graded (bootstrap).
    /// </summary>
    public bool HasCorrectness => Type is GenerativeTaskType.Math or GenerativeTaskType.Nli or GenerativeTaskType.Qa;

    /// <summary>
    /// The metric names this task's quality is gated on, in the order reports list them (perplexity,
    /// parse_failure_rate and, with a teacher, agreement_with_teacher are measured for every task; see
    /// <see cref="MetricInfo.Generation"/>).
    /// </summary>
    public IReadOnlyList<string> QualityMetrics => Type switch
    {
        GenerativeTaskType.Math => [GenerationMetricNames.ExactMatch],
        GenerativeTaskType.Nli => [GenerationMetricNames.LabelAccuracy],
        GenerativeTaskType.Qa => [GenerationMetricNames.ExactMatch, GenerationMetricNames.F1],
        GenerativeTaskType.Summarization => [GenerationMetricNames.Rouge1, GenerationMetricNames.Rouge2, GenerationMetricNames.RougeL],
        _ => [GenerationMetricNames.Perplexity],
    };

    /// <summary>
    /// What is wrong with the options (empty when nothing): an answer pattern that is not a regular expression with one
    /// capture group, fewer than two label words or repeated ones, or an option the type does not take. The recipe
    /// reports each at its key.
    /// </summary>
    public IReadOnlyList<string> Problems()
    {
        var problems = new List<string>();
        if (AnswerPattern is not null)
        {
            if (Type != GenerativeTaskType.Math)
            {
                problems.Add($"answer_pattern applies to the math task only, not {Name(Type)}.");
            }
            else if (MathAnswerParser.CheckPattern(AnswerPattern) is { } problem)
            {
                problems.Add(problem);
            }
        }

        if (LabelWords is not null)
        {
            if (Type != GenerativeTaskType.Nli)
            {
                problems.Add($"label_words apply to the nli task only, not {Name(Type)}.");
            }
            else
            {
                try
                {
                    _ = new LabelAnswerParser(LabelWords);
                }
                catch (ArgumentException e)
                {
                    problems.Add(e.Message.Split(" (Parameter", 2)[0]);
                }
            }
        }

        return problems;
    }

    /// <summary>The parser of this task's answers; MC2088 when <see cref="Problems"/> finds any.</summary>
    public IAnswerParser CreateParser()
    {
        if (Problems() is { Count: > 0 } problems)
        {
            throw CompressionException.Error(DiagnosticCodes.GenerativeTaskInvalid, $"The {Name(Type)} task's options: {string.Join(" ", problems)}");
        }

        return Type switch
        {
            GenerativeTaskType.Math => AnswerPattern is null ? new MathAnswerParser() : new MathAnswerParser(AnswerPattern),
            GenerativeTaskType.Nli => LabelWords is null ? new LabelAnswerParser() : new LabelAnswerParser(LabelWords),
            _ => TextAnswerParser.Instance,
        };
    }

    /// <summary>The recipe's name of a task type: math, nli, qa, summarization, conversation.</summary>
    public static string Name(GenerativeTaskType type) => type.ToString().ToLowerInvariant();

    /// <summary>The task type of a recipe name (case-sensitive, as <see cref="Name"/> writes it), or null.</summary>
    public static GenerativeTaskType? Parse(string name) =>
        Enum.GetValues<GenerativeTaskType>().Cast<GenerativeTaskType?>().FirstOrDefault(t => Name(t!.Value) == name);
}

/// <summary>The metric names of generative models, as gates name them (described in <see cref="MetricInfo.Generation"/>).</summary>
public static class GenerationMetricNames
{
    /// <summary>Math: share of final numbers equal to the gold's; QA: share of SQuAD-normalised answers equal to a gold answer.</summary>
    public const string ExactMatch = "exact_match";

    /// <summary>NLI: share of answers that are the gold label word.</summary>
    public const string LabelAccuracy = "label_accuracy";

    /// <summary>QA: mean SQuAD token F1.</summary>
    public const string F1 = "f1";

    /// <summary>Summarization: mean ROUGE-1 F-measure.</summary>
    public const string Rouge1 = "rouge1";

    /// <summary>Summarization: mean ROUGE-2 F-measure.</summary>
    public const string Rouge2 = "rouge2";

    /// <summary>Summarization: mean ROUGE-L F-measure.</summary>
    public const string RougeL = "rouge_l";

    /// <summary>exp of the mean negative log-likelihood of the gold assistant tokens.</summary>
    public const string Perplexity = "perplexity";

    /// <summary>Share of generated answers the task's parser refused.</summary>
    public const string ParseFailureRate = "parse_failure_rate";

    /// <summary>Agreement of the model's answers with the teacher's (see <see cref="GenerationScoring"/>).</summary>
    public const string AgreementWithTeacher = "agreement_with_teacher";

    /// <summary>Generated tokens per second at batch 1, with the cache.</summary>
    public const string TokensPerSecond = "tokens_per_second";

    /// <summary>Generated tokens per second at the larger batch (8 by default), with the cache.</summary>
    public const string TokensPerSecondBatch = "tokens_per_second_batch";
}
