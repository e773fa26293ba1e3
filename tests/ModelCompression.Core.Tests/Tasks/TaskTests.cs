using ModelCompression.Data;
using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;
using ModelCompression.Pipeline;
using ModelCompression.Tasks;
using ModelCompression.Torch.Training;

namespace ModelCompression.Core.Tests.Tasks;

public sealed class TaskTests
{
    [Fact]
    public void The_catalog_names_every_task_once_and_refuses_an_unknown_one()
    {
        Assert.Equal(["classification", "regression", "generation"], TaskCatalog.Names);
        Assert.Same(ClassificationTask.Instance, TaskCatalog.Get(TaskCatalog.DefaultName));
        Assert.Same(RegressionTask.Instance, TaskCatalog.Get("regression"));
        var error = Assert.Throws<ArgumentException>(() => TaskCatalog.Get("segmentation"));
        Assert.Contains("Tasks: classification, regression, generation", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Each_task_offers_its_own_quality_metrics_and_the_cost_metrics_to_gates()
    {
        var classification = ClassificationTask.Instance.Metrics.Select(m => m.Name).ToList();
        var regression = RegressionTask.Instance.Metrics.Select(m => m.Name).ToList();

        Assert.Equal(["accuracy", "top_k_accuracy", "macro_f1", "agreement_with_teacher", "kl_to_teacher", "ece"], classification[..6]);
        Assert.Equal(["mae", "rmse"], regression[..2]);
        Assert.DoesNotContain("accuracy", regression);
        Assert.DoesNotContain("rmse", classification);
        Assert.Equal(MetricInfo.Cost.Select(m => m.Name), classification[6..]);
        Assert.Equal(MetricInfo.Cost.Select(m => m.Name), regression[2..]);
        // The one list: the names gates parse are the names an evaluation can hold, in the same order.
        Assert.Equal(ModelEvaluation.MetricNames, ModelCompression.Gates.GateExpression.Metrics.Keys);
        Assert.Equal(["accuracy", "exact_match", "label_accuracy", "f1", "rouge1", "rouge2", "rouge_l"], MetricInfo.All.Where(m => m.SupportsSignificance).Select(m => m.Name));
        Assert.Equal(ModelCompression.Gates.GateExpression.TeacherMetrics, MetricInfo.All.Where(m => m.NeedsTeacher).Select(m => m.Name));
    }

    [Fact]
    public void Classification_keeps_the_data_hash_and_regression_reads_the_same_files_under_another()
    {
        const string Files = "0123abcd";
        Assert.Equal(Files, ClassificationTask.Instance.DataHash(Files));
        Assert.NotEqual(Files, RegressionTask.Instance.DataHash(Files));
        Assert.Equal(RegressionTask.Instance.DataHash(Files), RegressionTask.Instance.DataHash(Files));
    }

    [Fact]
    public void The_objectives_are_the_tasks_losses_with_the_recipes_weights()
    {
        var classification = Assert.IsType<DistillationLoss>(ClassificationTask.Instance.Objective(0.7, 3, 0.5));
        Assert.Equal(new DistillationLoss(0.7, 3) { HintWeight = 0.5 }, classification);
        var regression = Assert.IsType<RegressionLoss>(RegressionTask.Instance.Objective(0.7, 3, 0.5));
        Assert.Equal(new RegressionLoss(0.7) { HintWeight = 0.5 }, regression);
        Assert.True(ClassificationTask.Instance.ValidationScore.HigherIsBetter);
        Assert.False(RegressionTask.Instance.ValidationScore.HigherIsBetter);
        Assert.True(RegressionTask.Instance.ValidationScore.Improves(4.0, 5.0, 0.5));
        Assert.False(RegressionTask.Instance.ValidationScore.Improves(4.6, 5.0, 0.5));
    }

    [Fact]
    public void Regression_averages_several_teachers_outputs_by_weight_and_takes_one_teacher_as_it_is()
    {
        float[] a = [1, 10];
        float[] b = [5, 30];

        Assert.Equal([2f, 15f], RegressionTask.Instance.CombineTeachers([(a, 3), (b, 1)], width: 1, temperature: 4));
        Assert.Same(a, RegressionTask.Instance.CombineTeachers([(a, 2)], width: 1, temperature: 4));
        Assert.Same(a, ClassificationTask.Instance.CombineTeachers([(a, 2)], width: 2, temperature: 4));
        Assert.Equal(Ensemble.SoftTargetLogits([(a, 3), (b, 1)], 2, 4), ClassificationTask.Instance.CombineTeachers([(a, 3), (b, 1)], width: 2, temperature: 4));
    }

    [Fact]
    public void Classification_checks_labels_against_the_classes()
    {
        var data = new Dataset(new float[8], [2], [0, 3, 1, 7], "data.npy");

        var task = Assert.Throws<CompressionException>(() => ClassificationTask.Instance.CheckLabels(data, 4, "student"));

        Assert.Equal((DiagnosticCodes.DataSchemaMismatch, "data.npy"), (task.Code, task.Diagnostics.Single().File));
        Assert.Contains("1 label is outside the student's 4 classes (0 to 3): Label 7 of sample 3", task.Message, StringComparison.Ordinal);
        ClassificationTask.Instance.CheckLabels(data, 8, "teacher");
    }

    [Fact]
    public void Regression_wants_one_output_and_float_targets()
    {
        var classes = new Dataset(new float[4], [2], [0, 1], "classes.npy");
        var width = Assert.Throws<CompressionException>(() => RegressionTask.Instance.CheckLabels(classes, 10, "teacher"));
        Assert.Equal(DiagnosticCodes.DataSchemaMismatch, width.Diagnostics[0].Code);
        Assert.Contains("the teacher has 10 outputs", width.Message, StringComparison.Ordinal);
        var labels = Assert.Throws<CompressionException>(() => RegressionTask.Instance.CheckLabels(classes, 1, "teacher"));
        Assert.Contains("needs float targets", labels.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Progress_lines_lead_with_the_tasks_headline()
    {
        var classifier = new ModelEvaluation("distill", 0.8612, 1, 1, 10);
        var regressor = new ModelEvaluation("distill", double.NaN, 1, 1, 10) { Rmse = 54.321, Mae = 43.21 };

        Assert.Equal("accuracy 86.12 %", ClassificationTask.Instance.Describe(classifier));
        Assert.Equal("RMSE 54.32, MAE 43.21", RegressionTask.Instance.Describe(regressor));
        Assert.Equal(0.8612 - 0.85, ClassificationTask.Instance.Gain(classifier, classifier with { Accuracy = 0.85 }));
        Assert.Null(RegressionTask.Instance.Gain(regressor, regressor));
    }
}
