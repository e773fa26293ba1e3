using System.Globalization;
using System.Text.Json.Nodes;
using ModelCompression.Common;
using ModelCompression.Data;
using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;
using ModelCompression.Gates;
using ModelCompression.Onnx;
using ModelCompression.Pipeline;
using ModelCompression.Recipes;
using ModelCompression.Runs;

namespace ModelCompression.Core.Tests.Pipeline;

/// <summary>
/// A small slice of the Fashion-MNIST sample (1000 training / 300 test images) and the sample's PyTorch teacher,
/// compressed once by the fixture into a cache that the tests then re-use.
/// </summary>
public sealed class PipelineSliceFixture : IDisposable
{
    public const string ModelName = "slice.student.onnx";

    public PipelineSliceFixture()
    {
        Dir = new TempDir();
        Slice("train-images-idx3-ubyte.gz", "train-images.idx.gz", 1000);
        Slice("train-labels-idx1-ubyte.gz", "train-labels.idx.gz", 1000);
        Slice("t10k-images-idx3-ubyte.gz", "test-images.idx", 300);
        Slice("t10k-labels-idx1-ubyte.gz", "test-labels.idx", 300);
        Cache = Dir.Dir("cache");
        FirstReporter = new RecordingReporter();
        FirstOutput = Dir.Dir("out-first");
        FirstRecipe = RecipeLoader.Load(WriteRecipe("first.compress.yaml"));
        First = CompressionRun.Run(FirstRecipe, new PipelineOptions(Cache, FirstOutput, FirstReporter));
    }

    public TempDir Dir { get; }

    public string Cache { get; }

    public string FirstOutput { get; }

    public Recipe FirstRecipe { get; }

    public PipelineResult First { get; }

    public RecordingReporter FirstReporter { get; }

    /// <summary>Writes a recipe over the slice; stages and gates start on lines 10 and 14 (unless <paramref name="stages"/> replaces the stage lines).</summary>
    public string WriteRecipe(string name, bool perChannel = true, string[]? gates = null, string testLabels = "data/test-labels.idx", string student = "architecture: mlp, hidden: [64]", int epochs = 2, string? teacher = null, string[]? stages = null)
    {
        gates ??= ["accuracy >= 0.6", "accuracy >= teacher.accuracy - 0.35", "size_mb <= 0.2"];
        stages ??=
        [
            $"distill: {{ epochs: {epochs}, temperature: 4, alpha: 0.5, learning_rate: 3e-3, batch_size: 32 }}",
            $"quantize: {{ mode: dynamic, per_channel: {(perChannel ? "true" : "false")} }}",
            "evaluate: { batch_size: 100 }",
        ];
        var text = $"""
            task: classification
            data:
              format: idx
              train: {"{"} inputs: data/train-images.idx.gz, labels: data/train-labels.idx.gz {"}"}
              test:  {"{"} inputs: data/test-images.idx, labels: {testLabels} {"}"}
              scale: 0.00392156862745098
            teacher: {teacher ?? Repo.Teacher}
            student: {"{"} {student} {"}"}
            stages:
            {string.Concat(stages.Select(s => $"  - {s}\n"))}gates:
            {string.Concat(gates.Select(g => $"  - {g}\n"))}outputs: {"{"} model: {ModelName}, report: [json, md] {"}"}
            """;
        return Dir.Write(name, text);
    }

    public void Dispose() => Dir.Dispose();

    private void Slice(string source, string target, int count)
    {
        var array = IdxReader.Read(Repo.SampleData(source));
        var perItem = array.Data.Length / array.Dimensions[0];
        Directory.CreateDirectory(Dir.File("data"));
        Idx.Write(Dir.File(Path.Join("data", target)), [count, .. array.Dimensions[1..]], array.Data.AsSpan(0, count * perItem));
    }
}

/// <summary>Keeps everything a pipeline run reports.</summary>
public sealed class RecordingReporter : IPipelineReporter
{
    public List<(string Stage, bool Cached)> Stages { get; } = [];

    public List<string> Infos { get; } = [];

    public List<Diagnostic> Diagnostics { get; } = [];

    public int TrainingSteps { get; private set; }

    public void StageStarted(string stage, bool cached) => Stages.Add((stage, cached));

    public void Training(string stage, TrainingProgressInfo progress) => TrainingSteps++;

