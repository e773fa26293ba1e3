namespace ModelCompression.Evaluation;

/// <summary>
/// Quality metrics of a classifier from its outputs and the true labels. Outputs are row-major, one row of
/// <c>classes</c> logits per sample; probabilities are their softmax. Ties in an arg-max go to the lowest class
/// index everywhere, so top-1 accuracy equals accuracy.
/// </summary>
public static class ClassificationMetrics
{
    /// <summary>The k of top-k accuracy for <paramref name="classes"/> classes: min(5, classes - 1), or null when
    /// classes &lt;= 2 (top-2 of two classes is always right).</summary>
    public static int? TopK(int classes) => classes <= 2 ? null : Math.Min(5, classes - 1);

    /// <summary>The arg-max class of every row.</summary>
    public static int[] ArgMaxRows(ReadOnlySpan<float> outputs, int classes)
    {
        var samples = Rows(outputs, classes);
        var predictions = new int[samples];
        for (var i = 0; i < samples; i++)
        {
            predictions[i] = ModelEvaluation.ArgMax(outputs.Slice(i * classes, classes));
        }

        return predictions;
    }

    /// <summary>Fraction of samples whose prediction equals the label.</summary>
    public static double Accuracy(ReadOnlySpan<int> predictions, ReadOnlySpan<long> labels)
    {
        SameLength(predictions.Length, labels.Length, nameof(labels));
        var correct = 0;
        for (var i = 0; i < predictions.Length; i++)
        {
            correct += predictions[i] == labels[i] ? 1 : 0;
        }

        return (double)correct / predictions.Length;
    }

    /// <summary>
    /// Fraction of samples whose label is among the <paramref name="k"/> highest outputs: fewer than k classes
    /// score above it (a class with an equal score counts as above when its index is lower).
    /// </summary>
    public static double TopKAccuracy(ReadOnlySpan<float> outputs, int classes, ReadOnlySpan<long> labels, int k)
    {
        var samples = Rows(outputs, classes);
        SameLength(samples, labels.Length, nameof(labels));
        ArgumentOutOfRangeException.ThrowIfLessThan(k, 1);
        var hits = 0;
        for (var i = 0; i < samples; i++)
        {
            var row = outputs.Slice(i * classes, classes);
            var label = (int)labels[i];
            var score = row[label];
            var ahead = 0;
            for (var j = 0; j < classes; j++)
            {
                ahead += row[j] > score || (row[j] == score && j < label) ? 1 : 0;
            }

            hits += ahead < k ? 1 : 0;
        }

        return (double)hits / samples;
    }

    /// <summary>Counts of (true class, predicted class): rows are labels, columns predictions.</summary>
    public static int[][] ConfusionMatrix(ReadOnlySpan<int> predictions, ReadOnlySpan<long> labels, int classes)
    {
        SameLength(predictions.Length, labels.Length, nameof(labels));
        var matrix = new int[classes][];
        for (var c = 0; c < classes; c++)
        {
            matrix[c] = new int[classes];
        }

        for (var i = 0; i < predictions.Length; i++)
        {
            if (labels[i] < 0 || labels[i] >= classes || predictions[i] < 0 || predictions[i] >= classes)
            {
                throw new ArgumentOutOfRangeException(nameof(labels), $"Sample {i}: label {labels[i]} or prediction {predictions[i]} is outside 0 to {classes - 1}.");
            }

            matrix[labels[i]][predictions[i]]++;
        }

        return matrix;
    }

    /// <summary>
    /// Precision, recall, F1 and support of every class from a confusion matrix. A class never predicted has
    /// precision 0, a class without samples recall 0 (scikit-learn's zero_division=0).
    /// </summary>
    public static IReadOnlyList<ClassMetrics> PerClass(int[][] confusion)
    {
        ArgumentNullException.ThrowIfNull(confusion);
        var classes = confusion.Length;
        var result = new ClassMetrics[classes];
        for (var c = 0; c < classes; c++)
        {
            long truePositives = confusion[c][c], support = 0, predicted = 0;
            for (var j = 0; j < classes; j++)
            {
                support += confusion[c][j];
                predicted += confusion[j][c];
            }

            var precision = predicted == 0 ? 0 : (double)truePositives / predicted;
            var recall = support == 0 ? 0 : (double)truePositives / support;
            var f1 = precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall);
            result[c] = new ClassMetrics(c, precision, recall, f1, (int)support);
        }

