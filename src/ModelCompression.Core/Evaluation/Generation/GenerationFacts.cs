using System.Text.Json.Serialization;

namespace ModelCompression.Evaluation;

/// <summary>
/// What a generative model's evaluation adds to <see cref="ModelEvaluation"/> (report.json's <c>generation</c> object of
/// an evaluation, schema version 4): the task type, the quality and speed metrics by gate name, their bootstrap 95%
/// intervals, each test record's scores (kept so a baseline can be compared sample by sample), why answers failed to
/// parse, and a few generations side by side for the reports.
/// </summary>
/// <param name="TaskType">math, nli, qa, summarization or conversation.</param>
/// <param name="Metrics">Quality (exact_match, label_accuracy, f1, rouge1/2/l, perplexity, parse_failure_rate, agreement_with_teacher) and speed (tokens_per_second, tokens_per_second_batch) by gate name.</param>
/// <param name="Ci95">Bootstrap 95% interval [lower, upper] of each metric that is a mean over test records.</param>
/// <param name="PerSample">Each test record's score per metric of <paramref name="Metrics"/> that is a mean over records.</param>
/// <param name="ParseFailures">Answers the task's parser refused, by reason.</param>
/// <param name="Unfinished">Answers that hit the new-token limit without an end marker.</param>
/// <param name="GeneratedTokens">New tokens generated over the test split.</param>
/// <param name="PerplexityTokens">Gold assistant tokens perplexity was measured on.</param>
/// <param name="Samples">The first few test records side by side: prompt, gold, teacher and this model's answer.</param>
/// <param name="Answers">This model's answer to every test record, in order (a teacher's are what its students' agreement is measured against).</param>
public sealed record GenerationFacts(
    string TaskType,
    IReadOnlyDictionary<string, double> Metrics,
    IReadOnlyDictionary<string, double[]> Ci95,
    IReadOnlyDictionary<string, double[]> PerSample,
    IReadOnlyDictionary<string, int> ParseFailures,
    int Unfinished,
    long GeneratedTokens,
    long PerplexityTokens,
    IReadOnlyList<GenerationSampleRow> Samples,
    IReadOnlyList<string> Answers)
{
    /// <summary>
    /// The metric whose per-record values are right/wrong (math and QA: exact_match; NLI: label_accuracy), which a
    /// significance gate against a baseline tests with McNemar's exact test; null for graded tasks (a paired bootstrap).
    /// </summary>
    [JsonIgnore]
    public string? CorrectnessMetric => TaskType switch
    {
        "math" or "qa" => GenerationMetricNames.ExactMatch,
        "nli" => GenerationMetricNames.LabelAccuracy,
        _ => null,
    };
}

/// <summary>One test record's generations side by side, as the reports show them.</summary>
/// <param name="Location">file:line of the record.</param>
/// <param name="Prompt">The prompt as the model saw it (rendered with the chat template).</param>
/// <param name="Gold">The gold answer.</param>
/// <param name="Teacher">The teacher's answer; null without a teacher.</param>
/// <param name="Answer">This model's answer.</param>
/// <param name="ParseFailure">Why the task's parser refused the answer, or null when it did not.</param>
public sealed record GenerationSampleRow(string Location, string Prompt, string Gold, string? Teacher, string Answer, string? ParseFailure);
