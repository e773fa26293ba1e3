using System.Text.Json.Nodes;
using ModelCompression.Evaluation;
using ModelCompression.Pipeline;
using ModelCompression.Reports;
using ModelCompression.Stages;

namespace ModelCompression.Core.Tests.Reports;

/// <summary>A regression run's reports lead with RMSE and have no accuracy, interval, confusion matrix or twin.</summary>
public sealed class RegressionReportTests
{
    private static readonly DateTimeOffset Created = new(2026, 12, 3, 15, 0, 0, TimeSpan.Zero);

    private static PipelineResult Run()
    {
        static ModelEvaluation Evaluation(string name, double rmse, long size) =>
            new(name, double.NaN, size, size / 4, 88) { Rmse = rmse, Mae = rmse * 0.8 };

        var finetune = new StageReport(
            new StageResult("finetune", "60 epochs", new Dictionary<string, string>(), [5000, 3000], 2.5, [71.5, 58.25]),
            Cached: false,
            Evaluation("finetune", 57.5, 2_000));
        return new PipelineResult(ReportTestData.Recipe("/work/recipes/diabetes.compress.yaml") with { Task = "regression" }, Evaluation("teacher", 55.25, 8_000), [finetune], [], "/out/m.onnx", []);
    }

    [Fact]
    public void Report_json_says_the_task_and_writes_the_missing_accuracy_as_null()
    {
        var json = JsonReport.Build(Run(), Created);

        Assert.Equal("regression", (string?)json["task"]);
        var evaluation = json["stages"]![0]!["evaluation"]!.AsObject();
        Assert.True(evaluation.ContainsKey("accuracy"));
        Assert.Null(evaluation["accuracy"]);
        Assert.Equal(57.5, (double)evaluation["rmse"]!);
    }

    [Fact]
    public void Markdown_and_html_lead_with_rmse_and_draw_no_confusion_matrix()
    {
        var json = JsonNode.Parse(JsonReport.Build(Run(), Created).ToJsonString())!;

        var markdown = MarkdownReport.Render(json);
        var html = HtmlReport.Render(json);

        Assert.Contains("| model | RMSE | size (MB) | parameters | notes |", markdown, StringComparison.Ordinal);
        Assert.Contains("| teacher | 55.2 |", markdown, StringComparison.Ordinal);
        Assert.Contains("| finetune | 57.5 |", markdown, StringComparison.Ordinal);
        Assert.DoesNotContain("95% CI", markdown, StringComparison.Ordinal);
        Assert.Contains("RMSE against size", html, StringComparison.Ordinal);
        Assert.DoesNotContain("confusion-matrix", html, StringComparison.Ordinal);
        Assert.Contains("Validation RMSE per epoch.", html, StringComparison.Ordinal);
        Assert.DoesNotContain("n/a", markdown.Split('\n').First(l => l.StartsWith("| finetune", StringComparison.Ordinal)), StringComparison.Ordinal);
    }
}
