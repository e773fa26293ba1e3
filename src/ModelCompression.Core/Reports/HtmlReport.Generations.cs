using System.Text;
using System.Text.Json.Nodes;

namespace ModelCompression.Reports;

/// <summary>The HTML report's section for generative models.</summary>
public static partial class HtmlReport
{
    /// <summary>
    /// A generative model's sample generations side by side (prompt, gold, teacher, the final model), its metrics with
    /// their 95% intervals, and why answers failed to parse; nothing for other tasks.
    /// </summary>
    private static void Generations(StringBuilder html, JsonNode report)
    {
        var final = ReportJson.FinalModel(report);
        if (ReportJson.Object(final?.Evaluation, "generation") is not { } generation)
        {
            return;
        }

        Section(html, "generations", $"Generations of the final model ({final!.Name})");
        var metrics = ReportJson.Object(generation, "metrics");
        var intervals = ReportJson.Object(generation, "ci95");
        html.AppendLine("<table><thead><tr><th>metric</th><th>value</th><th>95% interval</th></tr></thead><tbody>");
        foreach (var (name, value) in metrics ?? [])
        {
            var interval = ReportJson.AsNumbers(intervals?[name]) is [var low, var high] ? $"[{F(low)}, {F(high)}]" : "";
            html.AppendLine($"<tr><td>{E(name)}</td><td>{F(ReportJson.AsNumber(value) ?? double.NaN)}</td><td>{E(interval)}</td></tr>");
        }

        html.AppendLine("</tbody></table>");
        var failures = ReportJson.Object(generation, "parse_failures");
        if (failures is { Count: > 0 })
        {
            Note(html, "Answers the task's parser refused (scored 0, never guessed): " + string.Join(", ", failures.Select(f => $"{f.Value} {f.Key}")) + ".");
        }

        var samples = ReportJson.Objects(generation, "samples");
        if (samples.Count > 0)
        {
            html.AppendLine("<table class=\"samples\"><thead><tr><th>prompt</th><th>gold</th><th>teacher</th><th>student</th></tr></thead><tbody>");
            foreach (var sample in samples)
            {
                var failure = ReportJson.Text(sample, "parse_failure");
                html.AppendLine($"<tr><td><pre>{E(ReportJson.Text(sample, "prompt") ?? "")}</pre><small>{E(ReportJson.Text(sample, "location") ?? "")}</small></td><td><pre>{E(ReportJson.Text(sample, "gold") ?? "")}</pre></td><td><pre>{E(ReportJson.Text(sample, "teacher") ?? "")}</pre></td><td><pre>{E(ReportJson.Text(sample, "answer") ?? "")}</pre>{(failure is null ? "" : $"<small>parse failure: {E(failure)}</small>")}</td></tr>");
            }

            html.AppendLine("</tbody></table>");
        }

        EndSection(html);
    }
}
