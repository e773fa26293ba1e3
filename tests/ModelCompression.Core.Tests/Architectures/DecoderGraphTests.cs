using Google.Protobuf;
using ModelCompression.Architectures;
using ModelCompression.Evaluation;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using static ModelCompression.Core.Tests.Architectures.DecoderTestSupport;

namespace ModelCompression.Core.Tests.Architectures;

/// <summary>The built-in decoder's graph: the convention, ONNX Runtime, options, names and parameter count.</summary>
public sealed class DecoderGraphTests
{
    [Theory]
    [InlineData(PositionEncoding.Learned, true)]
    [InlineData(PositionEncoding.Rope, true)]
    [InlineData(PositionEncoding.Learned, false)]
    [InlineData(PositionEncoding.Rope, false)]
    public void Graph_follows_the_decoder_convention(PositionEncoding positions, bool withCache)
    {
        var options = Tiny(positions);
        var model = DecoderBuilder.Build(options, NoData, withCache);
        string[] cacheInputs = withCache ? ["past_key_values.0.key", "past_key_values.0.value", "past_key_values.1.key", "past_key_values.1.value"] : [];
        string[] cacheOutputs = withCache ? ["present.0.key", "present.0.value", "present.1.key", "present.1.value"] : [];

        Assert.Empty(OnnxChecker.Check(model));
        Assert.Equal(["input_ids", "attention_mask", "position_ids", .. cacheInputs], model.Graph.Input.Select(i => i.Name));
        Assert.Equal(["logits", .. cacheOutputs], model.Graph.Output.Select(o => o.Name));
        Assert.True(DecoderConvention.IsDecoder(model));
        Assert.Equal(withCache ? 2 : 0, DecoderConvention.CachedLayers(model));
        Assert.Equal(["batch", "sequence", "23"], Dims(model.Graph.Output[0]));
        Assert.Equal(["batch", withCache ? "total_sequence" : "sequence"], Dims(model.Graph.Input[1]));
        if (withCache)
        {
            Assert.Equal(["batch", "2", "past_sequence", "6"], Dims(model.Graph.Input[3]));
            Assert.Equal(["batch", "2", "total_sequence", "6"], Dims(model.Graph.Output[1]));
        }

        Assert.All(model.Graph.Node, n => Assert.True(ArchitectureTestSupport.TrainerOps.Contains(n.OpType), $"{n.OpType} (node {n.Name})"));
        Assert.All(model.Graph.Initializer, i => Assert.Matches(@"^[a-z_0-9]+(\.[a-z_0-9]+)*\.(weight|bias)$", i.Name));
    }

    [Theory]
    [InlineData(PositionEncoding.Learned)]
    [InlineData(PositionEncoding.Rope)]
    public void Both_graphs_hold_the_same_weights_under_the_same_names(PositionEncoding positions)
    {
        var withCache = DecoderBuilder.Build(Tiny(positions), NoData, withCache: true);
        var without = DecoderBuilder.Build(Tiny(positions), NoData, withCache: false);

        Assert.Equal(withCache.Graph.Initializer.Select(i => i.ToByteString()), without.Graph.Initializer.Select(i => i.ToByteString()));
        Assert.Equal(DecoderBuilder.Build(Tiny(positions), NoData).ToByteArray(), withCache.ToByteArray());
        Assert.Equal(withCache.ToByteArray(), ArchitectureRegistry.Build("decoder", Tiny(positions), NoData).ToByteArray());
    }

