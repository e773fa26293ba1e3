using System.Text.Json;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Pruning;
using static ModelCompression.Core.Tests.Architectures.ArchitectureTestSupport;
using static ModelCompression.Core.Tests.Pruning.PruningTestSupport;

namespace ModelCompression.Core.Tests.Pruning;

/// <summary>
/// Head pruning on a BERT-style encoder exported by real PyTorch (tests/fixtures/pytorch/make_bert_fixture.py): the
/// head reshapes are sized at run time, Concat(Unsqueeze(Gather(Shape(x), 0|1)), constants), and the projections
/// are MatMul + Add with transposed weight initializers.
/// </summary>
public sealed class ExportedAttentionHeadPruningTests
{
    private const int Hidden = 32;
    private const int Heads = 4;
    private const int HeadWidth = Hidden / Heads;

    // Per removed head: its query, key and value columns and biases, and its rows of the output projection.
    private const int ParametersPerHead = (3 * ((Hidden * HeadWidth) + HeadWidth)) + (HeadWidth * Hidden);

    public static TheoryData<int> Opsets() => [13, 17];

    [Theory]
    [MemberData(nameof(Opsets))]
    public void The_fixture_computes_the_recorded_pytorch_logits(int opset)
    {
        var model = Load(opset);
        AssertRecordedPyTorchLogits(model, $"bert_opset{opset}.expected.json");
    }

    [Theory]
    [MemberData(nameof(Opsets))]
    public void Both_attention_blocks_of_the_export_are_found_with_four_heads_of_eight(int opset)
    {
        var (structures, skipped) = AttentionHeadFinder.Find(Load(opset), NameFilter.None);

        Assert.Empty(skipped);
        Assert.Equal(["/layers.0/attention/MatMul_1", "/layers.1/attention/MatMul_1"], structures.Select(s => s.Producer));
        Assert.Equal(["/layers.0/attention_output/MatMul", "/layers.1/attention_output/MatMul"], structures.Select(s => s.Consumer));
        foreach (var (block, layer) in structures.Select((s, i) => (s, i)))
        {
            Assert.Equal(Heads, block.Units);
            // Value, query and key: the transposed weight by its columns, then the bias; the output projection by its rows.
            Assert.Equal(
                [
                    (1, HeadWidth, UnitSliceRole.Incoming), (0, HeadWidth, UnitSliceRole.Incoming),
                    (1, HeadWidth, UnitSliceRole.Incoming), (0, HeadWidth, UnitSliceRole.Incoming),
                    (1, HeadWidth, UnitSliceRole.Incoming), (0, HeadWidth, UnitSliceRole.Incoming),
                    (0, HeadWidth, UnitSliceRole.Outgoing),
                ],
                block.Slices.Select(s => (s.Axis, s.Block, s.Role)));
            Assert.Equal(
                [$"layers.{layer}.attention.value.bias", $"layers.{layer}.attention.query.bias", $"layers.{layer}.attention.key.bias"],
                block.Slices.Where(s => s.Axis == 0 && s.Role == UnitSliceRole.Incoming).Select(s => s.Initializer));
            Assert.Equal([1, 1, 1, HeadWidth], block.ShapeFixes.Select(f => f.Block));
        }
    }

    [Theory]
    [MemberData(nameof(Opsets))]
    public void Removing_heads_that_add_nothing_keeps_the_outputs_at_any_sequence_length(int opset)
    {
        var model = Load(opset);
        var (structures, _) = AttentionHeadFinder.Find(model, NameFilter.None);
        ZeroOutputRows(model, structures[0], [1, 3]);
        ZeroOutputRows(model, structures[1], [0, 2]);
        var plan = structures.Select(s => new PrunedStructure(s, StructuredPruner.KeepHighest(StructuredPruner.L2Scores(model, s), 0.5))).ToList();
        Assert.Equal([[0, 2], [1, 3]], plan.Select(p => p.Kept));

        var pruned = StructuredPruner.Apply(model, plan);

        Assert.Empty(OnnxChecker.Check(pruned));
        Assert.Equal(FloatParameters(model) - (2 * 2 * ParametersPerHead), FloatParameters(pruned));
        foreach (var (batch, sequence, seed) in new[] { (2, 7, 1), (3, 19, 2) })
        {
            var inputs = Tokens(batch, sequence, seed);
            AssertClose(RunOrt(model, inputs).Values, RunOrt(pruned, inputs).Values, 1e-5);
        }

        // The head reshapes are still sized at run time, by Concats that now hold 2 heads and 2 x 8 features.
        var shapes = HeadShapes(pruned, "/layers.0/");
        Assert.Equal(4, shapes.Count);
        Assert.All(shapes, s => Assert.Equal("Concat", s.OpType));
        Assert.Equal([[2, 8], [2, 8], [2, 8], [16]], shapes.Select(s => ConstantParts(pruned, s)));
        // The input model is not changed.
        Assert.Equal([[4, 8], [4, 8], [4, 8], [32]], HeadShapes(model, "/layers.0/").Select(s => ConstantParts(model, s)));
    }

