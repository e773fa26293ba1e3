using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Pruning;
using static ModelCompression.Core.Tests.Architectures.ArchitectureTestSupport;
using static ModelCompression.Core.Tests.Pruning.PruningTestSupport;

namespace ModelCompression.Core.Tests.Pruning;

/// <summary>
/// Head pruning on PyTorch's nn.TransformerEncoder as torch.onnx.export writes nn.MultiheadAttention
/// (tests/fixtures/pytorch/make_fixtures.py, <c>transformer</c>): one packed in-projection [32, 96] sliced three ways
/// at run time, the heads folded into the batch by [L, bsz x 4, 8] reshapes sized at run time, the key padding mask
/// expanded over the heads, and out_proj a Gemm with transB.
/// </summary>
public sealed class MultiheadAttentionPruningTests
{
    private const int Hidden = 32;
    private const int Heads = 4;
    private const int HeadWidth = Hidden / Heads;
    private const int Sequence = 16;

    // Per removed head: its query, key and value columns and biases in the packed projection, and its out_proj inputs.
    private const int ParametersPerHead = (3 * ((Hidden * HeadWidth) + HeadWidth)) + (HeadWidth * Hidden);

    public static TheoryData<int> Opsets() => [13, 17];

    [Theory]
    [MemberData(nameof(Opsets))]
    public void Both_attention_blocks_of_the_export_are_found_with_four_heads_of_eight(int opset)
    {
        var (structures, skipped) = AttentionHeadFinder.Find(Load(opset), NameFilter.None);

        Assert.Empty(skipped);
        Assert.Equal(["/encoder/layers.0/self_attn/MatMul_2", "/encoder/layers.1/self_attn/MatMul_2"], structures.Select(s => s.Producer));
        Assert.Equal(["/encoder/layers.0/self_attn/Gemm", "/encoder/layers.1/self_attn/Gemm"], structures.Select(s => s.Consumer));
        foreach (var (block, layer) in structures.Select((s, i) => (s, i)))
        {
            Assert.Equal(Heads, block.Units);
            // The packed weight by its columns and the packed bias, each in three thirds; out_proj (transB) by its input columns.
            Assert.Equal(
                [(1, HeadWidth, UnitSliceRole.Incoming, 3), (0, HeadWidth, UnitSliceRole.Incoming, 3), (1, HeadWidth, UnitSliceRole.Outgoing, 1)],
                block.Slices.Select(s => (s.Axis, s.Block, s.Role, s.Groups)));
            Assert.Equal($"encoder.layers.{layer}.self_attn.in_proj_bias", block.Slices[1].Initializer);
            Assert.Equal($"encoder.layers.{layer}.self_attn.out_proj.weight", block.Slices[2].Initializer);
            // bsz x heads of the query, key and value reshapes, the merged width, bsz x heads of the mask and its expansion.
            Assert.Equal(
                [(1, 1, true), (1, 1, true), (1, 1, true), (1, HeadWidth, false), (0, 1, true), (1, 1, false)],
                block.ShapeFixes.Select(f => (f.Position, f.Block, f.Factor)));
        }
    }

    [Theory]
    [MemberData(nameof(Opsets))]
    public void Removing_heads_that_add_nothing_keeps_the_outputs_at_any_batch_size(int opset)
    {
        var model = Load(opset);
        var (structures, _) = AttentionHeadFinder.Find(model, NameFilter.None);
        ZeroOutputColumns(model, structures[0], [1, 3]);
        ZeroOutputColumns(model, structures[1], [0, 2]);
        var plan = structures.Select(s => new PrunedStructure(s, StructuredPruner.KeepHighest(StructuredPruner.L2Scores(model, s), 0.5))).ToList();
        Assert.Equal([[0, 2], [1, 3]], plan.Select(p => p.Kept));

        var pruned = StructuredPruner.Apply(model, plan);

        Assert.Empty(OnnxChecker.Check(pruned));
        Assert.Equal(FloatParameters(model) - (2 * 2 * ParametersPerHead), FloatParameters(pruned));
        Assert.Equal([Hidden, 3 * 2 * HeadWidth], Dims(pruned, structures[0].Slices[0].Initializer));
        foreach (var (batch, seed) in new[] { (1, 1), (3, 2), (5, 3) })
        {
            var inputs = Tokens(batch, seed);
            AssertClose(RunOrt(model, inputs).Values, RunOrt(pruned, inputs).Values, 1e-5);
        }
    }

    private static string FixturePath(string file) => Path.Join(Repo.Root, "tests", "fixtures", "pytorch", file);

    private static ModelProto Load(int opset) => OnnxModelFile.Load(FixturePath($"transformer_opset{opset}.onnx"));

    /// <summary>Seeded token ids in [0, 100) and a padding mask whose last row keeps only its first half.</summary>
    private static Dictionary<string, (Array Data, long[] Shape)> Tokens(int batch, int seed)
    {
        var random = new Random(seed);
        var ids = Enumerable.Range(0, batch * Sequence).Select(_ => (long)random.Next(100)).ToArray();
        var mask = Enumerable.Range(0, batch * Sequence).Select(i => i / Sequence == batch - 1 && i % Sequence >= Sequence / 2 ? 0L : 1L).ToArray();
        return new() { ["input_ids"] = (ids, [batch, Sequence]), ["attention_mask"] = (mask, [batch, Sequence]) };
    }

    /// <summary>Zeroes the out_proj inputs of <paramref name="heads"/>: stored [out, in] (Gemm transB), a head owns HeadWidth consecutive columns.</summary>
    private static void ZeroOutputColumns(ModelProto model, PrunableStructure block, int[] heads) =>
        Update(model, block.Slices.Single(s => s.Role == UnitSliceRole.Outgoing).Initializer, (i, v) => heads.Contains(i % Hidden / HeadWidth) ? 0 : v);

    private static long FloatParameters(ModelProto model) =>
        model.Graph.Initializer.Where(i => i.DataType == (int)TensorProto.Types.DataType.Float).Sum(TensorData.ElementCount);
}