    [Fact]
    public void Initializer_names_and_shapes_are_as_documented()
    {
        var learned = DecoderBuilder.Build(Tiny(PositionEncoding.Learned) with { Layers = 1 }, NoData);
        var rope = DecoderBuilder.Build(Tiny(PositionEncoding.Rope) with { Layers = 1, TieEmbeddings = false }, NoData);
        string[] layer =
        [
            "attention_norm.weight", "attention_norm.bias",
            "attention.query.weight", "attention.query.bias", "attention.key.weight", "attention.key.bias",
            "attention.value.weight", "attention.value.bias", "attention.output.weight", "attention.output.bias",
            "feed_forward_norm.weight", "feed_forward_norm.bias",
            "feed_forward.fc1.weight", "feed_forward.fc1.bias", "feed_forward.fc2.weight", "feed_forward.fc2.bias",
        ];

        Assert.Equal(
            ["embedding.weight", "position_embedding.weight", .. layer.Select(n => $"decoder.layer0.{n}"), "decoder.final_norm.weight", "decoder.final_norm.bias"],
            learned.Graph.Initializer.Select(i => i.Name));
        Assert.Equal(
            ["embedding.weight", .. layer.Select(n => $"decoder.layer0.{n}"), "decoder.final_norm.weight", "decoder.final_norm.bias", "lm_head.weight"],
            rope.Graph.Initializer.Select(i => i.Name));
        Assert.Equal([23L, 12], ArchitectureTestSupport.Dims(learned, "embedding.weight"));
        Assert.Equal([16L, 12], ArchitectureTestSupport.Dims(learned, "position_embedding.weight"));
        Assert.Equal([12L, 20], ArchitectureTestSupport.Dims(learned, "decoder.layer0.feed_forward.fc1.weight"));
        Assert.Equal([12L, 23], ArchitectureTestSupport.Dims(rope, "lm_head.weight"));
        // Tied: the head is the embedding table, transposed in the graph.
        Assert.Contains(learned.Graph.Node, n => n.OpType == "Transpose" && n.Input.Single() == "embedding.weight");
        Assert.Contains(rope.Graph.Node, n => n.OpType == "Constant" && n.Output.Single() == "rope.cos");
    }

    public static TheoryData<string, DecoderOptions, int> Sizes() => new()
    {
        { "tiny-learned", Tiny(PositionEncoding.Learned), 0 },
        { "tiny-rope-untied", Tiny(PositionEncoding.Rope) with { TieEmbeddings = false }, 0 },
        // ~0.5M: a byte-level student.
        { "small", new DecoderOptions { Width = 96, Heads = 4, Layers = 4, FeedForward = 384, MaxLength = 256 }, 256 },
        // ~30M: a GPT-2 vocabulary teacher.
        { "large", new DecoderOptions { Width = 384, Heads = 6, Layers = 6, FeedForward = 1536, MaxLength = 512, Positions = PositionEncoding.Rope }, 50257 },
    };

    [Theory]
    [MemberData(nameof(Sizes))]
    public void Parameter_count_follows_the_documented_formula(string id, DecoderOptions options, int vocab)
    {
        var inputs = new ArchitectureInputs([0], 1, vocab);
        var model = DecoderBuilder.Build(options, inputs);
        var expected = DecoderBuilder.ParameterCount(options, inputs);

        Assert.Equal(expected, ParameterCount.Count(model).Parameters);
        long v = options.VocabSize > 0 ? options.VocabSize : vocab, d = options.Width, f = options.FeedForward;
        var formula = (v * d) + (options.Positions == PositionEncoding.Learned ? options.MaxLength * d : 0)
            + (options.Layers * ((4 * d * d) + (2 * d * f) + (9 * d) + f)) + (2 * d) + (options.TieEmbeddings ? 0 : d * v);
        Assert.Equal(formula, expected);
        if (id == "small")
        {
            Assert.InRange(expected, 400_000, 600_000);
        }
        else if (id == "large")
        {
            Assert.InRange(expected, 25_000_000, 35_000_000);
        }
    }

