using System.Globalization;
using ModelCompression.Common;
using ModelCompression.Data;
using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;
using ModelCompression.Torch.Training;

namespace ModelCompression.Tasks;

/// <summary>
/// Regression: one real-valued target per sample (read as floats: CSV and JSONL label fields, NPY/NPZ label
/// arrays), a model with one output, mean squared error against the targets and against the teacher's outputs
/// (<see cref="RegressionLoss"/>), RMSE as the validation score and the headline, teachers averaged by weight, MAE
/// and RMSE for gates. There is no paired significance test and no labels-only twin (a gain in RMSE would need its own
/// reading; until a report needs it, the task defines none).
/// </summary>
public sealed class RegressionTask : IPredictionTask
{
    private RegressionTask()
    {
    }

    /// <summary>The one instance.</summary>
    public static RegressionTask Instance { get; } = new();

    /// <inheritdoc />
    public string Name => "regression";

    /// <inheritdoc />
    public string Description => "predict one real number per sample (float targets); the model has one output";

    /// <inheritdoc />
    public LabelKind Labels => LabelKind.Values;

    /// <inheritdoc />
    public int? FixedOutputWidth => 1;

    /// <inheritdoc />
    public ValidationScore ValidationScore { get; } = new RegressionLoss(0).Validation;

    /// <inheritdoc />
    public QualityMeasure Quality => RegressionEvaluation.Quality;

    /// <inheritdoc />
    public IReadOnlyList<MetricInfo> Metrics { get; } = [.. MetricInfo.Regression, .. MetricInfo.Cost];

    /// <inheritdoc />
    public MetricInfo Headline => Metrics.Single(m => m.Name == "rmse");

    /// <inheritdoc />
    public bool HasLabelsOnlyTwin => false;

    /// <inheritdoc />
    public ReportStyle Report { get; } = new("rmse", "RMSE", IsFraction: false, HasConfusionMatrix: false);

    /// <inheritdoc />
    public string DataHash(string filesHash) => new ContentHash().Add("data", filesHash).Add("task", Name).Finish();

    /// <inheritdoc />
    public int OutputWidthFromData(LoadedData data) => 1;

    /// <inheritdoc />
    /// <remarks>The model must have one output per sample, and a labelled split must have float targets, not class labels.</remarks>
    public void CheckLabels(Dataset data, int outputWidth, string widthFrom)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (outputWidth != 1)
        {
            throw CompressionException.Error(
                DiagnosticCodes.DataSchemaMismatch,
                $"task: regression predicts one number per sample, but the {widthFrom} has {outputWidth} outputs.",
                data.Source);
        }

        if (data.Labels is not null)
        {
            throw CompressionException.Error(
                DiagnosticCodes.DataSchemaMismatch,
                $"task: regression needs float targets, but '{data.Source}' was read with class labels.",
                data.LabelOrigin.File);
        }
    }

    /// <inheritdoc />
    /// <remarks>The temperature has no meaning for real-valued outputs and is ignored.</remarks>
    public ITrainingObjective Objective(double alpha, double temperature, double hintWeight = 1) =>
        new RegressionLoss(alpha) { HintWeight = hintWeight };

    /// <inheritdoc />
    /// <remarks>The weighted mean of the teachers' outputs (weights normalized); one teacher's outputs as they are.</remarks>
    public float[] CombineTeachers(IReadOnlyList<(float[] Outputs, double Weight)> teachers, int width, double temperature)
    {
        ArgumentNullException.ThrowIfNull(teachers);
        if (teachers.Count == 1)
        {
            return teachers[0].Outputs;
        }

        var total = teachers.Sum(t => t.Weight);
        var result = new float[teachers[0].Outputs.Length];
        for (var i = 0; i < result.Length; i++)
        {
            var sum = 0.0;
            foreach (var (outputs, weight) in teachers)
            {
                sum += weight / total * outputs[i];
            }

            result[i] = (float)sum;
        }

        return result;
    }

    /// <inheritdoc />
    public double? Gain(ModelEvaluation student, ModelEvaluation twin) => null;

    /// <inheritdoc />
    public string Describe(ModelEvaluation evaluation)
    {
        ArgumentNullException.ThrowIfNull(evaluation);
        return $"RMSE {evaluation.Rmse?.ToString("G4", CultureInfo.InvariantCulture) ?? "n/a"}, MAE {evaluation.Mae?.ToString("G4", CultureInfo.InvariantCulture) ?? "n/a"}";
    }
}