    public void Info(string message) => Infos.Add(message);

    public List<(string Task, double Fraction)> Progresses { get; } = [];

    public void Progress(string task, double fraction, TimeSpan elapsed) => Progresses.Add((task, fraction));

    public void Report(Diagnostic diagnostic) => Diagnostics.Add(diagnostic);
}

[Trait("Category", "Slow")] // trains students through whole pipeline runs
public sealed partial class CompressionPipelineTests(PipelineSliceFixture fixture) : IClassFixture<PipelineSliceFixture>
{
    private const double Tolerance = 1e-12;

    [Fact]
    public void First_run_trains_quantizes_and_writes_the_model_and_reports()
    {
        var result = fixture.First;

        Assert.True(result.GatesPassed, string.Join("; ", result.Gates.Select(g => g.Message)));
        Assert.Equal(["distill", "quantize"], result.Stages.Select(s => s.Result.Stage));
        Assert.All(result.Stages, s => Assert.False(s.Cached));
        Assert.Equal([("distill", false), ("baseline", false), ("quantize", false)], fixture.FirstReporter.Stages);
        // The labels-only twin: same student, budget and seed; the gain is reported, whatever its sign.
        var distilled = result.Stages[0];
        Assert.NotNull(distilled.Baseline);
        Assert.Equal(distilled.Evaluation.Accuracy - distilled.Baseline.Accuracy, distilled.GainFromDistillation!.Value, Tolerance);
        Assert.Contains(fixture.FirstReporter.Infos, i => i.Contains("gain from distillation", StringComparison.Ordinal));
        // The teacher's run over the training data shows its progress, to the end.
        var teacherRun = fixture.FirstReporter.Progresses.Where(p => p.Task == "teacher over the training samples").Select(p => p.Fraction).ToList();
        Assert.True(teacherRun.Count > 1 && teacherRun.SequenceEqual(teacherRun.Order()) && teacherRun[^1] == 1.0, string.Join(", ", teacherRun));
        Assert.Equal(2 * 2 * 32, fixture.FirstReporter.TrainingSteps); // student and twin: 2 epochs of ceil(1000 / 32) steps each
        Assert.Contains(fixture.FirstReporter.Infos, i => i.StartsWith("Running the teacher on 1000 training samples", StringComparison.Ordinal));

        // The committed sample teacher's quality is not this test's business (see the fixtures' expected logits).
        Assert.InRange(result.Teacher!.Accuracy, 0, 1);
        Assert.Equal(300, result.Teacher.Samples);
        var distill = result.Stages[0];
        var quantize = result.Stages[1];
        Assert.True(distill.Evaluation.Accuracy > 0.6, $"student accuracy {distill.Evaluation.Accuracy}");
        Assert.True(quantize.Evaluation.Accuracy > 0.6, $"quantized accuracy {quantize.Evaluation.Accuracy}");
        Assert.InRange(quantize.Evaluation.Accuracy, distill.Evaluation.Accuracy - 0.05, distill.Evaluation.Accuracy + 0.05);
        Assert.Equal(2, distill.Result.EpochLosses!.Count);
        Assert.True(distill.Result.EpochLosses[1] < distill.Result.EpochLosses[0], "the loss fell");
        Assert.Equal("1000", distill.Result.Details["train_samples"]);
        // The float student: 784x64 + 64 + 64x10 + 10 weights.
        Assert.Equal(784 * 64 + 64 + (64 * 10) + 10, distill.Evaluation.Parameters);
        Assert.True(quantize.Evaluation.SizeBytes < distill.Evaluation.SizeBytes / 3, $"{quantize.Evaluation.SizeBytes} vs {distill.Evaluation.SizeBytes}");

        // The model written is the quantized one, and it scores what the report says.
        var output = Path.Join(fixture.FirstOutput, PipelineSliceFixture.ModelName);
        Assert.Equal(output, result.OutputModel);
        var model = OnnxModelFile.Load(output);
        Assert.Contains(model.Graph.Node, n => n.OpType == "MatMulInteger");
        var test = IdxReader.LoadLabelled(fixture.FirstRecipe.Data.Test.Inputs, fixture.FirstRecipe.Data.Test.Labels, fixture.FirstRecipe.Data.Scale);
        var remeasured = ModelEvaluation.Measure("quantize", output, test, new EvaluateOptions { BatchSize = 100, MeasureLatency = false });
        Assert.Equal(quantize.Evaluation.Accuracy, remeasured.Accuracy);
        Assert.Equal(quantize.Evaluation.SizeBytes, remeasured.SizeBytes);
        Assert.Equal(quantize.Evaluation.Predictions, remeasured.Predictions);

        Assert.Equal(
            [Path.Join(fixture.FirstOutput, "slice.student.report.json"), Path.Join(fixture.FirstOutput, "slice.student.report.md")],
            result.Reports);
        Assert.Equal(
            ["slice.student.data.json", "slice.student.onnx", "slice.student.report.json", "slice.student.report.md"],
            Directory.GetFiles(fixture.FirstOutput).Select(Path.GetFileName).Order(StringComparer.Ordinal));

        // What the run keeps for itself is in the cache, not next to the outputs: the lock, and the memo of input
        // hashes (the committed teacher is in it; the slice files, written moments ago, are not trusted to it).
        // (Other tests' runs share the cache, each with its own output and lock.)
        Assert.Contains(new ArtifactCache(fixture.Cache).LockFile(output), Directory.GetFiles(Path.Join(fixture.Cache, "locks")));
        Assert.Contains($"model {Repo.Teacher}", File.ReadAllText(Path.Join(fixture.Cache, HashMemo.FileName)), StringComparison.Ordinal);
    }

