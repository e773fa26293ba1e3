using System.Text.Json.Nodes;
using ModelCompression.Core.Tests.Pipeline;
using ModelCompression.Reports;

namespace ModelCompression.Core.Tests.Reports;

public sealed class MarkdownReportTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static string[] Lines(string markdown) => markdown.Split('\n');

    [Fact]
    public void Table_has_the_teacher_then_each_stage_and_gates_are_listed_with_their_lines()
    {
        var markdown = MarkdownReport.Render(JsonReport.Build(ReportTestData.Run(), DateTimeOffset.UtcNow));
        var lines = Lines(markdown);

        Assert.Equal("## Model compression: `fashion.compress.yaml` — GATE FAILED", lines[0]);
        Assert.Contains("| model | accuracy | size (MB) | parameters | notes |", lines);
        Assert.Contains("|---|---:|---:|---:|---|", lines);
        var rows = lines.Where(l => l.StartsWith("| ", StringComparison.Ordinal)).Skip(1).ToList();
        Assert.Equal(
            [
                "| teacher | 91.90 % | 0.407 | 101,770 |  |",
                "| distill | 87.02 % | 0.204 | 50,890 | distilled for 5 epochs (T=4, alpha=0.9) |",
                "| prune | 86.55 % | 0.103 | 25,450 | (cached) removed 50% of hidden neurons; 2 recovery epochs |",
                "| quantize | 86.12 % | 0.0261 | 25,450 | dynamic int8: 2 weights |",
            ],
            rows);

        Assert.Contains("**Gates** (3 of 4 passed)", lines);
        var gates = lines.Where(l => l.StartsWith("- ", StringComparison.Ordinal)).ToList();
        Assert.Equal(
            [
                "- ✅ `accuracy >= 0.85` — 0.8612 vs 0.85 (line 17)",
                "- ❌ `accuracy >= teacher.accuracy - 0.03` — 0.8612 vs 0.889 (line 18)",
                "- ✅ `size_mb <= 0.05` — 0.0261 vs 0.05 (line 19)",
                "- ✅ `accuracy >= baseline.accuracy - 0.005 (significant)` — 0.8612 vs 0.8598, p = 0.21 (line 20)",
            ],
            gates);
        Assert.Contains("The previous model was kept: a failing gate never replaces it.", lines);
    }

    [Fact]
    public void Without_a_teacher_the_table_has_no_teacher_row_and_says_so()
    {
        var report = JsonReport.Build(ReportTestData.Run() with { Teacher = null }, DateTimeOffset.UtcNow);

        var lines = Lines(MarkdownReport.Render(report));

        Assert.Null(report["teacher"]);
        var rows = lines.Where(l => l.StartsWith("| ", StringComparison.Ordinal)).Skip(1).Select(l => l.Split(" | ")[0]).ToList();
        Assert.Equal(["| distill", "| prune", "| quantize"], rows);
        Assert.Contains(MarkdownReport.NoTeacher, lines);
        Assert.DoesNotContain(MarkdownReport.NoTeacher, MarkdownReport.Render(JsonReport.Build(ReportTestData.Run(), DateTimeOffset.UtcNow)), StringComparison.Ordinal);
    }

    [Fact]
    public void Interval_and_latency_columns_appear_when_the_evaluations_have_them()
    {
        var report = ReportTestData.WithMeasurements(JsonReport.Build(ReportTestData.Run(), DateTimeOffset.UtcNow));

        var lines = Lines(MarkdownReport.Render(report));

        Assert.Contains("| model | accuracy | 95% CI | size (MB) | parameters | p50 latency, batch 1 (ms) | notes |", lines);
        Assert.Contains("|---|---:|---:|---:|---:|---:|---|", lines);
        Assert.Contains("| teacher | 91.90 % | 91.36 – 92.43 % | 0.407 | 101,770 | 0.210 |  |", lines);
        Assert.Contains("| quantize | 86.12 % | 85.58 – 86.65 % | 0.0261 | 25,450 | 0.0525 | dynamic int8: 2 weights |", lines);
    }

    [Fact]
    public void A_passing_run_says_passed_and_cells_cannot_break_the_table()
    {
        var result = ReportTestData.Run(outputModel: "/out/fashion.student.onnx");
        result = result with
        {
            Gates = [result.Gates[0]],
            Stages = [result.Stages[0] with { Result = result.Stages[0].Result with { Summary = "kept a|b\nsplit" } }],
        };

        var markdown = MarkdownReport.Render(JsonReport.Build(result, DateTimeOffset.UtcNow));

        Assert.StartsWith("## Model compression: `fashion.compress.yaml` — passed", markdown, StringComparison.Ordinal);
        Assert.Contains("| distill | 87.02 % | 0.204 | 50,890 | kept a\\|b split |", Lines(markdown));
        Assert.DoesNotContain("❌", markdown, StringComparison.Ordinal);
        Assert.DoesNotContain("previous model was kept", markdown, StringComparison.Ordinal);
    }

    [Fact]
    public void The_job_summary_is_appended_to_never_overwritten()
    {
        var summary = _dir.Write("summary.md", "# Build\nearlier step");
        var reporter = new RecordingReporter();

        ReportWriter.AppendToStepSummary(summary, "## first\n", reporter);
        ReportWriter.AppendToStepSummary(summary, "## second\n", reporter);

        Assert.Equal("# Build\nearlier step\n## first\n\n## second\n", File.ReadAllText(summary));
        Assert.Empty(reporter.Infos);
    }

    [Fact]
    public void An_unwritable_job_summary_is_a_warning_not_a_failure()
    {
        var reporter = new RecordingReporter();
        var folder = _dir.Dir("a-folder");

        ReportWriter.AppendToStepSummary(folder, "## report\n", reporter);
        ReportWriter.AppendToStepSummary(_dir.File("missing/folder/summary.md"), "## report\n", reporter);

        Assert.Equal(2, reporter.Infos.Count);
        Assert.All(reporter.Infos, m => Assert.StartsWith("Warning: could not append the report to the job summary GITHUB_STEP_SUMMARY=", m, StringComparison.Ordinal));
        Assert.True(Directory.Exists(folder));
    }

    [Fact]
    public void Write_appends_report_md_to_GITHUB_STEP_SUMMARY_when_it_is_set()
    {
        var summary = _dir.Write("step-summary.md", "earlier step\n");
        var output = _dir.Dir("out");
        var result = ReportTestData.Run(recipePath: _dir.File("summary-test.compress.yaml"), outputModel: null, "json");
        var previous = Environment.GetEnvironmentVariable(ReportWriter.StepSummaryVariable);
        Environment.SetEnvironmentVariable(ReportWriter.StepSummaryVariable, summary);
        try
        {
            ReportWriter.Write(result, output);
        }
        finally
        {
            Environment.SetEnvironmentVariable(ReportWriter.StepSummaryVariable, previous);
        }

        // Other tests may write reports while the variable is set; only this run's part is checked.
        var text = File.ReadAllText(summary);
        Assert.StartsWith("earlier step\n", text, StringComparison.Ordinal);
        var json = JsonNode.Parse(File.ReadAllText(Path.Join(output, "fashion.student.report.json")))!;
        Assert.Contains(MarkdownReport.Render(json), text, StringComparison.Ordinal);
        Assert.Equal(["fashion.student.report.json"], Directory.GetFiles(output).Select(Path.GetFileName));
    }
}
