using ModelCompression.Data;
using ModelCompression.Inference;
using ModelCompression.Onnx;

namespace ModelCompression.Evaluation;

/// <summary>Quality and cost of one model on the held-out data.</summary>
/// <param name="Name">"teacher" or the stage that produced the model.</param>
/// <param name="Accuracy">Fraction of samples whose arg-max output equals the label.</param>
/// <param name="SizeBytes">Model file size, external data included.</param>
/// <param name="Parameters">Initializer elements (weights), all types.</param>
/// <param name="Samples">How many samples were evaluated.</param>
public sealed record ModelEvaluation(string Name, double Accuracy, long SizeBytes, long Parameters, int Samples)
{
    /// <summary>Size in MB (10^6 bytes).</summary>
    public double SizeMb => SizeBytes / 1e6;

    /// <summary>The metrics gates can name, by name.</summary>
    public IReadOnlyDictionary<string, double> Metrics => new Dictionary<string, double>(StringComparer.Ordinal)
    {
        ["accuracy"] = Accuracy,
        ["size_mb"] = SizeMb,
        ["parameters"] = Parameters,
    };

    /// <summary>Runs <paramref name="modelPath"/> over <paramref name="test"/> with ONNX Runtime.</summary>
    public static ModelEvaluation Measure(string name, string modelPath, Dataset test, int batchSize)
    {
        if (test.Labels is null)
        {
            throw new ArgumentException("Evaluation needs labelled data.", nameof(test));
        }

        float[] outputs;
        int classes;
        using (var runner = new OnnxRunner(modelPath))
        {
            outputs = runner.Run(test, batchSize);
            classes = runner.OutputWidth;
        }

        var correct = 0;
        for (var i = 0; i < test.Count; i++)
        {
            if (ArgMax(outputs.AsSpan(i * classes, classes)) == test.Labels[i])
            {
                correct++;
            }
        }

        var model = OnnxModelFile.Load(modelPath);
        var parameters = model.Graph.Initializer.Sum(t => t.Dims.Aggregate(1L, (a, b) => a * b));
        return new ModelEvaluation(name, (double)correct / test.Count, SizeOnDisk(modelPath, model), parameters, test.Count);
    }

    /// <summary>The model file's size plus its external data files' sizes.</summary>
    private static long SizeOnDisk(string modelPath, Onnx.Proto.ModelProto model)
    {
        var folder = Path.GetDirectoryName(Path.GetFullPath(modelPath))!;
        var external = OnnxModelFile.GetExternalDataInfo(model)?.Files ?? [];
        return new FileInfo(modelPath).Length + external.Sum(f => new FileInfo(Path.Combine(folder, f)).Length);
    }

    /// <summary>Index of the largest value (the first one on ties).</summary>
    public static int ArgMax(ReadOnlySpan<float> values)
    {
        var best = 0;
        for (var i = 1; i < values.Length; i++)
        {
            if (values[i] > values[best])
            {
                best = i;
            }
        }

        return best;
    }
}
