using ModelCompression.Architectures;
using ModelCompression.Core.Tests.Architectures;
using ModelCompression.Diagnostics;
using ModelCompression.Onnx;
using ModelCompression.Pruning;
using static ModelCompression.Core.Tests.Architectures.ArchitectureTestSupport;
using static ModelCompression.Core.Tests.Pruning.PruningTestSupport;

namespace ModelCompression.Core.Tests.Pruning;

public sealed class TransformerLayerDropTests
{
    private static readonly ArchitectureCase ThreeLayers = new(
        "transformer-3",
        "transformer",
        new TransformerOptions { Width = 16, Heads = 2, Layers = 3, FeedForward = 24, Dropout = 0 },
        new([10], 4, VocabSize: 30));

    [Fact]
    public void Dropping_a_layer_gives_a_valid_graph_that_runs()
    {
        var model = ThreeLayers.Build();
        Assert.Equal([0, 1, 2], TransformerLayerDropper.Layers(model));

        var student = TransformerLayerDropper.Drop(model, [1]);

        Assert.Empty(OnnxChecker.Check(student));
        Assert.Equal([0, 2], TransformerLayerDropper.Layers(student));
        Assert.DoesNotContain(student.Graph.Initializer, i => i.Name.StartsWith("encoder.layer1.", StringComparison.Ordinal));
        Assert.Contains(student.Graph.Initializer, i => i.Name == "encoder.layer2.feed_forward.fc2.weight");
        Assert.True(model.Graph.Initializer.Count > student.Graph.Initializer.Count);
        var (values, shape) = RunOrt(student, RandomInputs(ThreeLayers, 3, seed: 2));
        Assert.Equal([3L, 4], shape);
        Assert.All(values, v => Assert.True(float.IsFinite(v)));
        // The input model keeps its three layers.
        Assert.Equal([0, 1, 2], TransformerLayerDropper.Layers(model));
    }

    [Fact]
    public void A_layer_whose_branches_add_nothing_drops_without_changing_the_outputs()
    {
        // With its attention output and feed-forward fc2 at zero, layer 1 maps x to x + 0 + 0: dropping it is exact.
        var model = ThreeLayers.Build();
        foreach (var name in new[] { "attention.output.weight", "attention.output.bias", "feed_forward.fc2.weight", "feed_forward.fc2.bias" })
        {
            Update(model, $"encoder.layer1.{name}", (_, _) => 0);
        }

        var student = TransformerLayerDropper.Drop(model, [1]);

        var inputs = RandomInputs(ThreeLayers, 4, seed: 3);
        AssertClose(RunOrt(model, inputs).Values, RunOrt(student, inputs).Values, 1e-5);
        // And a layer that does add something changes them.
        var other = TransformerLayerDropper.Drop(model, [0]);
        Assert.NotEqual(RunOrt(model, inputs).Values, RunOrt(other, inputs).Values);
    }

    [Fact]
    public void Dropping_every_layer_or_a_missing_one_is_MC2062()
    {
        var model = ThreeLayers.Build();

        var none = Assert.Throws<CompressionException>(() => TransformerLayerDropper.Drop(model, [0, 1, 2], "student.onnx"));
        var missing = Assert.Throws<CompressionException>(() => TransformerLayerDropper.Drop(model, [3, 5], "student.onnx"));
        var mlp = Assert.Throws<CompressionException>(() => TransformerLayerDropper.Drop(MlpBuilder.Build(4, [3], 2, Activation.Relu, 1), [0]));

        Assert.Equal(DiagnosticCodes.LayerDropInvalid, none.Code);
        Assert.Contains("would leave none of the 3", none.Message, StringComparison.Ordinal);
        Assert.Equal("student.onnx", none.Diagnostics[0].File);
        Assert.Contains("3, 5 do not exist", missing.Message, StringComparison.Ordinal);
        Assert.Contains("no encoder layers", mlp.Message, StringComparison.Ordinal);
    }
}

public sealed class ExportedTransformerLayerDropTests
{
    [Theory]
    [InlineData("transformer_opset13.onnx", "encoder.layers.1.")] // nn.TransformerEncoder
    [InlineData("transformer_opset17.onnx", "encoder.layers.1.")]
    [InlineData("bert_opset13.onnx", "layers.1.")] // written as Hugging Face writes BERT
    [InlineData("bert_opset17.onnx", "layers.1.")]
    public void A_layer_of_a_PyTorch_encoder_export_drops_and_the_model_still_runs(string fixture, string layerOneWeights)
    {
        var model = OnnxModelFile.Load(Path.Join(Repo.Root, "tests", "fixtures", "pytorch", fixture));
        Assert.Equal([0, 1], TransformerLayerDropper.Layers(model));

        var student = TransformerLayerDropper.Drop(model, [1], fixture);

        Assert.Empty(OnnxChecker.Check(student));
        Assert.Equal([0], TransformerLayerDropper.Layers(student));
        Assert.DoesNotContain(student.Graph.Initializer, i => i.Name.StartsWith(layerOneWeights, StringComparison.Ordinal));
        Assert.Contains(student.Graph.Initializer, i => i.Name.StartsWith(layerOneWeights.Replace('1', '0'), StringComparison.Ordinal));
        // Exactly layer 1's weights are gone: every initializer that went was read by layer-1 nodes alone (the
        // exporter names some weights 'onnx::MatMul_*'), and layer 1 kept none.
        var kept = student.Graph.Initializer.Select(i => i.Name).ToHashSet();
        var gone = model.Graph.Initializer.Where(i => !kept.Contains(i.Name)).ToList();
        Assert.Contains(gone, i => i.Name.StartsWith(layerOneWeights, StringComparison.Ordinal));
        Assert.All(gone, i => Assert.All(
            model.Graph.Node.Where(n => n.Input.Contains(i.Name)),
            n => Assert.Contains("/layers.1/", n.Name, StringComparison.Ordinal)));
        Assert.DoesNotContain(student.Graph.Node, n => n.Name.Contains("/layers.1/", StringComparison.Ordinal));
        // The nn.TransformerEncoder fixture was exported for sequences of 16 tokens.
        var inputs = TokenInputs(batch: 3, length: 16, seed: 4);
        var (values, shape) = RunOrt(student, inputs);
        Assert.Equal(3, shape[0]);
        Assert.All(values, v => Assert.True(float.IsFinite(v)));
        Assert.NotEqual(RunOrt(model, inputs).Values, values);
    }

    private static Dictionary<string, (Array Data, long[] Shape)> TokenInputs(int batch, int length, int seed)
    {
        var random = new Random(seed);
        var ids = new long[batch * length];
        var mask = new long[batch * length];
        for (var i = 0; i < ids.Length; i++)
        {
            ids[i] = random.Next(1, 50);
            mask[i] = i % length < length - (i / length) ? 1 : 0;
        }

        return new() { ["input_ids"] = (ids, [batch, length]), ["attention_mask"] = (mask, [batch, length]) };
    }
}