    public static TheoryData<DecoderOptions, ArchitectureInputs, string[]> InvalidOptions() => new()
    {
        { new DecoderOptions { Width = 30, Heads = 4 }, new([16], 1, 50), ["width (30) must be divisible by heads (4)"] },
        { new DecoderOptions { Width = 30, Heads = 2, Positions = PositionEncoding.Rope }, new([16], 1, 50), ["rope needs an even head width", "30 / 2 = 15 is odd"] },
        { new DecoderOptions { RopeBase = 1, Activation = Activation.Tanh, Dropout = 1 }, new([16], 1, 50), ["rope_base must be a finite number above 1 (got 1)", "activation must be gelu or relu", "dropout must be in [0, 1) (got 1)"] },
        { new DecoderOptions { Heads = 0, Layers = 0, FeedForward = 0 }, new([16], 1, 50), ["heads must be at least 1 (got 0)", "layers must be at least 1 (got 0)", "feed_forward must be at least 1 (got 0)"] },
        { new DecoderOptions(), new([0], 1), ["give vocab_size", "give max_length"] },
        { new DecoderOptions { MaxLength = 8 }, new([16], 1, 50), ["max_length (8) is shorter than the data's sequences (16)"] },
        { new DecoderOptions { Positions = (PositionEncoding)7 }, new([16], 1, 50), ["positions 7 is not one of learned, rope"] },
    };

    [Theory]
    [MemberData(nameof(InvalidOptions))]
    public void Invalid_options_are_refused_with_every_problem(DecoderOptions options, ArchitectureInputs inputs, string[] expected)
    {
        var error = Assert.Throws<InvalidArchitectureOptionsException>(() => DecoderBuilder.Build(options, inputs));

        Assert.Equal("decoder", error.Architecture);
        foreach (var text in expected)
        {
            Assert.Contains(error.Problems, p => p.Contains(text, StringComparison.Ordinal));
        }

        Assert.Throws<InvalidArchitectureOptionsException>(() => DecoderBuilder.ParameterCount(options, inputs));
        Assert.Equal(error.Problems, options.Validate(inputs));
    }

    [Fact]
    public void Same_seed_gives_identical_bytes_and_another_seed_other_weights()
    {
        var options = Tiny(PositionEncoding.Rope);

        Assert.Equal(DecoderBuilder.Build(options, NoData).ToByteArray(), DecoderBuilder.Build(options, NoData).ToByteArray());
        Assert.NotEqual(
            ArchitectureTestSupport.Floats(DecoderBuilder.Build(options, NoData), "embedding.weight"),
            ArchitectureTestSupport.Floats(DecoderBuilder.Build(options with { Seed = 4 }, NoData), "embedding.weight"));
    }

    [Theory]
    [InlineData(PositionEncoding.Learned)]
    [InlineData(PositionEncoding.Rope)]
    public void Onnx_runtime_runs_it_and_the_presents_extend_the_past(PositionEncoding positions)
    {
        var options = Tiny(positions);
        var model = DecoderBuilder.Build(options, NoData);
        long[][] prompt = [[1, 5, 9], [2, 2, 7]];

        var first = RunOrt(model, WithPast(Inputs(prompt), options, batch: 2));
        var second = RunOrt(model, WithPast(Inputs([[4], [8]], past: 3), options, batch: 2, first));

        Assert.Equal([2L, 3, 23], first["logits"].Shape);
        Assert.Equal([2L, 2, 3, 6], first["present.1.value"].Shape);
        Assert.Equal([2L, 1, 23], second["logits"].Shape);
        Assert.Equal([2L, 2, 4, 6], second["present.0.key"].Shape);
        Assert.All((float[])second["logits"].Data, v => Assert.True(float.IsFinite(v)));
        // present = Concat(past, new) on the sequence axis: the first three keys of every head are the past, bit for bit.
        var past = (float[])first["present.0.key"].Data;
        var present = (float[])second["present.0.key"].Data;
        for (var head = 0; head < 4; head++)
        {
            Assert.Equal(past.AsSpan(head * 3 * 6, 3 * 6).ToArray(), present.AsSpan(head * 4 * 6, 3 * 6).ToArray());
        }
    }

    private static string[] Dims(ValueInfoProto value) =>
        [.. value.Type.TensorType.Shape.Dim.Select(d => d.HasDimValue ? d.DimValue.ToString(System.Globalization.CultureInfo.InvariantCulture) : d.DimParam)];
}
