using System.Text.Json.Nodes;
using ModelCompression.Common;
using ModelCompression.Pipeline;

namespace ModelCompression.Reports;

/// <summary>
/// Writes a run's reports next to the model, as the recipe's <c>outputs.report</c> list asks: report.json
/// (the versioned record, docs/report-schema.md), report.md (a compact table for CI job summaries) and
/// report.html (a self-contained page with charts). All three come from one report.json tree.
/// </summary>
public static class ReportWriter
{
    /// <summary>The variable GitHub Actions sets to the file a step appends its job summary to.</summary>
    public const string StepSummaryVariable = "GITHUB_STEP_SUMMARY";

    /// <summary>
    /// Writes the reports the recipe asks for, each atomically, and appends report.md's text to the job
    /// summary when <c>GITHUB_STEP_SUMMARY</c> is set; returns the paths written.
    /// </summary>
    /// <param name="result">The run.</param>
    /// <param name="outputDirectory">Where the reports go (next to the model).</param>
    /// <param name="reporter">Receives a warning when the job summary cannot be written.</param>
    public static IReadOnlyList<string> Write(PipelineResult result, string outputDirectory, IPipelineReporter? reporter = null)
    {
        var report = JsonReport.Build(result, DateTimeOffset.UtcNow);
        var stem = Path.GetFileNameWithoutExtension(result.Recipe.Outputs.Model);
        var written = new List<string>();
        foreach (var format in result.Recipe.Outputs.Reports)
        {
            var path = Path.Combine(outputDirectory, $"{stem}.report.{format}");
            AtomicFile.WriteAllText(path, Render(report, format));
            written.Add(path);
        }

        if (Environment.GetEnvironmentVariable(StepSummaryVariable) is { Length: > 0 } summary)
        {
            AppendToStepSummary(summary, MarkdownReport.Render(report), reporter ?? NullPipelineReporter.Instance);
        }

        return written;
    }

    /// <summary>The text of one report format ("json", "md" or "html") of a report.json tree.</summary>
    public static string Render(JsonNode report, string format) => format switch
    {
        "json" => report.ToJsonString(JsonReport.FileOptions),
        "md" => MarkdownReport.Render(report),
        "html" => HtmlReport.Render(report),
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, "Report formats: json, md, html."),
    };

    /// <summary>
    /// What the CLI prints after a run: report.md's text for <paramref name="result"/> without the folded per-class
    /// section, whose HTML a terminal would show raw (report.md and report.html have it).
    /// </summary>
    public static string Markdown(PipelineResult result) => MarkdownReport.Render(JsonReport.Build(result, DateTimeOffset.UtcNow), perClass: false);

    /// <summary>
    /// Appends <paramref name="markdown"/> to the job summary file. Other steps write there too, so the
    /// file is only ever appended to; a path that cannot be written is a warning, never a failed run.
    /// </summary>
    public static void AppendToStepSummary(string path, string markdown, IPipelineReporter reporter)
    {
        try
        {
            // A blank line first, so the heading never joins the end of what an earlier step wrote.
            File.AppendAllText(path, Environment.NewLine + markdown);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            reporter.Info($"Warning: could not append the report to the job summary {StepSummaryVariable}={path}: {e.Message}");
        }
    }
}