    [Fact]
    public void A_run_with_every_result_cached_loads_neither_onnx_runtime_nor_libtorch()
    {
        var output = fixture.Dir.Dir("out-cached-child");
        var (exitCode, stdout, errors) = Safety.ChildProcessProgram.Run(["run", fixture.FirstRecipe.Path, fixture.Cache, output], new Dictionary<string, string?>());

        Assert.True(exitCode == 0, $"exit {exitCode}\n{stdout}\n{errors}");
        Assert.Contains("cached: True, True", stdout, StringComparison.Ordinal);
        Assert.Contains("native: ", stdout, StringComparison.Ordinal); // the listing works: the runtime's own libraries are there
        Assert.DoesNotContain("onnxruntime", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("libtorch", stdout, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Join(output, PipelineSliceFixture.ModelName)));
    }

    [Fact]
    public void Report_json_and_md_match_the_returned_result()
    {
        var result = fixture.First;
        var json = JsonNode.Parse(File.ReadAllText(result.Reports[0]))!;

        Assert.Equal(4, (int)json["schema_version"]!);
        Assert.True((bool)json["passed"]!);
        Assert.Equal(result.OutputModel, (string?)json["output_model"]);
        Assert.Equal(fixture.FirstRecipe.Path, (string?)json["recipe"]);
        AssertEvaluation(result.Teacher!, json["teacher"]!);
        var stages = json["stages"]!.AsArray();
        Assert.Equal(result.Stages.Count, stages.Count);
        Assert.Equal(result.Stages[0].GainFromDistillation!.Value, (double)stages[0]!["gain_from_distillation"]!, Tolerance);
        Assert.Equal(result.Stages[0].Baseline!.Accuracy, (double)stages[0]!["baseline"]!["accuracy"]!, Tolerance);
        Assert.Null(stages[1]!["baseline"]);
        for (var i = 0; i < stages.Count; i++)
        {
            Assert.Equal(result.Stages[i].Result.Stage, (string?)stages[i]!["stage"]);
            Assert.Equal(result.Stages[i].Result.Summary, (string?)stages[i]!["summary"]);
            Assert.Equal(result.Stages[i].Cached, (bool)stages[i]!["cached"]!);
            AssertEvaluation(result.Stages[i].Evaluation, stages[i]!["evaluation"]!);
        }

        Assert.Equal(result.Stages[0].Result.EpochLosses!, stages[0]!["epoch_losses"]!.AsArray().Select(l => (double)l!));
        var gates = json["gates"]!.AsArray();
        Assert.Equal(result.Gates.Count, gates.Count);
        for (var i = 0; i < gates.Count; i++)
        {
            Assert.Equal(result.Gates[i].Text, (string?)gates[i]!["gate"]);
            Assert.Equal(14 + i, (int)gates[i]!["line"]!);
            Assert.Equal(result.Gates[i].Line, (int)gates[i]!["line"]!);
            Assert.Equal(result.Gates[i].Passed, (bool)gates[i]!["passed"]!);
            Assert.Equal(result.Gates[i].Value, (double)gates[i]!["value"]!, Tolerance);
            Assert.Equal(result.Gates[i].Threshold, (double)gates[i]!["threshold"]!, Tolerance);
        }

        Assert.Equal(result.Stages[^1].Evaluation.Accuracy, result.Gates[0].Value);
        Assert.Equal(result.Teacher!.Accuracy - 0.35, result.Gates[1].Threshold, Tolerance);

        var md = File.ReadAllText(result.Reports[1]);
        Assert.Contains("— passed", md, StringComparison.Ordinal);
        foreach (var evaluation in result.Stages.Select(s => s.Evaluation).Prepend(result.Teacher))
        {
            Assert.Contains($"| {evaluation.Name} | {evaluation.Accuracy.ToString("P2", CultureInfo.InvariantCulture)} |", md, StringComparison.Ordinal);
        }

        Assert.Contains("- ✅ `accuracy >= 0.6` — ", md, StringComparison.Ordinal);
        Assert.DoesNotContain("FAIL", md, StringComparison.Ordinal);
    }

