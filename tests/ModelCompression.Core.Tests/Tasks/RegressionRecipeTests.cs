using ModelCompression.Diagnostics;
using ModelCompression.Recipes;

namespace ModelCompression.Core.Tests.Tasks;

/// <summary>What the recipe loader makes of <c>task:</c>, and the gates each task allows.</summary>
public sealed class RegressionRecipeTests : IDisposable
{
    private readonly TempDir _dir = new();

    public RegressionRecipeTests() => File.WriteAllText(_dir.File("data.csv"), "a,b,label\n1,2,0.5\n3,4,1.5\n");

    public void Dispose() => _dir.Dispose();

    private Recipe Load(string task, params string[] gates) =>
        RecipeLoader.Load(_dir.Write(
            "r.compress.yaml",
            $"{task}data:\n  format: csv\n  file: data.csv\n  split: {{ test: 0.5, seed: 1 }}\nstudent: {{ architecture: mlp }}\nstages:\n  - finetune\ngates:\n"
            + string.Concat(gates.Select(g => $"  - {g}\n"))));

    [Fact]
    public void The_task_is_read_and_classification_is_the_default()
    {
        Assert.Equal("regression", Load("task: regression\n", "rmse <= 1").Task);
        Assert.Equal("classification", Load("task: classification\n", "accuracy >= 0.5").Task);
        Assert.Equal("classification", Load("", "accuracy >= 0.5").Task);
    }

    [Fact]
    public void An_unknown_task_is_an_error_at_its_line_naming_the_tasks()
    {
        var e = Assert.Throws<CompressionException>(() => Load("task: segmentation\n", "accuracy >= 0.5"));
        var d = Assert.Single(e.Diagnostics);
        Assert.Equal((DiagnosticCodes.RecipeInvalidValue, 1), (d.Code, d.Line));
        Assert.Equal("task 'segmentation' is not supported. Tasks: classification, regression, generation.", d.Message);
    }

    [Fact]
    public void Gates_may_name_only_their_tasks_metrics()
    {
        var e = Assert.Throws<CompressionException>(() => Load("task: regression\n", "rmse <= 1", "accuracy >= 0.5", "mae <= teacher.accuracy"));
        Assert.Equal([(DiagnosticCodes.RecipeInvalidGate, 11), (DiagnosticCodes.RecipeInvalidGate, 12)], e.Diagnostics.Select(d => (d.Code, d.Line!.Value)));
        Assert.StartsWith("'accuracy' is not a metric of task 'regression' (in 'accuracy >= 0.5'). Its metrics: mae, rmse, size_mb", e.Diagnostics[0].Message, StringComparison.Ordinal);

        var classification = Assert.Throws<CompressionException>(() => Load("", "rmse <= 1"));
        Assert.Contains("'rmse' is not a metric of task 'classification'", classification.Diagnostics.Single().Message, StringComparison.Ordinal);
        Assert.Equal(2, Load("task: regression\n", "rmse <= 60", "size_mb <= 1").Gates.Count);
    }

    [Fact]
    public void Significant_needs_a_task_with_a_significance_test()
    {
        var e = Assert.Throws<CompressionException>(() => Load("task: regression\n", "{ gate: rmse <= 1, significant: true }"));
        Assert.Equal("'significant' needs a significance test, and task 'regression' has none; remove it from 'rmse <= 1'.", e.Diagnostics.Single().Message);

        var classification = Assert.Throws<CompressionException>(() => Load("", "{ gate: size_mb <= 1, significant: true }"));
        Assert.Equal("'significant' applies to 'accuracy >= …' gates (a paired test or a bootstrap interval of accuracy), not to 'size_mb <= 1'.", classification.Diagnostics.Single().Message);
        Assert.True(Load("", "{ gate: accuracy >= 0.5, significant: true }").Gates.Single().Significant);
    }
}
