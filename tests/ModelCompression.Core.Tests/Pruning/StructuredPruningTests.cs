using ModelCompression.Architectures;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Pruning;
using static ModelCompression.Core.Tests.Architectures.ArchitectureTestSupport;
using static ModelCompression.Core.Tests.Pruning.PruningTestSupport;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Core.Tests.Pruning;

public sealed class StructuredPruningTests
{
    [Fact]
    public void Hidden_units_nobody_reads_go_and_the_outputs_stay_the_same()
    {
        var model = MlpBuilder.Build(6, [8], 3, Activation.Relu, seed: 4);
        int[] unread = [1, 4, 6, 7];
        // fc2.weight is [3, 8] ([out, in]): zero the columns of the unread units.
        Update(model, "fc2.weight", (i, v) => unread.Contains(i % 8) ? 0 : v);

        var (structures, skipped) = StructureFinder.Find(model, NameFilter.None);

        var structure = Assert.Single(structures);
        Assert.Equal(("fc1", "fc2", 8), (structure.Producer, structure.Consumer, structure.Units));
        var classifier = Assert.Single(skipped);
        Assert.True(classifier.Expected);
        Assert.Equal("fc2", classifier.Node);

        var scores = StructuredPruner.L2Scores(model, structure);
        Assert.Equal(unread, Enumerable.Range(0, 8).Where(j => scores[j] == 0));
        var kept = StructuredPruner.KeepHighest(scores, 0.5);
        Assert.Equal([0, 2, 3, 5], kept);

        var pruned = StructuredPruner.Apply(model, [new PrunedStructure(structure, kept)]);

        Assert.Empty(OnnxChecker.Check(pruned));
        Assert.Equal([4L, 6], Dims(pruned, "fc1.weight"));
        Assert.Equal([4L], Dims(pruned, "fc1.bias"));
        Assert.Equal([3L, 4], Dims(pruned, "fc2.weight"));
        // The kept units compute what they did: their incoming rows and biases are the original ones.
        var rows = Floats(model, "fc1.weight");
        Assert.Equal(kept.SelectMany(j => rows.Skip(j * 6).Take(6)), Floats(pruned, "fc1.weight"));
        Assert.Equal(kept.Select(j => Floats(model, "fc1.bias")[j]), Floats(pruned, "fc1.bias"));
        var inputs = new Dictionary<string, (Array, long[])> { ["input"] = (RandomFloats(5 * 6, 1), [5, 6]) };
        AssertClose(RunOrt(model, inputs).Values, RunOrt(pruned, inputs).Values, 1e-6);
        // The input model is untouched.
        Assert.Equal([8L, 6], Dims(model, "fc1.weight"));
    }

