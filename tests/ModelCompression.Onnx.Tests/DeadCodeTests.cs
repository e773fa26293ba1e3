using ModelCompression.Onnx.Proto;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Onnx.Tests;

public sealed class DeadCodeTests
{
    [Fact]
    public void A_dead_chain_and_the_initializers_only_it_reads_go_and_the_outputs_stay_the_same()
    {
        // y = x W + b is live; Relu(x W2) -> Neg -> Identity is a chain nothing reads, and W2 is read by it alone.
        var model = new GraphBuilder()
            .Input("x", DataType.Float, "batch", 3)
            .Initializer("w", Values(6, seed: 1), [3, 2])
            .Initializer("b", Values(2, seed: 2), [2])
            .Initializer("w2", Values(12, seed: 3), [3, 4])
            .Node("MatMul", ["x", "w2"], ["dead_mm"])
            .Node("Relu", ["dead_mm"], ["dead_relu"])
            .Node("Neg", ["dead_relu"], ["dead_neg"])
            .Node("Identity", ["dead_neg"], ["dead_end"])
            .Node("MatMul", ["x", "w"], ["xw"])
            .Node("Add", ["xw", "b"], ["y"])
            .ValueInfo("dead_relu", DataType.Float, "batch", 4)
            .Output("y", DataType.Float, "batch", 2)
            .Build();
        var original = model.Clone();

        var removed = DeadCode.Eliminate(model);

        Assert.Equal(new DeadCodeRemoved(4, 1, 12 * sizeof(float)), removed);
        Assert.Equal(["MatMul", "Add"], model.Graph.Node.Select(n => n.OpType));
        Assert.Equal(["w", "b"], model.Graph.Initializer.Select(i => i.Name));
        Assert.Empty(model.Graph.ValueInfo);
        Assert.Empty(OnnxChecker.Check(model));
        using var dir = new TempDir();
        OnnxModelFile.Save(original, dir.File("before.onnx"));
        OnnxModelFile.Save(model, dir.File("after.onnx"));
        var input = Ort.RandomFloats("x", [5, 3], seed: 4);
        Assert.Equal(Ort.Run(dir.File("before.onnx"), input)["y"], Ort.Run(dir.File("after.onnx"), input)["y"]);
    }

    [Fact]
    public void A_clean_model_is_left_as_it_is()
    {
        var model = Models.Mlp();
        var original = model.Clone();

        var removed = DeadCode.Eliminate(model);

        Assert.True(removed.IsEmpty);
        Assert.Equal(original, model);
    }

    [Fact]
    public void A_node_with_several_outputs_stays_whole_when_one_output_is_read()
    {
        var model = new GraphBuilder()
            .Input("x", DataType.Float, 4)
            .Initializer("k", [2L], [1])
            .Node("TopK", ["x", "k"], ["values", "indices"])
            .Node("Split", ["x"], ["left", "right"], Attr.Int("axis", 0))
            .Node("Neg", ["right"], ["unread"])
            .Node("Relu", ["values"], ["y"])
            .Output("y", DataType.Float, 2)
            .Output("left", DataType.Float, 2)
            .Build();

        var removed = DeadCode.Eliminate(model);

        Assert.Equal(new DeadCodeRemoved(1, 0, 0), removed);
        Assert.Equal(["TopK", "Split", "Relu"], model.Graph.Node.Select(n => n.OpType));
        Assert.Equal(["values", "indices"], model.Graph.Node[0].Output);
        Assert.Equal(["left", "right"], model.Graph.Node[1].Output);
        Assert.Empty(OnnxChecker.Check(model));
    }

