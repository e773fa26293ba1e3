using System.Text.Json.Nodes;
using ModelCompression.Data;
using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;
using ModelCompression.Inference;
using ModelCompression.Pipeline;
using ModelCompression.Recipes;
using ModelCompression.Reports;
using ModelCompression.Runs;

namespace ModelCompression.Core.Tests.Pipeline;

/// <summary>
/// Recipes without a teacher (the issue's "finetune: labels only, also how a teacher is made from a built-in
/// architecture") on a small slice of the Fashion-MNIST sample: 500 training and 200 test images.
/// </summary>
[Trait("Category", "Slow")] // trains students through whole pipeline runs
public sealed class NoTeacherPipelineTests : IDisposable
{
    private const int TrainSamples = 500;
    private const int TestSamples = 200;

    private readonly TempDir _dir = new();

    public NoTeacherPipelineTests()
    {
        Slice("train-images-idx3-ubyte.gz", "train-images.idx", TrainSamples);
        Slice("t10k-images-idx3-ubyte.gz", "test-images.idx", TestSamples);
        Slice("train-labels-idx1-ubyte.gz", "train-labels.idx", TrainSamples);
        Slice("t10k-labels-idx1-ubyte.gz", "test-labels.idx", TestSamples);
    }

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void A_finetune_only_recipe_without_a_teacher_trains_a_built_in_mlp_end_to_end()
    {
        var recipe = RecipeLoader.Load(WriteRecipe(
            "labels-only.compress.yaml",
            stages: ["finetune: { epochs: 1, batch_size: 16, learning_rate: 3e-3 }", "evaluate: { batch_size: 100, measure_latency: false }"],
            gates: ["accuracy >= 0.5", "size_mb <= 0.5"],
            reports: "[json, md, html]"));
        var reporter = new RecordingReporter();
        var output = _dir.Dir("out");

        var result = CompressionRun.Run(recipe, new PipelineOptions(_dir.Dir("cache"), output, reporter));

        Assert.Null(result.Teacher);
        Assert.True(result.GatesPassed, string.Join("; ", result.Gates.Select(g => g.Message)));
        // No teacher and no labels-only twin: the finetune stage is the only training.
        Assert.Equal([("finetune", false)], reporter.Stages);
        Assert.Equal((TrainSamples + 15) / 16, reporter.TrainingSteps);
        Assert.Contains("No teacher: 10 classes, as the data says; the evaluations measure no agreement or KL", reporter.Infos);
        Assert.DoesNotContain(reporter.Infos, i => i.StartsWith("Running the teacher", StringComparison.Ordinal) || i.StartsWith("Teacher:", StringComparison.Ordinal));

        var finetuned = Assert.Single(result.Stages);
        Assert.Equal("finetune", finetuned.Result.Stage);
        Assert.Null(finetuned.Baseline);
        Assert.Equal(TestSamples, finetuned.Evaluation.Samples);
        Assert.Null(finetuned.Evaluation.AgreementWithTeacher);
        Assert.Null(finetuned.Evaluation.KlToTeacher);
        Assert.DoesNotContain("agreement_with_teacher", finetuned.Evaluation.Metrics.Keys);
        Assert.Equal(finetuned.Evaluation.Accuracy, result.Gates[0].Value);
        Assert.Equal(0.5, result.Gates[0].Threshold);
        Assert.Equal(finetuned.Evaluation.SizeMb, result.Gates[1].Value);

        // The model written has the data's 10 classes and scores what the report says.
        Assert.Equal(Path.Join(output, "labels-only.student.onnx"), result.OutputModel);
        using (var runner = new OnnxRunner(result.OutputModel!))
        {
            Assert.Equal(10, runner.OutputWidth);
        }

        var test = IdxReader.LoadLabelled(_dir.File("data/test-images.idx"), _dir.File("data/test-labels.idx"), recipe.Data.Scale);
        var remeasured = ModelEvaluation.Measure("finetune", result.OutputModel!, test, new EvaluateOptions { BatchSize = 100, MeasureLatency = false });
        Assert.Equal(finetuned.Evaluation.Predictions, remeasured.Predictions);

        // report.json says there was no teacher (null, not a made-up row); md and html say so in words.
        var json = JsonNode.Parse(File.ReadAllText(Path.Join(output, "labels-only.student.report.json")))!.AsObject();
        Assert.True(json.ContainsKey("teacher"));
        Assert.Null(json["teacher"]);
        Assert.Equal(finetuned.Evaluation.Accuracy, (double)json["stages"]![0]!["evaluation"]!["accuracy"]!);
        Assert.Null(json["stages"]![0]!["evaluation"]!["agreement_with_teacher"]);
        Assert.Equal(2, json["gates"]!.AsArray().Count);
        var md = File.ReadAllText(Path.Join(output, "labels-only.student.report.md"));
        Assert.Contains(MarkdownReport.NoTeacher, md, StringComparison.Ordinal);
        Assert.DoesNotContain("| teacher |", md, StringComparison.Ordinal);
        Assert.Contains("| finetune |", md, StringComparison.Ordinal);
        var html = HtmlReport.Render(json);
        Assert.Equal(html, File.ReadAllText(Path.Join(output, "labels-only.student.report.html")));
        Assert.Contains(MarkdownReport.NoTeacher, html, StringComparison.Ordinal);
        Assert.DoesNotContain("point teacher", html, StringComparison.Ordinal);
        Assert.Contains("No teacher; stages in pipeline order", html, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(3, null, 3)]
    [InlineData(10, "[c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11]", 12)]
    public void Without_a_teacher_the_classes_come_from_the_data(int labelModulo, string? classes, int expectedClasses)
    {
        // Labels folded into fewer classes (largest label + 1), or the recipe's data.classes listing more than the data has.
        Relabel("train-labels.idx", "train-labels-folded.idx", labelModulo);
        Relabel("test-labels.idx", "test-labels-folded.idx", labelModulo);
        var recipe = RecipeLoader.Load(WriteRecipe(
            "folded.compress.yaml",
            stages: ["finetune: { epochs: 1, batch_size: 64, learning_rate: 3e-3 }", "evaluate: { batch_size: 100, measure_latency: false }"],
            labels: "-folded",
            dataClasses: classes));
        var reporter = new RecordingReporter();

        var result = CompressionRun.Run(recipe, new PipelineOptions(_dir.Dir("cache"), _dir.Dir("out"), reporter));

        Assert.Contains($"No teacher: {expectedClasses} classes, as the data says; the evaluations measure no agreement or KL", reporter.Infos);
        using var runner = new OnnxRunner(result.OutputModel!);
        Assert.Equal(expectedClasses, runner.OutputWidth);
        Assert.InRange(result.Stages[0].Evaluation.Predictions!.Max(), 0, expectedClasses - 1);

        // data.classes names the classes of report.json's tables; plain numeric labels leave them numbered.
        string[]? names = classes is null ? null : [.. Enumerable.Range(0, expectedClasses).Select(i => $"c{i}")];
        Assert.Equal(names, result.ClassNames);
        var json = JsonNode.Parse(File.ReadAllText(Path.Join(_dir.Dir("out"), "folded.student.report.json")))!;
        Assert.Equal(names, json["class_names"]?.AsArray().Select(n => (string)n!));
        Assert.Equal(names?[^1], (string?)json["stages"]![0]!["evaluation"]!["per_class"]![expectedClasses - 1]!["name"]);
    }

    [Fact]
    public void Without_a_teacher_a_student_file_says_the_classes_and_a_label_beyond_them_is_MC2020()
    {
        // A PyTorch-exported CNN with 10 outputs: a test label of 10 is outside them, found before any training.
        var labels = IdxReader.Read(_dir.File("data/test-labels.idx"));
        var bad = (byte[])labels.Data.Clone();
        bad[7] = 10;
        Idx.Write(_dir.File("data/test-labels-bad.idx"), labels.Dimensions, bad);
        var student = Path.Join(Repo.Root, "tests", "fixtures", "pytorch", "cnn_opset17.onnx");
        var recipe = RecipeLoader.Load(WriteRecipe(
            "bad-label.compress.yaml",
            stages: ["finetune: { epochs: 1 }"],
            student: $"model: {student}",
            testLabels: "data/test-labels-bad.idx"));
        var reporter = new RecordingReporter();

        var e = Assert.Throws<CompressionException>(() =>
            CompressionRun.Run(recipe, new PipelineOptions(_dir.Dir("cache"), _dir.Dir("out"), reporter)));

        var d = Assert.Single(e.Diagnostics);
        Assert.Equal(DiagnosticCodes.DataSchemaMismatch, d.Code);
        Assert.Equal(_dir.File("data/test-labels-bad.idx"), d.File);
        Assert.Contains("outside the student's 10 classes", d.Message, StringComparison.Ordinal);
        Assert.Contains("Label 10 of sample 7", d.Message, StringComparison.Ordinal);
        Assert.Empty(reporter.Stages);
    }

    /// <summary>A recipe over the slice with no 'teacher:'.</summary>
    private string WriteRecipe(
        string name,
        string[] stages,
        string[]? gates = null,
        string student = "architecture: mlp, hidden: [32]",
        string labels = "",
        string? testLabels = null,
        string? dataClasses = null,
        string reports = "[json, md]")
    {
        var text = $$"""
            data:
              format: idx
              train: { inputs: data/train-images.idx, labels: data/train-labels{{labels}}.idx }
              test:  { inputs: data/test-images.idx, labels: {{testLabels ?? $"data/test-labels{labels}.idx"}} }
              scale: 0.00392156862745098
            {{(dataClasses is null ? string.Empty : $"  classes: {dataClasses}\n")}}student: { {{student}} }
            stages:
            {{string.Concat(stages.Select(s => $"  - {s}\n"))}}{{(gates is null ? string.Empty : "gates:\n" + string.Concat(gates.Select(g => $"  - {g}\n")))}}outputs: { model: {{Path.GetFileNameWithoutExtension(name).Replace(".compress", string.Empty, StringComparison.Ordinal)}}.student.onnx, report: {{reports}} }
            """;
        return _dir.Write(name, text);
    }

    private void Slice(string source, string target, int count)
    {
        var array = IdxReader.Read(Repo.SampleData(source));
        var perItem = array.Data.Length / array.Dimensions[0];
        Directory.CreateDirectory(_dir.File("data"));
        Idx.Write(_dir.File(Path.Join("data", target)), [count, .. array.Dimensions[1..]], array.Data.AsSpan(0, count * perItem));
    }

    private void Relabel(string source, string target, int modulo)
    {
        var labels = IdxReader.Read(_dir.File(Path.Join("data", source)));
        Idx.Write(_dir.File(Path.Join("data", target)), labels.Dimensions, [.. labels.Data.Select(l => (byte)(l % modulo))]);
    }
}
