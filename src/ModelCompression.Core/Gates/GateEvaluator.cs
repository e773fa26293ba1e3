using System.Globalization;
using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;
using ModelCompression.Recipes;

namespace ModelCompression.Gates;

/// <summary>One gate's outcome.</summary>
/// <param name="Text">The gate as written.</param>
/// <param name="Line">Its line in the recipe.</param>
/// <param name="Column">Its column in the recipe.</param>
/// <param name="Passed">Whether it held.</param>
/// <param name="Value">The final model's metric.</param>
/// <param name="Threshold">What it was compared with.</param>
/// <param name="Message">One line for people, with both numbers.</param>
/// <param name="Significant">True when the gate was written with <c>(significant)</c>: it fails only on a regression at 95% confidence.</param>
/// <param name="PValue">The significance test's p-value, when one was run.</param>
public sealed record GateResult(string Text, int Line, int Column, bool Passed, double Value, double Threshold, string Message, bool Significant = false, double? PValue = null);

/// <summary>Checks every gate of a recipe against the final model's evaluation; all are evaluated.</summary>
public static class GateEvaluator
{
    /// <summary>Every gate's outcome, in recipe order.</summary>
    public static IReadOnlyList<GateResult> Evaluate(Recipe recipe, ModelEvaluation final, ModelEvaluation teacher)
    {
        var results = new List<GateResult>();
        foreach (var gate in recipe.Gates)
        {
            var expression = gate.Expression;
            var value = final.Metrics[expression.Metric];
            var threshold = expression.Threshold(expression.Reference == "teacher" ? teacher.Metrics : null);
            var passed = expression.Passes(value, threshold);
            var invariant = CultureInfo.InvariantCulture;
            var message = $"Gate '{gate.Text}' {(passed ? "passed" : "failed")}: {expression.Metric} is {value.ToString("0.####", invariant)}, needs {expression.Operator} {threshold.ToString("0.####", invariant)}.";
            results.Add(new GateResult(gate.Text, gate.Line, gate.Column, passed, value, threshold, message));
        }

        return results;
    }

    /// <summary>The failed gates as MC3001 errors pointing at their recipe lines.</summary>
    public static IReadOnlyList<Diagnostic> Failures(string recipePath, IEnumerable<GateResult> gates) =>
        [.. gates.Where(g => !g.Passed).Select(g => Diagnostic.Error(DiagnosticCodes.GateFailed, g.Message, recipePath, g.Line, g.Column))];
}
