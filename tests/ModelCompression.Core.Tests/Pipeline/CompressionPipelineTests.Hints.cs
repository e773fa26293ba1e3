using ModelCompression.Data;
using ModelCompression.Diagnostics;
using ModelCompression.Pipeline;
using ModelCompression.Recipes;
using ModelCompression.Runs;

namespace ModelCompression.Core.Tests.Pipeline;

/// <summary>Feature (hint) distillation through the pipeline: the sample's PyTorch CNN teaches an MLP's hidden layer.</summary>
public sealed partial class CompressionPipelineTests
{
    /// <summary>The teacher's 128 penultimate activations (Linear 3136 -> 128, ReLU) in the PyTorch export.</summary>
    private const string TeacherPenultimate = "/classifier/classifier.2/Relu_output_0";

    private static string HintedDistill(double alpha, string hint = $"fc1.relu -> {TeacherPenultimate}") =>
        $"distill: {{ epochs: 1, temperature: 4, alpha: {alpha}, learning_rate: 3e-3, batch_size: 32, baseline: false, hints: ['{hint}'], hint_weight: 0.5 }}";

    [Fact]
    public void Hints_train_from_teacher_features_computed_once_and_cached()
    {
        var cache = fixture.Dir.Dir("cache-hints");
        var reporter = new RecordingReporter();
        var recipe = RecipeLoader.Load(fixture.WriteRecipe("hints.compress.yaml", gates: ["accuracy >= 0.6"], stages: [HintedDistill(0.5)]));

        var result = CompressionRun.Run(recipe, new PipelineOptions(cache, fixture.Dir.Dir("out-hints"), reporter));

        var distill = result.Stages[0];
        Assert.Equal($"fc1.relu -> {TeacherPenultimate}", distill.Result.Details["hints"]);
        Assert.Contains("1 hint (weight 0.5)", distill.Result.Summary, StringComparison.Ordinal);
        Assert.True(distill.Evaluation.Accuracy > 0.6, $"accuracy {distill.Evaluation.Accuracy}");
        // The projection (64 -> 128) trained beside the student but is not part of it.
        Assert.Equal(784 * 64 + 64 + (64 * 10) + 10, distill.Evaluation.Parameters);
        Assert.Contains(reporter.Infos, i => i.StartsWith("Running the teacher for 1 hint tensor on 1000 training samples", StringComparison.Ordinal));

        var entry = Assert.Single(Directory.GetDirectories(cache, "teacher-features*"));
        using (var features = NpyReader.OpenSet([("t", Path.Join(entry, "feature0.npy"))], "cached"))
        {
            var values = features.Tensor("t")!;
            Assert.Equal(1000, values.Count);
            Assert.Equal([128L], values.SampleShape);
            var all = values.ToFloatArray();
            Assert.True(all.All(v => v >= 0) && all.Any(v => v > 0), "ReLU activations: never negative, not all zero");
        }

        // New loss weights train again, but the teacher does not run again.
        var again = new RecordingReporter();
        var other = RecipeLoader.Load(fixture.WriteRecipe("hints-other.compress.yaml", gates: ["accuracy >= 0.6"], stages: [HintedDistill(0.9)]));
        var second = CompressionRun.Run(other, new PipelineOptions(cache, fixture.Dir.Dir("out-hints-other"), again));
        Assert.False(second.Stages[0].Cached);
        Assert.DoesNotContain(again.Infos, i => i.StartsWith("Running the teacher", StringComparison.Ordinal));
    }

    [Fact]
    public void Every_sweep_trial_learns_the_hints_from_one_run_of_the_teacher()
    {
        var recipe = RecipeLoader.Load(fixture.WriteRecipe(
            "hints-sweep.compress.yaml",
            gates: ["accuracy >= 0.5"],
            stages: [$"sweep: {{ epochs: 1, batch_size: 32, learning_rate: 3e-3, validation_fraction: 0.2, alpha: [0.5, 0.9], temperature: [4], hints: ['fc1.relu -> {TeacherPenultimate}'], hint_weight: 0.5 }}"]));
        var reporter = new RecordingReporter();

        var result = CompressionRun.Run(recipe, new PipelineOptions(fixture.Dir.Dir("cache-hints-sweep"), fixture.Dir.Dir("out-hints-sweep"), reporter));

        var sweep = Assert.Single(result.Stages).Result;
        Assert.Equal(2, sweep.Sweep!.Count);
        Assert.Equal($"fc1.relu -> {TeacherPenultimate}", sweep.Details["hints"]);
        Assert.Single(reporter.Infos, i => i.StartsWith("Running the teacher for 1 hint tensor", StringComparison.Ordinal));
    }

