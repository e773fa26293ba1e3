using ModelCompression.Architectures;
using ModelCompression.Diagnostics;
using ModelCompression.Generation;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Pruning;
using static ModelCompression.Core.Tests.Architectures.ArchitectureTestSupport;
using static ModelCompression.Core.Tests.Pruning.DecoderPruningSupport;
using static ModelCompression.Core.Tests.Pruning.PruningTestSupport;

namespace ModelCompression.Core.Tests.Pruning;

/// <summary>
/// Removing attention heads from decoders, checked in ONNX Runtime: projections, output rows and the cache lose the
/// heads; pruning no head changes nothing; heads that add nothing go without changing the logits, and the kept heads'
/// keys and values are what they were; generation with the cache gives the tokens of generation without it.
/// </summary>
public sealed class DecoderHeadPruningTests : IDisposable
{
    private const int HeadWidth = 4;

    private readonly TempDir _folder = new();

    public void Dispose() => _folder.Dispose();

    [Theory]
    [InlineData(PositionEncoding.Learned, true)]
    [InlineData(PositionEncoding.Learned, false)]
    [InlineData(PositionEncoding.Rope, true)]
    [InlineData(PositionEncoding.Rope, false)]
    public void Every_layer_of_the_built_in_decoder_is_found_with_its_heads_and_its_cache(PositionEncoding positions, bool withCache)
    {
        var structures = DecoderHeadPruner.Find(Build(Options(positions), withCache));

        Assert.Equal(["decoder.layer0.attention.context", "decoder.layer1.attention.context", "decoder.layer2.attention.context"], structures.Select(s => s.Producer));
        Assert.All(structures, s => Assert.Equal(4, s.Units));
        Assert.Equal(
            [
                ("decoder.layer1.attention.value.weight", 1, HeadWidth, UnitSliceRole.Incoming),
                ("decoder.layer1.attention.value.bias", 0, HeadWidth, UnitSliceRole.Incoming),
                ("decoder.layer1.attention.query.weight", 1, HeadWidth, UnitSliceRole.Incoming),
                ("decoder.layer1.attention.query.bias", 0, HeadWidth, UnitSliceRole.Incoming),
                ("decoder.layer1.attention.key.weight", 1, HeadWidth, UnitSliceRole.Incoming),
                ("decoder.layer1.attention.key.bias", 0, HeadWidth, UnitSliceRole.Incoming),
                ("decoder.layer1.attention.output.weight", 0, HeadWidth, UnitSliceRole.Outgoing),
            ],
            structures[1].Slices.Select(s => (s.Initializer, s.Axis, s.Block, s.Role)));
        Assert.Equal(
            withCache ? ["past_key_values.1.value", "present.1.value", "past_key_values.1.key", "present.1.key"] : null,
            structures[1].Cache?.GraphValues);
    }

    [Theory]
    [InlineData(PositionEncoding.Learned, true)]
    [InlineData(PositionEncoding.Rope, true)]
    [InlineData(PositionEncoding.Rope, false)]
    public void Pruning_no_head_changes_nothing(PositionEncoding positions, bool withCache)
    {
        var model = Build(Options(positions), withCache);
        var structures = DecoderHeadPruner.Find(model);

        var same = DecoderHeadPruner.Apply(model, [.. structures.Select(s => new PrunedStructure(s, [0, 1, 2, 3]))]);

        Assert.Empty(OnnxChecker.Check(same));
        var (before, after) = (Forward(model), Forward(same));
        Assert.Equal(before.Keys, after.Keys);
        Assert.All(before, pair => Assert.Equal((float[])pair.Value.Data, (float[])after[pair.Key].Data));
    }