    [Fact]
    public void Conv_channels_go_with_their_batch_norm_entries_and_the_next_layers_inputs()
    {
        var model = ArchitectureRegistry.Build("cnn", new CnnOptions { Channels = [4, 6] }, new ArchitectureInputs([1, 8, 8], 3));
        // Non-trivial batch-norm statistics, so that slicing the wrong entries would show in the outputs.
        foreach (var (name, low, high, seed) in new[] { ("weight", 0.5, 1.5, 1), ("bias", -0.5, 0.5, 2), ("running_mean", -0.2, 0.2, 3), ("running_var", 0.5, 2.0, 4) })
        {
            Randomize(model, $"block1.bn.{name}", seed, low, high);
            Randomize(model, $"block2.bn.{name}", seed + 10, low, high);
        }

        // block2.conv.weight is [6, 4, 3, 3]: input channels 0 and 2 unread. classifier.weight is [3, 6]: channels 1, 3, 5 unread.
        Update(model, "block2.conv.weight", (i, v) => i / 9 % 4 is 0 or 2 ? 0 : v);
        Update(model, "classifier.weight", (i, v) => i % 6 is 1 or 3 or 5 ? 0 : v);

        var (structures, _) = StructureFinder.Find(model, NameFilter.None);
        Assert.Equal(["block1.conv", "block2.conv"], structures.Select(s => s.Producer));
        Assert.Contains(structures[0].Slices, s => s is { Initializer: "block1.bn.running_var", Role: UnitSliceRole.Statistic });
        var plan = structures.Select(s => new PrunedStructure(s, StructuredPruner.KeepHighest(StructuredPruner.L2Scores(model, s), 0.5))).ToList();
        Assert.Equal([1, 3], plan[0].Kept);
        Assert.Equal([0, 2, 4], plan[1].Kept);

        var pruned = StructuredPruner.Apply(model, plan);

        Assert.Empty(OnnxChecker.Check(pruned));
        Assert.Equal([2L, 1, 3, 3], Dims(pruned, "block1.conv.weight"));
        Assert.Equal([2L], Dims(pruned, "block1.bn.running_mean"));
        Assert.Equal([3L, 2, 3, 3], Dims(pruned, "block2.conv.weight"));
        Assert.Equal([3L], Dims(pruned, "block2.bn.weight"));
        Assert.Equal([3L, 3], Dims(pruned, "classifier.weight"));
        Assert.Equal(new[] { 1, 3 }.Select(j => Floats(model, "block1.bn.running_var")[j]), Floats(pruned, "block1.bn.running_var"));
        var inputs = new Dictionary<string, (Array, long[])> { ["input"] = (RandomFloats(4 * 64, 2), [4, 1, 8, 8]) };
        AssertClose(RunOrt(model, inputs).Values, RunOrt(pruned, inputs).Values, 1e-5);
    }

    [Fact]
    public void Flattened_channels_take_their_whole_block_of_features()
    {
        // Two 2x2 poolings of 8x8 leave 2x2 per channel: head.hidden reads 4 channels x 4 features.
        var model = ArchitectureRegistry.Build(
            "cnn",
            new CnnOptions { Channels = [4, 4], Head = CnnHead.Flatten, HeadHidden = 6, BatchNorm = false },
            new ArchitectureInputs([1, 8, 8], 3));
        Randomize(model, "block1.conv.bias", 5, -0.3, 0.3);
        Update(model, "block2.conv.weight", (i, v) => i / 9 % 4 is 1 or 2 ? 0 : v);
        Update(model, "head.hidden.weight", (i, v) => i % 16 / 4 is 0 or 3 ? 0 : v);
        Update(model, "classifier.weight", (i, v) => i % 6 is 0 or 2 or 4 ? 0 : v);

        var (structures, _) = StructureFinder.Find(model, NameFilter.None);
        Assert.Equal(["block1.conv", "block2.conv", "head.hidden"], structures.Select(s => s.Producer));
        Assert.Contains(structures[1].Slices, s => s is { Initializer: "head.hidden.weight", Axis: 1, Block: 4, Role: UnitSliceRole.Outgoing });
        var plan = structures.Select(s => new PrunedStructure(s, StructuredPruner.KeepHighest(StructuredPruner.L2Scores(model, s), 0.5))).ToList();
        Assert.Equal(new[] { new[] { 0, 3 }, [1, 2], [1, 3, 5] }, plan.Select(p => p.Kept));

        var pruned = StructuredPruner.Apply(model, plan);

        Assert.Empty(OnnxChecker.Check(pruned));
        Assert.Equal([3L, 8], Dims(pruned, "head.hidden.weight"));
        Assert.Equal([2L], Dims(pruned, "block1.conv.bias"));
        var inputs = new Dictionary<string, (Array, long[])> { ["input"] = (RandomFloats(3 * 64, 3), [3, 1, 8, 8]) };
        AssertClose(RunOrt(model, inputs).Values, RunOrt(pruned, inputs).Values, 1e-5);
    }

