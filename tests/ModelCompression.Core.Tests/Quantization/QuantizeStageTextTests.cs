using System.Globalization;
using ModelCompression.Core.Tests.Pipeline;
using ModelCompression.Data;
using ModelCompression.Inference;
using ModelCompression.Onnx;
using ModelCompression.Pipeline;
using ModelCompression.Recipes;
using ModelCompression.Runs;
using Xunit.Abstractions;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Core.Tests.Quantization;

/// <summary>
/// A cache folder and the SpamAssassin slice (300 mails) for recipes that fine-tune a small built-in transformer
/// and quantize it: the fine-tuned student is trained once and taken from the stage cache by the other recipes.
/// </summary>
public sealed class TextStudentFixture : IDisposable
{
    public TextStudentFixture()
    {
        File.Copy(Path.Join(Repo.Root, "tests", "fixtures", "text", "spam.jsonl"), Dir.File("spam.jsonl"));
        Cache = Dir.Dir("cache");
    }

    public TempDir Dir { get; } = new();

    public string Cache { get; }

    /// <summary>Runs the recipe: data, student and fine-tuning as <c>TextDistillationTests</c>, then <paramref name="stages"/>.</summary>
    public PipelineResult Run(string name, string stages)
    {
        var recipe = Dir.Write($"{name}.compress.yaml", $$"""
            data:
              file: spam.jsonl
              split: { test: 0.2, seed: 7 }
              text: { tokenizer: cl100k_base, max_length: 64, compact_vocabulary: true }
            student: { architecture: transformer, width: 32, heads: 2, layers: 1, feed_forward: 64, max_length: 64, dropout: 0.1, seed: 3 }
            stages:
              - finetune: { epochs: 12, batch_size: 16, learning_rate: 2e-3, optimizer: adamw, weight_decay: 0.01 }
            {{stages}}
              - evaluate: { latency_runs: 10, latency_batch_runs: 3, latency_batch_size: 16, warmup_runs: 2 }
            outputs: { model: {{name}}.onnx, report: [json] }
            """);
        return CompressionRun.Run(RecipeLoader.Load(recipe), new PipelineOptions(Cache, Dir.Path, new RecordingReporter()));
    }

    public void Dispose() => Dir.Dispose();
}

/// <summary>
/// Dynamic and static int8 quantization of a fine-tuned built-in transformer (token ids and attention mask,
/// both int64) through a recipe, measured on the 60 held-out mails.
/// </summary>
[Trait("Category", "Slow")] // fine-tunes a transformer student
public sealed class QuantizeStageTextTests(TextStudentFixture fixture, ITestOutputHelper output) : IClassFixture<TextStudentFixture>
{
    private const string Quick = "calibration_samples: 100, sensitivity_samples: 140, latency_runs: 5, latency_threads: [1], latency_batch_sizes: [1, 16]";

    private static readonly string[] Layers =
    [
        "embedding",
        "encoder.layer0.attention.query.matmul", "encoder.layer0.attention.key.matmul", "encoder.layer0.attention.value.matmul",
        "encoder.layer0.attention.output.matmul", "encoder.layer0.feed_forward.fc1.matmul", "encoder.layer0.feed_forward.fc2.matmul",
        "classifier",
    ];

