using System.Text.Json;
using ModelCompression.Core.Tests.Data;
using ModelCompression.Core.Tests.Pipeline;
using ModelCompression.Diagnostics;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Pipeline;
using ModelCompression.Pruning;
using ModelCompression.Recipes;
using ModelCompression.Runs;
using Xunit.Abstractions;
using static ModelCompression.Core.Tests.Architectures.ArchitectureTestSupport;
using static ModelCompression.Core.Tests.Pruning.PruningTestSupport;

namespace ModelCompression.Core.Tests.Pruning;

/// <summary>
/// Head pruning on PyTorch's own nn.TransformerEncoder as torch.onnx.export writes nn.MultiheadAttention: one packed
/// in-projection [32, 96] cut in thirds by Slices sized at run time, the heads folded into the batch by
/// [L, bsz x 4, 8] reshapes sized at run time, the key padding mask expanded over the heads, out_proj a Gemm with
/// transB. Two exports of each: <c>transformer</c> (make_fixtures.py: batch_first, a fixed 16 positions, input
/// [batch, 16]) and <c>mha</c> (make_mha_fixture.py: sequence-first, any length, input [seq, batch]).
/// </summary>
public sealed class MultiheadAttentionPruningTests(ITestOutputHelper output) : IDisposable
{
    private const int Hidden = 32;
    private const int Heads = 4;
    private const int HeadWidth = Hidden / Heads;

    // Per removed head: its query, key and value columns and biases in the packed projection, and its out_proj inputs.
    private const int ParametersPerHead = (3 * ((Hidden * HeadWidth) + HeadWidth)) + (HeadWidth * Hidden);

    private readonly TempDir _dir = new();

    public static TheoryData<string> Fixtures() => ["transformer_opset13", "transformer_opset17", "mha_opset13", "mha_opset17"];

    public static TheoryData<int> Opsets() => [13, 17];

