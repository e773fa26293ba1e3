using System.Globalization;
using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;

namespace ModelCompression.Gates;

/// <summary>One gate's outcome.</summary>
/// <param name="Text">The gate as written.</param>
/// <param name="Line">Its line in the recipe.</param>
/// <param name="Column">Its column in the recipe.</param>
/// <param name="Passed">Whether it held (a skipped gate holds).</param>
/// <param name="Value">The final model's metric (NaN when it was not measured).</param>
/// <param name="Threshold">What it was compared with (NaN when there was nothing to compare with).</param>
/// <param name="Message">One line for people, with both numbers.</param>
/// <param name="Significant">Whether the gate fails only on a difference significant at 95%.</param>
/// <param name="PValue">McNemar's p-value against the baseline's predictions, when that test decided.</param>
/// <param name="Skipped">True when the gate compares with a baseline that does not exist yet.</param>
public sealed record GateResult(
    string Text,
    int Line,
    int Column,
    bool Passed,
    double Value,
    double Threshold,
    string Message,
    bool Significant = false,
    double? PValue = null,
    bool Skipped = false);

/// <summary>
/// Checks every gate of a recipe against the final model's evaluation; all are evaluated and every failure is
/// kept. A 'significant' accuracy gate that misses its threshold fails only when the model is worse with 95%
/// confidence: by McNemar's exact test on paired predictions when it compares with a baseline measured on the
/// same data, otherwise when the threshold lies above the model's bootstrap 95% interval.
/// </summary>
public static class GateEvaluator
{
    /// <summary>Every gate's outcome, in recipe order.</summary>
    /// <param name="gates">The recipe's gates.</param>
    /// <param name="baselinePath">The recipe's baseline file (named when it is missing).</param>
    /// <param name="final">The final model's evaluation.</param>
    /// <param name="teacher">The teacher's evaluation; null when the recipe has no teacher.</param>
    /// <param name="baseline">The committed baseline, or null when there is none yet.</param>
    /// <param name="labels">The held-out labels the evaluations were measured on (for the paired test).</param>
    /// <param name="dataHash">Hash of the held-out data, compared with the baseline's.</param>
    public static IReadOnlyList<GateResult> Evaluate(
        IReadOnlyList<GateSpec> gates, string baselinePath, ModelEvaluation final, ModelEvaluation? teacher, BaselineFile? baseline = null, IReadOnlyList<long>? labels = null, string? dataHash = null)
    {
        var results = new List<GateResult>();
        var invariant = CultureInfo.InvariantCulture;
        foreach (var gate in gates)
        {
            var expression = gate.Expression;
            GateResult Result(bool passed, double value, double threshold, string message, double? p = null, bool skipped = false) =>
                new(gate.Text, gate.Line, gate.Column, passed, value, threshold, message, gate.Significant, p, skipped);

            if (teacher is null && expression.NeedsTeacher)
            {
                // The recipe loader rejects these; a recipe built in code can still hold one.
                results.Add(Result(false, double.NaN, double.NaN, $"Gate '{gate.Text}' failed: it compares with the teacher, and the recipe has none."));
                continue;
            }

            if (!final.Metrics.TryGetValue(expression.Metric, out var value))
            {
                results.Add(Result(false, double.NaN, double.NaN, $"Gate '{gate.Text}' failed: {expression.Metric} was not measured for the final model (latency and memory need measure_latency: true)."));
                continue;
            }

            var reference = expression.Reference switch
            {
                "teacher" => teacher,
                "baseline" => baseline?.Evaluation,
                _ => null,
            };
            if (expression.Reference == "baseline" && baseline is null)
            {
                results.Add(Result(true, value, double.NaN, $"Gate '{gate.Text}' skipped: there is no baseline yet ({baselinePath}); 'dotnet compress baseline accept' writes one.", skipped: true));
                continue;
            }

            if (reference is not null && !reference.Metrics.ContainsKey(expression.ReferenceMetric!))
            {
                results.Add(Result(false, value, double.NaN, $"Gate '{gate.Text}' failed: the {expression.Reference} has no {expression.ReferenceMetric} to compare with."));
                continue;
            }

            var threshold = expression.Threshold(reference?.Metrics);
            var passed = expression.Passes(value, threshold);
            var message = $"Gate '{gate.Text}' {(passed ? "passed" : "failed")}: {expression.Metric} is {value.ToString("0.####", invariant)}, needs {expression.Operator} {threshold.ToString("0.####", invariant)}.";
            if (!gate.Significant)
            {
                results.Add(Result(passed, value, threshold, message));
                continue;
            }

            // A significant gate against the baseline is compared sample by sample whether or not it met its threshold:
            // a pass states how the model differs, a miss fails only when the model is worse beyond chance.
            var paired = expression.Reference == "baseline" && baseline!.DataHash == dataHash ? Paired(expression.Metric, final, baseline, labels) : null;
            if (passed)
            {
                results.Add(Result(true, value, threshold, paired is null ? message : $"{message[..^1]} ({paired.Value.Text}).", paired?.P));
                continue;
            }

            if (paired is { } test)
            {
                results.Add(Result(
                    !test.Worse,
                    value,
                    threshold,
                    $"{message[..^1]}, and {(test.Worse ? "is" : "is not")} significantly worse than the baseline ({test.Text}){(test.Worse ? "." : ": passes as not significant.")}",
                    test.P));
                continue;
            }

            if (final.Ci95Of(expression.Metric) is [var low, var high])
            {
                var within = high >= threshold;
                results.Add(Result(
                    within,
                    value,
                    threshold,
                    $"{message[..^1]}; its 95% interval is [{low.ToString("0.####", invariant)}, {high.ToString("0.####", invariant)}]{(within ? ", which reaches the threshold: passes as not significant." : ", entirely below the threshold.")}"));
                continue;
            }

            results.Add(Result(false, value, threshold, message));
        }

        return results;
    }

    /// <summary>
    /// The paired comparison of <paramref name="final"/> with the baseline on <paramref name="metric"/>, measured on the
    /// same data: McNemar's exact test on per-sample correctness for the evaluation's paired metric (accuracy, a
    /// generative model's exact match or label accuracy), a paired bootstrap over test records for a generative model's
    /// graded metric; null when neither has the per-sample values it needs.
    /// </summary>
    private static (bool Worse, double P, string Text)? Paired(string metric, ModelEvaluation final, BaselineFile baseline, IReadOnlyList<long>? labels)
    {
        if (metric == final.PairedMetric
            && baseline.Evaluation.Predictions is { } before
            && final.Predictions is { } after
            && labels is not null
            && before.Length == labels.Count
            && after.Length == labels.Count)
        {
            var test = Statistics.McNemar(before, after, [.. labels]);
            return (test.CandidateSignificantlyWorse(), test.PValue, $"McNemar exact test on {test.BaselineOnlyCorrect + test.CandidateOnlyCorrect} discordant samples: {test.BaselineOnlyCorrect} right only before, {test.CandidateOnlyCorrect} only now, p = {P(test.PValue)}");
        }

        if (baseline.Evaluation.Generation?.PerSample.GetValueOrDefault(metric) is { } baselineScores
            && final.Generation?.PerSample.GetValueOrDefault(metric) is { } scores
            && scores.Length == baselineScores.Length
            && scores.Length > 0)
        {
            var compared = PairedBootstrap.Compare(baselineScores, scores);
            var higherIsBetter = MetricInfo.Generation.FirstOrDefault(m => m.Name == metric)?.HigherIsBetter ?? true;
            var worse = higherIsBetter ? compared.CandidateSignificantlyWorse() : compared.CandidateSignificantlyBetter();
            return (worse, compared.PValue, $"paired bootstrap over {scores.Length} test records, p = {P(compared.PValue)}");
        }

        return null;
    }

    /// <summary>A p-value as messages write it: four decimals, or in scientific notation below 0.0001 ("2.4E-94").</summary>
    private static string P(double p) => p is > 0 and < 1e-4 ? p.ToString("0.#E+0", CultureInfo.InvariantCulture) : p.ToString("0.####", CultureInfo.InvariantCulture);

    /// <summary>The failed gates as MC3001 errors pointing at their recipe lines.</summary>
    public static IReadOnlyList<Diagnostic> Failures(string recipePath, IEnumerable<GateResult> gates) =>
        [.. gates.Where(g => !g.Passed).Select(g => Diagnostic.Error(DiagnosticCodes.GateFailed, g.Message, recipePath, g.Line, g.Column))];
}
