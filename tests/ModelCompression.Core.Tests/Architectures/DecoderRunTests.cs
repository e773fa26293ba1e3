using ModelCompression.Architectures;
using ModelCompression.Onnx;
using ModelCompression.Torch.Graph;
using ModelCompression.Torch.Native;
using TorchSharp;
using static ModelCompression.Core.Tests.Architectures.DecoderTestSupport;
using static TorchSharp.torch;

namespace ModelCompression.Core.Tests.Architectures;

/// <summary>
/// The decoder runs the same in ONNX Runtime and in the trainable graph, with and without a cache; cached decoding
/// equals one pass; left padding changes nothing for the real tokens; gradients reach every weight.
/// </summary>
public sealed class DecoderRunTests
{
    private const double Tolerance = 1e-4;

    private static readonly long[][] Prompt = [[1, 5, 9, 3], [2, 2, 7, 22]];

    public DecoderRunTests() => TorchNativeLoader.EnsureLoaded();

    [Theory]
    [InlineData(PositionEncoding.Learned)]
    [InlineData(PositionEncoding.Rope)]
    public void Trainable_graph_matches_onnx_runtime_with_an_empty_and_a_filled_past(PositionEncoding positions)
    {
        var options = Tiny(positions);
        var model = DecoderBuilder.Build(options, NoData);
        using var graph = TrainableGraph.Import(model);
        graph.eval();

        var firstInputs = WithPast(Inputs(Prompt), options, batch: 2);
        var first = RunOrt(model, firstInputs);
        AssertSame(first, RunTorch(graph, firstInputs), "past 0");
        // The trainer feeds no cache inputs: the graph fills in an empty past and computes the same.
        AssertSame(first, RunTorch(graph, Inputs(Prompt)), "past not given");

        var nextInputs = WithPast(Inputs([[4, 11], [8, 0]], past: 4), options, batch: 2, first);
        AssertSame(RunOrt(model, nextInputs), RunTorch(graph, nextInputs), "past 4");
    }

    [Theory]
    [InlineData(PositionEncoding.Learned)]
    [InlineData(PositionEncoding.Rope)]
    public void Cached_steps_give_the_logits_of_one_pass(PositionEncoding positions)
    {
        var options = Tiny(positions);
        var model = DecoderBuilder.Build(options, NoData);
        var noCache = DecoderBuilder.Build(options, NoData, withCache: false);
        long[][] sequence = [[1, 5, 9, 3, 14, 6, 0], [2, 2, 7, 22, 19, 4, 4]];

        var whole = RunOrt(model, WithPast(Inputs(sequence), options, batch: 2))["logits"];
        Assert.True(RelativeError((float[])RunOrt(noCache, Inputs(sequence))["logits"].Data, (float[])whole.Data) <= 1e-6, "the graph without cache differs");

        // A prompt of 3, then one token at a time with the presents as the next past.
        var step = RunOrt(model, WithPast(Inputs([.. sequence.Select(r => r[..3])]), options, batch: 2));
        for (var row = 0; row < 2; row++)
        {
            AssertClose(Slice(whole, row, 0..3), Slice(step["logits"], row, ..), $"prompt, row {row}");
        }

        for (var t = 3; t < 7; t++)
        {
            step = RunOrt(model, WithPast(Inputs([.. sequence.Select(r => r[t..(t + 1)])], past: t), options, batch: 2, step));
            for (var row = 0; row < 2; row++)
            {
                AssertClose(Slice(whole, row, t..(t + 1)), Slice(step["logits"], row, ..), $"token {t}, row {row}");
            }
        }

        // Greedy consistency: the next token picked after cached steps is the one picked from the whole pass.
        Assert.Equal(ArgMax(Slice(whole, 0, 6..7)), ArgMax(Slice(step["logits"], 0, ..)));
    }

