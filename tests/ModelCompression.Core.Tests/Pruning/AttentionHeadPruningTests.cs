using ModelCompression.Architectures;
using ModelCompression.Core.Tests.Architectures;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Pruning;
using static ModelCompression.Core.Tests.Architectures.ArchitectureTestSupport;
using static ModelCompression.Core.Tests.Pruning.PruningTestSupport;

namespace ModelCompression.Core.Tests.Pruning;

public sealed class AttentionHeadPruningTests
{
    private const int Width = 32;
    private const int Heads = 4;
    private const int HeadWidth = Width / Heads;

    private static readonly ArchitectureCase TwoLayers = new(
        "transformer-heads",
        "transformer",
        new TransformerOptions { Width = Width, Heads = Heads, Layers = 2, FeedForward = 48, Dropout = 0 },
        new([10], 3, VocabSize: 30));

    [Fact]
    public void Every_attention_block_of_the_built_in_transformer_is_found_with_its_heads()
    {
        var (structures, skipped) = AttentionHeadFinder.Find(TwoLayers.Build(), NameFilter.None);

        Assert.Empty(skipped);
        Assert.Equal(["encoder.layer0.attention.context", "encoder.layer1.attention.context"], structures.Select(s => s.Producer));
        var block = structures[0];
        Assert.Equal(Heads, block.Units);
        Assert.Equal("encoder.layer0.attention.output.matmul", block.Consumer);
        // Query, key and value weights and biases by their columns, the output projection by its rows.
        Assert.Equal(
            [
                ("encoder.layer0.attention.value.weight", 1, HeadWidth, UnitSliceRole.Incoming),
                ("encoder.layer0.attention.value.bias", 0, HeadWidth, UnitSliceRole.Incoming),
                ("encoder.layer0.attention.query.weight", 1, HeadWidth, UnitSliceRole.Incoming),
                ("encoder.layer0.attention.query.bias", 0, HeadWidth, UnitSliceRole.Incoming),
                ("encoder.layer0.attention.key.weight", 1, HeadWidth, UnitSliceRole.Incoming),
                ("encoder.layer0.attention.key.bias", 0, HeadWidth, UnitSliceRole.Incoming),
                ("encoder.layer0.attention.output.weight", 0, HeadWidth, UnitSliceRole.Outgoing),
            ],
            block.Slices.Select(s => (s.Initializer, s.Axis, s.Block, s.Role)));
        Assert.Equal([1, 1, 1, HeadWidth], block.ShapeFixes.Select(f => f.Block));
    }

    [Fact]
    public void Removing_heads_that_add_nothing_keeps_the_outputs_and_shrinks_the_graph()
    {
        // Heads 1 and 3 of layer 0 and heads 0 and 2 of layer 1 have zero output rows: they contribute nothing, score
        // 0, and are the ones removed at sparsity 0.5. The pruned model must compute exactly what the original did.
        var model = TwoLayers.Build();
        ZeroOutputRows(model, 0, [1, 3]);
        ZeroOutputRows(model, 1, [0, 2]);
        var (structures, _) = AttentionHeadFinder.Find(model, NameFilter.None);
        var plan = structures.Select(s => new PrunedStructure(s, StructuredPruner.KeepHighest(StructuredPruner.L2Scores(model, s), 0.5))).ToList();
        Assert.Equal([[0, 2], [1, 3]], plan.Select(p => p.Kept));

        var pruned = StructuredPruner.Apply(model, plan);

        Assert.Empty(OnnxChecker.Check(pruned));
        var inputs = RandomInputs(TwoLayers, 4, seed: 5);
        AssertClose(RunOrt(model, inputs).Values, RunOrt(pruned, inputs).Values, 1e-5);
        // Per layer and removed head: its query, key and value columns and biases, and its output rows.
        var removedPerHead = (3 * ((Width * HeadWidth) + HeadWidth)) + (HeadWidth * Width);
        Assert.Equal(FloatParameters(model) - (2 * 2 * removedPerHead), FloatParameters(pruned));
        Assert.Equal([Width, 2 * HeadWidth], Dims(pruned, "encoder.layer0.attention.query.weight"));
        Assert.Equal([2 * HeadWidth, Width], Dims(pruned, "encoder.layer1.attention.output.weight"));
        // The input model is not changed.
        Assert.Equal([Width, Width], Dims(model, "encoder.layer0.attention.query.weight"));
    }

    [Fact]
    public void Removing_heads_that_do_contribute_changes_the_outputs_but_the_graph_still_runs_at_any_sequence_length()
    {
        var model = TwoLayers.Build();
        var (structures, _) = AttentionHeadFinder.Find(model, NameFilter.None);
        var plan = structures.Select(s => new PrunedStructure(s, [2])).ToList();

        var pruned = StructuredPruner.Apply(model, plan);

        var inputs = RandomInputs(TwoLayers, 3, seed: 6, sequence: 7);
        var (values, shape) = RunOrt(pruned, inputs);
        Assert.Equal([3L, 3], shape);
        Assert.All(values, v => Assert.True(float.IsFinite(v)));
        Assert.NotEqual(RunOrt(model, inputs).Values, values);
    }

    [Fact]
    public void Excluded_blocks_and_models_without_attention_give_no_structures()
    {
        var (excluded, skipped) = AttentionHeadFinder.Find(TwoLayers.Build(), new NameFilter("encoder.layer1.*"));
        Assert.Equal(["encoder.layer0.attention.context"], excluded.Select(s => s.Producer));
        var skip = Assert.Single(skipped);
        Assert.True(skip.Expected);

        var (none, _) = AttentionHeadFinder.Find(MlpBuilder.Build(8, [4], 2, Activation.Relu, 1), NameFilter.None);
        Assert.Empty(none);
    }

    [Fact]
    public void A_value_of_the_block_read_elsewhere_keeps_the_block_whole_with_the_reason()
    {
        var model = TwoLayers.Build();
        // Make the layer-0 query projection a graph output too: its heads can no longer be cut.
        model.Graph.Output.Add(new ValueInfoProto { Name = model.Graph.Node.Single(n => n.Name == "encoder.layer0.attention.query.matmul").Output[0] });

        var (structures, skipped) = AttentionHeadFinder.Find(model, NameFilter.None);

        Assert.Equal(["encoder.layer1.attention.context"], structures.Select(s => s.Producer));
        var skip = Assert.Single(skipped);
        Assert.False(skip.Expected);
        Assert.Contains("read elsewhere", skip.Reason, StringComparison.Ordinal);
    }

    private static void ZeroOutputRows(ModelProto model, int layer, int[] heads) =>
        // The output projection is stored [in = heads x head_width, out]: a head owns HeadWidth consecutive rows.
        Update(model, $"encoder.layer{layer}.attention.output.weight", (i, v) => heads.Contains(i / Width / HeadWidth) ? 0 : v);

    private static long FloatParameters(ModelProto model) =>
        model.Graph.Initializer.Where(i => i.DataType == (int)TensorProto.Types.DataType.Float).Sum(TensorData.ElementCount);

    private static long[] Dims(ModelProto model, string name) => [.. model.Graph.Initializer.Single(i => i.Name == name).Dims];
}
