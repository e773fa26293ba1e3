using ModelCompression.Diagnostics;

namespace ModelCompression.Evaluation;

/// <summary>
/// Right/wrong scores of generated answers (math exact match, NLI accuracy), sample by sample so gates can run
/// McNemar on them. An answer that fails the parser is wrong and is counted under its reason.
/// </summary>
/// <param name="Correct">Per sample, in the order given: the parsed answer equals the parsed gold answer.</param>
/// <param name="ParseFailures">How many answers failed the parser, by reason (reasons with no failure are absent).</param>
public sealed record CorrectnessScores(IReadOnlyList<bool> Correct, IReadOnlyDictionary<AnswerParseFailure, int> ParseFailures)
{
    /// <summary>The share of samples answered right.</summary>
    public double Accuracy => Correct.Count(c => c) / (double)Correct.Count;

    /// <summary>How many answers failed the parser, all reasons together.</summary>
    public int ParseFailureCount => ParseFailures.Values.Sum();
}

/// <summary>SQuAD exact match and token F1, per sample and averaged.</summary>
/// <param name="ExactMatch">Per sample, 0 or 1.</param>
/// <param name="F1">Per sample, in [0, 1].</param>
/// <param name="EmptyAnswers">Answers that were empty after trimming (they score 0).</param>
public sealed record SquadScores(IReadOnlyList<double> ExactMatch, IReadOnlyList<double> F1, int EmptyAnswers)
{
    /// <summary>Mean exact match.</summary>
    public double MeanExactMatch => ExactMatch.Average();

    /// <summary>Mean token F1.</summary>
    public double MeanF1 => F1.Average();
}

/// <summary>ROUGE F-measures per sample and averaged.</summary>
/// <param name="Samples">Per sample: ROUGE-1, ROUGE-2, ROUGE-L.</param>
/// <param name="EmptyAnswers">Answers that were empty after trimming (they score 0).</param>
public sealed record RougeSummary(IReadOnlyList<RougeScores> Samples, int EmptyAnswers)
{
    /// <summary>Mean ROUGE-1 F-measure.</summary>
    public double Rouge1 => Samples.Average(s => s.Rouge1.FMeasure);

    /// <summary>Mean ROUGE-2 F-measure.</summary>
    public double Rouge2 => Samples.Average(s => s.Rouge2.FMeasure);

    /// <summary>Mean ROUGE-L F-measure.</summary>
    public double RougeL => Samples.Average(s => s.RougeL.FMeasure);

    /// <summary>Per-sample ROUGE-L F-measures, for <see cref="PairedBootstrap.Compare"/>.</summary>
    public double[] RougeLPerSample() => [.. Samples.Select(s => s.RougeL.FMeasure)];
}

/// <summary>The metrics of generative tasks over lists of (prediction, gold) pairs.</summary>
public static class GenerationMetrics
{
    /// <summary>
    /// Right/wrong per sample: each prediction and gold answer go through <paramref name="parser"/> and the parsed
    /// values must be equal (math: <see cref="MathAnswerParser"/>, exact match of final answers; NLI:
    /// <see cref="LabelAnswerParser"/>, accuracy over label words).
    /// </summary>
    /// <exception cref="CompressionException">MC2095: a gold answer fails the parser (its index is named).</exception>
    public static CorrectnessScores Correctness(IReadOnlyList<string> predictions, IReadOnlyList<string> golds, IAnswerParser parser)
    {
        ArgumentNullException.ThrowIfNull(parser);
        CheckPairs(predictions.Count, golds.Count);
        var correct = new bool[predictions.Count];
        var failures = new SortedDictionary<AnswerParseFailure, int>();
        for (var i = 0; i < predictions.Count; i++)
        {
            var gold = parser.Parse(golds[i]);
            if (!gold.Succeeded)
            {
                throw CompressionException.Error(
                    DiagnosticCodes.GoldAnswerUnparsable,
                    $"Gold answer {i} fails the task's answer parser ({gold.Failure}): '{Shorten(golds[i])}'.");
            }

            var predicted = parser.Parse(predictions[i]);
            if (!predicted.Succeeded)
            {
                failures[predicted.Failure] = failures.GetValueOrDefault(predicted.Failure) + 1;
            }

            correct[i] = predicted.Succeeded && string.Equals(predicted.Value, gold.Value, StringComparison.Ordinal);
        }

        return new CorrectnessScores(correct, failures);
    }

