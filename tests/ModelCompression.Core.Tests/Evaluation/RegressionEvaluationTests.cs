using System.Text.Json;
using ModelCompression.Data;
using ModelCompression.Evaluation;

namespace ModelCompression.Core.Tests.Evaluation;

public sealed class RegressionEvaluationTests
{
    private static Dataset WithTargets(params float[] targets) =>
        new Dataset(new float[targets.Length], [1], null, "test.npy").WithTargets(targets, new DataOrigin("targets.npy", null));

    [Fact]
    public void Mae_and_rmse_are_measured_against_the_float_targets_and_no_class_metric_is_made_up()
    {
        var evaluation = RegressionEvaluation.Quality("finetune", [1, 2, 4], 1, WithTargets(1, 3, 2), teacherOutputs: [1, 1, 1]);

        Assert.Equal(1.0, evaluation.Mae!.Value, 12);
        Assert.Equal(Math.Sqrt(5.0 / 3), evaluation.Rmse!.Value, 12);
        Assert.True(double.IsNaN(evaluation.Accuracy));
        Assert.Null(evaluation.AccuracyCi95);
        Assert.Null(evaluation.Predictions);
        Assert.Null(evaluation.ConfusionMatrix);
        Assert.Null(evaluation.AgreementWithTeacher);
        Assert.Equal(3, evaluation.Samples);
        Assert.Equal(["mae", "rmse", "size_mb", "size_bytes", "parameters"], evaluation.Metrics.Keys);
    }

    [Fact]
    public void A_regression_evaluation_survives_the_cache_and_baseline_files_json()
    {
        var evaluation = RegressionEvaluation.Quality("finetune", [1, 2, 4], 1, WithTargets(1, 3, 2), null);

        var text = JsonSerializer.Serialize(evaluation, ModelEvaluation.JsonOptions);
        var back = JsonSerializer.Deserialize<ModelEvaluation>(text, ModelEvaluation.JsonOptions)!;

        Assert.Contains("\"accuracy\": \"NaN\"", text, StringComparison.Ordinal);
        Assert.Equal(evaluation, back);
    }

    [Fact]
    public void Regression_needs_targets_and_one_output()
    {
        var classes = new Dataset(new float[3], [1], [0, 1, 0], "test.npy");

        Assert.Contains("float targets", Assert.Throws<ArgumentException>(() => RegressionEvaluation.Quality("x", [1, 2, 3], 1, classes, null)).Message, StringComparison.Ordinal);
        Assert.Contains("this one has 2", Assert.Throws<ArgumentException>(() => RegressionEvaluation.Quality("x", [1, 2, 3, 4, 5, 6], 2, WithTargets(1, 2, 3), null)).Message, StringComparison.Ordinal);
        Assert.Contains("class labels", Assert.Throws<ArgumentException>(() => ClassificationEvaluation.Quality("x", [1, 2, 3], 1, WithTargets(1, 2, 3), null)).Message, StringComparison.Ordinal);
    }
}
