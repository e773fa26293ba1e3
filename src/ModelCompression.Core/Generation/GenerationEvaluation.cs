using ModelCompression.Evaluation;

namespace ModelCompression.Generation;

/// <summary>How <see cref="GenerationEvaluator"/> generates and scores.</summary>
public sealed record GenerationEvaluationOptions
{
    /// <summary>
    /// Sampling, batch size and new tokens of the answers; null: greedy, <see cref="GenerativeTask.DefaultMaxNewTokens"/>,
    /// batches of 8. The evaluator adds its own stop tokens (end of text and the template's end marker) to any given
    /// here and always generates one sample per prompt.
    /// </summary>
    public GenerationOptions? Generation { get; init; }

    /// <summary>Most tokens of a prompt and of a teacher-forced sequence, never more than the model's position table; null: that table, or 2048 when the graph does not say.</summary>
    public int? MaxLength { get; init; }

    /// <summary>How many sample generations (prompt, gold, prediction, teacher) to keep for the report: the first ones of the test split.</summary>
    public int Samples { get; init; } = 5;

    /// <summary>ONNX Runtime threads; 0 uses the engine's thread budget.</summary>
    public int Threads { get; init; }
}

/// <summary>One test record shown side by side in the report.</summary>
/// <param name="Index">Its index in the test split.</param>
/// <param name="Location">"file:line" of the record.</param>
/// <param name="Prompt">The prompt as the template renders it, the generation prompt included (markers shown as text).</param>
/// <param name="Gold">The gold answer.</param>
/// <param name="Prediction">The model's answer.</param>
/// <param name="Teacher">The teacher's answer, when given.</param>
/// <param name="Failure">Why the parser refused the prediction (<see cref="AnswerParseFailure.None"/> when it did not).</param>
public sealed record GenerationSample(int Index, string Location, string Prompt, string Gold, string Prediction, string? Teacher, AnswerParseFailure Failure);

/// <summary>A generative model's quality on a test split of chat records.</summary>
/// <param name="Scores">The answers scored as the task says (per metric and per sample; parse failures).</param>
/// <param name="Perplexity">exp of the mean negative log-likelihood of the gold assistant tokens, teacher-forced.</param>
/// <param name="PerplexityTokens">How many gold tokens <paramref name="Perplexity"/> pools.</param>
/// <param name="NegativeLogLikelihoods">Per record: the summed negative log-likelihood of its gold tokens (NaN for a record left out of perplexity), for bootstraps.</param>
/// <param name="GoldTokens">Per record: how many gold tokens its negative log-likelihood sums (0 for a record left out), so a bootstrap can pool tokens as <paramref name="Perplexity"/> does.</param>
/// <param name="PerplexityExcluded">Records whose answer alone is longer than the maximum length: left out of perplexity (they are still generated and scored).</param>
/// <param name="Predictions">The model's answer to each record (decoded, the stop marker cut off), in test-split order.</param>
/// <param name="FinishReasons">Why each answer ended: <see cref="FinishReason.Length"/> means it hit the new-token limit or the position table without an end marker.</param>
/// <param name="PromptsCut">Prompts that lost tokens from the left to fit the maximum length.</param>
/// <param name="GeneratedTokens">New tokens generated over the whole split (stop tokens included).</param>
/// <param name="Samples">The first few records side by side, for the HTML report.</param>
/// <param name="MaxLength">The tokens a conversation was cut to: the asked maximum, never more than the model's position table.</param>
public sealed record GenerationEvaluation(
    GenerationScores Scores,
    double Perplexity,
    long PerplexityTokens,
    IReadOnlyList<double> NegativeLogLikelihoods,
    IReadOnlyList<int> GoldTokens,
    int PerplexityExcluded,
    IReadOnlyList<string> Predictions,
    IReadOnlyList<FinishReason> FinishReasons,
    int PromptsCut,
    long GeneratedTokens,
    IReadOnlyList<GenerationSample> Samples,
    int MaxLength)
{
    /// <summary>The task.</summary>
    public GenerativeTask Task => Scores.Task;

    /// <summary>How many records were evaluated.</summary>
    public int Count => Predictions.Count;

    /// <summary>Answers that ended without an end marker (hit the new-token limit or the position table).</summary>
    public int Unfinished => FinishReasons.Count(r => r == FinishReason.Length);

    /// <summary>Every quality metric by gate name: the scores' metrics and perplexity.</summary>
    public IReadOnlyDictionary<string, double> Metrics
    {
        get
        {
            var metrics = new Dictionary<string, double>(Scores.Metrics, StringComparer.Ordinal)
            {
                [GenerationMetricNames.Perplexity] = Perplexity,
            };
            return metrics;
        }
    }
}