    [Theory]
    [InlineData("dynamic")]
    [InlineData("static")]
    public void A_transformer_student_is_quantized_to_under_a_third_of_its_size_within_two_mails_of_its_accuracy(string mode)
    {
        var result = fixture.Run(mode, $"  - quantize: {{ mode: {mode}, per_channel: true, {Quick} }}");

        var (fp32, int8) = (result.Stages[0].Evaluation, result.Stages[1].Evaluation);
        var details = result.Stages[1].Result.Details;
        var ratio = (double)int8.SizeBytes / fp32.SizeBytes;
        output.WriteLine($"{mode}: {fp32.SizeBytes} -> {int8.SizeBytes} bytes ({ratio:0.000}x); test accuracy {fp32.Accuracy:0.0000} -> {int8.Accuracy:0.0000} on {int8.Samples} mails");
        output.WriteLine($"FLOPs {fp32.Flops} / {int8.Flops}; p50 at batch 1 {fp32.Latency?.Batch1.P50Ms:0.###} / {int8.Latency?.Batch1.P50Ms:0.###} ms");
        output.WriteLine(result.Stages[1].Result.Summary);

        // The token table is most of the file: with it int8 the model is about 0.3x.
        Assert.True(ratio < 0.33, $"size ratio {ratio}");
        Assert.Equal(60, int8.Samples);
        Assert.True(fp32.Accuracy >= 0.85, $"fine-tuned student {fp32.Accuracy}");
        // Two of the 60 test mails.
        Assert.True(Math.Abs(fp32.Accuracy - int8.Accuracy) <= 2 / 60.0 + 1e-9, $"{fp32.Accuracy} -> {int8.Accuracy}");

        // Evaluation of token models: FLOPs (unchanged by quantization) and latency are measured.
        Assert.Equal(1_572_992, fp32.Flops);
        Assert.Equal(fp32.Flops, int8.Flops);
        Assert.True(int8.Latency!.Batch1.P50Ms > 0 && fp32.Latency!.Batch.P50Ms > 0);

        // Every layer with a constant weight is quantized and has a sensitivity; the attention products have no weight.
        Assert.Equal(string.Join(", ", Layers), details["quantized"]);
        Assert.Equal(Layers.Order(StringComparer.Ordinal), details["sensitivity_order"].Split(", ").Order(StringComparer.Ordinal));
        Assert.All(Layers, layer => Assert.InRange(double.Parse(details[$"sensitivity.{layer}"], CultureInfo.InvariantCulture), -0.05, 0.05));
        Assert.Equal(
            "encoder.layer0.attention.scores (MatMul): the weight is not a constant; encoder.layer0.attention.context (MatMul): the weight is not a constant",
            details["skipped"]);
        Assert.Contains("8/10 layers quantized, left float: encoder.layer0.attention.scores (MatMul): the weight is not a constant; encoder.layer0.attention.context (MatMul)", result.Stages[1].Result.Summary, StringComparison.Ordinal);
        Assert.Equal("140", details["check_samples"]);
        Assert.True(double.Parse(details["agreement"], CultureInfo.InvariantCulture) >= 0.95, details["agreement"]);
        Assert.Contains(mode == "static" ? "QGemm" : "DynamicQuantizeMatMul", details["onnxruntime_integer_kernels"], StringComparison.Ordinal);

        // The speed comparison ran both models on token batches.
        foreach (var batch in new[] { 1, 16 })
        {
            Assert.True(double.Parse(details[$"latency_ms.float.batch{batch}.threads1"], CultureInfo.InvariantCulture) > 0);
            Assert.True(double.Parse(details[$"latency_ms.quantized.batch{batch}.threads1"], CultureInfo.InvariantCulture) > 0);
        }

        Assert.Contains(details["faster"], new[] { "quantized", "float" });

        // The token ids go straight into the int8 table's Gather; no integer value is quantized.
        var model = OnnxModelFile.Load(result.OutputModel!);
        var embedding = model.Graph.Node.Single(n => n.Name == "embedding");
        Assert.Equal("input_ids", embedding.Input[1]);
        Assert.Equal(DataType.Int8, (DataType)model.Graph.Initializer.Single(i => i.Name == embedding.Input[0]).DataType);
        Assert.DoesNotContain(model.Graph.Initializer, i => i.Name == "embedding.weight");
        Assert.DoesNotContain(model.Graph.Node, n => n.OpType is "QuantizeLinear" or "DynamicQuantizeLinear" && n.Input[0] is "input_ids" or "attention_mask");
        if (mode == "static")
        {
            Assert.Equal("100", details["calibration_samples"]);
            Assert.Contains(model.Graph.Node, n => n.OpType == "QuantizeLinear");
        }

        // The written model runs in ONNX Runtime on the held-out mails and scores what the evaluation reported.
        using var data = DataLoader.Load(result.Recipe.Data);
        using var runner = new OnnxRunner(result.OutputModel!, threads: 1);
        var logits = runner.Run(data.Test, 16);
        Assert.All(logits, v => Assert.True(float.IsFinite(v)));
        var predictions = Enumerable.Range(0, data.Test.Count).Select(i => ModelCompression.Evaluation.ModelEvaluation.ArgMax(logits.AsSpan(i * 2, 2)));
        Assert.Equal(int8.Accuracy, predictions.Where((p, i) => p == data.Test.Labels![i]).Count() / (double)data.Test.Count, 1e-12);
    }

    [Fact]
    public void Float16_halves_a_transformer_student_and_keeps_its_token_inputs_int64()
    {
        var result = fixture.Run("fp16", $"  - quantize: {{ mode: fp16, {Quick} }}");

        var (fp32, fp16) = (result.Stages[0].Evaluation, result.Stages[1].Evaluation);
        var ratio = (double)fp16.SizeBytes / fp32.SizeBytes;
        output.WriteLine($"fp16: {fp32.SizeBytes} -> {fp16.SizeBytes} bytes ({ratio:0.000}x); test accuracy {fp32.Accuracy:0.0000} -> {fp16.Accuracy:0.0000}; {result.Stages[1].Result.Summary}");

        Assert.InRange(ratio, 0.45, 0.55);
        Assert.True(Math.Abs(fp32.Accuracy - fp16.Accuracy) <= 1 / 60.0 + 1e-9, $"{fp32.Accuracy} -> {fp16.Accuracy}");
        Assert.Equal(fp32.Flops, fp16.Flops);
        Assert.NotNull(fp16.Latency);
        var model = OnnxModelFile.Load(result.OutputModel!);
        Assert.All(model.Graph.Input, i => Assert.Equal(DataType.Int64, (DataType)i.Type.TensorType.ElemType));
        Assert.True(double.Parse(result.Stages[1].Result.Details["latency_ms.quantized.batch16.threads1"], CultureInfo.InvariantCulture) > 0);
    }
}
