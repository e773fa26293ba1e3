using ModelCompression.Tasks;

namespace ModelCompression.Gates;

/// <summary>What a recipe's task allows of a gate: its metrics, and <c>significant</c> only where the task can test it.</summary>
public static class GateRules
{
    /// <summary>
    /// Why <paramref name="gate"/> (written <paramref name="text"/>) cannot stand in a recipe of <paramref name="task"/>,
    /// or null when it can: both sides name the task's metrics, and a <paramref name="significant"/> gate is an
    /// at-least gate on a metric the task has a significance test for.
    /// </summary>
    public static string? Problem(GateExpression gate, string text, bool significant, ITask task)
    {
        ArgumentNullException.ThrowIfNull(gate);
        ArgumentNullException.ThrowIfNull(task);
        foreach (var metric in new[] { gate.Metric, gate.ReferenceMetric }.OfType<string>())
        {
            if (task.Metric(metric) is null)
            {
                return $"'{metric}' is not a metric of task '{task.Name}' (in '{text}'). Its metrics: {string.Join(", ", task.Metrics.Select(m => m.Name))}";
            }
        }

        if (!significant)
        {
            return null;
        }

        var testable = task.Metrics.Where(m => m.SupportsSignificance).Select(m => m.Name).ToList();
        if (testable.Count == 0)
        {
            return $"'significant' needs a significance test, and task '{task.Name}' has none; remove it from '{text}'";
        }

        return !testable.Contains(gate.Metric) || gate.LowerIsBetter
            ? $"'significant' applies to {string.Join(" and ", testable.Select(m => $"'{m} >= …'"))} gates (a paired test or a bootstrap interval of {string.Join(", ", testable)}), not to '{text}'"
            : null;
    }
}
