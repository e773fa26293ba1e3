namespace ModelCompression.Tasks;

/// <summary>How reports show a task's models.</summary>
/// <param name="Metric">The headline metric's key in report.json's evaluation ("accuracy", "rmse"): the summary table's first number column and the vertical axis of the size chart.</param>
/// <param name="Title">Its title in tables and charts ("accuracy", "RMSE").</param>
/// <param name="IsFraction">True when it is a fraction shown as a percentage; false for a plain number.</param>
/// <param name="HasConfusionMatrix">Whether the report has a confusion-matrix section.</param>
public sealed record ReportStyle(string Metric, string Title, bool IsFraction, bool HasConfusionMatrix)
{
    /// <summary>What training validates on, in charts of validation per epoch (the headline unless the task validates on another score).</summary>
    public string ValidationTitle { get; init; } = Title;

    /// <summary>Whether the validation score is a fraction shown as a percentage.</summary>
    public bool ValidationIsFraction { get; init; } = IsFraction;
}
