using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;

namespace ModelCompression.Reports;

/// <summary>
/// report.html: one self-contained page (inline CSS and SVG, no script, nothing fetched) rendered from
/// report.json's tree, so it always shows report.json's numbers: verdict and recipe, the summary table,
/// accuracy against size, the final model's confusion matrix, training curves, sweeps, gates and
/// per-class precision and recall. A section whose data the report lacks says so instead of a chart.
/// </summary>
/// <remarks>The markup is also well-formed XML (void elements closed, only numeric character references), so tools and tests can parse it.</remarks>
public static partial class HtmlReport
{
    /// <summary>Beyond this many classes a heat map has cells too small to read and a page too large to open.</summary>
    private const int MaxHeatMapClasses = 60;

    private const string Style = """
        :root { color-scheme: light; }
        body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: #111827; background: #ffffff; }
        header { padding: 20px 32px; color: #ffffff; }
        header.passed { background: #15803d; }
        header.failed { background: #b91c1c; }
        header h1 { margin: 0 0 6px; font-size: 24px; }
        header p { margin: 2px 0; }
        header code { background: rgba(255, 255, 255, 0.18); padding: 1px 5px; border-radius: 3px; word-break: break-all; }
        .verdict { display: inline-block; margin-right: 12px; padding: 2px 10px; border: 2px solid #ffffff; border-radius: 4px; font-size: 18px; vertical-align: 2px; }
        main { padding: 8px 32px 40px; max-width: 1180px; }
        h2 { margin: 28px 0 10px; font-size: 19px; border-bottom: 1px solid #e5e7eb; padding-bottom: 4px; }
        h3 { margin: 18px 0 6px; font-size: 15px; }
        table { border-collapse: collapse; margin: 6px 0; }
        th, td { border: 1px solid #d1d5db; padding: 4px 10px; text-align: left; vertical-align: top; }
        th { background: #f3f4f6; font-weight: 600; }
        td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
        td.pass, td.fail { white-space: nowrap; }
        tr.best td { background: #fef3c7; font-weight: 600; }
        td.pass { color: #15803d; font-weight: 600; }
        td.fail { color: #b91c1c; font-weight: 600; }
        .note { color: #6b7280; font-style: italic; }
        .charts { display: flex; flex-wrap: wrap; gap: 16px; }
        figure { margin: 0; }
        figcaption { color: #374151; font-size: 13px; }
        svg text { font-family: inherit; }
        svg .tick { font-size: 11px; fill: #374151; }
        svg .axis-title { font-size: 12px; fill: #111827; }
        svg .grid { stroke: #e5e7eb; stroke-width: 1; }
        svg .axis { stroke: #6b7280; stroke-width: 1; }
        svg .trajectory { fill: none; stroke: #9ca3af; stroke-width: 1.5; stroke-dasharray: 5 4; }
        svg .point { stroke: #ffffff; stroke-width: 1.5; }
        svg .point.teacher { fill: #6b7280; }
        svg .point.stage { fill: #2563eb; }
        svg .point.final { fill: #ea580c; }
        svg .point-label { font-size: 12px; fill: #111827; }
        svg .curve { fill: none; stroke: #2563eb; stroke-width: 2; }
        svg .curve-point { fill: #2563eb; }
        svg .cell { stroke: #ffffff; stroke-width: 1; }
        svg .cell-count { font-size: 11px; }
        svg .legend { stroke: #d1d5db; stroke-width: 1; }
        """;

    /// <summary>The HTML page of <paramref name="report"/> (a report.json tree).</summary>
    public static string Render(JsonNode report)
    {
        var html = new StringBuilder();
        var recipe = ReportJson.Text(report, "recipe") ?? "(unknown recipe)";
        html.AppendLine("<!DOCTYPE html>");
        html.AppendLine("<html lang=\"en\">");
        html.AppendLine("<head>");
        html.AppendLine("<meta charset=\"utf-8\"/>");
        html.AppendLine("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>");
        html.AppendLine($"<title>Model compression report: {E(Path.GetFileName(recipe))}</title>");
        html.AppendLine($"<style>{Style}</style>");
        html.AppendLine("</head>");
        html.AppendLine("<body>");
        Header(html, report, recipe);
        html.AppendLine("<main>");
        Summary(html, report);
        AccuracyVsSize(html, report);
        ConfusionMatrix(html, report);
        Generations(html, report);
        TrainingCurves(html, report);
        Sweeps(html, report);
        Gates(html, report);
        PerClass(html, report);
        html.AppendLine("</main>");
        html.AppendLine("</body>");
        html.AppendLine("</html>");
        return html.ToString();
    }

