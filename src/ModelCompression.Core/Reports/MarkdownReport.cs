using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace ModelCompression.Reports;

/// <summary>
/// report.md: a heading with the verdict, the summary table, one line per gate, and the final model's per-class
/// metrics and confusion matrix folded away under a summary line. Short enough to read as a CI job summary;
/// rendered from report.json's tree so it shows the same numbers.
/// </summary>
public static class MarkdownReport
{
    /// <summary>Beyond this many classes the per-class table is left to report.json: a job summary is not the place.</summary>
    private const int MaxPerClassRows = 100;

    /// <summary>Beyond this many classes a confusion matrix is wider than a page of markdown can show.</summary>
    private const int MaxMatrixClasses = 20;

    /// <summary>The markdown text of <paramref name="report"/> (a report.json tree).</summary>
    /// <param name="report">The report.json tree.</param>
    /// <param name="perClass">False leaves out the per-class section, for a terminal that shows the markup raw.</param>
    public static string Render(JsonNode report, bool perClass = true)
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

        if (CacheLine(report) is { } cache)
        {
            text.AppendLine();
            text.AppendLine(cache);
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

        if (perClass)
        {
            PerClass(text, report);
        }

        return text.ToString();
    }

    /// <summary>The final model's per-class table and confusion matrix, classes by name where the data had names.</summary>
    private static void PerClass(StringBuilder text, JsonNode report)
    {
        var invariant = CultureInfo.InvariantCulture;
        var final = ReportJson.FinalModel(report);
        var rows = final is null ? [] : ReportJson.Objects(final.Evaluation, "per_class");
        var matrix = final is null ? null : ReportJson.SquareMatrix(final.Evaluation, "confusion_matrix");
        if (final is null || (rows.Count == 0 && matrix is null))
        {
            return;
        }

        var names = ReportJson.ClassNames(report, matrix?.Count ?? rows.Count);
        text.AppendLine();
        // GitHub renders markdown inside <details> only with blank lines around it.
        text.AppendLine(invariant, $"<details><summary>Per class: the final model ({final.Name})</summary>");
        if (rows.Count > MaxPerClassRows)
        {
            text.AppendLine();
            text.AppendLine(invariant, $"{rows.Count} classes: the per-class metrics are in report.json.");
        }
        else if (rows.Count > 0)
        {
            text.AppendLine();
            text.AppendLine("| class | precision | recall | F1 | support |");
            text.AppendLine("|---|---:|---:|---:|---:|");
            foreach (var row in rows)
            {
                var label = ReportJson.Number(row, "class") is { } index ? ReportJson.ClassLabel(names, (int)index) : "?";
                string Percent(string key) => ReportJson.Number(row, key) is { } v ? ReportFormat.Percent(v) : "n/a";
                var support = ReportJson.Number(row, "support") is { } n ? ReportFormat.Count(n) : "n/a";
                text.AppendLine(invariant, $"| {Cell(label)} | {Percent("precision")} | {Percent("recall")} | {Percent("f1")} | {support} |");
            }
        }

        if (matrix is { Count: > MaxMatrixClasses })
        {
            text.AppendLine();
            text.AppendLine(invariant, $"The confusion matrix has {matrix.Count} classes; report.json holds every count.");
        }
        else if (matrix is not null)
        {
            var classes = Enumerable.Range(0, matrix.Count).Select(i => Cell(ReportJson.ClassLabel(names, i))).ToList();
            text.AppendLine();
            text.AppendLine("Confusion matrix: a row per true class, a column per predicted class.");
            text.AppendLine();
            text.AppendLine(invariant, $"| true ↓ predicted → | {string.Join(" | ", classes)} |");
            text.AppendLine(invariant, $"|---|{string.Concat(classes.Select(_ => "---:|"))}");
            for (var row = 0; row < matrix.Count; row++)
            {
                text.AppendLine(invariant, $"| {classes[row]} | {string.Join(" | ", matrix[row].Select(ReportFormat.Count))} |");
            }
        }

        text.AppendLine();
        text.AppendLine("</details>");
    }

    /// <summary>
    /// With a remote cache, one line of what the run took from each layer and uploaded ("**Cache**: 2 local hits, 9 remote
    /// hits (1.93 MB down), 0 built; nothing uploaded (read-only) — `azure://…`"); null for a run without one, whose
    /// "(cached)" notes say it all.
    /// </summary>
    internal static string? CacheLine(JsonNode report)
    {
        var cache = ReportJson.Object(report, "cache");
        if (ReportJson.Text(cache, "remote") is not { } remote)
        {
            return null;
        }

        var total = ReportJson.Object(cache, "total");
        long Count(string key) => (long)(ReportJson.Number(total, key) ?? 0);
        var mode = ReportJson.Text(cache, "mode");
        var uploaded = mode == "read-write" ? $"{Common.CacheSummary.Size(Count("bytes_up"))} uploaded" : "nothing uploaded (read-only)";
        var damaged = Count("damaged") > 0 ? $", {Count("damaged")} damaged and made again" : string.Empty;
        var failed = ReportJson.Flag(cache, "remote_available") == false ? "; the remote cache failed during the run, which went on locally" : string.Empty;
        return $"**Cache**: {Common.CacheSummary.Count((int)Count("local_hits"), "local hit")}, {Common.CacheSummary.Count((int)Count("remote_hits"), "remote hit")} ({Common.CacheSummary.Size(Count("bytes_down"))} down), {Count("built").ToString(CultureInfo.InvariantCulture)} built{damaged}; {uploaded} — {Code(remote)}{failed}";
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
