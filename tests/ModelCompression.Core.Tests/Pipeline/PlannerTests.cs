using ModelCompression.Architectures;
using ModelCompression.Common;
using ModelCompression.Data;
using ModelCompression.Diagnostics;
using ModelCompression.Inference;
using ModelCompression.Onnx;
using ModelCompression.Pipeline;
using ModelCompression.Recipes;
using ModelCompression.Runs;
using ModelCompression.Stages;

namespace ModelCompression.Core.Tests.Pipeline;

/// <summary>
/// The plan phase: every stage's checks run before the first stage trains, from cached facts, each problem at the
/// line of the option it is about, all of them together.
/// </summary>
public sealed class PlannerTests : IDisposable
{
    private const string TeacherPenultimate = "/classifier/classifier.2/Relu_output_0";

    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void A_bad_hint_and_a_bad_exclusion_in_a_later_stage_fail_together_before_anything_trains()
    {
        Slice("train-images-idx3-ubyte.gz", "train-images.idx", 200);
        Slice("train-labels-idx1-ubyte.gz", "train-labels.idx", 200);
        Slice("t10k-images-idx3-ubyte.gz", "test-images.idx", 50);
        Slice("t10k-labels-idx1-ubyte.gz", "test-labels.idx", 50);
        var path = _dir.Write("late.compress.yaml", $"""
            data:
              format: idx
              train: {"{"} inputs: data/train-images.idx, labels: data/train-labels.idx {"}"}
              test: {"{"} inputs: data/test-images.idx, labels: data/test-labels.idx {"}"}
              scale: 0.00392156862745098
            teacher: {Repo.Teacher}
            student: {"{"} architecture: mlp, hidden: [64] {"}"}
            stages:
              - distill:
                  epochs: 3
                  batch_size: 32
                  hints: ['fc7.relu -> {TeacherPenultimate}']
              - quantize:
                  mode: dynamic
                  exclude_nodes: "fc9"
            gates:
              - accuracy >= 0.1
            """);
        var recipe = RecipeLoader.Load(path);
        var reporter = new RecordingReporter();

        var e = Assert.Throws<CompressionException>(() => CompressionRun.Run(recipe, new PipelineOptions(_dir.Dir("cache"), _dir.Dir("out"), reporter)));

        Assert.Equal(
            [(DiagnosticCodes.RecipeInvalidValue, path, 12), (DiagnosticCodes.RecipeInvalidValue, path, 15)],
            e.Diagnostics.Select(d => (d.Code, d.File, d.Line)));
        Assert.Contains("the hint's student tensor 'fc7.relu' is not a value of the student", e.Diagnostics[0].Message, StringComparison.Ordinal);
        Assert.Contains("'fc1.relu'", e.Diagnostics[0].Message, StringComparison.Ordinal);
        Assert.StartsWith("quantize: exclude_nodes names 'fc9', which is not a node of the model (nodes: flatten, fc1, fc1.relu, fc2)", e.Diagnostics[1].Message, StringComparison.Ordinal);
        Assert.Equal(0, reporter.TrainingSteps);
        Assert.Empty(reporter.Stages);
    }

    [Fact]
    public void Sweep_ranks_trials_on_the_datas_own_validation_split()
    {
        const string Sweep = "- sweep:\n      validation_fraction: 0\n      epochs: 1";

        Plan(Sweep, validationSplit: true);
        var e = Assert.Throws<CompressionException>(() => Plan(Sweep));

        var problem = Assert.Single(e.Diagnostics);
        Assert.Equal((DiagnosticCodes.RecipeInvalidValue, 11), (problem.Code, problem.Line));
        Assert.Equal("sweep: trials are ranked by validation accuracy; set validation_fraction above 0 or give the data a validation split.", problem.Message);
        Plan("- sweep: { epochs: 1 }");
    }