    private static void Header(StringBuilder html, JsonNode report, string recipe)
    {
        var passed = ReportJson.Flag(report, "passed") == true;
        var gates = ReportJson.Objects(report, "gates");
        var failed = gates.Count(g => ReportJson.Flag(g, "passed") != true);
        html.AppendLine($"<header id=\"verdict\" class=\"{(passed ? "passed" : "failed")}\">");
        html.AppendLine($"<h1><span class=\"verdict\">{(passed ? "PASSED" : "GATE FAILED")}</span>Model compression report</h1>");
        html.AppendLine($"<p>Recipe: <code>{E(recipe)}</code></p>");
        html.AppendLine(passed
            ? $"<p>Gates: all {C(gates.Count)} passed.</p>"
            : $"<p>Gates: {C(failed)} of {C(gates.Count)} failed.</p>");
        html.AppendLine(ReportJson.Text(report, "output_model") is { } output
            ? $"<p>Output model: <code>{E(output)}</code></p>"
            : "<p>Output model: none written; the previous model was kept.</p>");
        var facts = new List<string>();
        if (ReportJson.Text(report, "created_utc") is { } created)
        {
            facts.Add($"created {E(created)}");
        }

        if (ReportJson.Text(report, "engine_version") is { } engine)
        {
            facts.Add($"engine {E(engine)}");
        }

        if (ReportJson.Number(report, "schema_version") is { } schema)
        {
            facts.Add($"report schema {C(schema)}");
        }

        html.AppendLine($"<p>{string.Join(", ", facts)}</p>");
        html.AppendLine("</header>");
    }

    private static void Summary(StringBuilder html, JsonNode report)
    {
        Section(html, "summary", "Summary");
        var table = SummaryTable.Build(report);
        html.Append("<table><thead><tr>");
        for (var i = 0; i < table.Headers.Count; i++)
        {
            html.Append($"<th{NumClass(table.Numeric[i])}>{E(table.Headers[i])}</th>");
        }

        html.AppendLine("</tr></thead><tbody>");
        foreach (var row in table.Rows)
        {
            html.Append("<tr>");
            for (var i = 0; i < row.Count; i++)
            {
                html.Append($"<td{NumClass(table.Numeric[i])}>{E(row[i])}</td>");
            }

            html.AppendLine("</tr>");
        }

        html.AppendLine("</tbody></table>");
        if (!ReportJson.HasTeacher(report))
        {
            Note(html, MarkdownReport.NoTeacher);
        }

        EndSection(html);
    }

    private static void AccuracyVsSize(StringBuilder html, JsonNode report)
    {
        var headline = ReportJson.Task(report).Report;
        Section(html, "accuracy-vs-size", $"{char.ToUpperInvariant(headline.Title[0])}{headline.Title[1..]} against size");
        var models = ReportJson.Models(report);
        Func<double, string> format = headline.IsFraction ? ReportFormat.Percent : ReportFormat.Significant;
        var points = new List<ChartPoint>();
        for (var i = 0; i < models.Count; i++)
        {
            var (name, evaluation, stage) = models[i];
            if (ReportJson.Metric(evaluation, headline.Metric) is { } value && ReportJson.Number(evaluation, "size_mb") is { } size)
            {
                var kind = stage is null ? "teacher" : i == models.Count - 1 ? "final" : "stage";
                points.Add(new ChartPoint(name, size, value, kind, $"{name}: {format(value)}, {ReportFormat.Significant(size)} MB"));
            }
        }

        if (points.Count == 0)
        {
            Note(html, $"No model has both {(headline.IsFraction ? "an" : "a")} {headline.Title} and a size in this report.");
        }
        else
        {
            var teacher = ReportJson.HasTeacher(report) ? "Teacher (grey), stages" : "No teacher; stages";
            html.AppendLine($"<figure>{Charts.AccuracyVsSize(points, headline.Title, headline.IsFraction)}<figcaption>{teacher} in pipeline order along the dashed line, final model in orange.</figcaption></figure>");
        }

        EndSection(html);
    }