    [Fact]
    public void A_second_run_is_fully_cached()
    {
        var reporter = new RecordingReporter();
        var output = fixture.Dir.Dir("out-again");
        var recipe = RecipeLoader.Load(fixture.WriteRecipe("again.compress.yaml"));

        var result = CompressionRun.Run(recipe, new PipelineOptions(fixture.Cache, output, reporter));

        Assert.All(result.Stages, s => Assert.True(s.Cached, $"{s.Result.Stage} ran again"));
        Assert.Equal([("distill", true), ("baseline", true), ("quantize", true)], reporter.Stages);
        Assert.Equal(0, reporter.TrainingSteps);
        Assert.DoesNotContain(reporter.Infos, i => i.StartsWith("Running the teacher", StringComparison.Ordinal));
        Assert.Equal(fixture.First.Teacher, result.Teacher);
        Assert.Equal(fixture.First.Stages.Select(s => s.Evaluation), result.Stages.Select(s => s.Evaluation));
        Assert.Equal(fixture.First.Stages.Select(s => s.Result.Summary), result.Stages.Select(s => s.Result.Summary));
        Assert.Equal(File.ReadAllBytes(fixture.First.OutputModel!), File.ReadAllBytes(result.OutputModel!));
        var json = JsonNode.Parse(File.ReadAllText(result.Reports[0]))!;
        Assert.All(json["stages"]!.AsArray(), s => Assert.True((bool)s!["cached"]!));
    }

    [Fact]
    public void Changing_only_quantize_options_reruns_only_quantize()
    {
        var reporter = new RecordingReporter();
        var output = fixture.Dir.Dir("out-per-tensor");
        var recipe = RecipeLoader.Load(fixture.WriteRecipe("per-tensor.compress.yaml", perChannel: false));

        var result = CompressionRun.Run(recipe, new PipelineOptions(fixture.Cache, output, reporter));

        Assert.Equal([("distill", true), ("baseline", true), ("quantize", false)], reporter.Stages);
        Assert.Equal([true, false], result.Stages.Select(s => s.Cached));
        Assert.Equal(0, reporter.TrainingSteps);
        Assert.Equal(fixture.First.Stages[0].Evaluation, result.Stages[0].Evaluation);
        Assert.Equal("false", result.Stages[1].Result.Details["per_channel"]);
        Assert.Equal("true", fixture.First.Stages[1].Result.Details["per_channel"]);
        Assert.NotEqual(File.ReadAllBytes(fixture.First.OutputModel!), File.ReadAllBytes(result.OutputModel!));
        Assert.True(result.Stages[1].Evaluation.Accuracy > 0.6);
    }