    [Theory]
    [MemberData(nameof(Opsets))]
    public void Pruning_half_the_heads_of_the_export_gives_a_smaller_model_that_runs(int opset)
    {
        var model = Load(opset);
        var (structures, _) = AttentionHeadFinder.Find(model, NameFilter.None);
        var plan = structures.Select(s => new PrunedStructure(s, StructuredPruner.KeepHighest(StructuredPruner.L2Scores(model, s), 0.5))).ToList();

        var pruned = StructuredPruner.Apply(model, plan);

        Assert.Empty(OnnxChecker.Check(pruned));
        Assert.All(plan, p => Assert.Equal(2, p.Kept.Length));
        Assert.Equal(FloatParameters(model) - (2 * 2 * ParametersPerHead), FloatParameters(pruned));
        foreach (var (batch, sequence, seed) in new[] { (1, 5, 3), (2, 16, 4) })
        {
            var inputs = Tokens(batch, sequence, seed);
            var (values, shape) = RunOrt(pruned, inputs);
            Assert.Equal([batch, 3L], shape);
            Assert.All(values, v => Assert.True(float.IsFinite(v)));
            Assert.NotEqual(RunOrt(model, inputs).Values, values);
        }
    }

    [Fact]
    public void A_shape_constant_shared_with_an_unpruned_block_is_left_as_it_is_for_that_block()
    {
        // Layer 1's query reshape reads layer 0's constants for heads and head width (a deduplicating exporter does
        // that): pruning only layer 0 must give layer 0 new constants and leave layer 1 its 4 heads of 8.
        var model = Load(13);
        var layer0 = Producer(model, HeadShapes(model, "/layers.0/")[0].Output[0]);
        var layer1 = Producer(model, HeadShapes(model, "/layers.1/")[0].Output[0]);
        layer1.Input[2] = layer0.Input[2];
        layer1.Input[3] = layer0.Input[3];
        var (structures, _) = AttentionHeadFinder.Find(model, NameFilter.None);
        ZeroOutputRows(model, structures[0], [0, 1]);

        var pruned = StructuredPruner.Apply(model, [new PrunedStructure(structures[0], [2, 3])]);

        Assert.Equal([[2, 8], [2, 8], [2, 8], [16]], HeadShapes(pruned, "/layers.0/").Select(s => ConstantParts(pruned, s)));
        Assert.Equal([[4, 8], [4, 8], [4, 8], [32]], HeadShapes(pruned, "/layers.1/").Select(s => ConstantParts(pruned, s)));
        var inputs = Tokens(2, 9, 5);
        AssertClose(RunOrt(model, inputs).Values, RunOrt(pruned, inputs).Values, 1e-5);
    }

    [Fact]
    public void A_run_time_size_that_reads_a_dim_the_heads_change_keeps_the_block_whole_with_the_reason()
    {
        // Layer 0's query reshape takes its sequence size from dim 2 of the query projection (its heads x head_width),
        // which pruning changes: the block must be left alone.
        var model = Load(13);
        var gather = model.Graph.Node.Single(n => n.Name == "/layers.0/attention/Gather_1");
        model.Graph.Initializer.Add(TensorData.FromInt64s("dim2", [2L], []));
        gather.Input[1] = "dim2";

        var (structures, skipped) = AttentionHeadFinder.Find(model, NameFilter.None);

        Assert.Equal(["/layers.1/attention/MatMul_1"], structures.Select(s => s.Producer));
        var skip = Assert.Single(skipped);
        Assert.False(skip.Expected);
        Assert.Contains("dim 2 of '/layers.0/attention/query/Add_output_0'", skip.Reason, StringComparison.Ordinal);
    }