    private static void ConfusionMatrix(StringBuilder html, JsonNode report)
    {
        if (!ReportJson.Task(report).Report.HasConfusionMatrix)
        {
            return;
        }

        var final = ReportJson.FinalModel(report);
        Section(html, "confusion-matrix", final is null ? "Confusion matrix" : $"Confusion matrix of the final model ({final.Name})");
        var matrix = final is null ? null : ReportJson.SquareMatrix(final.Evaluation, "confusion_matrix");
        if (matrix is { Count: > MaxHeatMapClasses })
        {
            Note(html, $"The confusion matrix has {C(matrix.Count)} classes; the heat map is drawn for up to {C(MaxHeatMapClasses)}. report.json holds every count.");
        }
        else if (matrix is not null)
        {
            html.AppendLine($"<figure>{Charts.ConfusionMatrix(matrix, ReportJson.ClassNames(report, matrix.Count))}<figcaption>Rows: true class; columns: predicted class; shade: share of the true class.</figcaption></figure>");
        }
        else
        {
            Note(html, "No confusion matrix in this report (the evaluation did not record one).");
        }

        EndSection(html);
    }

    private static void TrainingCurves(StringBuilder html, JsonNode report)
    {
        Section(html, "training", "Training curves");
        var score = ReportJson.Task(report).Report;
        var trained = 0;
        foreach (var stage in ReportJson.Objects(report, "stages"))
        {
            var losses = ReportJson.Numbers(stage, "epoch_losses");
            var accuracies = ReportJson.Numbers(stage, "validation_accuracies");
            if (losses is not { Count: > 0 } && accuracies is not { Count: > 0 })
            {
                continue;
            }

            trained++;
            var name = ReportJson.Text(stage, "stage") ?? "stage";
            html.AppendLine($"<h3>{E(name)}</h3>");
            html.AppendLine("<div class=\"charts\">");
            if (losses is { Count: > 0 })
            {
                html.AppendLine($"<figure>{Charts.PerEpoch(losses, "training loss", percent: false)}<figcaption>Training loss per epoch ({C(losses.Count)} epochs).</figcaption></figure>");
            }
            else
            {
                Note(html, "No training loss recorded.");
            }

            if (accuracies is { Count: > 0 })
            {
                html.AppendLine($"<figure>{Charts.PerEpoch(accuracies, $"validation {score.ValidationTitle}", percent: score.ValidationIsFraction)}<figcaption>Validation {score.ValidationTitle} per epoch.</figcaption></figure>");
            }
            else
            {
                Note(html, $"No validation {score.ValidationTitle} chart: this stage trained without a validation split.");
            }

            html.AppendLine("</div>");
        }

        if (trained == 0)
        {
            Note(html, "No stage trained in this run.");
        }

        EndSection(html);
    }

    private static void Sweeps(StringBuilder html, JsonNode report)
    {
        var swept = ReportJson.Objects(report, "stages").Where(s => ReportJson.Objects(s, "sweep").Count > 0).ToList();
        if (swept.Count == 0)
        {
            return;
        }

        Section(html, "sweep", "Hyper-parameter sweep");
        foreach (var stage in swept)
        {
            var trials = ReportJson.Objects(stage, "sweep");

            // The columns are whatever a trial records, so a sweep over new settings needs no change here.
            var columns = trials.SelectMany(t => t.Select(p => p.Key)).Where(k => k != "best").Distinct(StringComparer.Ordinal).ToList();
            html.AppendLine($"<h3>{E(ReportJson.Text(stage, "stage") ?? "stage")}</h3>");
            html.Append("<table class=\"sweep\"><thead><tr>");
            foreach (var column in columns)
            {
                html.Append($"<th class=\"num\">{E(column.Replace('_', ' '))}</th>");
            }

            html.AppendLine("<th>kept</th></tr></thead><tbody>");
            foreach (var trial in trials)
            {
                var best = ReportJson.Flag(trial, "best") == true;
                html.Append(best ? "<tr class=\"best\">" : "<tr>");
                foreach (var column in columns)
                {
                    html.Append($"<td class=\"num\">{E(SweepCell(trial, column))}</td>");
                }

                html.AppendLine($"<td>{(best ? "★ best" : string.Empty)}</td></tr>");
            }

            html.AppendLine("</tbody></table>");
        }

        EndSection(html);
    }

    private static string SweepCell(JsonObject trial, string column) => ReportJson.Number(trial, column) switch
    {
        { } accuracy when column.Contains("accuracy", StringComparison.Ordinal) => ReportFormat.Percent(accuracy),
        { } number => ReportFormat.Plain(number),
        null => ReportJson.Text(trial, column) ?? string.Empty,
    };

