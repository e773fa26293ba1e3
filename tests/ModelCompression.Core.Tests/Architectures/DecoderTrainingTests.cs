using System.Diagnostics;
using System.Text;
using ModelCompression.Architectures;
using ModelCompression.Onnx;
using ModelCompression.Torch.Graph;
using ModelCompression.Torch.Native;
using TorchSharp;
using Xunit.Abstractions;
using static ModelCompression.Core.Tests.Architectures.DecoderTestSupport;
using static TorchSharp.torch;

namespace ModelCompression.Core.Tests.Architectures;

/// <summary>
/// The decoder trains through the trainable graph like every other student: a minimal next-token loop (the real sequence
/// trainer is the generation task's) on a repeating byte text, then the written-back graph predicts the text in ONNX Runtime.
/// </summary>
public sealed class DecoderTrainingTests(ITestOutputHelper output)
{
    private const string Text = "the cat sat on the mat. ";

    [Theory]
    [InlineData(PositionEncoding.Learned)]
    [InlineData(PositionEncoding.Rope)]
    public void A_few_hundred_steps_learn_a_repeating_byte_text(PositionEncoding positions)
    {
        TorchNativeLoader.EnsureLoaded();
        const int Window = 24, Batch = 8, Steps = 200;
        var bytes = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat(Text, 12))).Select(b => (long)b).ToArray();
        var options = new DecoderOptions { VocabSize = 128, MaxLength = 32, Width = 32, Heads = 2, Layers = 2, FeedForward = 64, Positions = positions, Dropout = 0, Seed = 2 };
        using var graph = TrainableGraph.Import(DecoderBuilder.Build(options, NoData));
        using var optimizer = torch.optim.Adam(graph.parameters(), 3e-3);
        using var positionIds = torch.arange(Window, ScalarType.Int64).expand(Batch, Window).contiguous();
        using var mask = torch.ones(Batch, Window, ScalarType.Int64);
        var random = new Random(5);
        var losses = new List<double>();
        var clock = Stopwatch.StartNew();
        graph.train();
        for (var step = 0; step < Steps; step++)
        {
            using var scope = torch.NewDisposeScope();
            var starts = Enumerable.Range(0, Batch).Select(_ => random.Next(bytes.Length - Window - 1)).ToArray();
            var ids = torch.tensor(starts.SelectMany(s => bytes[s..(s + Window)]).ToArray(), [Batch, Window]);
            var targets = torch.tensor(starts.SelectMany(s => bytes[(s + 1)..(s + Window + 1)]).ToArray(), [Batch * Window]);
            var logits = graph.Forward(new Dictionary<string, Tensor>
            {
                [DecoderConvention.InputIds] = ids,
                [DecoderConvention.AttentionMask] = mask,
                [DecoderConvention.PositionIds] = positionIds,
            })[DecoderConvention.Logits];
            var loss = nn.functional.cross_entropy(logits.reshape(-1, 128), targets);
            optimizer.zero_grad();
            loss.backward();
            optimizer.step();
            losses.Add(loss.item<float>());
        }

        var first = losses.Take(5).Average();
        var last = losses.TakeLast(5).Average();
        output.WriteLine($"{positions}: loss {first:F3} -> {last:F3} in {Steps} steps, {clock.Elapsed.TotalSeconds:F1} s");
        // From about ln 128 = 4.85 (uniform) to far below the text's unigram entropy (about 2.9 nats): the model uses context.
        Assert.InRange(first, 4.0, 5.5);
        Assert.True(last < 0.5, $"loss {first:F3} -> {last:F3}");

        // The written-back graph, in ONNX Runtime with its cache: greedy decoding continues the text (within the 24
        // positions it was trained on; "on the " needs the context to say "mat" rather than "cat").
        var model = graph.WriteBack();
        long[] prompt = [.. Encoding.ASCII.GetBytes("the cat s").Select(b => (long)b)];
        var step0 = RunOrt(model, WithPast(Inputs([prompt]), options, batch: 1));
        var generated = new StringBuilder();
        var next = ArgMax(Slice(step0["logits"], 0, ^1..));
        var cache = step0;
        for (var t = prompt.Length; t < prompt.Length + 12; t++)
        {
            generated.Append((char)next);
            cache = RunOrt(model, WithPast(Inputs([[next]], past: t), options, batch: 1, cache));
            next = ArgMax(Slice(cache["logits"], 0, ..));
        }

        Assert.Equal("at on the ma", generated.ToString());
    }

    private static int ArgMax(float[] values) => Array.IndexOf(values, values.Max());
}
