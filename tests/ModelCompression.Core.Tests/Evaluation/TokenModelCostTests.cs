using ModelCompression.Architectures;
using ModelCompression.Data;
using ModelCompression.Evaluation;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Core.Tests.Evaluation;

/// <summary>
/// FLOPs and latency of models that take token ids and an attention mask (two int64 inputs): the built-in
/// text students and the PyTorch-exported transformer, fed real-shaped token data through every input.
/// </summary>
public sealed class TokenModelCostTests : IDisposable
{
    private const int Vocab = 50;
    private const int Classes = 3;

    private static readonly EvaluateOptions Options = new()
    {
        BatchSize = 8,
        LatencyBatchSize = 4,
        LatencyRuns = 6,
        LatencyBatchRuns = 3,
        WarmupRuns = 1,
        Threads = 1,
    };

    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>
    /// One encoder layer of width d, feed-forward f, on s tokens: the Q, K, V and output projections
    /// (4 · 2·s·d·d), the attention scores Q·Kᵀ and the weighted sum of values (2 · 2·s·s·d, whatever the
    /// number of heads: h · s·s·(d/h) each), the two feed-forward layers (2 · 2·s·d·f); then the classifier
    /// (2·d·classes). Embedding lookups, LayerNorm, softmax and pooling are not counted.
    /// </summary>
    private static long TransformerFlops(int width, int feedForward, int layers, int sequence) =>
        (layers * ((4L * 2 * sequence * width * width) + (2L * 2 * sequence * sequence * width) + (2L * 2 * sequence * width * feedForward)))
        + (2L * width * Classes);

    [Theory]
    [InlineData(12, 1)]
    [InlineData(12, 2)]
    [InlineData(7, 2)]
    public void FLOPs_of_a_tiny_transformer_match_the_hand_count_at_the_data_s_sequence_length(int sequence, int layers)
    {
        var model = Transformer(layers);

        var flops = FlopsEstimator.Estimate(model, Tokens(1, sequence));

        // width 16, heads 2, feed-forward 32; at 12 tokens and 1 layer: 24576 + 9216 + 24576 + 96 = 58464.
        Assert.Equal(TransformerFlops(16, 32, layers, sequence), flops);
        if ((sequence, layers) == (12, 1))
        {
            Assert.Equal(58_464, flops);
        }
    }

    [Fact]
    public void A_built_in_transformer_is_evaluated_with_FLOPs_and_latency()
    {
        var path = _dir.File("transformer.onnx");
        OnnxModelFile.Save(Transformer(2), path);

        var evaluation = ModelEvaluation.Measure("distill", path, Tokens(24, 12), Options);

        Assert.Equal(TransformerFlops(16, 32, 2, 12), evaluation.Flops);
        AssertLatency(evaluation);
        Assert.Equal((double)evaluation.Flops!, evaluation.Metrics["flops"]);
        Assert.Equal(evaluation.Latency!.Batch1.P95Ms, evaluation.Metrics["latency_p95_ms"]);
    }

    [Theory]
    [InlineData("text_cnn")]
    [InlineData("embedding_bag")]
    public void The_other_built_in_token_students_get_FLOPs_and_latency(string architecture)
    {
        var path = _dir.File($"{architecture}.onnx");
        OnnxModelFile.Save(ArchitectureRegistry.Build(architecture, null, new ArchitectureInputs([12], Classes, Vocab)), path);

        var evaluation = ModelEvaluation.Measure("distill", path, Tokens(24, 12), Options);

        Assert.True(evaluation.Flops > 0, $"FLOPs {evaluation.Flops}");
        AssertLatency(evaluation);
    }

    [Fact]
    public void The_PyTorch_transformer_counts_its_projections_and_attention_products()
    {
        // make_fixtures.py: nn.TransformerEncoder, d_model 32, 4 heads, feed-forward 64, 2 layers, 16 tokens, 4 classes;
        // mean pooling, then Linear 32 -> 4.
        var path = Path.Join(Repo.Root, "tests", "fixtures", "pytorch", "transformer_opset17.onnx");
        const int S = 16, D = 32, F = 64;
        var layer = (4L * 2 * S * D * D) + (2L * 2 * S * S * D) + (2L * 2 * S * D * F);

        var evaluation = ModelEvaluation.Measure("teacher", path, Tokens(24, S, vocab: 100, classes: 4), Options);

        Assert.Equal((2 * layer) + (2 * D * 4), evaluation.Flops);
        AssertLatency(evaluation);
    }

    private static void AssertLatency(ModelEvaluation evaluation)
    {
        var latency = evaluation.Latency!;
        Assert.Equal((1, 6), (latency.Batch1.BatchSize, latency.Batch1.Runs));
        Assert.Equal((4, 3), (latency.Batch.BatchSize, latency.Batch.Runs));
        foreach (var stats in new[] { latency.Batch1, latency.Batch })
        {
            Assert.True(stats.P50Ms > 0 && stats.P50Ms <= stats.P95Ms && stats.P95Ms <= stats.P99Ms, $"{stats}");
        }

        Assert.NotNull(evaluation.PeakMemoryMb);
    }

    private static ModelProto Transformer(int layers) =>
        ArchitectureRegistry.Build(
            "transformer",
            new TransformerOptions { Width = 16, Heads = 2, Layers = layers, FeedForward = 32, MaxLength = 12, Dropout = 0 },
            new ArchitectureInputs([12], Classes, Vocab));

    /// <summary>Seeded token ids with a padded tail on every other sample, and labels.</summary>
    internal static Dataset Tokens(int count, int sequence, int vocab = Vocab, int classes = Classes)
    {
        var random = new Random(11);
        var ids = new long[count * sequence];
        var mask = new long[count * sequence];
        for (var i = 0; i < count; i++)
        {
            var length = i % 2 == 0 ? sequence : Math.Max(2, sequence / 2);
            for (var t = 0; t < length; t++)
            {
                ids[(i * sequence) + t] = random.Next(1, vocab);
                mask[(i * sequence) + t] = 1;
            }
        }

        long[] labels = [.. Enumerable.Range(0, count).Select(i => (long)(i % classes))];
        return new Dataset(
            [DataTensor.FromInt64("input_ids", ids, [sequence]), DataTensor.FromInt64("attention_mask", mask, [sequence])],
            labels,
            $"{count} token samples");
    }
}