    [Fact]
    public void A_hint_on_a_value_inside_a_fusable_pattern_still_trains()
    {
        // fc1.gelu.erf is inside the Erf GELU that training runs fused as one gelu; the hint keeps it computed.
        var recipe = RecipeLoader.Load(fixture.WriteRecipe(
            "hints-fused.compress.yaml",
            gates: ["accuracy >= 0.5"],
            student: "architecture: mlp, hidden: [64], activation: gelu",
            stages: [HintedDistill(0.5, $"fc1.gelu.erf -> {TeacherPenultimate}")]));

        var result = CompressionRun.Run(recipe, new PipelineOptions(fixture.Dir.Dir("cache-hints-fused"), fixture.Dir.Dir("out-hints-fused"), new RecordingReporter()));

        var distill = Assert.Single(result.Stages, s => s.Result.Details.ContainsKey("hints"));
        Assert.Equal($"fc1.gelu.erf -> {TeacherPenultimate}", distill.Result.Details["hints"]);
        Assert.Contains("1 hint (weight 0.5)", distill.Result.Summary, StringComparison.Ordinal);
    }

    [Fact]
    public void A_hint_tensor_the_student_does_not_have_is_MC1003_at_the_stage_line_listing_its_values()
    {
        var recipe = RecipeLoader.Load(fixture.WriteRecipe("hints-unknown.compress.yaml", gates: ["accuracy >= 0.6"], stages: [HintedDistill(0.5, $"fc7.relu -> {TeacherPenultimate}")]));

        var e = Assert.Throws<CompressionException>(() =>
            CompressionRun.Run(recipe, new PipelineOptions(fixture.Dir.Dir("cache-hints-unknown"), fixture.Dir.Dir("out-hints-unknown"), new RecordingReporter())));

        var problem = Assert.Single(e.Diagnostics);
        Assert.Equal((DiagnosticCodes.RecipeInvalidValue, recipe.Path, 10), (problem.Code, problem.File, problem.Line));
        Assert.Contains("student tensor 'fc7.relu'", problem.Message, StringComparison.Ordinal);
        Assert.Contains("'fc1.relu'", problem.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_penultimate_hint_pairs_what_each_models_classifier_reads()
    {
        var recipe = RecipeLoader.Load(fixture.WriteRecipe("hints-penultimate.compress.yaml", gates: ["accuracy >= 0.6"], stages: [HintedDistill(0.5, "penultimate")]));
        var reporter = new RecordingReporter();

        var result = CompressionRun.Run(recipe, new PipelineOptions(fixture.Dir.Dir("cache-hints-penultimate"), fixture.Dir.Dir("out-hints-penultimate"), reporter));

        Assert.Equal($"fc1.relu -> {TeacherPenultimate}", result.Stages[0].Result.Details["hints"]);
        Assert.Contains(reporter.Infos, i => i == $"distill: hints fc1.relu -> {TeacherPenultimate}");
        Assert.True(result.GatesPassed, string.Join("; ", result.Gates.Select(g => g.Message)));
    }

    [Fact]
    public void A_hint_without_an_arrow_is_a_recipe_error_before_any_work()
    {
        var path = fixture.WriteRecipe("hints-syntax.compress.yaml", gates: ["accuracy >= 0.6"], stages: [HintedDistill(0.5, $"fc1.relu : {TeacherPenultimate}")]);

        var e = Assert.Throws<CompressionException>(() => RecipeLoader.Load(path));

        var problem = Assert.Single(e.Diagnostics);
        Assert.Equal((DiagnosticCodes.RecipeInvalidValue, 10), (problem.Code, problem.Line));
        Assert.Contains("student_tensor -> teacher_tensor", problem.Message, StringComparison.Ordinal);
    }
}