    [Theory]
    [InlineData("finetune")]
    [InlineData("distill")]
    public void Early_stopping_needs_a_validation_set_which_the_data_or_validation_fraction_gives(string kind)
    {
        var stage = $"- {kind}:\n      epochs: 3\n      early_stopping_patience: 1";

        Plan(stage, validationSplit: true);
        Plan($"- {kind}: {{ epochs: 3, early_stopping_patience: 1, validation_fraction: 0.2 }}");
        var e = Assert.Throws<CompressionException>(() => Plan(stage));

        var problem = Assert.Single(e.Diagnostics);
        Assert.Equal((DiagnosticCodes.RecipeInvalidValue, 12), (problem.Code, problem.Line));
        Assert.StartsWith($"{kind}: early_stopping_patience needs a validation set", problem.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Names_in_a_graph_that_an_earlier_stage_changes_are_checked_when_that_stage_has_run()
    {
        const string Quantize = "- quantize:\n      exclude_nodes: fc9\n      exclude_op_types: Conv";

        var e = Assert.Throws<CompressionException>(() => Plan("- distill: { epochs: 1 }", Quantize));
        Assert.Equal([12, 13], e.Diagnostics.Select(d => d.Line!.Value));
        Assert.Contains("'Conv', which no node of the model has (op types: Flatten, Gemm, Relu)", e.Diagnostics[1].Message, StringComparison.Ordinal);

        var plan = Plan("- distill: { epochs: 1 }", "- prune: { method: structured, sparsity: 0.5 }", Quantize);
        Assert.Empty(plan.Stages[1].Deferred);
        Assert.Contains("exclude_nodes", Assert.Single(plan.Stages[2].Deferred), StringComparison.Ordinal);
        Assert.Contains("prune's output", plan.Stages[2].Deferred[0], StringComparison.Ordinal);

        // Magnitude pruning zeroes weights and keeps the graph: the names are known.
        Assert.Throws<CompressionException>(() => Plan("- distill: { epochs: 1 }", "- prune: { method: magnitude }", Quantize));
    }

    [Fact]
    public void Prune_checks_its_layers_and_the_taylor_labels_before_anything_trains()
    {
        var e = Assert.Throws<CompressionException>(() => Plan(
            "- distill: { epochs: 1 }",
            "- prune:\n      method: layers\n      keep_layers: [0]",
            "- prune:\n      method: structured\n      criterion: taylor",
            trainLabels: false));

        Assert.Equal(
            [(DiagnosticCodes.LayerDropInvalid, 13), (DiagnosticCodes.DataSchemaMismatch, 16)],
            e.Diagnostics.Select(d => (d.Code, d.Line!.Value)));
        Assert.StartsWith("Cannot prune transformer layers: the model has no encoder layers", e.Diagnostics[0].Message, StringComparison.Ordinal);
        Assert.Equal("prune: the taylor criterion needs labelled training data.", e.Diagnostics[1].Message);
    }

    [Fact]
    public void Hints_resolve_penultimate_in_both_graphs_and_a_missing_teacher_tensor_is_reported()
    {
        Plan("- distill: { epochs: 1, hints: [penultimate] }");
        Plan($"- distill: {{ epochs: 1, hints: ['fc1.relu -> {TeacherPenultimate}'] }}");

        var e = Assert.Throws<CompressionException>(() => Plan("- distill: { epochs: 1, hints: ['fc1.relu -> nowhere'] }"));

        var problem = Assert.Single(e.Diagnostics);
        Assert.StartsWith($"distill: the hint's teacher tensor 'nowhere' is not a value of the teacher ({Repo.Teacher}). Its node outputs", problem.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_student_as_wide_as_another_number_of_classes_is_said_once_before_anything_trains()
    {
        var narrow = _dir.File("narrow.onnx");
        OnnxModelFile.Save(ArchitectureRegistry.Build("mlp", null, new ArchitectureInputs([28, 28], 5)), narrow);

        var e = Assert.Throws<CompressionException>(() => Plan(["- distill: { epochs: 1 }", "- prune: { method: magnitude }"], student: narrow));

        var problem = Assert.Single(e.Diagnostics);
        Assert.Equal((DiagnosticCodes.DataSchemaMismatch, narrow), (problem.Code, problem.File));
        Assert.Contains("has 5 classes but the teacher has 10", problem.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_plan_lists_each_stage_with_what_it_reads_and_the_last_evaluate_options()
    {
        var plan = Plan("- distill: { epochs: 1, alpha: 0 }", "- prune: { alpha: 0.5, recovery_teacher: dense }", "- evaluate: { batch_size: 7 }");

        Assert.Equal(["distill", "prune", "evaluate"], plan.Stages.Select(s => s.Spec.Kind));
        Assert.Equal(StageReads.Teacher | StageReads.Train | StageReads.Validation, plan.Stages[0].Reads);
        Assert.Equal(StageReads.DenseModel | StageReads.Train | StageReads.Test, plan.Stages[1].Reads);
        Assert.Null(plan.Stages[2].Create());
        Assert.Equal(7, plan.Evaluation.BatchSize);
    }

    private RunPlan Plan(params string[] stages) => Plan(stages, validationSplit: false);

    private RunPlan Plan(string stage, bool validationSplit = false, bool trainLabels = true) => Plan([stage], validationSplit, trainLabels);

    private RunPlan Plan(string first, string second, string third, bool trainLabels) => Plan([first, second, third], trainLabels: trainLabels);

    /// <summary>
    /// Plans a recipe of <paramref name="stages"/> over the sample's files (the stages start on line 10; the loader
    /// reads no data) against a hand-made data summary, the sample teacher and a built-in MLP (or <paramref name="student"/>).
    /// </summary>
    private RunPlan Plan(string[] stages, bool validationSplit = false, bool trainLabels = true, string? student = null)
    {
        var validation = validationSplit
            ? $"validation: {{ inputs: {Repo.SampleData("t10k-images-idx3-ubyte.gz")}, labels: {Repo.SampleData("t10k-labels-idx1-ubyte.gz")} }}"
            : "scale: 1";
        var path = _dir.Write($"plan-{Guid.NewGuid():N}.compress.yaml", $"""
            data:
              format: idx
              train: {"{"} inputs: {Repo.SampleData("train-images-idx3-ubyte.gz")}, labels: {Repo.SampleData("train-labels-idx1-ubyte.gz")} {"}"}
              test: {"{"} inputs: {Repo.SampleData("t10k-images-idx3-ubyte.gz")}, labels: {Repo.SampleData("t10k-labels-idx1-ubyte.gz")} {"}"}
              {validation}
            teacher: {Repo.Teacher}
            student: {"{"} {(student is null ? "architecture: mlp, hidden: [64]" : $"model: {student}")} {"}"}
            # the stages start on line 10
            stages:
            {string.Concat(stages.Select(s => $"  {s}\n"))}
            """);
        var recipe = RecipeLoader.Load(path);
        var studentPath = student ?? _dir.File("mlp.onnx");
        if (student is null && !File.Exists(studentPath))
        {
            OnnxModelFile.Save(ArchitectureRegistry.Build("mlp", recipe.Student.Options, new ArchitectureInputs([28, 28], 10)), studentPath);
        }

        var cache = new ArtifactCache(_dir.Dir("facts"));
        string[] splits = validationSplit ? ["train", "test", "validation"] : ["train", "test"];
        var data = new DataSummary(
            ["input"], [28, 28], null, null,
            [.. splits.Select(s => new SplitSummary(s, 100, s == "train" && !trainLabels ? null : 0, s == "train" && !trainLabels ? null : 9))],
            new Dictionary<string, IdRange>());
        return Planner.Plan(
            recipe,
            data,
            10,
            (Repo.Teacher, ModelFacts.Of(cache, Repo.Teacher, ModelHash.ComputeFile(Repo.Teacher, out _))),
            (studentPath, ModelFacts.Of(cache, studentPath, ModelHash.ComputeFile(studentPath, out _))));
    }

    private void Slice(string source, string target, int count)
    {
        var array = IdxReader.Read(Repo.SampleData(source));
        var perItem = array.Data.Length / array.Dimensions[0];
        Directory.CreateDirectory(_dir.File("data"));
        Idx.Write(_dir.File(Path.Join("data", target)), [count, .. array.Dimensions[1..]], array.Data.AsSpan(0, count * perItem));
    }
}