    [Fact]
    public void A_failed_gate_keeps_the_previous_model_byte_for_byte()
    {
        var output = fixture.Dir.Dir("out-gate");
        var previous = Path.Join(output, PipelineSliceFixture.ModelName);
        byte[] previousBytes = [.. "the last good model"u8];
        File.WriteAllBytes(previous, previousBytes);
        var stamp = new DateTime(2020, 1, 2, 3, 4, 5, DateTimeKind.Utc);
        File.SetLastWriteTimeUtc(previous, stamp);
        var recipe = RecipeLoader.Load(fixture.WriteRecipe("gate.compress.yaml", gates: ["accuracy >= 0.5", "accuracy >= 0.999"]));

        var result = CompressionRun.Run(recipe, new PipelineOptions(fixture.Cache, output, new RecordingReporter()));

        Assert.False(result.GatesPassed);
        Assert.Null(result.OutputModel);
        Assert.Equal([true, false], result.Gates.Select(g => g.Passed));
        Assert.Equal(previousBytes, File.ReadAllBytes(previous));
        Assert.Equal(stamp, File.GetLastWriteTimeUtc(previous));
        Assert.DoesNotContain(Directory.GetFiles(output), f => f.EndsWith(".tmp", StringComparison.Ordinal));

        var failure = Assert.Single(GateEvaluator.Failures(recipe.Path, result.Gates));
        Assert.Equal(DiagnosticCodes.GateFailed, failure.Code);
        Assert.Equal(15, failure.Line);
        Assert.Contains("accuracy >= 0.999", failure.Message, StringComparison.Ordinal);

        var json = JsonNode.Parse(File.ReadAllText(Path.Join(output, "slice.student.report.json")))!;
        Assert.False((bool)json["passed"]!);
        Assert.Null(json["output_model"]);
        Assert.Contains("GATE FAILED", File.ReadAllText(Path.Join(output, "slice.student.report.md")), StringComparison.Ordinal);
    }

    [Fact]
    public void A_label_outside_the_teachers_classes_is_MC2020()
    {
        var labels = IdxReader.Read(fixture.Dir.File("data/test-labels.idx"));
        var bad = (byte[])labels.Data.Clone();
        bad[5] = 10;
        Idx.Write(fixture.Dir.File("data/test-labels-bad.idx"), labels.Dimensions, bad);
        var recipe = RecipeLoader.Load(fixture.WriteRecipe("bad-labels.compress.yaml", testLabels: "data/test-labels-bad.idx"));
        var reporter = new RecordingReporter();

        var e = Assert.Throws<CompressionException>(() =>
            CompressionRun.Run(recipe, new PipelineOptions(fixture.Cache, fixture.Dir.Dir("out-bad-labels"), reporter)));

        var d = Assert.Single(e.Diagnostics);
        Assert.Equal(DiagnosticCodes.DataSchemaMismatch, d.Code);
        Assert.Equal(fixture.Dir.File("data/test-labels-bad.idx"), d.File);
        Assert.Contains("Label 10 of sample 5", d.Message, StringComparison.Ordinal);
        Assert.Empty(reporter.Stages);
        Assert.Empty(Directory.GetFiles(fixture.Dir.File("out-bad-labels"), "*.onnx"));
    }

    [Fact]
    public void A_built_in_cnn_student_is_distilled_through_the_same_path()
    {
        var recipe = RecipeLoader.Load(fixture.WriteRecipe(
            "cnn.compress.yaml",
            student: "architecture: cnn, channels: [8, 16], batch_norm: true, head: flatten",
            gates: ["accuracy >= 0.5"],
            epochs: 1));

        var result = CompressionRun.Run(recipe, new PipelineOptions(fixture.Cache, fixture.Dir.Dir("out-cnn"), new RecordingReporter()));

        Assert.True(result.GatesPassed, string.Join("; ", result.Gates.Select(g => g.Message)));
        var distilled = OnnxModelFile.Load(Path.Combine(fixture.Dir.File("out-cnn"), PipelineSliceFixture.ModelName));
        Assert.Contains(distilled.Graph.Node, n => n.OpType == "Conv");
        Assert.Contains(distilled.Graph.Node, n => n.OpType == "MatMulInteger");
    }

