using ModelCompression.Gates;
using ModelCompression.Tasks;

namespace ModelCompression.Core.Tests.Gates;

public sealed class GateRulesTests
{
    private static GateExpression Parse(string text) =>
        GateExpression.TryParse(text, out var gate, out var error) ? gate! : throw new InvalidOperationException(error);

    [Theory]
    [InlineData("classification", "accuracy >= 0.85", false, null)]
    [InlineData("classification", "accuracy >= baseline.accuracy - 0.01", true, null)]
    [InlineData("classification", "size_mb <= 1", false, null)]
    [InlineData("classification", "rmse <= 1", false, "'rmse' is not a metric of task 'classification'")]
    [InlineData("classification", "accuracy <= 0.99", true, "'significant' applies to 'accuracy >= …' gates")]
    [InlineData("regression", "rmse <= teacher.rmse + 5", false, null)]
    [InlineData("regression", "mae <= 40", false, null)]
    [InlineData("regression", "latency_p50_ms <= 2", false, null)]
    [InlineData("regression", "accuracy >= 0.5", false, "'accuracy' is not a metric of task 'regression'")]
    [InlineData("regression", "rmse <= teacher.accuracy", false, "'accuracy' is not a metric of task 'regression'")]
    [InlineData("regression", "rmse <= 50", true, "task 'regression' has none")]
    public void A_gate_names_its_tasks_metrics_and_is_significant_only_where_the_task_can_test_it(string task, string text, bool significant, string? problem)
    {
        var found = GateRules.Problem(Parse(text), text, significant, TaskCatalog.Get(task));

        if (problem is null)
        {
            Assert.Null(found);
        }
        else
        {
            Assert.Contains(problem, found, StringComparison.Ordinal);
        }
    }
}
