using ModelCompression.Data;

namespace ModelCompression.Evaluation;

/// <summary>Regression's quality facts: MAE and RMSE against the float targets.</summary>
public static class RegressionEvaluation
{
    /// <summary>
    /// Regression's <see cref="QualityMeasure"/>: MAE and RMSE of a single-output model against
    /// <see cref="Dataset.Targets"/>. A regression model has no classes: accuracy is NaN (null in report.json) and
    /// there are no predictions for a paired test, no confusion, F1 or calibration. The teacher's outputs are not
    /// compared with: report.json has no field for it yet.
    /// </summary>
    public static ModelEvaluation Quality(string name, float[] outputs, int width, Dataset test, float[]? teacherOutputs)
    {
        ArgumentNullException.ThrowIfNull(outputs);
        ArgumentNullException.ThrowIfNull(test);
        var targets = test.Targets is { Length: > 0 } t ? t : throw new ArgumentException("Regression needs float targets on the test split.", nameof(test));
        if (width != 1)
        {
            throw new ArgumentException($"A regression model has one output per sample; this one has {width}.", nameof(width));
        }

        double[] truth = [.. targets.Select(v => (double)v)];
        double[] values = [.. outputs.Select(v => (double)v)];
        return new ModelEvaluation(name, double.NaN, 0, 0, test.Count)
        {
            Mae = RegressionMetrics.MeanAbsoluteError(values, truth),
            Rmse = RegressionMetrics.RootMeanSquaredError(values, truth),
        };
    }
}
