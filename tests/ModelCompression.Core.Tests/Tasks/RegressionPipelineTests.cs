using System.Text.Json.Nodes;
using ModelCompression.Core.Tests.Pipeline;
using ModelCompression.Data;
using ModelCompression.Evaluation;
using ModelCompression.Pipeline;
using ModelCompression.Recipes;
using ModelCompression.Runs;
using ModelCompression.Diagnostics;

namespace ModelCompression.Core.Tests.Tasks;

/// <summary>
/// <c>task: regression</c> through the real pipeline on a real data set: the diabetes data of Efron et al. (2004),
/// 442 patients, ten baseline variables, and disease progression a year later as the target
/// (tests/fixtures/diabetes/diabetes.csv; its script says where it comes from). A built-in MLP is fine-tuned on the
/// targets and becomes the teacher of a smaller MLP distilled from it, both gated on RMSE.
/// </summary>
[Trait("Category", "Slow")] // trains two students through whole pipeline runs
public sealed class RegressionPipelineTests : IDisposable
{
    /// <summary>
    /// An RMSE gate a model passes only by learning from the ten variables: always predicting the training targets'
    /// mean scores about 77 on this split's test samples (checked below); the models here reach about 60.
    /// </summary>
    private const double LearnedSomething = 65;

    private readonly TempDir _dir = new();

    public RegressionPipelineTests() =>
        File.Copy(Path.Join(Repo.Root, "tests", "fixtures", "diabetes", "diabetes.csv"), _dir.File("diabetes.csv"));

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void A_regressor_is_finetuned_on_real_targets_then_distilled_into_a_smaller_one_gated_on_rmse()
    {
        var teacherRecipe = RecipeLoader.Load(WriteRecipe(
            "teacher.compress.yaml",
            teacher: null,
            hidden: 32,
            stage: "finetune: { epochs: 60, batch_size: 16, learning_rate: 0.02, validation_fraction: 0.15, early_stopping_patience: 15 }",
            gates: [$"rmse <= {LearnedSomething}", "mae <= 55"]));
        Assert.Equal("regression", teacherRecipe.Task);
        var teacherOut = _dir.Dir("teacher-out");

        var teacherRun = CompressionRun.Run(teacherRecipe, new PipelineOptions(_dir.Dir("cache"), teacherOut, new RecordingReporter()));

        Assert.True(teacherRun.GatesPassed, string.Join("; ", teacherRun.Gates.Select(g => g.Message)));
        using (var data = DataLoader.Load(teacherRecipe.Data, LabelKind.Values))
        {
            var mean = data.Train.Targets!.Average(t => (double)t);
            var meanRmse = RegressionMetrics.RootMeanSquaredError([.. data.Test.Targets!.Select(_ => mean)], [.. data.Test.Targets!.Select(t => (double)t)]);
            Assert.True(meanRmse > LearnedSomething + 5, $"predicting the mean scores {meanRmse}");
        }

        var finetuned = Assert.Single(teacherRun.Stages);
        var teacherRmse = finetuned.Evaluation.Rmse!.Value;
        Assert.True(double.IsNaN(finetuned.Evaluation.Accuracy));
        Assert.Null(finetuned.Evaluation.Predictions);
        Assert.Null(finetuned.Evaluation.ConfusionMatrix);
        Assert.Equal(88, finetuned.Evaluation.Samples); // split test: 0.2 of 442, rounded
        // The validation score is the RMSE, lower being better: early stopping kept the epoch of the lowest.
        var scores = finetuned.Result.ValidationAccuracies!;
        Assert.True(scores[^1] < scores[0], $"validation RMSE per epoch: {string.Join(", ", scores)}");
        Assert.All(scores, s => Assert.True(s > 1, $"a validation RMSE of {s} is an accuracy, not an error"));

        var report = JsonNode.Parse(File.ReadAllText(Path.Join(teacherOut, "teacher.student.report.json")))!;
        Assert.Equal("regression", (string?)report["task"]);
        Assert.Equal(4, (int)report["schema_version"]!);
        var evaluation = report["stages"]![0]!["evaluation"]!;
        Assert.Null(evaluation["accuracy"]);
        Assert.Equal(teacherRmse, (double)evaluation["rmse"]!);
        var markdown = File.ReadAllText(Path.Join(teacherOut, "teacher.student.report.md"));
        Assert.Contains("| model | RMSE |", markdown, StringComparison.Ordinal);
        Assert.DoesNotContain("Confusion matrix", markdown, StringComparison.Ordinal);

        // The fine-tuned model is the teacher of a student a quarter its width.
        var studentRecipe = RecipeLoader.Load(WriteRecipe(
            "student.compress.yaml",
            teacher: Path.Join(teacherOut, "teacher.student.onnx"),
            hidden: 8,
            stage: "distill: { alpha: 0.5, epochs: 60, batch_size: 16, learning_rate: 0.02 }",
            gates: [$"rmse <= teacher.rmse + 10", $"rmse <= {LearnedSomething}"]));
        var studentOut = _dir.Dir("student-out");
        var studentReporter = new RecordingReporter();

        var studentRun = CompressionRun.Run(studentRecipe, new PipelineOptions(_dir.Dir("cache"), studentOut, studentReporter));

        Assert.True(studentRun.GatesPassed, string.Join("; ", studentRun.Gates.Select(g => g.Message)));
        Assert.Contains(studentReporter.Infos, i => i.StartsWith("Teacher: RMSE ", StringComparison.Ordinal));
        Assert.Equal(teacherRmse, studentRun.Teacher!.Rmse!.Value, 4); // the same model measured on the same test split
        var distilled = Assert.Single(studentRun.Stages);
        Assert.Equal("distill", distilled.Result.Stage);
        Assert.Null(distilled.Baseline); // regression defines no labels-only twin
        Assert.Null(distilled.GainFromDistillation);
        Assert.True(distilled.Evaluation.Parameters < finetuned.Evaluation.Parameters);
        Assert.Equal(2, studentRun.Gates.Count);
        Assert.Equal(distilled.Evaluation.Rmse!.Value, studentRun.Gates[0].Value);
        Assert.Equal(teacherRmse + 10, studentRun.Gates[0].Threshold, 9);
    }

