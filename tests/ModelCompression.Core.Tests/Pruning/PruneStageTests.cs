using System.Globalization;
using ModelCompression.Architectures;
using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;
using ModelCompression.Onnx;
using ModelCompression.Recipes;
using ModelCompression.Stages;
using static ModelCompression.Core.Tests.Architectures.ArchitectureTestSupport;

namespace ModelCompression.Core.Tests.Pruning;

[Collection(FashionStudentCollection.Name)]
[Trait("Category", "Slow")] // trains a Fashion-MNIST student and recovers it after pruning
public sealed class PruneStageTests(FashionStudentFixture fashion)
{
    [Fact]
    public void Half_the_hidden_units_go_and_recovery_ends_within_a_point_of_the_unpruned_student()
    {
        var before = ModelHash.ComputeFile(fashion.StudentPath);
        var output = fashion.Output("structured");

        var result = new PruneStage(new PruneOptions { Method = PruneMethod.Structured, Sparsity = 0.5, RecoveryEpochs = 2 })
            .Run(fashion.Context(), fashion.StudentPath, output);

        var pruned = OnnxModelFile.Load(output);
        Assert.Equal([128L, 784], Dims(pruned, "fc1.weight"));
        Assert.Equal([10L, 128], Dims(pruned, "fc2.weight"));
        Assert.Equal("256 -> 128", result.Details["units.fc1"]);
        var original = ModelEvaluation.Measure("unpruned", fashion.StudentPath, fashion.Test, new EvaluateOptions { BatchSize = 500, MeasureLatency = false });
        var after = ModelEvaluation.Measure("pruned", output, fashion.Test, new EvaluateOptions { BatchSize = 500, MeasureLatency = false });
        Assert.True(after.Parameters < original.Parameters * 0.51, $"parameters {original.Parameters} -> {after.Parameters}");
        Assert.True(
            after.Accuracy >= original.Accuracy - 0.01,
            $"pruned accuracy {after.Accuracy:P2} is more than a point below the unpruned {original.Accuracy:P2}");
        Assert.Equal(2, result.EpochLosses!.Count);
        Assert.Equal(before, ModelHash.ComputeFile(fashion.StudentPath));
    }

    [Fact]
    public void Recovery_can_learn_from_the_dense_student_without_any_teacher()
    {
        // A context with no teacher: recovery_teacher dense must not ask for one (it would throw).
        var reporter = new CollectingReporter();
        using var context = new StageContext(fashion.Recipe.Path, fashion.Recipe.Teacher, fashion.Train, fashion.Test, "fashion-slice", null, null, 10, reporter, CancellationToken.None)
        {
            CheckpointRoot = fashion.Output("dense-checkpoints"),
        };
        var output = fashion.Output("dense");
        var stage = new PruneStage(new PruneOptions { Method = PruneMethod.Structured, Sparsity = 0.5, RecoveryEpochs = 2, Alpha = 1, RecoveryTeacher = RecoveryTeacher.Dense });
        stage.AddToKey(new ModelCompression.Common.ContentHash(), context);

        var result = stage.Run(context, fashion.StudentPath, output);

        Assert.Equal("dense", result.Details["recovery_teacher"]);
        Assert.Contains(reporter.Infos, i => i.StartsWith("Running the dense model on", StringComparison.Ordinal));
        var options = new EvaluateOptions { BatchSize = 500, MeasureLatency = false };
        var original = ModelEvaluation.Measure("unpruned", fashion.StudentPath, fashion.Test, options, null, out var denseOutputs);
        var after = ModelEvaluation.Measure("pruned", output, fashion.Test, options, denseOutputs);
        Assert.True(after.Accuracy >= original.Accuracy - 0.015, $"pruned accuracy {after.Accuracy:P2} vs the unpruned {original.Accuracy:P2}");
        // Having learned the dense model's own outputs, the pruned one agrees with it on most test images.
        Assert.True(after.AgreementWithTeacher >= 0.9, $"agreement with the dense model {after.AgreementWithTeacher:P1}");
    }

