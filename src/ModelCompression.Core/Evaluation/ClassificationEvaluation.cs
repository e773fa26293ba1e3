using ModelCompression.Data;

namespace ModelCompression.Evaluation;

/// <summary>
/// The quality facts of one evaluation, derived from a model's outputs on the test split: what differs between
/// tasks. <see cref="ModelEvaluation.Measure(string, string, Dataset, EvaluateOptions, float[], QualityMeasure, out float[], Inference.ExecutionProvider)"/>
/// adds the cost facts (size, parameters, FLOPs, latency) to what it returns.
/// </summary>
/// <param name="name">"teacher" or the stage kind.</param>
/// <param name="outputs">The model's outputs, row-major, <paramref name="width"/> per sample.</param>
/// <param name="width">Output columns: classes, or 1 for a single-output model.</param>
/// <param name="test">The labelled test split.</param>
/// <param name="teacherOutputs">The teacher's outputs of the same shape; null for the teacher itself.</param>
/// <returns>An evaluation with the quality facts set and the cost facts zero or null.</returns>
public delegate ModelEvaluation QualityMeasure(string name, float[] outputs, int width, Dataset test, float[]? teacherOutputs);

/// <summary>Classification's quality facts: accuracy with its interval, top-k, F1, confusion, calibration, agreement and KL.</summary>
public static class ClassificationEvaluation
{
    /// <summary>
    /// Classification's <see cref="QualityMeasure"/>. One output column is a regression-shaped classifier: its
    /// prediction is the output rounded to a whole label, and the metrics of class probabilities (confusion, per class,
    /// F1, ECE, KL) do not apply; MAE and RMSE against the labels are given instead.
    /// </summary>
    public static ModelEvaluation Quality(string name, float[] outputs, int width, Dataset test, float[]? teacherOutputs)
    {
        ArgumentNullException.ThrowIfNull(outputs);
        ArgumentNullException.ThrowIfNull(test);
        var labels = test.Labels is { Length: > 0 } l ? l : throw new ArgumentException("Classification needs class labels on the test split.", nameof(test));
        var classes = width;
        var regression = classes == 1;
        var predictions = Predict(outputs, classes);
        var correct = new bool[test.Count];
        for (var i = 0; i < test.Count; i++)
        {
            correct[i] = predictions[i] == labels[i];
        }

        var interval = Statistics.BootstrapAccuracyInterval(correct);
        var topK = ClassificationMetrics.TopK(classes);
        var confusion = regression ? null : ClassificationMetrics.ConfusionMatrix(predictions, labels, classes);
        double[] targets = regression ? [.. labels.Select(v => (double)v)] : [];
        double[] values = regression ? [.. outputs.Select(v => (double)v)] : [];
        return new ModelEvaluation(name, correct.Count(c => c) / (double)test.Count, 0, 0, test.Count)
        {
            AccuracyCi95 = [interval.Lower, interval.Upper],
            TopK = topK,
            TopKAccuracy = topK is { } k ? ClassificationMetrics.TopKAccuracy(outputs, classes, labels, k) : null,
            MacroF1 = confusion is null ? null : ClassificationMetrics.MacroF1(confusion),
            PerClass = confusion is null ? null : ClassificationMetrics.PerClass(confusion),
            ConfusionMatrix = confusion,
            AgreementWithTeacher = teacherOutputs is null ? null : ClassificationMetrics.Agreement(predictions, Predict(teacherOutputs, classes)),
            KlToTeacher = teacherOutputs is null || regression ? null : ClassificationMetrics.MeanKlDivergence(teacherOutputs, outputs, classes),
            Ece = regression ? null : ClassificationMetrics.ExpectedCalibrationError(outputs, classes, labels),
            Mae = regression ? RegressionMetrics.MeanAbsoluteError(values, targets) : null,
            Rmse = regression ? RegressionMetrics.RootMeanSquaredError(values, targets) : null,
            Predictions = predictions,
        };
    }

    /// <summary>The arg-max class of each row, or for a single output column the output rounded to a whole number.</summary>
    private static int[] Predict(float[] outputs, int classes) =>
        classes == 1
            ? [.. outputs.Select(v => (int)Math.Clamp(Math.Round((double)v), int.MinValue, int.MaxValue))]
            : ClassificationMetrics.ArgMaxRows(outputs, classes);
}