    [Fact]
    public void A_model_exported_by_pytorch_is_fine_tuned_and_its_accuracy_rises()
    {
        // A randomly initialised PyTorch CNN (Conv-BN-ReLU-MaxPool, Conv-BN-ReLU-AvgPool, Linear; torch.onnx.export
        // at opset 17): the teacher row measures it as exported, the finetune stage trains it on the labels.
        var exported = Path.Join(Repo.Root, "tests", "fixtures", "pytorch", "cnn_opset17.onnx");
        var recipe = RecipeLoader.Load(fixture.WriteRecipe(
            "finetune.compress.yaml",
            teacher: exported,
            student: $"model: {exported}",
            stages: ["finetune: { epochs: 3, learning_rate: 3e-3, batch_size: 32 }"],
            gates: ["accuracy >= teacher.accuracy + 0.3"]));

        var result = CompressionRun.Run(recipe, new PipelineOptions(fixture.Cache, fixture.Dir.Dir("out-finetune"), new RecordingReporter()));

        Assert.InRange(result.Teacher!.Accuracy, 0, 0.3);
        var finetuned = Assert.Single(result.Stages);
        Assert.Equal("finetune", finetuned.Result.Stage);
        Assert.True(finetuned.Evaluation.Accuracy > 0.65, $"accuracy after fine-tuning: {finetuned.Evaluation.Accuracy}");
        Assert.True(result.GatesPassed, string.Join("; ", result.Gates.Select(g => g.Message)));
        // The written-back file is the exported graph with new weights: same nodes, opsets and initializer names.
        var before = OnnxModelFile.Load(exported);
        var after = OnnxModelFile.Load(result.OutputModel!);
        Assert.Equal(before.Graph.Node.Select(n => (n.Name, n.OpType)), after.Graph.Node.Select(n => (n.Name, n.OpType)));
        Assert.Equal(before.OpsetImport, after.OpsetImport);
        Assert.Equal(before.Graph.Initializer.Select(t => t.Name), after.Graph.Initializer.Select(t => t.Name));
    }

    [Fact]
    public void A_sweep_caches_each_trial_and_continues_with_the_best_by_validation_accuracy()
    {
        const string Common = "epochs: 1, batch_size: 32, learning_rate: 3e-3, validation_fraction: 0.2";
        var recipe = RecipeLoader.Load(fixture.WriteRecipe(
            "sweep.compress.yaml", stages: [$"sweep: {{ {Common}, alpha: [0.5, 0.9], temperature: [4] }}"], gates: ["accuracy >= 0.3"]));
        var reporter = new RecordingReporter();

        var result = CompressionRun.Run(recipe, new PipelineOptions(fixture.Cache, fixture.Dir.Dir("out-sweep"), reporter));

        var sweep = Assert.Single(result.Stages).Result;
        Assert.Equal([(1, 0.5), (2, 0.9)], sweep.Sweep!.Select(t => (t.Trial, t.Alpha)));
        var best = Assert.Single(sweep.Sweep!, t => t.Best);
        Assert.Equal(sweep.Sweep!.Max(t => t.ValidationAccuracy), best.ValidationAccuracy);
        Assert.Equal(best.ValidationAccuracy.ToString("0.0000", CultureInfo.InvariantCulture), sweep.Details["best_validation_accuracy"]);
        Assert.Equal([("sweep", false), ("distill", false), ("distill", false)], reporter.Stages);

        // A grid that grows by one point runs only the new trial.
        var wider = RecipeLoader.Load(fixture.WriteRecipe(
            "sweep-wider.compress.yaml", stages: [$"sweep: {{ {Common}, alpha: [0.5, 0.9, 1.0], temperature: [4] }}"], gates: ["accuracy >= 0.3"]));
        reporter = new RecordingReporter();
        result = CompressionRun.Run(wider, new PipelineOptions(fixture.Cache, fixture.Dir.Dir("out-sweep-wider"), reporter));
        Assert.Equal([("sweep", false), ("distill", true), ("distill", true), ("distill", false)], reporter.Stages);
        Assert.Equal(3, result.Stages[0].Result.Sweep!.Count);
    }