    /// <summary>
    /// Every gold answer that fails <paramref name="parser"/>, as MC2095 errors naming <paramref name="file"/> and the
    /// line <paramref name="lineOf"/> gives for the answer's index (1-based lines; without it, index + 1, as for JSONL
    /// with one record per line). Empty when all parse. Loading test data calls this so that bad gold answers are
    /// reported all together, with their place, before any model runs.
    /// </summary>
    public static IReadOnlyList<Diagnostic> GoldAnswerProblems(
        IReadOnlyList<string> golds, IAnswerParser parser, string? file = null, Func<int, int>? lineOf = null)
    {
        ArgumentNullException.ThrowIfNull(golds);
        ArgumentNullException.ThrowIfNull(parser);
        var problems = new List<Diagnostic>();
        for (var i = 0; i < golds.Count; i++)
        {
            var gold = parser.Parse(golds[i]);
            if (!gold.Succeeded)
            {
                problems.Add(Diagnostic.Error(
                    DiagnosticCodes.GoldAnswerUnparsable,
                    $"The gold answer fails the task's answer parser ({gold.Failure}): '{Shorten(golds[i])}'.",
                    file,
                    file is null ? null : lineOf?.Invoke(i) ?? i + 1));
            }
        }

        return problems;
    }

    /// <summary>SQuAD exact match and token F1 of each prediction against its gold answers (the best of them).</summary>
    public static SquadScores Squad(IReadOnlyList<string> predictions, IReadOnlyList<IReadOnlyList<string>> golds)
    {
        CheckPairs(predictions.Count, golds.Count);
        var exact = new double[predictions.Count];
        var f1 = new double[predictions.Count];
        var empty = 0;
        for (var i = 0; i < predictions.Count; i++)
        {
            empty += TextAnswerParser.Instance.Parse(predictions[i]).Succeeded ? 0 : 1;
            exact[i] = SquadMetrics.ExactMatch(predictions[i], golds[i]);
            f1[i] = SquadMetrics.F1(predictions[i], golds[i]);
        }

        return new SquadScores(exact, f1, empty);
    }

    /// <summary>ROUGE-1/2/L of each prediction against its reference (see <see cref="Rouge"/> for the tokenisation).</summary>
    public static RougeSummary Rouge(IReadOnlyList<string> predictions, IReadOnlyList<string> references)
    {
        CheckPairs(predictions.Count, references.Count);
        var samples = new RougeScores[predictions.Count];
        var empty = 0;
        for (var i = 0; i < predictions.Count; i++)
        {
            empty += TextAnswerParser.Instance.Parse(predictions[i]).Succeeded ? 0 : 1;
            samples[i] = Evaluation.Rouge.Score(predictions[i], references[i]);
        }

        return new RougeSummary(samples, empty);
    }

    private static void CheckPairs(int predictions, int golds)
    {
        if (predictions != golds || predictions == 0)
        {
            throw new ArgumentException($"Need one gold answer per prediction, at least one ({predictions} predictions, {golds} gold answers).");
        }
    }

    private static string Shorten(string text) => text.Length <= 80 ? text : text[..77] + "...";
}

/// <summary>Significance and perplexity for generated text.</summary>
public static class GenerationStatistics
{
    /// <summary>
    /// McNemar's exact test on per-sample correctness (e.g. <see cref="CorrectnessScores.Correct"/> of a distilled
    /// student and of its labels-only twin on the same test prompts): counts the samples only one side got right and
    /// gives <see cref="Statistics.McNemarExactPValue"/> of them.
    /// </summary>
    public static McNemarResult McNemar(IReadOnlyList<bool> baselineCorrect, IReadOnlyList<bool> candidateCorrect)
    {
        if (baselineCorrect.Count != candidateCorrect.Count)
        {
            throw new ArgumentException($"Paired correctness needs one per sample on each side: {baselineCorrect.Count} baseline, {candidateCorrect.Count} candidate.", nameof(candidateCorrect));
        }

        int baselineOnly = 0, candidateOnly = 0;
        for (var i = 0; i < baselineCorrect.Count; i++)
        {
            baselineOnly += baselineCorrect[i] && !candidateCorrect[i] ? 1 : 0;
            candidateOnly += candidateCorrect[i] && !baselineCorrect[i] ? 1 : 0;
        }

        return new McNemarResult(baselineOnly, candidateOnly, Statistics.McNemarExactPValue(baselineOnly, candidateOnly));
    }

    /// <summary>
    /// Perplexity: exp of the mean negative log-likelihood over every scored token of every sequence (natural log).
    /// Tokens are pooled, so a long sequence weighs more than a short one (the usual corpus perplexity, not a mean of
    /// per-sequence perplexities). Each element holds one sequence's log-probabilities of its scored tokens (e.g. the
    /// assistant's tokens of a held-out turn); empty sequences add nothing.
    /// </summary>
    public static double Perplexity(IEnumerable<IReadOnlyList<double>> tokenLogProbabilities)
    {
        ArgumentNullException.ThrowIfNull(tokenLogProbabilities);
        var sum = 0.0;
        long tokens = 0;
        foreach (var sequence in tokenLogProbabilities)
        {
            foreach (var logProbability in sequence)
            {
                if (double.IsNaN(logProbability) || logProbability > 0)
                {
                    throw new ArgumentException($"A log-probability is at most 0 (token {tokens}: {logProbability}).", nameof(tokenLogProbabilities));
                }

                sum -= logProbability;
                tokens++;
            }
        }

        if (tokens == 0)
        {
            throw new ArgumentException("No scored token.", nameof(tokenLogProbabilities));
        }

        return Math.Exp(sum / tokens);
    }
}
