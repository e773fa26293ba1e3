using ModelCompression.Diagnostics;

namespace ModelCompression.Evaluation;

/// <summary>
/// A generative model's answers scored against the gold answers (and the teacher's), metric by metric and sample by
/// sample. Everything here comes from the answer texts alone; perplexity and speed are measured on the model and
/// added by the caller.
/// </summary>
/// <param name="Task">The task the answers were scored as.</param>
/// <param name="Metrics">The task's metrics by gate name (<see cref="GenerationMetricNames"/>): its quality metrics that come from texts, <c>parse_failure_rate</c>, and <c>agreement_with_teacher</c> when teacher answers were given.</param>
/// <param name="PerSample">Per metric name of <paramref name="Metrics"/> (all but parse_failure_rate): each sample's score, in sample order, whose mean is the metric (for the paired bootstrap).</param>
/// <param name="Correct">Math, NLI and QA: whether each sample is right (math: final number; NLI: label; QA: SQuAD exact match), for McNemar; null for the other tasks.</param>
/// <param name="Failures">Per sample: why the task's parser refused the model's answer (<see cref="AnswerParseFailure.None"/> when it did not). A refused answer scores 0, it is never guessed.</param>
/// <param name="TeacherFailures">Per sample: why the parser refused the teacher's answer; null without teacher answers.</param>
public sealed record GenerationScores(
    GenerativeTask Task,
    IReadOnlyDictionary<string, double> Metrics,
    IReadOnlyDictionary<string, IReadOnlyList<double>> PerSample,
    IReadOnlyList<bool>? Correct,
    IReadOnlyList<AnswerParseFailure> Failures,
    IReadOnlyList<AnswerParseFailure>? TeacherFailures)
{
    /// <summary>How many answers the parser refused.</summary>
    public int ParseFailureCount => Failures.Count(f => f != AnswerParseFailure.None);

    /// <summary>The refused answers by reason (reasons without one are absent).</summary>
    public IReadOnlyDictionary<AnswerParseFailure, int> ParseFailuresByReason =>
        Failures.Where(f => f != AnswerParseFailure.None).GroupBy(f => f).OrderBy(g => g.Key).ToDictionary(g => g.Key, g => g.Count());
}

/// <summary>
/// Scores generated answers as their <see cref="GenerativeTask"/> says: math, exact match of the parsed final numbers;
/// NLI, accuracy over the label words; QA, SQuAD exact match and token F1; summarization, ROUGE-1/2/L F-measures;
/// conversation, nothing from the texts but the parse-failure rate (its quality is perplexity). With the teacher's
/// answers to the same prompts, <c>agreement_with_teacher</c> is, for math and NLI, the share of samples whose parsed
/// answer equals the teacher's parsed answer (a side the parser refuses disagrees), and for QA, summarization and
/// conversation the mean SQuAD token F1 of the model's answer against the teacher's (the teacher's answer as the gold).
/// </summary>
public static class GenerationScoring
{
    /// <summary>
    /// Scores <paramref name="predictions"/> against <paramref name="golds"/> (one each, same order), and against
    /// <paramref name="teacherAnswers"/> when given. A gold answer the parser refuses is MC2095 (bad data, naming its
    /// index; loading checks them with file and line first: <see cref="GenerationMetrics.GoldAnswerProblems"/>); task
    /// options that make no parser are MC2088.
    /// </summary>
    public static GenerationScores Score(GenerativeTask task, IReadOnlyList<string> predictions, IReadOnlyList<string> golds, IReadOnlyList<string>? teacherAnswers = null)
    {
        ArgumentNullException.ThrowIfNull(task);
        ArgumentNullException.ThrowIfNull(predictions);
        ArgumentNullException.ThrowIfNull(golds);
        if (predictions.Count == 0 || predictions.Count != golds.Count || (teacherAnswers is not null && teacherAnswers.Count != predictions.Count))
        {
            throw new ArgumentException($"Need one gold answer (and one teacher answer, when given) per prediction, at least one ({predictions.Count} predictions, {golds.Count} gold answers, {teacherAnswers?.Count.ToString() ?? "no"} teacher answers).", nameof(golds));
        }

        var parser = task.CreateParser();
        if (GenerationMetrics.GoldAnswerProblems(golds, parser) is { Count: > 0 } bad)
        {
            throw new CompressionException(bad);
        }

        var parsed = predictions.Select(parser.Parse).ToArray();
        var metrics = new Dictionary<string, double>(StringComparer.Ordinal);
        var perSample = new Dictionary<string, IReadOnlyList<double>>(StringComparer.Ordinal);
        IReadOnlyList<bool>? correct = null;
        switch (task.Type)
        {
            case GenerativeTaskType.Math:
            case GenerativeTaskType.Nli:
                correct = GenerationMetrics.Correctness(predictions, golds, parser).Correct;
                Add(task.Type == GenerativeTaskType.Math ? GenerationMetricNames.ExactMatch : GenerationMetricNames.LabelAccuracy, [.. correct.Select(c => c ? 1.0 : 0.0)]);
                break;
            case GenerativeTaskType.Qa:
                var squad = GenerationMetrics.Squad(predictions, [.. golds.Select(g => (IReadOnlyList<string>)[g])]);
                Add(GenerationMetricNames.ExactMatch, squad.ExactMatch);
                Add(GenerationMetricNames.F1, squad.F1);
                correct = [.. squad.ExactMatch.Select(e => e == 1)];
                break;
            case GenerativeTaskType.Summarization:
                var rouge = GenerationMetrics.Rouge(predictions, golds);
                Add(GenerationMetricNames.Rouge1, [.. rouge.Samples.Select(s => s.Rouge1.FMeasure)]);
                Add(GenerationMetricNames.Rouge2, [.. rouge.Samples.Select(s => s.Rouge2.FMeasure)]);
                Add(GenerationMetricNames.RougeL, [.. rouge.Samples.Select(s => s.RougeL.FMeasure)]);
                break;
        }

        metrics[GenerationMetricNames.ParseFailureRate] = parsed.Count(p => !p.Succeeded) / (double)parsed.Length;
        AnswerParseFailure[]? teacherFailures = null;
        if (teacherAnswers is not null)
        {
            var teacher = teacherAnswers.Select(parser.Parse).ToArray();
            teacherFailures = [.. teacher.Select(t => t.Failure)];
            Add(GenerationMetricNames.AgreementWithTeacher, task.Type is GenerativeTaskType.Math or GenerativeTaskType.Nli
                ? [.. parsed.Zip(teacher, (p, t) => p.Succeeded && t.Succeeded && string.Equals(p.Value, t.Value, StringComparison.Ordinal) ? 1.0 : 0.0)]
                : [.. predictions.Zip(teacherAnswers, (p, t) => SquadMetrics.F1(p, [t]))]);
        }

        return new GenerationScores(task, metrics, perSample, correct, [.. parsed.Select(p => p.Failure)], teacherFailures);

        void Add(string name, IReadOnlyList<double> scores)
        {
            perSample[name] = scores;
            metrics[name] = scores.Average();
        }
    }
}
