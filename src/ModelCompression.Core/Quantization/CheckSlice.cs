using ModelCompression.Data;
using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;
using ModelCompression.Inference;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Quantization;

/// <summary>How a candidate model compares with the float model on the check slice.</summary>
/// <param name="Accuracy">Fraction of the slice's samples classified as labelled.</param>
/// <param name="Agreement">Fraction of samples on which it picks the float model's class.</param>
public readonly record struct SliceScore(double Accuracy, double Agreement);

/// <summary>
/// Labelled samples on which quantized candidates are compared with the float model: accuracy and
/// agreement of arg-max classes. The float model's outputs are computed once. The samples feed every input
/// of the model, bound by name (see <see cref="DataSchema"/>).
/// </summary>
public sealed class CheckSlice
{
    /// <summary>Samples per ONNX Runtime call.</summary>
    private const int BatchSize = 256;

    private readonly int[] _floatClasses;

    /// <summary>Runs <paramref name="floatModel"/> over <paramref name="data"/> (labelled; MC2053 otherwise).</summary>
    public CheckSlice(ModelProto floatModel, Dataset data)
    {
        ArgumentNullException.ThrowIfNull(floatModel);
        ArgumentNullException.ThrowIfNull(data);
        if (data.Targets is not null)
        {
            // The check compares arg-max classes; a regression model has one output and no classes, so it would
            // always agree. Refused rather than reported as a perfect score.
            throw CompressionException.Error(DiagnosticCodes.CalibrationFailed, $"Quantize compares the quantized model's classes with the float model's, and '{data.Source}' holds regression targets: quantizing a task: regression model is not supported yet.");
        }

        if (data.Labels is null || data.Count == 0)
        {
            throw CompressionException.Error(DiagnosticCodes.CalibrationFailed, $"Quantize needs labelled training samples to compare the quantized model with the float one; '{data.Source}' has {(data.Labels is null ? "no labels" : "no samples")}.");
        }

        Data = data;
        _floatClasses = Classes(floatModel, "float model");
        FloatAccuracy = Accuracy(_floatClasses);
    }

    /// <summary>The samples.</summary>
    public Dataset Data { get; }

    /// <summary>The float model's accuracy on the slice.</summary>
    public double FloatAccuracy { get; }

    /// <summary>Runs <paramref name="model"/> over the slice and compares it with the labels and the float model.</summary>
    public SliceScore Score(ModelProto model, string what)
    {
        var classes = Classes(model, what);
        var agree = classes.Where((c, i) => c == _floatClasses[i]).Count();
        return new SliceScore(Accuracy(classes), (double)agree / classes.Length);
    }

    private int[] Classes(ModelProto model, string what)
    {
        using var runner = OnnxRunner.FromModel(model, what);
        var outputs = runner.Run(Data, BatchSize);
        var width = runner.OutputWidth;
        return [.. Enumerable.Range(0, Data.Count).Select(i => ModelEvaluation.ArgMax(outputs.AsSpan(i * width, width)))];
    }

    private double Accuracy(int[] classes) => (double)classes.Where((c, i) => c == Data.Labels![i]).Count() / classes.Length;
}