    [Theory]
    [MemberData(nameof(Opsets))]
    public void The_sequence_first_fixture_computes_the_recorded_pytorch_logits(int opset)
    {
        var model = Load($"mha_opset{opset}");
        AssertRecordedPyTorchLogits(model, $"mha_opset{opset}.expected.json");
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void Both_attention_blocks_of_the_export_are_found_with_four_heads_of_eight(string fixture)
    {
        var (structures, skipped) = AttentionHeadFinder.Find(Load(fixture), NameFilter.None);

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
    [MemberData(nameof(Fixtures))]
    public void Removing_heads_that_add_nothing_keeps_the_outputs_at_other_batch_sizes_and_sequence_lengths(string fixture)
    {
        var model = Load(fixture);
        var (structures, _) = AttentionHeadFinder.Find(model, NameFilter.None);
        ZeroOutputColumns(model, structures[0], [1, 3]);
        ZeroOutputColumns(model, structures[1], [0, 2]);
        var plan = structures.Select(s => new PrunedStructure(s, StructuredPruner.KeepHighest(StructuredPruner.L2Scores(model, s), 0.5))).ToList();
        Assert.Equal([[0, 2], [1, 3]], plan.Select(p => p.Kept));

        var pruned = StructuredPruner.Apply(model, plan);

        Assert.Empty(OnnxChecker.Check(pruned));
        Assert.Equal(FloatParameters(model) - (2 * 2 * ParametersPerHead), FloatParameters(pruned));
        // The kept heads' columns, in each third of the packed projection: heads 0 and 2 of layer 0.
        var packed = structures[0].Slices[0].Initializer;
        Assert.Equal([Hidden, 3 * 2 * HeadWidth], Dims(pruned, packed));
        int[] keptColumns = [.. Enumerable.Range(0, 3).SelectMany(third => new[] { 0, 2 }.SelectMany(head => Enumerable.Range((third * Hidden) + (head * HeadWidth), HeadWidth)))];
        var original = Floats(model, packed);
        Assert.Equal(Enumerable.Range(0, Hidden).SelectMany(row => keptColumns.Select(c => original[(row * 3 * Hidden) + c])), Floats(pruned, packed));
        foreach (var (batch, sequence, seed) in Sizes(fixture))
        {
            var inputs = Tokens(fixture, batch, sequence, seed);
            AssertClose(RunOrt(model, inputs).Values, RunOrt(pruned, inputs).Values, 1e-5);
        }
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void Pruning_half_the_heads_gives_a_smaller_model_that_runs_with_its_head_counts_set(string fixture)
    {
        var model = Load(fixture);
        var (structures, _) = AttentionHeadFinder.Find(model, NameFilter.None);
        var plan = structures.Select(s => new PrunedStructure(s, StructuredPruner.KeepHighest(StructuredPruner.L2Scores(model, s), 0.5))).ToList();

        var pruned = StructuredPruner.Apply(model, plan);

        Assert.Empty(OnnxChecker.Check(pruned));
        Assert.All(plan, p => Assert.Equal(2, p.Kept.Length));
        Assert.Equal(FloatParameters(model) - (2 * 2 * ParametersPerHead), FloatParameters(pruned));
        foreach (var (batch, sequence, seed) in Sizes(fixture))
        {
            var inputs = Tokens(fixture, batch, sequence, seed);
            var (values, shape) = RunOrt(pruned, inputs);
            Assert.Equal([batch, fixture.StartsWith("mha", StringComparison.Ordinal) ? 3L : 4L], shape);
            Assert.All(values, v => Assert.True(float.IsFinite(v)));
            Assert.NotEqual(RunOrt(model, inputs).Values, values);
        }

        // bsz x heads is still read at run time, now times 2; the mask is expanded over 2 heads; the merged width is 16.
        foreach (var layer in new[] { 0, 1 })
        {
            var prefix = $"/encoder/layers.{layer}/self_attn/";
            Assert.Equal([2L, 2, 2, 2], HeadFactors(pruned, prefix));
            Assert.Equal([4L, 4, 4, 4], HeadFactors(model, prefix));
            Assert.Equal([1L, 2, 1, 1], ShapeOf(pruned, pruned.Graph.Node.Single(n => n.OpType == "Expand" && n.Name.StartsWith(prefix, StringComparison.Ordinal))));
            Assert.Equal(16L, ShapeOf(pruned, pruned.Graph.Node.Single(n => n.Name.StartsWith(prefix + "Concat_5", StringComparison.Ordinal)))[^1]);
        }
    }

    [Trait("Category", "Slow")] // trains the pruned export with TorchSharp
    [Theory]
    [MemberData(nameof(Fixtures))]
    public void The_pruned_export_trains_the_graph_the_runtime_runs(string fixture)
    {
        // Recovery training imports the pruned graph into TorchSharp: its run-time head sizes must follow the cut there too.
        var model = Load(fixture);
        var (structures, _) = AttentionHeadFinder.Find(model, NameFilter.None);
        Assert.Equal(2, structures.Count);
        var pruned = StructuredPruner.Apply(model, [.. structures.Select(s => new PrunedStructure(s, [0, 3]))]);
        var (batch, sequence, _) = Sizes(fixture)[^1];
        var inputs = Tokens(fixture, batch, sequence, seed: 8);
        ModelCompression.Torch.Native.TorchNativeLoader.EnsureLoaded();
        using var scope = TorchSharp.torch.NewDisposeScope();
        using var graph = ModelCompression.Torch.Graph.TrainableGraph.Import(pruned);
        graph.eval();
        var feed = inputs.ToDictionary(i => i.Key, i => TorchSharp.torch.tensor((long[])i.Value.Data, i.Value.Shape));

        var logits = graph.Forward(feed)[graph.OutputNames[0]];

        AssertClose(RunOrt(pruned, inputs).Values, logits.data<float>().ToArray(), 1e-4);
        logits.sum().backward();
        var packed = structures.Select(s => s.Slices[0].Initializer).ToList();
        Assert.All(packed, name => Assert.Equal([Hidden, 3L * 2 * HeadWidth], graph.ParametersByName[name].shape));
        Assert.All(
            graph.ParametersByName.Where(p => packed.Contains(p.Key) || p.Key.Contains("self_attn", StringComparison.Ordinal)),
            p => Assert.True(p.Value.grad is { } grad && grad.abs().sum().item<float>() > 0, $"no gradient reaches {p.Key}"));
    }

    [Fact]
    public void Attention_without_a_padding_mask_is_pruned_too()
    {
        // As exported without src_key_padding_mask: the scores go to the softmax unmasked, so there is no mask to
        // follow the heads (its nodes stay behind, unread).
        var model = Load("mha_opset17");
        foreach (var layer in new[] { 0, 1 })
        {
            var softmax = model.Graph.Node.Single(n => n.Name == $"/encoder/layers.{layer}/self_attn/Softmax");
            var masking = model.Graph.Node.Single(n => n.Name == $"/encoder/layers.{layer}/self_attn/Add_2");
            softmax.Input[0] = masking.Input[0];
            model.Graph.Node.Remove(masking);
        }

        var (structures, skipped) = AttentionHeadFinder.Find(model, NameFilter.None);
        Assert.Empty(skipped);
        Assert.All(structures, s => Assert.Equal([(1, 1, true), (1, 1, true), (1, 1, true), (1, HeadWidth, false)], s.ShapeFixes.Select(f => (f.Position, f.Block, f.Factor))));
        ZeroOutputColumns(model, structures[0], [0, 1]);
        ZeroOutputColumns(model, structures[1], [2, 3]);

        var pruned = StructuredPruner.Apply(model, [new PrunedStructure(structures[0], [2, 3]), new PrunedStructure(structures[1], [0, 1])]);

        Assert.Empty(OnnxChecker.Check(pruned));
        foreach (var (batch, sequence, seed) in Sizes("mha_opset17"))
        {
            var inputs = Tokens("mha_opset17", batch, sequence, seed);
            AssertClose(RunOrt(model, inputs).Values, RunOrt(pruned, inputs).Values, 1e-5);
        }
    }

    [Fact]
    public void A_run_time_size_that_reads_a_dim_the_heads_change_keeps_the_block_whole_with_the_reason()
    {
        // Layer 0's value reshape takes its sequence size from dim 2 of the value slice (heads x head_width), which
        // pruning changes: the block must be left alone.
        var model = Load("mha_opset13");
        var gather = model.Graph.Node.Single(n => n.Name == "/encoder/layers.0/self_attn/Gather_5");
        model.Graph.Initializer.Add(TensorData.FromInt64s("dim2", [2L], []));
        gather.Input[1] = "dim2";

        var (structures, skipped) = AttentionHeadFinder.Find(model, NameFilter.None);

        Assert.Equal(["/encoder/layers.1/self_attn/MatMul_2"], structures.Select(s => s.Producer));
        var skip = Assert.Single(skipped);
        Assert.False(skip.Expected);
        Assert.Equal("/encoder/layers.0/self_attn/MatMul_2", skip.Node);
        Assert.Contains("dim 2 of '/encoder/layers.0/self_attn/Slice_2_output_0'", skip.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void A_packed_width_read_for_something_else_keeps_the_block_whole_with_the_reason()
    {
        // The packed width (3 x heads x head_width) also sizes the merged heads: pruning would not change it to match.
        var model = Load("mha_opset13");
        var merge = model.Graph.Node.Single(n => n.Name == "/encoder/layers.0/self_attn/Concat_5");
        var third = model.Graph.Node.Single(n => n.Name == "/encoder/layers.0/self_attn/Div_1");
        merge.Input[1] = third.Output[0];

        var (structures, skipped) = AttentionHeadFinder.Find(model, NameFilter.None);

        Assert.Equal(["/encoder/layers.1/self_attn/MatMul_2"], structures.Select(s => s.Producer));
        var skip = Assert.Single(skipped);
        Assert.Contains("the packed width, dim -1 of '/encoder/layers.0/self_attn/Add_output_0', is read at run time for more than the slice bounds", skip.Reason, StringComparison.Ordinal);
    }

    [Trait("Category", "Slow")] // runs a whole pipeline with recovery training
    [Fact]
    public void A_recipe_prunes_half_the_heads_of_the_export_and_recovers_without_a_warning()
    {
        // The issue: this recipe on an nn.TransformerEncoder export ended with two MC2060 warnings and nothing pruned.
        // The fixture is an untrained model with no data of its own: its inputs are random token ids and padding, and
        // its labels are what it predicts itself, so the pruned model is measured by how often it still agrees.
        var teacher = PyTorchFixture("transformer_opset17.onnx");
        foreach (var (split, count, seed) in new[] { ("train", 384, 11), ("test", 256, 12) })
        {
            var (batch, labels) = SelfLabelled(teacher, count, seed);
            Npy.WriteLongs(_dir.File($"ids-{split}.npy"), (long[])batch["input_ids"].Data, count, 16);
            Npy.WriteLongs(_dir.File($"mask-{split}.npy"), (long[])batch["attention_mask"].Data, count, 16);
            Npy.WriteLongs(_dir.File($"labels-{split}.npy"), labels, count);
        }

        var recipe = _dir.Write("heads.compress.yaml", $$"""
            data:
              format: npy
              train: { inputs: { input_ids: ids-train.npy, attention_mask: mask-train.npy }, labels: labels-train.npy }
              test:  { inputs: { input_ids: ids-test.npy, attention_mask: mask-test.npy }, labels: labels-test.npy }
            teacher: {{teacher}}
            student: { model: {{teacher}} }
            stages:
              - prune: { method: heads, sparsity: 0.5, recovery_epochs: 2, batch_size: 32, learning_rate: 1e-3, alpha: 0.7, temperature: 2 }
              - evaluate: { measure_latency: false }
            outputs: { model: heads.onnx, report: [json] }
            """);
        var reporter = new RecordingReporter();

        var result = CompressionRun.Run(RecipeLoader.Load(recipe), new PipelineOptions(_dir.Dir("cache"), _dir.Path, reporter));

        var heads = result.Stages[0];
        output.WriteLine($"parameters {result.Teacher!.Parameters} -> {heads.Evaluation.Parameters}, agreement with the unpruned export {heads.Evaluation.AgreementWithTeacher:P1}");
        Assert.DoesNotContain(reporter.Diagnostics, d => d.Code == DiagnosticCodes.StructureNotPrunable || d.Code == DiagnosticCodes.NothingToTransform);
        Assert.Equal("4 -> 2", heads.Result.Details["heads./encoder/layers.0/self_attn/MatMul_2"]);
        Assert.Equal("4 -> 2", heads.Result.Details["heads./encoder/layers.1/self_attn/MatMul_2"]);
        var pruned = OnnxModelFile.Load(result.OutputModel!);
        // The evaluation counts the int64 shape constants too; the weights lose exactly two heads per block.
        Assert.Equal(FloatParameters(OnnxModelFile.Load(teacher)) - (2 * 2 * ParametersPerHead), FloatParameters(pruned));
        Assert.True(heads.Evaluation.Parameters < result.Teacher.Parameters * 0.81, $"parameters {result.Teacher.Parameters} -> {heads.Evaluation.Parameters}");
        Assert.Equal([Hidden, 3L * 2 * HeadWidth], Dims(pruned, AttentionHeadFinder.Find(OnnxModelFile.Load(teacher), NameFilter.None).Structures[0].Slices[0].Initializer));
        Assert.True(heads.Evaluation.AgreementWithTeacher > 0.5, $"agreement {heads.Evaluation.AgreementWithTeacher:P1}");
    }

    public void Dispose() => _dir.Dispose();


    private static ModelProto Load(string fixture) => OnnxModelFile.Load(PyTorchFixture($"{fixture}.onnx"));

    /// <summary>(batch, sequence, seed) other than the exports' (batch 2; the transformer fixture takes 16 positions only).</summary>
    private static (int Batch, int Sequence, int Seed)[] Sizes(string fixture) =>
        fixture.StartsWith("mha", StringComparison.Ordinal) ? [(1, 5, 1), (3, 23, 2), (5, 9, 3)] : [(1, 16, 1), (3, 16, 2), (5, 16, 3)];

    /// <summary>Seeded token ids in [0, 100) and a padding mask whose last row keeps only its first half.</summary>
    private static Dictionary<string, (Array Data, long[] Shape)> Tokens(string fixture, int batch, int sequence, int seed)
    {
        var random = new Random(seed);
        var ids = Enumerable.Range(0, batch * sequence).Select(_ => (long)random.Next(100)).ToArray();
        var mask = Enumerable.Range(0, batch * sequence).Select(i => i / sequence == batch - 1 && i % sequence >= sequence / 2 ? 0L : 1L).ToArray();
        // The sequence-first export takes its ids [seq, batch]; the order of seeded ids does not matter.
        long[] idShape = fixture.StartsWith("mha", StringComparison.Ordinal) ? [sequence, batch] : [batch, sequence];
        return new() { ["input_ids"] = (ids, idShape), ["attention_mask"] = (mask, [batch, sequence]) };
    }

    /// <summary><paramref name="count"/> seeded inputs for the batch-first export and the class it predicts for each.</summary>
    private static (Dictionary<string, (Array Data, long[] Shape)> Batch, long[] Labels) SelfLabelled(string model, int count, int seed)
    {
        var batch = Tokens("transformer_opset17", count, 16, seed);
        // Every row padded from a seeded point, not only the last.
        var random = new Random(seed);
        var mask = (long[])batch["attention_mask"].Data;
        for (var row = 0; row < count; row++)
        {
            var length = random.Next(4, 17);
            for (var t = 0; t < 16; t++)
            {
                mask[(row * 16) + t] = t < length ? 1 : 0;
            }
        }

        var logits = RunOrt(OnnxModelFile.Load(model), batch).Values;
        long[] labels = [.. Enumerable.Range(0, count).Select(row => (long)logits.AsSpan(row * 4, 4).IndexOf(logits.AsSpan(row * 4, 4).ToArray().Max()))];
        return (batch, labels);
    }

    /// <summary>Zeroes the out_proj inputs of <paramref name="heads"/>: stored [out, in] (Gemm transB), a head owns HeadWidth consecutive columns.</summary>
    private static void ZeroOutputColumns(ModelProto model, PrunableStructure block, int[] heads) =>
        Update(model, block.Slices.Single(s => s.Role == UnitSliceRole.Outgoing).Initializer, (i, v) => heads.Contains(i % Hidden / HeadWidth) ? 0 : v);

    /// <summary>The constant count in each bsz x heads Mul that sizes a layer's reshapes (query, key, value, mask).</summary>
    private static long[] HeadFactors(ModelProto model, string layer) =>
        [.. model.Graph.Node
            .Where(n => n.OpType == "Reshape" && n.Name.StartsWith(layer, StringComparison.Ordinal))
            .Select(n => Producer(model, n.Input[1]))
            .OfType<NodeProto>()
            .Where(concat => concat.OpType == "Concat")
            .SelectMany(concat => concat.Input.Select(input => Producer(model, input)))
            .Where(part => part?.OpType == "Unsqueeze" && Producer(model, part.Input[0]) is { OpType: "Mul" })
            .Select(part => Producer(model, part!.Input[0])!)
            .Where(mul => mul.Input.Any(i => IntConstant(model, i) is not null))
            .Select(mul => mul.Input.Select(i => IntConstant(model, i)).OfType<long[]>().Single()[0])];

    private static NodeProto? Producer(ModelProto model, string value) => model.Graph.Node.SingleOrDefault(n => n.Output.Contains(value));

    private static long[]? IntConstant(ModelProto model, string value) =>
        model.Graph.Initializer.FirstOrDefault(i => i.Name == value) is { DataType: (int)TensorProto.Types.DataType.Int64 } initializer ? TensorData.ToInt64s(initializer)
        : Producer(model, value) is { OpType: "Constant" } constant && constant.Attribute[0].T is { DataType: (int)TensorProto.Types.DataType.Int64 } t ? TensorData.ToInt64s(t)
        : null;

    /// <summary>The constant shape an Expand takes, or the elements a Concat assembles where they are constants.</summary>
    private static long[] ShapeOf(ModelProto model, NodeProto node) =>
        node.OpType == "Expand" ? IntConstant(model, node.Input[1])! : [.. node.Input.SelectMany(i => IntConstant(model, i) ?? [-1])];
}