    [Fact]
    public void A_reshape_that_hard_codes_the_width_is_rewritten()
    {
        var builder = new GraphBuilder("reshaped");
        builder.Input("x", DataType.Float, "batch", 1, 4, 4);
        builder.Output("logits", DataType.Float, "batch", 2);
        builder.Initializer("conv.weight", RandomFloats(3 * 9, 4), [3, 1, 3, 3]);
        builder.Initializer("conv.bias", RandomFloats(3, 5), [3]);
        builder.Initializer("flat.shape", [0L, 48], [2]);
        var head = RandomFloats(2 * 48, 6);
        // Channel 1 owns features 16..31 of the flattened 3 x 4 x 4: nobody reads them.
        builder.Initializer("fc.weight", [.. head.Select((v, i) => i % 48 / 16 == 1 ? 0 : v)], [2, 48]);
        builder.Initializer("fc.bias", RandomFloats(2, 7), [2]);
        builder.Node("Conv", ["x", "conv.weight", "conv.bias"], ["conv"], "conv", "", Attr.Ints("pads", 1, 1, 1, 1));
        builder.Node("Relu", ["conv"], ["relu"], "relu", "");
        builder.Node("Reshape", ["relu", "flat.shape"], ["flat"], "flat", "");
        builder.Node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], "fc", "", Attr.Int("transB", 1));
        var model = builder.Build();

        var structure = Assert.Single(StructureFinder.Find(model, NameFilter.None).Structures);
        Assert.Equal(new ShapeFix("flat", 1, 16), Assert.Single(structure.ShapeFixes));
        var kept = StructuredPruner.KeepHighest(StructuredPruner.L2Scores(model, structure), 0.34);
        Assert.Equal([0, 2], kept);

        var pruned = StructuredPruner.Apply(model, [new PrunedStructure(structure, kept)]);

        Assert.Empty(OnnxChecker.Check(pruned));
        var reshape = pruned.Graph.Node.Single(n => n.OpType == "Reshape");
        Assert.Equal([0L, 32], TensorData.ToInt64s(pruned.Graph.Initializer.Single(i => i.Name == reshape.Input[1])));
        Assert.DoesNotContain(pruned.Graph.Initializer, i => i.Name == "flat.shape");
        var inputs = new Dictionary<string, (Array, long[])> { ["x"] = (RandomFloats(2 * 16, 8), [2, 1, 4, 4]) };
        AssertClose(RunOrt(model, inputs).Values, RunOrt(pruned, inputs).Values, 1e-5);
    }

    [Fact]
    public void Patterns_it_cannot_follow_are_left_whole_with_the_reason()
    {
        // x -> fc1 -> relu -> (+ x: a residual) -> fc2; and fc0, whose weight is also read by a second node.
        var builder = new GraphBuilder("residual");
        builder.Input("x", DataType.Float, "batch", 4);
        builder.Output("logits", DataType.Float, "batch", 2);
        builder.Output("side", DataType.Float, "batch", 4);
        builder.Initializer("fc1.weight", RandomFloats(16, 1), [4, 4]);
        builder.Initializer("fc2.weight", RandomFloats(8, 2), [2, 4]);
        builder.Initializer("shared.weight", RandomFloats(16, 3), [4, 4]);
        builder.Node("Gemm", ["x", "fc1.weight"], ["h"], "fc1", "", Attr.Int("transB", 1));
        builder.Node("Relu", ["h"], ["r"], "relu", "");
        builder.Node("Add", ["r", "x"], ["residual"], "residual", "");
        builder.Node("Gemm", ["residual", "fc2.weight"], ["logits"], "fc2", "", Attr.Int("transB", 1));
        builder.Node("MatMul", ["x", "shared.weight"], ["s1"], "shared1", "");
        builder.Node("MatMul", ["s1", "shared.weight"], ["side"], "shared2", "");
        var model = builder.Build();

        var (structures, skipped) = StructureFinder.Find(model, NameFilter.None);

        Assert.Empty(structures);
        var residual = skipped.Single(s => s.Node == "fc1");
        Assert.False(residual.Expected);
        Assert.Contains("residual connection", residual.Reason, StringComparison.Ordinal);
        Assert.Contains("shared with other nodes", skipped.Single(s => s.Node == "shared1").Reason, StringComparison.Ordinal);
        Assert.True(skipped.Single(s => s.Node == "fc2").Expected);
    }

    [Fact]
    public void In_a_transformer_the_feed_forward_neurons_go_and_attention_is_left_whole()
    {
        var c = Case("transformer-mean-gelu");
        var model = c.Build();

        var (structures, skipped) = StructureFinder.Find(model, NameFilter.None);

        Assert.Equal(["encoder.layer0.feed_forward.fc1.matmul", "encoder.layer1.feed_forward.fc1.matmul"], structures.Select(s => s.Producer));
        Assert.All(structures, s => Assert.Contains(s.Slices, sl => sl.Initializer.EndsWith("fc1.bias", StringComparison.Ordinal)));
        var query = skipped.Single(s => s.Node == "encoder.layer0.attention.query.matmul");
        Assert.Contains("attention heads", query.Reason, StringComparison.Ordinal);
        Assert.Contains("residual", skipped.Single(s => s.Node == "encoder.layer0.feed_forward.fc2.matmul").Reason, StringComparison.Ordinal);

        var pruned = StructuredPruner.Apply(model, [.. structures.Select(s => new PrunedStructure(s, StructuredPruner.KeepHighest(StructuredPruner.L2Scores(model, s), 0.5)))]);

        Assert.Empty(OnnxChecker.Check(pruned));
        Assert.Equal([16L, 16], Dims(pruned, "encoder.layer1.feed_forward.fc1.weight"));
        Assert.Equal([16L, 16], Dims(pruned, "encoder.layer1.feed_forward.fc2.weight"));
        var (values, shape) = RunOrt(pruned, RandomInputs(c, 3, seed: 5));
        Assert.Equal([3L, 3], shape);
        Assert.All(values, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void Consecutive_layers_shrink_on_both_axes_of_the_shared_weight()
    {
        var model = MlpBuilder.Build(6, [8, 5], 3, Activation.Tanh, seed: 2);
        // fc2.weight [5, 8]: units 2 and 7 of fc1 unread; fc3.weight [3, 5]: units 0 and 4 of fc2 unread.
        Update(model, "fc2.weight", (i, v) => i % 8 is 2 or 7 ? 0 : v);
        Update(model, "fc3.weight", (i, v) => i % 5 is 0 or 4 ? 0 : v);

        var (structures, _) = StructureFinder.Find(model, NameFilter.None);
        var plan = structures.Select(s => new PrunedStructure(s, StructuredPruner.KeepHighest(StructuredPruner.L2Scores(model, s), 0.3))).ToList();
        var pruned = StructuredPruner.Apply(model, plan);

        // 0.3 x 8 rounds to 2 units, 0.3 x 5 to 2.
        Assert.Equal(new[] { new[] { 0, 1, 3, 4, 5, 6 }, [1, 2, 3] }, plan.Select(p => p.Kept));
        Assert.Equal([3L, 6], Dims(pruned, "fc2.weight"));
        var rows = Floats(model, "fc2.weight");
        Assert.Equal(new[] { 1, 2, 3 }.SelectMany(r => new[] { 0, 1, 3, 4, 5, 6 }.Select(c => rows[(r * 8) + c])), Floats(pruned, "fc2.weight"));
        var inputs = new Dictionary<string, (Array, long[])> { ["input"] = (RandomFloats(4 * 6, 6), [4, 6]) };
        AssertClose(RunOrt(model, inputs).Values, RunOrt(pruned, inputs).Values, 1e-6);
    }

    [Fact]
    public void Excluded_layers_keep_their_units()
    {
        var model = MlpBuilder.Build(6, [8, 5], 3, Activation.Relu, seed: 4);

        var (structures, skipped) = StructureFinder.Find(model, new NameFilter("fc1*"));

        Assert.Equal("fc2", Assert.Single(structures).Producer);
        Assert.True(skipped.Single(s => s.Node == "fc1").Expected);
    }
}