    [Fact]
    public void Quantizing_a_regressor_is_refused_by_the_plan_before_anything_trains()
    {
        // quantize accepts its output by comparing classes with the float model's; a regressor has none, so the
        // recipe fails at the quantize line before the finetune stage spends a step.
        var path = WriteRecipe("quantized.compress.yaml", teacher: null, hidden: 8, stage: "finetune: { epochs: 1 }\n  - quantize: { mode: dynamic }", gates: ["rmse <= 100"]);
        var reporter = new RecordingReporter();

        var e = Assert.Throws<CompressionException>(() => CompressionRun.Run(RecipeLoader.Load(path), new PipelineOptions(_dir.Dir("cache"), _dir.Dir("out"), reporter)));

        var problem = Assert.Single(e.Diagnostics);
        Assert.Equal((DiagnosticCodes.RecipeInvalidValue, path, 11), (problem.Code, problem.File, problem.Line));
        Assert.Contains("quantizing a regression model is not supported yet", problem.Message, StringComparison.Ordinal);
        Assert.Equal(0, reporter.TrainingSteps);
    }

    private string WriteRecipe(string name, string? teacher, int hidden, string stage, string[] gates)
    {
        var text = $$"""
            task: regression
            data:
              format: csv
              file: diabetes.csv
              csv: { label: progression }
              split: { test: 0.2, seed: 3 }
              normalize: per_feature
            {{(teacher is null ? string.Empty : $"teacher: {teacher}\n")}}student: { architecture: mlp, hidden: [{{hidden}}], seed: 5 }
            stages:
              - {{stage}}
              - evaluate: { measure_latency: false }
            gates:
            {{string.Concat(gates.Select(g => $"  - {g}\n"))}}outputs: { model: {{name.Replace(".compress.yaml", string.Empty, StringComparison.Ordinal)}}.student.onnx, report: [json, md, html] }
            """;
        return _dir.Write(name, text);
    }
}