    [Fact]
    public void Two_teachers_soft_targets_are_averaged_and_each_is_run_once()
    {
        var second = Path.Join(Repo.Root, "tests", "fixtures", "pytorch", "cnn_opset17.onnx");
        var path = fixture.WriteRecipe(
            "two-teachers.compress.yaml",
            stages: ["distill: { epochs: 1, alpha: 1, temperature: 2, batch_size: 32, learning_rate: 3e-3 }"],
            gates: ["accuracy >= 0.3"]);
        File.WriteAllText(path, File.ReadAllText(path).Replace($"teacher: {Repo.Teacher}", $"teacher: [ {{ model: {Repo.Teacher}, weight: 3 }}, {second} ]", StringComparison.Ordinal));
        var reporter = new RecordingReporter();

        var result = CompressionRun.Run(RecipeLoader.Load(path), new PipelineOptions(fixture.Cache, fixture.Dir.Dir("out-two-teachers"), reporter));

        Assert.True(result.GatesPassed, string.Join("; ", result.Gates.Select(g => g.Message)));
        // The sample teacher's logits are cached from the first run; only the second teacher runs.
        Assert.Single(reporter.Infos, i => i.StartsWith("Running the teacher on 1000 training samples", StringComparison.Ordinal));
        Assert.Equal(Repo.Teacher, result.Recipe.Teacher);
    }

    [Fact]
    public void An_unlabelled_pool_taught_by_the_teacher_beats_the_few_labels_alone()
    {
        // The seeds' "synthetic data" case on the sample's 6000 training images: 1000 keep their labels, 5000 are an
        // unlabelled pool the teacher labels softly. The labels-only twin sees the 1000, for as many optimizer steps
        // as the student took over all 6000 (cycling over its labels), so the gain is the teacher's, not extra steps.
        var path = Path.Join(fixture.Dir.Path, "pool.compress.yaml");
        File.WriteAllText(path, $"""
            data:
              format: idx
              train: {"{"} inputs: {Repo.SampleData("train-images-idx3-ubyte.gz")}, labels: {Repo.SampleData("train-labels-idx1-ubyte.gz")} {"}"}
              test: {"{"} inputs: {fixture.Dir.File("data/test-images.idx")}, labels: {fixture.Dir.File("data/test-labels.idx")} {"}"}
              split: {"{"} unlabelled: 5000, seed: 7 {"}"}
              scale: 0.00392156862745098
            teacher: {Repo.Teacher}
            student: {"{"} architecture: mlp, hidden: [64] {"}"}
            stages:
              - distill: {"{"} epochs: 3, alpha: 0.9, temperature: 4, learning_rate: 3e-3, batch_size: 64 {"}"}
            outputs: {"{"} model: pool.student.onnx, report: [json, md] {"}"}
            """);
        var reporter = new RecordingReporter();

        var result = CompressionRun.Run(RecipeLoader.Load(path), new PipelineOptions(fixture.Cache, fixture.Dir.Dir("out-pool"), reporter));
        var report = JsonNode.Parse(File.ReadAllText(Path.Join(fixture.Dir.File("out-pool"), "pool.student.report.json")))!["stages"]![0]!;

        var distilled = Assert.Single(result.Stages);
        Assert.Equal("6000", distilled.Result.Details["train_samples"]);
        Assert.Equal("5000", distilled.Result.Details["unlabelled_samples"]);
        Assert.Contains(reporter.Infos, i => i.StartsWith("Running the teacher on 5000 unlabelled samples", StringComparison.Ordinal));
        // 3 epochs of ceil(6000 / 64) = 94 steps; one pass over the 1000 labels would be 16 steps an epoch.
        Assert.Equal("282", distilled.Result.Details["steps"]);
        Assert.Equal("282", (string?)report["baseline_details"]?["steps"]);
        Assert.Contains(reporter.Infos, i => i.Contains("the labels-only twin reaches", StringComparison.Ordinal) && i.Contains("(both 282 optimizer steps)", StringComparison.Ordinal));
        Assert.Contains("after 282 optimizer steps (as many as the student)", File.ReadAllText(Path.Join(fixture.Dir.File("out-pool"), "pool.student.report.md")), StringComparison.Ordinal);
        Assert.True(
            distilled.GainFromDistillation > 0.03,
            $"distilled over the pool {distilled.Evaluation.Accuracy:P2}, labels-only twin on 1000 labels {distilled.Baseline!.Accuracy:P2}");
    }