        return result;
    }

    /// <summary>
    /// Unweighted mean F1 over the classes that occur as a label or a prediction (scikit-learn's
    /// f1_score(average="macro")): a class absent from both says nothing about the model.
    /// </summary>
    public static double MacroF1(int[][] confusion)
    {
        var perClass = PerClass(confusion);
        var present = perClass.Where(c => c.Support > 0 || confusion.Any(row => row[c.Class] > 0)).ToList();
        return present.Count == 0 ? 0 : present.Average(c => c.F1);
    }

    /// <summary>Fraction of samples on which two models predict the same class.</summary>
    public static double Agreement(ReadOnlySpan<int> predictions, ReadOnlySpan<int> otherPredictions)
    {
        SameLength(predictions.Length, otherPredictions.Length, nameof(otherPredictions));
        var same = 0;
        for (var i = 0; i < predictions.Length; i++)
        {
            same += predictions[i] == otherPredictions[i] ? 1 : 0;
        }

        return (double)same / predictions.Length;
    }

    /// <summary>
    /// Mean over samples of KL(teacher ‖ model) = Σ p log(p / q) in nats, with p and q the softmax of the
    /// teacher's and the model's logits (computed in log space, so large logits neither overflow nor make log 0).
    /// </summary>
    public static double MeanKlDivergence(ReadOnlySpan<float> teacherLogits, ReadOnlySpan<float> modelLogits, int classes)
    {
        var samples = Rows(modelLogits, classes);
        SameLength(samples, Rows(teacherLogits, classes), nameof(teacherLogits));
        var logP = new double[classes];
        var logQ = new double[classes];
        var total = 0.0;
        for (var i = 0; i < samples; i++)
        {
            LogSoftmax(teacherLogits.Slice(i * classes, classes), logP);
            LogSoftmax(modelLogits.Slice(i * classes, classes), logQ);
            var kl = 0.0;
            for (var j = 0; j < classes; j++)
            {
                // p = 0 contributes 0 (the limit of p log p); exp underflowing to 0 is exactly that case.
                var p = Math.Exp(logP[j]);
                kl += p == 0 ? 0 : p * (logP[j] - logQ[j]);
            }

            total += kl;
        }

        return total / samples;
    }

    /// <summary>
    /// Expected calibration error: samples are put in <paramref name="bins"/> equal-width bins (lo, hi] of their
    /// confidence (the largest softmax probability); ECE = Σ over bins of (bin samples / all samples) ×
    /// |accuracy in the bin − mean confidence in the bin|.
    /// </summary>
    public static double ExpectedCalibrationError(ReadOnlySpan<float> logits, int classes, ReadOnlySpan<long> labels, int bins = 15)
    {
        var samples = Rows(logits, classes);
        SameLength(samples, labels.Length, nameof(labels));
        ArgumentOutOfRangeException.ThrowIfLessThan(bins, 1);
        var count = new int[bins];
        var correct = new int[bins];
        var confidence = new double[bins];
        var logProbabilities = new double[classes];
        for (var i = 0; i < samples; i++)
        {
            var row = logits.Slice(i * classes, classes);
            var predicted = ModelEvaluation.ArgMax(row);
            LogSoftmax(row, logProbabilities);
            var top = Math.Exp(logProbabilities[predicted]);
            var bin = Math.Clamp((int)Math.Ceiling(top * bins) - 1, 0, bins - 1);
            count[bin]++;
            correct[bin] += predicted == labels[i] ? 1 : 0;
            confidence[bin] += top;
        }

        var ece = 0.0;
        for (var b = 0; b < bins; b++)
        {
            if (count[b] > 0)
            {
                ece += (double)count[b] / samples * Math.Abs(((double)correct[b] / count[b]) - (confidence[b] / count[b]));
            }
        }

        return ece;
    }

    /// <summary>log softmax of <paramref name="logits"/> into <paramref name="result"/>, shifted by the maximum so exp never overflows.</summary>
    public static void LogSoftmax(ReadOnlySpan<float> logits, Span<double> result)
    {
        SameLength(logits.Length, result.Length, nameof(result));
        double max = logits[ModelEvaluation.ArgMax(logits)];
        var sum = 0.0;
        foreach (var value in logits)
        {
            sum += Math.Exp(value - max);
        }

        var logSum = max + Math.Log(sum);
        for (var j = 0; j < logits.Length; j++)
        {
            result[j] = logits[j] - logSum;
        }
    }

    private static int Rows(ReadOnlySpan<float> outputs, int classes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(classes, 1);
        if (outputs.Length % classes != 0)
        {
            throw new ArgumentException($"{outputs.Length} outputs do not split into rows of {classes}.", nameof(outputs));
        }

        return outputs.Length / classes;
    }

    private static void SameLength(int expected, int actual, string name)
    {
        if (expected != actual)
        {
            throw new ArgumentException($"Expected {expected} entries, got {actual}.", name);
        }
    }
}
