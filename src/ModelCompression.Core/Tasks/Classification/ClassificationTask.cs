using System.Globalization;
using ModelCompression.Data;
using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;
using ModelCompression.Torch.Training;

namespace ModelCompression.Tasks;

/// <summary>
/// Classification: integer class labels, an output per class, cross-entropy on the labels and softened KL to the
/// teacher (<see cref="DistillationLoss"/>), argmax accuracy, teachers mixed as probabilities (<see cref="Ensemble"/>),
/// accuracy as the headline with its bootstrap interval and a McNemar test against a baseline, and a labels-only twin
/// whose accuracy difference is the gain from distillation.
/// </summary>
public sealed class ClassificationTask : IPredictionTask
{
    private ClassificationTask()
    {
    }

    /// <summary>The one instance.</summary>
    public static ClassificationTask Instance { get; } = new();

    /// <inheritdoc />
    public string Name => "classification";

    /// <inheritdoc />
    public string Description => "predict one of a fixed set of classes (integer labels or class names); the model outputs one logit per class";

    /// <inheritdoc />
    public LabelKind Labels => LabelKind.Classes;

    /// <inheritdoc />
    public int? FixedOutputWidth => null;

    /// <inheritdoc />
    public ValidationScore ValidationScore { get; } = new DistillationLoss(0, 1).Validation;

    /// <inheritdoc />
    public QualityMeasure Quality => ClassificationEvaluation.Quality;

    /// <inheritdoc />
    public IReadOnlyList<MetricInfo> Metrics { get; } = [.. MetricInfo.Classification, .. MetricInfo.Cost];

    /// <inheritdoc />
    public MetricInfo Headline => Metrics[0];

    /// <inheritdoc />
    public bool HasLabelsOnlyTwin => true;

    /// <inheritdoc />
    public ReportStyle Report { get; } = new("accuracy", "accuracy", IsFraction: true, HasConfusionMatrix: true);

    /// <inheritdoc />
    public string DataHash(string filesHash) => filesHash;

    /// <inheritdoc />
    /// <remarks>The recipe's (or the text labels') class names, else the largest label of any labelled split plus one.</remarks>
    public int OutputWidthFromData(LoadedData data)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (data.Description.LabelNames is { } names)
        {
            return names.Count;
        }

        var labels = data.Splits().Select(s => s.Data.Labels).OfType<long[]>().Where(l => l.Length > 0).ToList();
        if (labels.Count == 0)
        {
            throw CompressionException.Error(
                DiagnosticCodes.DataSchemaMismatch,
                "The recipe has no teacher and the data no labels, so nothing says how many classes the student has: add labels or a teacher, or list the classes in data.classes.",
                data.Train.Source);
        }

        return (int)Math.Min(int.MaxValue, labels.Max(l => l.Max()) + 1);
    }

    /// <inheritdoc />
    /// <remarks>
    /// Every label must be one of the run's classes (0 to <paramref name="outputWidth"/> - 1): MC2020 listing the
    /// first ~20 bad labels with their file and line (or row), and a count of the rest.
    /// </remarks>
    public void CheckLabels(Dataset data, int outputWidth, string widthFrom)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (data.Labels is null)
        {
            return;
        }

        var bad = new List<int>();
        for (var i = 0; i < data.Count; i++)
        {
            if (data.Labels[i] < 0 || data.Labels[i] >= outputWidth)
            {
                bad.Add(i);
            }
        }

        if (bad.Count == 0)
        {
            return;
        }

        const int Shown = 20;
        var list = string.Join("; ", bad.Take(Shown).Select(i => $"Label {data.Labels[i]} of sample {i} ({data.LocateLabel(i)})"));
        var rest = bad.Count > Shown ? $"; and {bad.Count - Shown} more" : "";
        var names = data.Description.LabelNames is { } known ? $" The data's classes: {string.Join(", ", known)}." : "";
        throw CompressionException.Error(
            DiagnosticCodes.DataSchemaMismatch,
            $"{bad.Count} label{(bad.Count == 1 ? " is" : "s are")} outside the {widthFrom}'s {outputWidth} classes (0 to {outputWidth - 1}): {list}{rest}.{names}",
            data.LabelOrigin.File,
            data.LabelLine(bad[0]));
    }

    /// <inheritdoc />
    public ITrainingObjective Objective(double alpha, double temperature, double hintWeight = 1) =>
        new DistillationLoss(alpha, temperature) { HintWeight = hintWeight };

    /// <inheritdoc />
    /// <remarks>One teacher's logits are taken as they are (no re-mixing, so no rounding).</remarks>
    public float[] CombineTeachers(IReadOnlyList<(float[] Outputs, double Weight)> teachers, int width, double temperature)
    {
        ArgumentNullException.ThrowIfNull(teachers);
        return teachers.Count == 1 ? teachers[0].Outputs : Ensemble.SoftTargetLogits(teachers, width, temperature);
    }

    /// <inheritdoc />
    public double? Gain(ModelEvaluation student, ModelEvaluation twin)
    {
        ArgumentNullException.ThrowIfNull(student);
        ArgumentNullException.ThrowIfNull(twin);
        return student.Accuracy - twin.Accuracy;
    }

    /// <inheritdoc />
    public string Describe(ModelEvaluation evaluation)
    {
        ArgumentNullException.ThrowIfNull(evaluation);
        return $"accuracy {evaluation.Accuracy.ToString("P2", CultureInfo.InvariantCulture)}";
    }
}