    [Fact]
    public void Values_a_live_subgraph_reads_from_the_outer_graph_stay_and_its_own_dead_code_goes()
    {
        // The then-branch reads the outer 'scaled' (made by a Mul node) and the outer initializer 'shift'; nothing in
        // the outer graph reads either directly. Inside it, a Neg of the outer 'unused_outer' is dead, and so is the
        // branch's own initializer 'inner_unread'.
        var then = new GraphBuilder("then")
            .Initializer("inner_unread", Values(8, seed: 5), [8])
            .Node("Neg", ["unused_outer"], ["inner_dead"])
            .Node("Add", ["scaled", "shift"], ["t"])
            .Output("t", DataType.Float, 2)
            .BuildGraph();
        var otherwise = new GraphBuilder("else").Node("Neg", ["x"], ["e"]).Output("e", DataType.Float, 2).BuildGraph();
        var model = new GraphBuilder()
            .Input("x", DataType.Float, 2)
            .Initializer("zero", [0f], [])
            .Initializer("two", [2f], [])
            .Initializer("shift", [0.5f, -0.5f], [2])
            .Node("Mul", ["x", "two"], ["scaled"])
            .Node("Exp", ["x"], ["unused_outer"])
            .Node("ReduceSum", ["x"], ["s"], Attr.Int("keepdims", 0))
            .Node("Greater", ["s", "zero"], ["c"])
            .Node("If", ["c"], ["y"], Attr.Graph("then_branch", then), Attr.Graph("else_branch", otherwise))
            .Output("y", DataType.Float, 2)
            .Build();
        var original = model.Clone();

        var removed = DeadCode.Eliminate(model);

        // The inner Neg and the outer Exp it alone read; the branch's unread initializer.
        Assert.Equal(new DeadCodeRemoved(2, 1, 8 * sizeof(float)), removed);
        Assert.Equal(["Mul", "ReduceSum", "Greater", "If"], model.Graph.Node.Select(n => n.OpType));
        Assert.Equal(["zero", "two", "shift"], model.Graph.Initializer.Select(i => i.Name));
        var kept = model.Graph.Node[3].Attribute.Single(a => a.Name == "then_branch").G;
        Assert.Equal(["Add"], kept.Node.Select(n => n.OpType));
        Assert.Empty(kept.Initializer);
        Assert.Empty(OnnxChecker.Check(model));
        using var dir = new TempDir();
        OnnxModelFile.Save(original, dir.File("before.onnx"));
        OnnxModelFile.Save(model, dir.File("after.onnx"));
        foreach (var sign in new[] { 1f, -1f })
        {
            var input = new Ort.Input("x", [2], Floats: [sign * 1.5f, sign * 0.25f]);
            Assert.Equal(Ort.Run(dir.File("before.onnx"), input)["y"], Ort.Run(dir.File("after.onnx"), input)["y"]);
        }
    }

    [Fact]
    public void A_dead_node_with_a_subgraph_goes_with_its_body_and_what_only_the_body_read()
    {
        var body = new GraphBuilder("then").Node("Relu", ["outer"], ["t"]).Output("t", DataType.Float, 2).BuildGraph();
        var model = new GraphBuilder()
            .Input("x", DataType.Float, 2)
            .Input("flag", DataType.Bool)
            .Node("Exp", ["x"], ["outer"])
            .Node("If", ["flag"], ["unread"], Attr.Graph("then_branch", body), Attr.Graph("else_branch", body))
            .Node("Neg", ["x"], ["y"])
            .Output("y", DataType.Float, 2)
            .Build();

        var removed = DeadCode.Eliminate(model);

        // If, its two one-node branches, and Exp, which only the branches read.
        Assert.Equal(4, removed.Nodes);
        Assert.Equal(["Neg"], model.Graph.Node.Select(n => n.OpType));
        Assert.Equal(["x", "flag"], model.Graph.Input.Select(i => i.Name));
    }

    [Fact]
    public void Graph_outputs_made_by_initializers_or_inputs_and_every_graph_input_stay()
    {
        // 'bias' is an output as it is; 'x' is passed through; 'unused' is a graph input nothing reads; 'default'
        // is an initializer declared as an input too (an overridable default), read by nothing.
        var model = new GraphBuilder()
            .Input("x", DataType.Float, 2)
            .Input("unused", DataType.Float, 3)
            .Input("default", DataType.Float, 2)
            .Initializer("bias", [1f, 2f], [2])
            .Initializer("default", [3f, 4f], [2])
            .Initializer("dropped", [5f, 6f], [2])
            .Node("Identity", ["dropped"], ["dropped_copy"])
            .Output("bias", DataType.Float, 2)
            .Output("x", DataType.Float, 2)
            .Build();

        var removed = DeadCode.Eliminate(model);

        Assert.Equal(new DeadCodeRemoved(1, 1, 2 * sizeof(float)), removed);
        Assert.Empty(model.Graph.Node);
        Assert.Equal(["x", "unused", "default"], model.Graph.Input.Select(i => i.Name));
        Assert.Equal(["bias", "default"], model.Graph.Initializer.Select(i => i.Name));
        Assert.Equal(["bias", "x"], model.Graph.Output.Select(o => o.Name));
        Assert.Empty(OnnxChecker.Check(model));
    }

    [Fact]
    public void A_PyTorch_export_has_no_dead_code_to_remove()
    {
        // Real exports share weights through Identity nodes that are all read: none of them may go.
        foreach (var fixture in new[] { "bert_opset13.onnx", "transformer_opset13.onnx", "cnn_opset17.onnx" })
        {
            var model = OnnxModelFile.Load(Path.Join(Fixtures.Folder, fixture));
            var original = model.Clone();

            Assert.True(DeadCode.Eliminate(model).IsEmpty, fixture);
            Assert.Equal(original, model);
        }
    }

    private static float[] Values(int count, int seed)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 2 - 1))];
    }
}
