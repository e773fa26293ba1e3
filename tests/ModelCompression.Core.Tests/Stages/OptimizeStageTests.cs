using System.Globalization;
using System.Text.Json.Nodes;
using ModelCompression.Core.Tests.Pipeline;
using ModelCompression.Inference;
using ModelCompression.Onnx;
using ModelCompression.Pipeline;
using ModelCompression.Recipes;
using ModelCompression.Runs;

namespace ModelCompression.Core.Tests.Stages;

/// <summary>
/// The optimize stage on a real PyTorch export: the opset-17 CNN fixture keeps its two BatchNormalization nodes (it
/// was exported with TrainingMode.PRESERVE), which ONNX Runtime's basic optimizations fold into the Convs before them.
/// </summary>
public sealed class OptimizeStageTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData("basic")]
    [InlineData("extended")]
    public void The_optimized_cnn_folds_its_batch_norms_and_predicts_as_the_export_did(string level)
    {
        var student = Path.Join(Repo.Root, "tests", "fixtures", "pytorch", "cnn_opset17.onnx");
        var recipe = RecipeLoader.Load(_dir.Write("optimize.compress.yaml", $$"""
            task: classification
            data:
              format: idx
              train: { inputs: {{Repo.SampleData("train-images-idx3-ubyte.gz")}}, labels: {{Repo.SampleData("train-labels-idx1-ubyte.gz")}} }
              test:  { inputs: {{Repo.SampleData("t10k-images-idx3-ubyte.gz")}}, labels: {{Repo.SampleData("t10k-labels-idx1-ubyte.gz")}} }
              scale: 0.00392156862745098
            student: { model: {{student}} }
            stages:
              - optimize: { level: {{level}}, check_samples: 128 }
              - evaluate: { measure_latency: false }
            outputs: { model: optimized.onnx, report: [json] }
            """));

        var result = CompressionRun.Run(recipe, new PipelineOptions(_dir.Dir("cache"), _dir.Dir("out"), new RecordingReporter()));

        var stage = Assert.Single(result.Stages);
        var details = stage.Result.Details;
        Assert.Contains("BatchNormalization -2", details["op_types_changed"], StringComparison.Ordinal);
        Assert.True(int.Parse(details["nodes_after"], CultureInfo.InvariantCulture) < int.Parse(details["nodes_before"], CultureInfo.InvariantCulture));
        Assert.Equal("128", details["check_samples"]);
        Assert.InRange(double.Parse(details["max_difference"], CultureInfo.InvariantCulture), 0, 1e-4);
        Assert.DoesNotContain(OnnxModelFile.Load(result.OutputModel!).Graph.Node, n => n.OpType == "BatchNormalization");

        // The optimized model predicts every test image as the PyTorch export does.
        using var data = ModelCompression.Data.DataLoader.Load(recipe.Data);
        using var original = new OnnxRunner(student, threads: 1);
        var outputs = original.Run(data.Test, 100);
        var expected = Enumerable.Range(0, data.Test.Count).Select(i => ArgMax(outputs.AsSpan(i * 10, 10))).ToArray();
        Assert.Equal(expected, stage.Evaluation.Predictions!);

        // report.json shows the stage as every stage is shown.
        var json = JsonNode.Parse(File.ReadAllText(Path.Join(_dir.Dir("out"), "optimized.report.json")))!;
        Assert.Equal("optimize", (string?)json["stages"]![0]!["stage"]);
        Assert.Equal(level, (string?)json["stages"]![0]!["details"]!["level"]);
    }

    [Fact]
    public void An_optimized_model_whose_outputs_moved_more_than_max_difference_is_rejected_and_nothing_is_written()
    {
        // Folding BatchNormalization into the Conv weights rounds them differently, so the outputs move by ~1e-7:
        // more than max_difference 0 allows. The comparison runs both graphs unoptimized; run as ONNX Runtime runs
        // them by default, the input would be folded the same way and the check could never fail.
        var recipe = RecipeLoader.Load(_dir.Write("strict.compress.yaml", Recipe("optimize: { max_difference: 0, check_samples: 64 }")));

        var e = Assert.Throws<Diagnostics.CompressionException>(() => CompressionRun.Run(recipe, new PipelineOptions(_dir.Dir("cache"), _dir.Dir("out"), new RecordingReporter())));

        Assert.Equal(Diagnostics.DiagnosticCodes.TransformedModelRejected, e.Code);
        Assert.Contains("the optimized model was not accepted: its outputs differ from the input model's by", e.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Join(_dir.Dir("out"), "strict.onnx")));
    }

    [Fact]
    public void The_catalog_lists_optimize_for_the_loader_and_the_schema()
    {
        var error = Assert.Throws<Diagnostics.CompressionException>(() => RecipeLoader.Load(_dir.Write("bad.compress.yaml", $$"""
            data:
              format: idx
              train: { inputs: {{Repo.SampleData("train-images-idx3-ubyte.gz")}}, labels: {{Repo.SampleData("train-labels-idx1-ubyte.gz")}} }
              test:  { inputs: {{Repo.SampleData("t10k-images-idx3-ubyte.gz")}}, labels: {{Repo.SampleData("t10k-labels-idx1-ubyte.gz")}} }
            student: { model: {{Path.Join(Repo.Root, "tests", "fixtures", "pytorch", "cnn_opset17.onnx")}} }
            stages:
              - optimize: { level: everything }
            outputs: { model: o.onnx }
            """)));

        Assert.Equal(7, Assert.Single(error.Diagnostics).Line);
        Assert.Contains("level", error.Diagnostics[0].Message, StringComparison.Ordinal);
        Assert.Contains("\"optimize\"", RecipeSchema.JsonSchema(), StringComparison.Ordinal);
    }

    private static string Recipe(string stage) => $$"""
        data:
          format: idx
          train: { inputs: {{Repo.SampleData("train-images-idx3-ubyte.gz")}}, labels: {{Repo.SampleData("train-labels-idx1-ubyte.gz")}} }
          test:  { inputs: {{Repo.SampleData("t10k-images-idx3-ubyte.gz")}}, labels: {{Repo.SampleData("t10k-labels-idx1-ubyte.gz")}} }
          scale: 0.00392156862745098
        student: { model: {{Path.Join(Repo.Root, "tests", "fixtures", "pytorch", "cnn_opset17.onnx")}} }
        stages:
          - {{stage}}
        outputs: { model: strict.onnx }
        """;

    private static int ArgMax(ReadOnlySpan<float> row)
    {
        var best = 0;
        for (var i = 1; i < row.Length; i++)
        {
            if (row[i] > row[best])
            {
                best = i;
            }
        }

        return best;
    }
}