    [Theory]
    [InlineData(PositionEncoding.Learned, true)]
    [InlineData(PositionEncoding.Learned, false)]
    [InlineData(PositionEncoding.Rope, true)]
    [InlineData(PositionEncoding.Rope, false)]
    public void Heads_whose_output_rows_are_zero_go_without_changing_the_logits(PositionEncoding positions, bool withCache)
    {
        int[][] removed = [[1, 3], [0, 2], [2, 3]];
        var options = Options(positions);
        var model = Build(options, withCache);
        for (var layer = 0; layer < 3; layer++)
        {
            // The output projection is stored [heads x head_width, width]: a head owns head_width consecutive rows.
            var gone = removed[layer];
            Update(model, $"decoder.layer{layer}.attention.output.weight", (i, v) => gone.Contains(i / options.Width / HeadWidth) ? 0 : v);
        }

        var pruned = DecoderHeadPruner.Prune(model, sparsity: 0.5, "decoder.onnx");

        Assert.Empty(OnnxChecker.Check(pruned));
        Assert.Equal(new DecoderSignature(withCache ? 3 : 0, withCache ? 2 : 0, withCache ? HeadWidth : 0, true, 23, 16), DecoderSignature.Read(pruned, "pruned"));
        Assert.Equal([options.Width, 2 * HeadWidth], Dims(pruned, "decoder.layer0.attention.key.weight"));
        Assert.Equal([2 * HeadWidth, options.Width], Dims(pruned, "decoder.layer2.attention.output.weight"));
        // Per layer, two heads' query, key and value columns and biases, and their output rows.
        Assert.Equal(FloatParameters(model) - (3 * 2 * ((3 * ((options.Width * HeadWidth) + HeadWidth)) + (HeadWidth * options.Width))), FloatParameters(pruned));

        var (before, after) = (Forward(model), Forward(pruned));
        AssertClose((float[])before["logits"].Data, (float[])after["logits"].Data, 1e-5);
        for (var layer = 0; layer < 3 && withCache; layer++)
        {
            int[] kept = [.. Enumerable.Range(0, 4).Except(removed[layer])];
            Assert.Equal([2L, 2, Sequence[0].Length, HeadWidth], after[DecoderConvention.PresentKey(layer)].Shape);
            AssertClose(KeepHeads(before[DecoderConvention.PresentKey(layer)], kept), (float[])after[DecoderConvention.PresentKey(layer)].Data, 1e-5);
            AssertClose(KeepHeads(before[DecoderConvention.PresentValue(layer)], kept), (float[])after[DecoderConvention.PresentValue(layer)].Data, 1e-5);
        }

        Assert.Equal(Greedy(pruned, _folder, useCache: true), Greedy(pruned, _folder, useCache: false));
    }