    private static ModelProto Load(int opset) => OnnxModelFile.Load(PyTorchFixture($"bert_opset{opset}.onnx"));

    [Trait("Category", "Slow")] // trains the pruned export with TorchSharp
    [Theory]
    [MemberData(nameof(Opsets))]
    public void The_pruned_export_trains_the_graph_the_runtime_runs(int opset)
    {
        // Recovery training imports the pruned graph into TorchSharp: its computed head shapes must follow the cut there too.
        var model = Load(opset);
        var (structures, _) = AttentionHeadFinder.Find(model, NameFilter.None);
        var pruned = StructuredPruner.Apply(model, [.. structures.Select(s => new PrunedStructure(s, [0, 3]))]);
        var inputs = Tokens(2, 9, seed: 8);
        ModelCompression.Torch.Native.TorchNativeLoader.EnsureLoaded();
        using var scope = TorchSharp.torch.NewDisposeScope();
        using var graph = ModelCompression.Torch.Graph.TrainableGraph.Import(pruned);
        graph.eval();
        var feed = inputs.ToDictionary(i => i.Key, i => TorchSharp.torch.tensor((long[])i.Value.Data, i.Value.Shape));

        var logits = graph.Forward(feed)[graph.OutputNames[0]];

        AssertClose(RunOrt(pruned, inputs).Values, logits.data<float>().ToArray(), 1e-4);
        logits.sum().backward();
        Assert.All(graph.ParametersByName.Where(p => p.Key.Contains("query", StringComparison.Ordinal) || p.Key.StartsWith("onnx::", StringComparison.Ordinal)), p => Assert.NotNull(p.Value.grad));
    }

    /// <summary>Seeded token ids in [0, 100) and a mask whose last row is padded after half its tokens.</summary>
    private static Dictionary<string, (Array Data, long[] Shape)> Tokens(int batch, int sequence, int seed)
    {
        var random = new Random(seed);
        var ids = Enumerable.Range(0, batch * sequence).Select(_ => (long)random.Next(100)).ToArray();
        var mask = Enumerable.Range(0, batch * sequence).Select(i => i / sequence == batch - 1 && i % sequence >= sequence / 2 ? 0L : 1L).ToArray();
        return new() { ["input_ids"] = (ids, [batch, sequence]), ["attention_mask"] = (mask, [batch, sequence]) };
    }

    private static void ZeroOutputRows(ModelProto model, PrunableStructure block, int[] heads) =>
        // The output projection is stored [in = heads x head_width, out]: a head owns HeadWidth consecutive rows.
        Update(model, block.Slices.Single(s => s.Role == UnitSliceRole.Outgoing).Initializer, (i, v) => heads.Contains(i / Hidden / HeadWidth) ? 0 : v);

    /// <summary>The nodes that make the shapes of a layer's attention Reshapes (query, key, value, merge), in graph order.</summary>
    private static List<NodeProto> HeadShapes(ModelProto model, string layer) =>
        [.. model.Graph.Node
            .Where(n => n.OpType == "Reshape" && n.Name.StartsWith(layer + "attention/", StringComparison.Ordinal))
            .Select(n => Producer(model, n.Input[1]))];

    private static NodeProto Producer(ModelProto model, string value) => model.Graph.Node.Single(n => n.Output.Contains(value));

    /// <summary>The constant elements of a Concat-built shape, in order.</summary>
    private static long[] ConstantParts(ModelProto model, NodeProto concat) =>
        [.. concat.Input.SelectMany(input =>
            model.Graph.Initializer.FirstOrDefault(i => i.Name == input) is { } initializer ? TensorData.ToInt64s(initializer)
            : model.Graph.Node.FirstOrDefault(n => n.OpType == "Constant" && n.Output[0] == input) is { } constant ? TensorData.ToInt64s(constant.Attribute[0].T)
            : [])];
}