    [Theory]
    [InlineData(PositionEncoding.Learned)]
    [InlineData(PositionEncoding.Rope)]
    public void Left_padding_leaves_the_real_tokens_logits_unchanged(PositionEncoding positions)
    {
        var options = Tiny(positions);
        var model = DecoderBuilder.Build(options, NoData);
        long[] tokens = [5, 9, 3];

        // Row 0 is left-padded to 5 with a token id that would matter if it were seen; row 1 has no padding.
        var padded = RunOrt(model, WithPast(Inputs([[17, 17, .. tokens], [1, 2, 3, 4, 6]], [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]), options, batch: 2));
        var alone = RunOrt(model, WithPast(Inputs([tokens]), options, batch: 1));

        Assert.All((float[])padded["logits"].Data, v => Assert.True(float.IsFinite(v), "padding made a NaN"));
        AssertClose(Slice(alone["logits"], 0, ..), Slice(padded["logits"], 0, 2..), "prompt");

        // And the next cached step: the mask keeps hiding the padding held in the cache.
        var paddedNext = RunOrt(model, WithPast(Inputs([[8], [8]], [[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]], [[3], [5]], past: 5), options, batch: 2, padded));
        var aloneNext = RunOrt(model, WithPast(Inputs([[8]], past: 3), options, batch: 1, alone));
        AssertClose(Slice(aloneNext["logits"], 0, ..), Slice(paddedNext["logits"], 0, ..), "next step");

        // The trainable graph agrees on the padded batch.
        using var graph = TrainableGraph.Import(model);
        graph.eval();
        AssertClose((float[])padded["logits"].Data, (float[])RunTorch(graph, WithPast(Inputs([[17, 17, .. tokens], [1, 2, 3, 4, 6]], [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]), options, batch: 2))["logits"].Data, "trainable graph");
    }

    [Theory]
    [InlineData(PositionEncoding.Learned)]
    [InlineData(PositionEncoding.Rope)]
    public void Gradients_reach_every_parameter_and_the_tied_table_gets_both(PositionEncoding positions)
    {
        // The tied model's table gradient must be the untied model's embedding gradient plus its head's, transposed:
        // the same weights (the untied head set to the table), the same loss.
        var options = Tiny(positions);
        using var scope = torch.NewDisposeScope();
        using var tied = TrainableGraph.Import(DecoderBuilder.Build(options, NoData));
        using var untied = TrainableGraph.Import(DecoderBuilder.Build(options with { TieEmbeddings = false }, NoData));
        var table = tied.ParametersByName["embedding.weight"];
        using (torch.no_grad())
        {
            untied.ParametersByName["lm_head.weight"].copy_(table.t());
        }

        var tiedGradients = Gradients(tied);
        var untiedGradients = Gradients(untied);

        Assert.All(tiedGradients, g => Assert.True(g.Value.abs().max().item<float>() > 0, $"'{g.Key}' got no gradient"));
        Assert.All(untiedGradients, g => Assert.True(g.Value.abs().max().item<float>() > 0, $"'{g.Key}' got no gradient"));
        var both = untiedGradients["embedding.weight"] + untiedGradients["lm_head.weight"].t();
        Assert.True(torch.allclose(tiedGradients["embedding.weight"], both, rtol: 1e-4, atol: 1e-6), "the tied gradient is not the sum of both uses");
        // Token 12 is not in the input: its row learns through the head alone.
        Assert.True(untiedGradients["embedding.weight"][12].abs().max().item<float>() == 0);
        Assert.True(tiedGradients["embedding.weight"][12].abs().max().item<float>() > 0);
    }

    /// <summary>Next-token cross-entropy of the prompt, backward; the gradient of every parameter by name.</summary>
    private static Dictionary<string, Tensor> Gradients(TrainableGraph graph)
    {
        graph.train();
        var ids = torch.tensor(Prompt.SelectMany(r => r).ToArray(), [2, 4]);
        var logits = graph.Forward(new Dictionary<string, Tensor>
        {
            [DecoderConvention.InputIds] = ids,
            [DecoderConvention.AttentionMask] = torch.ones(2, 4, ScalarType.Int64),
            [DecoderConvention.PositionIds] = torch.arange(4L).expand(2, 4),
        })[DecoderConvention.Logits];
        var loss = nn.functional.cross_entropy(logits[.., ..3].reshape(-1, 23), ids[.., 1..].reshape(-1));
        loss.backward();
        return graph.ParametersByName.ToDictionary(p => p.Key, p => p.Value.grad ?? torch.zeros_like(p.Value));
    }

    private static void AssertSame(Dictionary<string, Value> expected, Dictionary<string, Value> actual, string what)
    {
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        foreach (var (name, value) in expected)
        {
            Assert.Equal(value.Shape, actual[name].Shape);
            var error = RelativeError((float[])actual[name].Data, (float[])value.Data);
            Assert.True(error <= Tolerance, $"{what}: '{name}' relative error {error}");
        }
    }

    private static void AssertClose(float[] expected, float[] actual, string what)
    {
        var error = RelativeError(actual, expected);
        Assert.True(error <= Tolerance, $"{what}: relative error {error}");
    }

    private static int ArgMax(float[] values) => Array.IndexOf(values, values.Max());
}
