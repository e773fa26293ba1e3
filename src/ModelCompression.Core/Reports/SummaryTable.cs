using System.Globalization;
using System.Text.Json.Nodes;

namespace ModelCompression.Reports;

/// <summary>
/// The summary table of teacher and stages (model, the task's headline metric (accuracy with its interval; RMSE),
/// size, parameters, p50 latency at batch 1, notes), shared by report.md and report.html so both show the same cells.
/// Columns whose facts no model has (interval, latency) are left out.
/// </summary>
/// <param name="Headers">Column titles.</param>
/// <param name="Numeric">Per column: true when its cells are numbers (right-aligned).</param>
/// <param name="Rows">The teacher's row (when the run had a teacher), then one per stage.</param>
internal sealed record SummaryTable(IReadOnlyList<string> Headers, IReadOnlyList<bool> Numeric, IReadOnlyList<IReadOnlyList<string>> Rows)
{
    private const string Missing = "n/a";

    /// <summary>The table for a report.json tree.</summary>
    public static SummaryTable Build(JsonNode report)
    {
        var models = ReportJson.Models(report);
        var headline = ReportJson.Task(report).Report;
        Func<double, string> headlineFormat = headline.IsFraction ? ReportFormat.Percent : ReportFormat.Significant;
        var showInterval = models.Any(m => Interval(m.Evaluation) is not null);
        var showLatency = models.Any(m => LatencyP50(m.Evaluation) is not null);

        var headers = new List<string> { "model", headline.Title };
        var numeric = new List<bool> { false, true };
        if (showInterval)
        {
            headers.Add("95% CI");
            numeric.Add(true);
        }

        headers.AddRange(["size (MB)", "parameters"]);
        numeric.AddRange([true, true]);
        if (showLatency)
        {
            headers.Add("p50 latency, batch 1 (ms)");
            numeric.Add(true);
        }

        headers.Add("notes");
        numeric.Add(false);

        var rows = new List<IReadOnlyList<string>>();
        foreach (var (name, evaluation, stage) in models)
        {
            var cells = new List<string> { name, Format(ReportJson.Metric(evaluation, headline.Metric), headlineFormat) };
            if (showInterval)
            {
                cells.Add(Interval(evaluation) is { } ci ? ReportFormat.PercentInterval(ci.Low, ci.High) : Missing);
            }

            cells.Add(Format(ReportJson.Number(evaluation, "size_mb"), ReportFormat.Significant));
            cells.Add(Format(ReportJson.Number(evaluation, "parameters"), ReportFormat.Count));
            if (showLatency)
            {
                cells.Add(Format(LatencyP50(evaluation), ReportFormat.Significant));
            }

            var note = stage is null ? string.Empty : CacheNote(stage) + ReportJson.Text(stage, "summary");
            if (stage is not null && ReportJson.Number(stage, "gain_from_distillation") is { } gain && stage["baseline"] is { } twin)
            {
                // The seeds' comparison, said plainly either way.
                note += $"; labels-only twin {Format(ReportJson.Metric(twin, headline.Metric), headlineFormat)}{TwinSteps(stage)}, gain from distillation {(headline.IsFraction ? (gain * 100).ToString("+0.00;-0.00", CultureInfo.InvariantCulture) + " points" : gain.ToString("+0.####;-0.####", CultureInfo.InvariantCulture))}{(gain <= 0 ? " (distillation did not help)" : string.Empty)}";
            }

            cells.Add(note);
            rows.Add(cells);
        }

        return new SummaryTable(headers, numeric, rows);
    }

    /// <summary>
    /// " after N optimizer steps (the student's M)": the gain means little unless both had the same budget, so the
    /// report shows both counts; empty for a report written before twins recorded their steps.
    /// </summary>
    private static string TwinSteps(JsonNode stage)
    {
        var student = ReportJson.Text(ReportJson.Object(stage, "details"), "steps");
        var twin = ReportJson.Text(ReportJson.Object(stage, "baseline_details"), "steps");
        return student is null || twin is null ? string.Empty
            : student == twin ? $" after {twin} optimizer steps (as many as the student)"
            : $" after {twin} optimizer steps (the student took {student}: not the same budget)";
    }

    /// <summary>"(cached) " for an output the local cache had, "(remote cache, 1.2 MB) " for one fetched from the remote cache, else nothing.</summary>
    private static string CacheNote(JsonNode stage)
    {
        var cache = ReportJson.Object(stage, "cache");
        if (ReportJson.Text(cache, "source") == "remote")
        {
            return $"(remote cache, {Common.CacheSummary.Size((long)(ReportJson.Number(cache, "bytes_down") ?? 0))}) ";
        }

        return ReportJson.Flag(stage, "cached") == true ? "(cached) " : string.Empty;
    }

    /// <summary>The bootstrap 95% interval of accuracy, when the evaluation has one.</summary>
    public static (double Low, double High)? Interval(JsonNode evaluation) =>
        ReportJson.Numbers(evaluation, "accuracy_ci95") is [var low, var high] ? (low, high) : null;

    /// <summary>Median latency of one sample, when it was measured.</summary>
    public static double? LatencyP50(JsonNode evaluation) =>
        ReportJson.Number(ReportJson.Object(ReportJson.Object(evaluation, "latency"), "batch1"), "p50_ms");

    private static string Format(double? value, Func<double, string> format) => value is { } v ? format(v) : Missing;
}