    [Fact]
    public void Pruning_heads_that_contribute_keeps_cache_and_one_pass_in_agreement()
    {
        var options = Options(PositionEncoding.Rope);
        var model = Build(options, withCache: true);
        var plain = Build(options, withCache: false);
        int[] kept = [0, 1, 3];

        var pruned = DecoderHeadPruner.Apply(model, [.. DecoderHeadPruner.Find(model).Select(s => new PrunedStructure(s, kept))]);
        var prunedPlain = DecoderHeadPruner.Apply(plain, [.. DecoderHeadPruner.Find(plain).Select(s => new PrunedStructure(s, kept))]);

        Assert.Equal(3, DecoderSignature.Read(pruned, "pruned").KeyValueHeads);
        AssertClose(Logits(pruned), Logits(prunedPlain), 1e-5);
        Assert.NotEqual(Logits(model), Logits(pruned));
        var tokens = Greedy(pruned, _folder, useCache: true);
        Assert.Equal(tokens, Greedy(pruned, _folder, useCache: false));
        Assert.Equal(tokens, Greedy(prunedPlain, _folder, useCache: false));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void The_PyTorch_decoders_packed_heads_are_found_in_both_exports(bool withCache)
    {
        var model = Fixture(withCache);

        var structures = DecoderHeadPruner.Find(model);

        Assert.Equal(["/model/h.0/attn/MatMul_1", "/model/h.1/attn/MatMul_1"], structures.Select(s => s.Producer));
        Assert.All(structures, s => Assert.Equal(4, s.Units));
        // c_attn packs the queries', keys' and values' columns one third each; c_proj loses rows.
        var layer0 = structures[0];
        Assert.Equal(
            [
                (WeightOf(model, "/model/h.0/attn/c_attn/MatMul"), 1, 16, 3, UnitSliceRole.Incoming),
                ("model.h.0.attn.c_attn.bias", 0, 16, 3, UnitSliceRole.Incoming),
                (WeightOf(model, "/model/h.0/attn/c_proj/MatMul"), 0, 16, 1, UnitSliceRole.Outgoing),
            ],
            layer0.Slices.Select(s => (s.Initializer, s.Axis, s.Block, s.Groups, s.Role)));
        Assert.NotNull(layer0.Cache);
        Assert.Equal(withCache ? 4 : 0, layer0.Cache.GraphValues.Count);
        // The export without cache joins the new keys and values to an empty past of 4 heads that every layer shares.
        Assert.Equal(withCache ? [] : ["/model/h.0/attn/Concat_4_output_0", "/model/h.0/attn/Concat_3_output_0"], layer0.Cache.EmptyConcats);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void PyTorch_heads_whose_output_rows_are_zero_go_without_changing_the_logits(bool withCache)
    {
        int[][] removed = [[2], [0]];
        var model = Fixture(withCache);
        for (var layer = 0; layer < 2; layer++)
        {
            var gone = removed[layer];
            Update(model, WeightOf(model, $"/model/h.{layer}/attn/c_proj/MatMul"), (i, v) => gone.Contains(i / 64 / 16) ? 0 : v);
        }

        var pruned = DecoderHeadPruner.Prune(model, sparsity: 0.25, "byte_decoder.onnx");

        Assert.Empty(OnnxChecker.Check(pruned));
        Assert.Equal([64L, 3 * 48], Dims(pruned, WeightOf(model, "/model/h.0/attn/c_attn/MatMul")));
        Assert.Equal([48L, 64], Dims(pruned, WeightOf(model, "/model/h.1/attn/c_proj/MatMul")));
        Assert.Equal(withCache ? 3 : 0, DecoderSignature.Read(pruned, "pruned").KeyValueHeads);
        var (before, after) = (Forward(model), Forward(pruned));
        AssertClose((float[])before["logits"].Data, (float[])after["logits"].Data, 1e-5);
        for (var layer = 0; layer < 2 && withCache; layer++)
        {
            int[] kept = [.. Enumerable.Range(0, 4).Except(removed[layer])];
            AssertClose(KeepHeads(before[DecoderConvention.PresentKey(layer)], kept), (float[])after[DecoderConvention.PresentKey(layer)].Data, 1e-5);
            AssertClose(KeepHeads(before[DecoderConvention.PresentValue(layer)], kept), (float[])after[DecoderConvention.PresentValue(layer)].Data, 1e-5);
        }

        // The shared empty past is gone with the Concats that read it.
        Assert.DoesNotContain(pruned.Graph.Node, n => n.OpType == "ConstantOfShape");
    }

    [Fact]
    public void The_pruned_PyTorch_decoder_generates_alike_with_and_without_cache_and_from_both_exports()
    {
        var cached = DecoderHeadPruner.Prune(Fixture(withCache: true), sparsity: 0.25);
        var plain = DecoderHeadPruner.Prune(Fixture(withCache: false), sparsity: 0.25);

        AssertClose(Logits(cached), Logits(plain), 1e-5);
        var tokens = FixtureGreedy(cached, _folder, useCache: true);
        Assert.Equal(tokens, FixtureGreedy(cached, _folder, useCache: false));
        Assert.Equal(tokens, FixtureGreedy(plain, _folder, useCache: false));
        Assert.NotEqual(Logits(Fixture(withCache: true)), Logits(cached));
    }

    [Fact]
    public void A_block_the_pruner_cannot_follow_or_an_uneven_plan_is_MC2075()
    {
        var model = Build(Options(PositionEncoding.Learned), withCache: true);
        // Layer 1's query projection read as a graph output too: its heads cannot be cut without changing that output.
        var queries = model.Graph.Node.Single(n => n.Name == "decoder.layer1.attention.query.matmul").Output[0];
        var exposed = model.Clone();
        exposed.Graph.Output.Add(new ValueInfoProto { Name = queries });
        var structures = DecoderHeadPruner.Find(model);

        var blocked = Assert.Throws<CompressionException>(() => DecoderHeadPruner.Find(exposed, "decoder.onnx"));
        var uneven = Assert.Throws<CompressionException>(() => DecoderHeadPruner.Apply(model, [.. structures.Select((s, i) => new PrunedStructure(s, i == 0 ? [0, 1] : [0, 1, 2]))], "decoder.onnx"));
        var encoder = Assert.Throws<CompressionException>(() => DecoderHeadPruner.Find(
            TransformerBuilder.Build(new TransformerOptions { Width = 8, Heads = 2, Layers = 1, FeedForward = 8 }, new([6], 2, VocabSize: 10))));

        Assert.All(new[] { blocked, uneven, encoder }, e => Assert.Equal(DiagnosticCodes.DecoderHeadsNotPrunable, e.Code));
        var problem = Assert.Single(blocked.Diagnostics);
        Assert.Contains("node 'decoder.layer1.attention.context'", problem.Message, StringComparison.Ordinal);
        Assert.Contains("read elsewhere", problem.Message, StringComparison.Ordinal);
        Assert.Equal("decoder.onnx", problem.File);
        Assert.Contains("keeps 2 of 4 at 'decoder.layer0.attention.context', 3 of 4", uneven.Message, StringComparison.Ordinal);
        Assert.Contains("not a decoder", encoder.Message, StringComparison.Ordinal);
        // A rotated query read beyond the attention is refused the same way.
        var rope = Build(Options(PositionEncoding.Rope), withCache: true);
        rope.Graph.Output.Add(new ValueInfoProto { Name = "decoder.layer2.attention.query.rope" });
        var rotated = Assert.Throws<CompressionException>(() => DecoderHeadPruner.Find(rope, "rope.onnx"));
        Assert.Contains("node 'decoder.layer2.attention.context' cannot be pruned: 'decoder.layer2.attention.query.rope' (on the queries' path) is read elsewhere too", rotated.Message, StringComparison.Ordinal);

        // Without a cache the layers may keep different numbers of heads.
        var plain = Build(Options(PositionEncoding.Learned), withCache: false);
        var unevenPlain = DecoderHeadPruner.Apply(plain, [.. DecoderHeadPruner.Find(plain).Select((s, i) => new PrunedStructure(s, i == 0 ? [0, 1] : [0, 1, 2]))]);
        Assert.All(Logits(unevenPlain), v => Assert.True(float.IsFinite(v)));
    }

    private static long[] Dims(ModelProto model, string name) => [.. model.Graph.Initializer.Single(i => i.Name == name).Dims];
}
