namespace ModelCompression.Evaluation;

/// <summary>Errors of a model with one numeric output per sample.</summary>
public static class RegressionMetrics
{
    /// <summary>Mean of |prediction − target|.</summary>
    public static double MeanAbsoluteError(ReadOnlySpan<double> predictions, ReadOnlySpan<double> targets)
    {
        Check(predictions, targets);
        var sum = 0.0;
        for (var i = 0; i < predictions.Length; i++)
        {
            sum += Math.Abs(predictions[i] - targets[i]);
        }

        return sum / predictions.Length;
    }

    /// <summary>Square root of the mean of (prediction − target)².</summary>
    public static double RootMeanSquaredError(ReadOnlySpan<double> predictions, ReadOnlySpan<double> targets)
    {
        Check(predictions, targets);
        var sum = 0.0;
        for (var i = 0; i < predictions.Length; i++)
        {
            var error = predictions[i] - targets[i];
            sum += error * error;
        }

        return Math.Sqrt(sum / predictions.Length);
    }

    private static void Check(ReadOnlySpan<double> predictions, ReadOnlySpan<double> targets)
    {
        if (predictions.Length != targets.Length || predictions.Length == 0)
        {
            throw new ArgumentException($"Need as many targets as predictions, at least one ({predictions.Length} predictions, {targets.Length} targets).", nameof(targets));
        }
    }
}