    [Fact]
    public void Gradual_magnitude_pruning_ends_at_the_target_sparsity_in_every_layer()
    {
        var output = fashion.Output("magnitude");
        var reporter = new CollectingReporter();

        var result = new PruneStage(new PruneOptions { Sparsity = 0.8, RecoveryEpochs = 1, Alpha = 0.5, BatchSize = 100 })
            .Run(fashion.Context(reporter), fashion.StudentPath, output);

        var pruned = OnnxModelFile.Load(output);
        foreach (var (weight, count) in new[] { ("fc1.weight", 256 * 784), ("fc2.weight", 10 * 256) })
        {
            var zeros = Floats(pruned, weight).Count(v => v == 0);
            Assert.Equal((int)Math.Round(count * 0.8), zeros);
            Assert.Equal((zeros / (double)count).ToString("0.0000", CultureInfo.InvariantCulture), result.Details[$"sparsity.{weight}"]);
        }

        // Biases are not pruned; the stored size stays, the compressed one shrinks, and no speed is claimed.
        Assert.DoesNotContain(Floats(pruned, "fc1.bias"), v => v == 0);
        Assert.Equal(result.Details["parameters_before"], result.Details["parameters_after"]);
        Assert.True(long.Parse(result.Details["compressed_bytes_after"], CultureInfo.InvariantCulture) < 0.6 * long.Parse(result.Details["compressed_bytes_before"], CultureInfo.InvariantCulture));
        Assert.StartsWith("no speed-up claimed", result.Details["speed"], StringComparison.Ordinal);
        Assert.Contains("no speed-up claimed", result.Summary, StringComparison.Ordinal);
        Assert.Equal("30", result.Details["steps"]);
        Assert.Equal(30, reporter.TrainingSteps);
        // 30 steps, a ramp over 75% of them: 23 steps.
        Assert.Equal("23", result.Details["ramp_steps"]);
        Assert.True(fashion.Accuracy(output) > 0.6, "training at 80% sparsity still classifies");
    }

    [Fact]
    public void Global_one_shot_pruning_without_recovery_ranks_all_weights_together()
    {
        var output = fashion.Output("global");

        var result = new PruneStage(new PruneOptions { Sparsity = 0.5, Scope = PruneScope.Global, RecoveryEpochs = 0 })
            .Run(fashion.Context(), fashion.StudentPath, output);

        var source = OnnxModelFile.Load(fashion.StudentPath);
        var pruned = OnnxModelFile.Load(output);
        var all = Floats(source, "fc1.weight").Concat(Floats(source, "fc2.weight")).Select(Math.Abs).Order().ToArray();
        var threshold = all[(all.Length / 2) - 1];
        var zeros = 0;
        foreach (var weight in new[] { "fc1.weight", "fc2.weight" })
        {
            var original = Floats(source, weight);
            var after = Floats(pruned, weight);
            // The weights below the global median magnitude are gone, those above it untouched (ties at the
            // median may go either way).
            Assert.All(original.Zip(after).Where(p => Math.Abs(p.First) < threshold), p => Assert.Equal(0, p.Second));
            Assert.All(original.Zip(after).Where(p => Math.Abs(p.First) > threshold), p => Assert.Equal(p.First, p.Second));
            zeros += after.Count(v => v == 0);
        }

        Assert.Equal(all.Length / 2, zeros);

        Assert.Equal("0.5000", result.Details["sparsity_overall"]);
        Assert.NotEqual(result.Details["sparsity.fc1.weight"], result.Details["sparsity.fc2.weight"]);
        Assert.Null(result.EpochLosses);
    }

    [Fact]
    public void Two_of_four_leaves_at_most_two_weights_in_every_group_of_inputs()
    {
        var output = fashion.Output("nm");

        var result = new PruneStage(new PruneOptions { Method = PruneMethod.NM, RecoveryEpochs = 1, BatchSize = 200 })
            .Run(fashion.Context(), fashion.StudentPath, output);

        var pruned = OnnxModelFile.Load(output);
        foreach (var (weight, inputs) in new[] { ("fc1.weight", 784), ("fc2.weight", 256) })
        {
            // Gemm with transB: [out, in], groups of 4 consecutive inputs in a row.
            var values = Floats(pruned, weight);
            var groups = values.Chunk(4).ToList();
            Assert.Equal(values.Length / 4, groups.Count);
            Assert.All(groups, g => Assert.True(g.Count(v => v != 0) <= 2));
            Assert.Equal(0, inputs % 4);
        }

        Assert.Equal("2:4", result.Details["pattern"]);
        Assert.Equal("0.5000", result.Details["sparsity_overall"]);
        Assert.Contains("sparse kernels", result.Details["speed"], StringComparison.Ordinal);
    }

    [Fact]
    public void Taylor_scores_rank_the_units_and_the_model_shrinks()
    {
        var output = fashion.Output("taylor");

        var result = new PruneStage(new PruneOptions { Method = PruneMethod.Structured, Criterion = UnitCriterion.Taylor, Sparsity = 0.25, TaylorBatches = 4, RecoveryEpochs = 0, Alpha = 0.5 })
            .Run(fashion.Context(), fashion.StudentPath, output);

        Assert.Equal([192L, 784], Dims(OnnxModelFile.Load(output), "fc1.weight"));
        Assert.Equal("taylor", result.Details["criterion"]);
        // A quarter of the units by Taylor score, with no retraining, costs little.
        Assert.True(fashion.Accuracy(output) >= fashion.StudentAccuracy - 0.05);
    }

