using ModelCompression.Architectures;
using ModelCompression.Diagnostics;
using ModelCompression.Generation;
using ModelCompression.Onnx;
using ModelCompression.Pruning;
using static ModelCompression.Core.Tests.Architectures.ArchitectureTestSupport;
using static ModelCompression.Core.Tests.Pruning.DecoderPruningSupport;
using static ModelCompression.Core.Tests.Pruning.PruningTestSupport;

namespace ModelCompression.Core.Tests.Pruning;

/// <summary>
/// Dropping decoder layers, checked in ONNX Runtime: the cache of the layers left is renumbered from 0 and still in the
/// convention, generation with the cache gives the tokens of generation without it, and a layer that adds nothing to
/// the residual stream drops without changing the logits.
/// </summary>
public sealed class DecoderLayerDropTests : IDisposable
{
    private readonly TempDir _folder = new();

    public void Dispose() => _folder.Dispose();

    [Theory]
    [InlineData(PositionEncoding.Learned, 0)]
    [InlineData(PositionEncoding.Learned, 1)]
    [InlineData(PositionEncoding.Rope, 0)]
    [InlineData(PositionEncoding.Rope, 2)]
    public void A_dropped_layer_takes_its_cache_along_and_the_rest_is_renumbered(PositionEncoding positions, int layer)
    {
        var options = Options(positions);
        var model = Build(options, withCache: true);
        Assert.Equal([0, 1, 2], DecoderLayerDropper.Layers(model));

        var student = DecoderLayerDropper.Drop(model, [layer], "decoder.onnx");

        Assert.Empty(OnnxChecker.Check(student));
        Assert.Equal(new[] { 0, 1, 2 }.Where(l => l != layer), DecoderLayerDropper.Layers(student));
        Assert.Equal(new DecoderSignature(2, options.Heads, options.HeadWidth, true, 23, 16), DecoderSignature.Read(student, "student"));
        Assert.Equal(
            ["input_ids", "attention_mask", "position_ids", "past_key_values.0.key", "past_key_values.0.value", "past_key_values.1.key", "past_key_values.1.value"],
            student.Graph.Input.Select(i => i.Name));
        Assert.Equal(["logits", "present.0.key", "present.0.value", "present.1.key", "present.1.value"], student.Graph.Output.Select(o => o.Name));
        Assert.DoesNotContain(student.Graph.Initializer, i => i.Name.StartsWith($"decoder.layer{layer}.", StringComparison.Ordinal));
        Assert.Contains(student.Graph.Initializer, i => i.Name.StartsWith($"decoder.layer{(layer + 1) % 3}.", StringComparison.Ordinal));

        // The no-cache export loses the same layer and computes the same function.
        var plain = DecoderLayerDropper.Drop(Build(options, withCache: false), [layer]);
        Assert.Equal(0, DecoderSignature.Read(plain, "plain").CachedLayers);
        AssertClose(Logits(student), Logits(plain), 1e-5);
        Assert.NotEqual(Logits(model), Logits(student));

        var cached = Greedy(student, _folder, useCache: true);
        Assert.Equal(cached, Greedy(student, _folder, useCache: false));
        Assert.Equal(cached, Greedy(plain, _folder, useCache: false));
    }

    [Theory]
    [InlineData(PositionEncoding.Learned, true)]
    [InlineData(PositionEncoding.Learned, false)]
    [InlineData(PositionEncoding.Rope, true)]
    [InlineData(PositionEncoding.Rope, false)]
    public void A_layer_that_adds_nothing_to_the_stream_drops_without_changing_the_logits(PositionEncoding positions, bool withCache)
    {
        // With its attention output and fc2 at zero, layer 1 maps x to x + 0 + 0.
        var model = Build(Options(positions), withCache);
        foreach (var name in new[] { "attention.output.weight", "attention.output.bias", "feed_forward.fc2.weight", "feed_forward.fc2.bias" })
        {
            Update(model, $"decoder.layer1.{name}", (_, _) => 0);
        }

        var student = DecoderLayerDropper.Drop(model, [1]);

        var (before, after) = (Forward(model), Forward(student));
        AssertClose((float[])before["logits"].Data, (float[])after["logits"].Data, 1e-5);
        if (withCache)
        {
            // Old layer 2 is new layer 1, and sees the same stream: its keys and values are the same.
            AssertClose((float[])before["present.2.key"].Data, (float[])after["present.1.key"].Data, 1e-5);
            AssertClose((float[])before["present.2.value"].Data, (float[])after["present.1.value"].Data, 1e-5);
            AssertClose((float[])before["present.0.key"].Data, (float[])after["present.0.key"].Data, 1e-5);
        }

        // A layer that does add something changes them.
        Assert.NotEqual(Logits(model), Logits(DecoderLayerDropper.Drop(model, [0])));
    }

