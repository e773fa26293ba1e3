using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace ModelCompression.Reports;

/// <summary>
/// report.md: a heading with the verdict, the summary table and one line per gate. Short enough to read
/// as a CI job summary; rendered from report.json's tree so it shows the same numbers.
/// </summary>
public static class MarkdownReport
{
    /// <summary>The markdown text of <paramref name="report"/> (a report.json tree).</summary>
    public static string Render(JsonNode report)
    {
        var invariant = CultureInfo.InvariantCulture;
        var passed = ReportJson.Flag(report, "passed") == true;
        var recipe = Path.GetFileName(ReportJson.Text(report, "recipe") ?? "recipe");
        var text = new StringBuilder();
        text.AppendLine(invariant, $"## Model compression: {Code(recipe)} — {(passed ? "passed" : "GATE FAILED")}");
        text.AppendLine();

        var table = SummaryTable.Build(report);
        text.AppendLine(invariant, $"| {string.Join(" | ", table.Headers)} |");
        text.AppendLine(invariant, $"|{string.Concat(table.Numeric.Select(n => n ? "---:|" : "---|"))}");
        foreach (var row in table.Rows)
        {
            text.AppendLine(invariant, $"| {string.Join(" | ", row.Select(Cell))} |");
        }

        if (!ReportJson.HasTeacher(report))
        {
            text.AppendLine();
            text.AppendLine(NoTeacher);
        }

        var gates = ReportJson.Objects(report, "gates");
        if (gates.Count > 0)
        {
            text.AppendLine();
            text.AppendLine(invariant, $"**Gates** ({gates.Count(g => ReportJson.Flag(g, "passed") == true)} of {gates.Count} passed)");
            text.AppendLine();
            foreach (var gate in gates)
            {
                text.AppendLine(GateLine(gate));
            }
        }

        if (!passed && ReportJson.Text(report, "output_model") is null)
        {
            text.AppendLine();
            text.AppendLine("The previous model was kept: a failing gate never replaces it.");
        }

        return text.ToString();
    }

    /// <summary>What report.md and report.html say in place of the teacher's row when the recipe had none.</summary>
    internal const string NoTeacher = "No teacher: the recipe trains on the labels alone, so there is no teacher row and no agreement or KL to a teacher.";

    /// <summary>"- ✅ `accuracy >= 0.85` — 0.8602 vs 0.85 (line 17)", with the p-value of a significance test.</summary>
    private static string GateLine(JsonObject gate)
    {
        var invariant = CultureInfo.InvariantCulture;
        var mark = ReportJson.Flag(gate, "passed") == true ? "✅" : "❌";
        var value = ReportJson.Number(gate, "value") is { } v ? ReportFormat.GateNumber(v) : "n/a";
        var threshold = ReportJson.Number(gate, "threshold") is { } t ? ReportFormat.GateNumber(t) : "n/a";
        var line = ReportJson.Number(gate, "line") is { } l ? $" (line {l.ToString(invariant)})" : string.Empty;
        var significance = ReportJson.Number(gate, "p_value") is { } p
            ? $", p = {ReportFormat.Plain(p)}"
            : ReportJson.Flag(gate, "significant") == true ? ", significance test" : string.Empty;
        return $"- {mark} {Code(ReportJson.Text(gate, "gate") ?? "gate")} — {value} vs {threshold}{significance}{line}";
    }

    /// <summary>A code span, so recipe text (paths, gate operators, angle brackets) is shown literally.</summary>
    private static string Code(string text) => $"`{text.Replace('`', '\'').ReplaceLineEndings(" ")}`";

    /// <summary>A table cell: pipes would end the cell and line breaks the row.</summary>
    private static string Cell(string text) => text.Replace("|", "\\|", StringComparison.Ordinal).ReplaceLineEndings(" ");
}