    [Fact]
    public void Options_that_do_not_fit_together_are_all_reported_when_the_recipe_loads()
    {
        using var dir = new TempDir();
        var path = dir.Write("conflicts.compress.yaml", $"""
            data:
              format: idx
              train: {"{"} inputs: {Repo.SampleData("train-images-idx3-ubyte.gz")}, labels: {Repo.SampleData("train-labels-idx1-ubyte.gz")} {"}"}
              test: {"{"} inputs: {Repo.SampleData("t10k-images-idx3-ubyte.gz")}, labels: {Repo.SampleData("t10k-labels-idx1-ubyte.gz")} {"}"}
            teacher: {Repo.Teacher}
            student: {"{"} model: {fashion.StudentPath} {"}"}
            stages:
              - prune: {"{"} method: structured, scope: global, layers_to_drop: [1] {"}"}
            """);

        var error = Assert.Throws<CompressionException>(() => RecipeLoader.Load(path));

        Assert.Equal(2, error.Diagnostics.Count);
        Assert.All(error.Diagnostics, d => Assert.Equal((DiagnosticCodes.RecipeInvalidValue, path, 8), (d.Code, d.File, d.Line!.Value)));
        Assert.Contains(new PruneOptions { Method = PruneMethod.NM, N = 4, M = 4 }.Validate(), p => p.Contains("n below m", StringComparison.Ordinal));
        Assert.Contains(new PruneOptions { Method = PruneMethod.Layers }.Validate(), p => p.Contains("exactly one of", StringComparison.Ordinal));
        Assert.Empty(new PruneOptions { Method = PruneMethod.Layers, KeepLayers = [0, 2] }.Validate());
    }

    [Fact]
    public void Excluding_every_weight_leaves_the_model_as_it_was_with_a_warning()
    {
        var reporter = new CollectingReporter();
        var output = fashion.Output("excluded");

        var result = new PruneStage(new PruneOptions { Exclude = "fc*" }).Run(fashion.Context(reporter), fashion.StudentPath, output);

        var warning = Assert.Single(reporter.Diagnostics);
        Assert.Equal(DiagnosticCodes.NothingToTransform, warning.Code);
        Assert.Equal(Floats(OnnxModelFile.Load(fashion.StudentPath), "fc1.weight"), Floats(OnnxModelFile.Load(output), "fc1.weight"));
        Assert.Contains("excluded by name", result.Details["skipped"], StringComparison.Ordinal);
    }

    [Fact]
    public void A_transformed_model_that_does_not_fit_is_rejected()
    {
        // Three classes where the data has ten: it loads and runs, but it is not the student any more.
        var wrong = fashion.Output("rejected");
        OnnxModelFile.Save(MlpBuilder.Build(784, [4], 3, Activation.Relu, 1), wrong);

        var error = Assert.Throws<CompressionException>(() => TransformedModelCheck.Verify(wrong, fashion.Context(), "prune"));

        Assert.Equal(DiagnosticCodes.TransformedModelRejected, error.Code);
        Assert.Contains("outputs 3 classes, not 10", error.Message, StringComparison.Ordinal);
        Assert.Equal(wrong, error.Diagnostics[0].File);
    }

    [Fact]
    public void A_recipe_can_distill_prune_factorize_and_quantize()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("images.idx"), string.Empty);
        File.WriteAllText(dir.File("teacher.onnx"), string.Empty);
        var path = dir.Write("chain.compress.yaml", """
            data: { format: idx, train: { inputs: images.idx, labels: images.idx }, test: { inputs: images.idx, labels: images.idx } }
            teacher: teacher.onnx
            student: { architecture: mlp, hidden: [64] }
            stages:
              - distill: { epochs: 1 }
              - prune: { method: structured, sparsity: 0.5, criterion: taylor, recovery_epochs: 1, exclude: "classifier.*" }
              - factorize: { energy: 0.8, epochs: 1 }
              - quantize: { mode: dynamic }
            """);

        var recipe = RecipeLoader.Load(path);

        Assert.Equal(["distill", "prune", "factorize", "quantize"], recipe.Stages.Select(s => s.Kind));
        var prune = Assert.IsType<PruneOptions>(recipe.Stages[1].Options);
        Assert.Equal((PruneMethod.Structured, UnitCriterion.Taylor, "classifier.*"), (prune.Method, prune.Criterion, prune.Exclude));
        Assert.Equal(0.8, Assert.IsType<FactorizeOptions>(recipe.Stages[2].Options).Energy);

        var typo = dir.Write("typo.compress.yaml", File.ReadAllText(path).Replace("recovery_epochs", "recovery_epoch", StringComparison.Ordinal));
        var error = Assert.Throws<CompressionException>(() => RecipeLoader.Load(typo));
        Assert.Equal(DiagnosticCodes.RecipeUnknownKey, error.Code);
        Assert.Equal(6, error.Diagnostics[0].Line);
    }
}