    [Fact]
    public void Dropping_twice_keeps_the_cache_numbered_from_0()
    {
        var options = Options(PositionEncoding.Rope, layers: 4);
        var model = Build(options, withCache: true);

        var once = DecoderLayerDropper.Drop(model, [0]);
        var twice = DecoderLayerDropper.Drop(once, [2]);

        // Layers keep their names (1, 3 left), the cache its numbers (0, 1), and each layer its own past.
        Assert.Equal([1, 3], DecoderLayerDropper.Layers(twice));
        Assert.Equal(2, DecoderSignature.Read(twice, "twice").CachedLayers);
        AssertClose(Logits(DecoderLayerDropper.Drop(model, [0, 2])), Logits(twice), 1e-6);
        Assert.Equal(Greedy(twice, _folder, useCache: true), Greedy(twice, _folder, useCache: false));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void A_layer_of_the_PyTorch_decoder_drops_from_both_exports(int layer)
    {
        var cachedModel = Fixture(withCache: true);
        Assert.Equal([0, 1], DecoderLayerDropper.Layers(cachedModel));

        var cached = DecoderLayerDropper.Drop(cachedModel, [layer], "byte_decoder.onnx");
        var plain = DecoderLayerDropper.Drop(Fixture(withCache: false), [layer], "byte_decoder_nocache.onnx");

        Assert.Empty(OnnxChecker.Check(cached));
        Assert.Empty(OnnxChecker.Check(plain));
        Assert.Equal(new DecoderSignature(1, 4, 16, true, 257, 64), DecoderSignature.Read(cached, "cached"));
        Assert.Equal(0, DecoderSignature.Read(plain, "plain").CachedLayers);
        // Of the layer's nodes only the causal mask stays: the exporter made one constant of the buffer both layers hold,
        // in layer 0's scope.
        Assert.Equal(
            layer == 0 ? ["/model/h.0/attn/Constant_16"] : [],
            cached.Graph.Node.Where(n => n.Name.Contains($"/h.{layer}/", StringComparison.Ordinal)).Select(n => n.Name));
        // Exactly one layer's weights went: 2 x 64 + 64 x 192 + 192 + 64 x 64 + 64 + 2 x 64 + 64 x 256 + 256 + 256 x 64 + 64.
        Assert.Equal(FloatParameters(cachedModel) - 49_984, FloatParameters(cached));
        AssertClose(Logits(cached), Logits(plain), 1e-5);

        var tokens = FixtureGreedy(cached, _folder, useCache: true);
        Assert.Equal(tokens, FixtureGreedy(cached, _folder, useCache: false));
        Assert.Equal(tokens, FixtureGreedy(plain, _folder, useCache: false));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_PyTorch_layer_whose_branches_add_nothing_drops_without_changing_the_logits(bool withCache)
    {
        var model = Fixture(withCache);
        foreach (var name in new[] { WeightOf(model, "/model/h.1/attn/c_proj/MatMul"), BiasOf(model, "/model/h.1/attn/c_proj/Add"), WeightOf(model, "/model/h.1/proj/MatMul"), BiasOf(model, "/model/h.1/proj/Add") })
        {
            Update(model, name, (_, _) => 0);
        }

        var student = DecoderLayerDropper.Drop(model, [1]);

        AssertClose(Logits(model), Logits(student), 1e-5);
        if (withCache)
        {
            AssertClose((float[])Forward(model)["present.0.value"].Data, (float[])Forward(student)["present.0.value"].Data, 1e-5);
        }
    }

    [Fact]
    public void Bad_layers_and_models_that_are_not_decoders_are_MC2062()
    {
        var model = Build(Options(PositionEncoding.Learned), withCache: true);
        var encoder = TransformerBuilder.Build(new TransformerOptions { Width = 8, Heads = 2, Layers = 2, FeedForward = 8 }, new([6], 2, VocabSize: 10));

        var missing = Assert.Throws<CompressionException>(() => DecoderLayerDropper.Drop(model, [1, 3, 5], "decoder.onnx"));
        var none = Assert.Throws<CompressionException>(() => DecoderLayerDropper.Drop(model, [0, 1, 2], "decoder.onnx"));
        var notDecoder = Assert.Throws<CompressionException>(() => DecoderLayerDropper.Drop(encoder, [0], "encoder.onnx"));

        Assert.All(new[] { missing, none, notDecoder }, e => Assert.Equal(DiagnosticCodes.LayerDropInvalid, e.Code));
        Assert.Contains("layer(s) 3, 5 do not exist; the model has layers 0, 1, 2", missing.Message, StringComparison.Ordinal);
        Assert.Equal("decoder.onnx", missing.Diagnostics[0].File);
        Assert.Contains("would leave none of the 3", none.Message, StringComparison.Ordinal);
        Assert.Contains("not a decoder", notDecoder.Message, StringComparison.Ordinal);
    }
}
