using System.Globalization;
using ModelCompression.Pipeline;

namespace ModelCompression.Cli;

/// <summary>
/// One line per finished recipe, after its report: the gates' verdict, the final model's accuracy (and the
/// teacher's) and size. The MSBuild task recognises it by <see cref="Prefix"/> and shows it where the terminal
/// logger would hide the rest of the engine's output.
/// </summary>
internal static class RecipeSummary
{
    /// <summary>What every summary line starts with.</summary>
    public const string Prefix = "Summary: ";

    /// <summary>The summary line of <paramref name="result"/>.</summary>
    public static string Line(PipelineResult result)
    {
        var final = result.Stages[^1].Evaluation;
        var broken = result.Gates.Count(g => !g.Passed);
        var verdict = result.Gates.Count == 0 ? "no gates"
            : broken == 0 ? $"gates passed ({result.Gates.Count}/{result.Gates.Count})"
            : $"GATE FAILED ({broken} of {result.Gates.Count} broken)";
        var teacher = result.Teacher is { } t ? $" (teacher {Headline.Bare(result.Recipe, t, Headline.Percent)})" : string.Empty;
        var model = result.OutputModel is null ? "model not replaced" : Path.GetFileName(result.OutputModel);
        return string.Create(
            CultureInfo.InvariantCulture,
            $"{Prefix}{Path.GetFileName(result.Recipe.Path)}: {verdict}, {Headline.Of(result.Recipe, final, Headline.Percent)}{teacher}, {final.SizeBytes / 1048576.0:0.###} MB, {model}");
    }
}