    private static void Gates(StringBuilder html, JsonNode report)
    {
        Section(html, "gates", "Gates");
        var gates = ReportJson.Objects(report, "gates");
        if (gates.Count == 0)
        {
            Note(html, "The recipe has no gates.");
            EndSection(html);
            return;
        }

        var showPValue = gates.Any(g => ReportJson.Number(g, "p_value") is not null);
        html.Append("<table><thead><tr><th>gate</th><th class=\"num\">line</th><th class=\"num\">value</th><th class=\"num\">threshold</th><th>result</th><th>significance test</th>");
        html.AppendLine((showPValue ? "<th class=\"num\">p-value</th>" : string.Empty) + "<th>message</th></tr></thead><tbody>");
        foreach (var gate in gates)
        {
            var passed = ReportJson.Flag(gate, "passed") == true;
            html.Append($"<tr><td><code>{E(ReportJson.Text(gate, "gate") ?? string.Empty)}</code></td>");
            html.Append($"<td class=\"num\">{Optional(ReportJson.Number(gate, "line"), C)}</td>");
            html.Append($"<td class=\"num\">{Optional(ReportJson.Number(gate, "value"), ReportFormat.GateNumber)}</td>");
            html.Append($"<td class=\"num\">{Optional(ReportJson.Number(gate, "threshold"), ReportFormat.GateNumber)}</td>");
            html.Append(passed ? "<td class=\"pass\">✔ pass</td>" : "<td class=\"fail\">✘ fail</td>");
            html.Append($"<td>{(ReportJson.Flag(gate, "significant") == true ? "yes" : "no")}</td>");
            if (showPValue)
            {
                html.Append($"<td class=\"num\">{Optional(ReportJson.Number(gate, "p_value"), ReportFormat.Plain)}</td>");
            }

            html.AppendLine($"<td>{E(ReportJson.Text(gate, "message") ?? string.Empty)}</td></tr>");
        }

        html.AppendLine("</tbody></table>");
        EndSection(html);
    }

    private static void PerClass(StringBuilder html, JsonNode report)
    {
        var final = ReportJson.FinalModel(report);
        Section(html, "per-class", final is null ? "Per-class precision and recall" : $"Per-class precision and recall of the final model ({final.Name})");
        var classes = final is null ? [] : ReportJson.Objects(final.Evaluation, "per_class");
        if (classes.Count == 0)
        {
            Note(html, "No per-class metrics in this report.");
            EndSection(html);
            return;
        }

        // Named classes are text (left-aligned, the number on hover); numbered ones stay a numeric column.
        var names = ReportJson.ClassNames(report, classes.Count);
        html.Append(names is null ? "<table><thead><tr><th class=\"num\">class</th>" : "<table><thead><tr><th>class</th>");
        html.AppendLine("<th class=\"num\">precision</th><th class=\"num\">recall</th><th class=\"num\">F1</th><th class=\"num\">support</th></tr></thead><tbody>");
        foreach (var row in classes)
        {
            var index = ReportJson.Number(row, "class");
            html.Append(names is not null && index is { } i && i == Math.Floor(i) && i >= 0 && i < names.Count
                ? $"<tr><td title=\"class {C(i)}\">{E(names[(int)i])}</td>"
                : $"<tr><td class=\"num\">{Optional(index, C)}</td>");
            html.Append($"<td class=\"num\">{Optional(ReportJson.Number(row, "precision"), ReportFormat.Percent)}</td>");
            html.Append($"<td class=\"num\">{Optional(ReportJson.Number(row, "recall"), ReportFormat.Percent)}</td>");
            html.Append($"<td class=\"num\">{Optional(ReportJson.Number(row, "f1"), ReportFormat.Percent)}</td>");
            html.AppendLine($"<td class=\"num\">{Optional(ReportJson.Number(row, "support"), ReportFormat.Count)}</td></tr>");
        }

        html.AppendLine("</tbody></table>");
        EndSection(html);
    }

    private static void Section(StringBuilder html, string id, string title) =>
        html.AppendLine($"<section id=\"{id}\"><h2>{E(title)}</h2>");

    private static void EndSection(StringBuilder html) => html.AppendLine("</section>");

    private static void Note(StringBuilder html, string text) => html.AppendLine($"<p class=\"note\">{E(text)}</p>");

    private static string NumClass(bool numeric) => numeric ? " class=\"num\"" : string.Empty;

    private static string Optional(double? value, Func<double, string> format) => value is { } v ? E(format(v)) : "n/a";

    private static string C(double count) => count.ToString("0", CultureInfo.InvariantCulture);

    /// <summary>HTML-encodes text; recipe paths and messages come from users and must never become markup.</summary>
    private static string E(string text) => WebUtility.HtmlEncode(text);

    private static string F(double value) => value.ToString("0.####", CultureInfo.InvariantCulture);
}