    [Fact]
    public void Early_stopping_uses_the_recipes_own_validation_split()
    {
        // No validation_fraction: the data's validation split is the validation set (the stage used to refuse early stopping without validation_fraction).
        var path = Path.Join(fixture.Dir.Path, "early.compress.yaml");
        File.WriteAllText(path, $"""
            data:
              format: idx
              train: {"{"} inputs: {Repo.SampleData("train-images-idx3-ubyte.gz")}, labels: {Repo.SampleData("train-labels-idx1-ubyte.gz")} {"}"}
              test: {"{"} inputs: {fixture.Dir.File("data/test-images.idx")}, labels: {fixture.Dir.File("data/test-labels.idx")} {"}"}
              split: {"{"} validation: 600, seed: 7 {"}"}
              scale: 0.00392156862745098
            teacher: {Repo.Teacher}
            student: {"{"} architecture: mlp, hidden: [16] {"}"}
            stages:
              - distill: {"{"} epochs: 2, early_stopping_patience: 1, batch_size: 128 {"}"}
            outputs: {"{"} model: early.student.onnx {"}"}
            """);

        var result = CompressionRun.Run(RecipeLoader.Load(path), new PipelineOptions(fixture.Cache, fixture.Dir.Dir("out-early"), new RecordingReporter()));

        var distilled = Assert.Single(result.Stages);
        Assert.Equal("5400", distilled.Result.Details["train_samples"]);
        Assert.NotEqual(string.Empty, distilled.Result.Details["best_validation_accuracy"]);
    }

    [Fact]
    public void A_baseline_accepted_from_a_run_is_what_baseline_gates_compare_with()
    {
        var recipe = RecipeLoader.Load(fixture.WriteRecipe(
            "baseline.compress.yaml",
            gates: ["accuracy >= baseline.accuracy", "{ gate: accuracy >= baseline.accuracy + 0.05, significant: true }", "size_mb <= baseline.size_mb"]));
        var reporter = new RecordingReporter();

        // No baseline yet: the gates are skipped, with a warning that says how to make one.
        var first = CompressionRun.Run(recipe, new PipelineOptions(fixture.Cache, fixture.Dir.Dir("out-baseline-1"), reporter));
        Assert.All(first.Gates, g => Assert.True(g.Passed && g.Skipped));
        Assert.Contains(reporter.Diagnostics, d => d.Code == DiagnosticCodes.BaselineMissing && d.Message.Contains("baseline accept", StringComparison.Ordinal));

        // What 'dotnet compress baseline accept' writes.
        new BaselineFile(BaselineFile.CurrentSchemaVersion, DateTimeOffset.UtcNow, first.DataHash, first.Stages[^1].Evaluation).Save(recipe.Baseline);
        var second = CompressionRun.Run(recipe, new PipelineOptions(fixture.Cache, fixture.Dir.Dir("out-baseline-2"), new RecordingReporter()));

        Assert.All(second.Gates, g => Assert.False(g.Skipped));
        Assert.True(second.GatesPassed, string.Join("; ", second.Gates.Select(g => g.Message)));
        // The same model: 5 points short of 'baseline + 0.05', but no discordant sample, so not significantly worse.
        Assert.Equal(1.0, second.Gates[1].PValue);
        Assert.Equal(first.Stages[^1].Evaluation.Accuracy, second.Gates[0].Threshold);
    }

    [Fact]
    public void A_token_architecture_on_image_data_is_MC1003_at_the_student_line()
    {
        var recipe = RecipeLoader.Load(fixture.WriteRecipe("tokens.compress.yaml", student: "architecture: transformer"));

        var e = Assert.Throws<CompressionException>(() =>
            CompressionRun.Run(recipe, new PipelineOptions(fixture.Cache, fixture.Dir.Dir("out-tokens"), new RecordingReporter())));

        Assert.All(e.Diagnostics, d => Assert.Equal(DiagnosticCodes.RecipeInvalidValue, d.Code));
        Assert.All(e.Diagnostics, d => Assert.Equal((recipe.Path, 8), (d.File!, d.Line!.Value)));
        Assert.Contains(e.Diagnostics, d => d.Message.Contains("transformer", StringComparison.Ordinal));
    }

    private static void AssertEvaluation(ModelEvaluation expected, JsonNode actual)
    {
        Assert.Equal(expected.Accuracy, (double)actual["accuracy"]!, Tolerance);
        Assert.Equal(expected.SizeBytes, (long)actual["size_bytes"]!);
        Assert.Equal(expected.SizeMb, (double)actual["size_mb"]!, Tolerance);
        Assert.Equal(expected.Parameters, (long)actual["parameters"]!);
        Assert.Equal(expected.Samples, (int)actual["samples"]!);
    }
}
