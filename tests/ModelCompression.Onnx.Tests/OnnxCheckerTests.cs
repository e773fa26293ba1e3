using Google.Protobuf;
using ModelCompression.Diagnostics;
using ModelCompression.Onnx.Proto;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Onnx.Tests;

public sealed class OnnxCheckerTests
{
    [Fact]
    public void A_valid_model_has_no_problems()
    {
        Assert.Empty(OnnxChecker.Check(Models.Mlp()));
        OnnxChecker.ThrowIfInvalid(Models.Mlp());
    }

    [Fact]
    public void Undefined_inputs_are_reported_and_empty_optional_inputs_are_fine()
    {
        var model = Chain()
            .Node("Clip", ["a", "", "max"], ["b"])
            .Output("b", DataType.Float, 2)
            .Build();

        var problem = Assert.Single(OnnxChecker.Check(model));
        Assert.Contains("'max'", problem.Message, StringComparison.Ordinal);
        Assert.Contains("not defined", problem.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_value_written_twice_is_reported()
    {
        var model = Chain().Node("Relu", ["x"], ["a"]).Output("a", DataType.Float, 2).Build();

        Assert.Contains(OnnxChecker.Check(model), d => d.Message.Contains("'a' is written by both", StringComparison.Ordinal));
    }

    [Fact]
    public void A_node_writing_an_initializer_or_input_name_is_reported()
    {
        var model = Chain().Initializer("w", [1f, 2f]).Node("Relu", ["a"], ["w"]).Node("Relu", ["a"], ["x"]).Output("a", DataType.Float, 2).Build();

        var problems = OnnxChecker.Check(model);

        Assert.Contains(problems, d => d.Message.Contains("writes 'w'", StringComparison.Ordinal));
        Assert.Contains(problems, d => d.Message.Contains("writes 'x'", StringComparison.Ordinal));
    }

    [Fact]
    public void Duplicate_initializers_inputs_and_outputs_are_reported()
    {
        var model = Chain().Input("x", DataType.Float, 2).Initializer("w", [1f]).Initializer("w", [2f])
            .Output("a", DataType.Float, 2).Output("a", DataType.Float, 2).Build();

        var problems = OnnxChecker.Check(model).Select(d => d.Message).ToList();

        Assert.Contains(problems, m => m.Contains("graph input 'x' is declared more than once", StringComparison.Ordinal));
        Assert.Contains(problems, m => m.Contains("initializer 'w' is declared more than once", StringComparison.Ordinal));
        Assert.Contains(problems, m => m.Contains("graph output 'a' is declared more than once", StringComparison.Ordinal));
    }

    [Fact]
    public void An_initializer_may_also_be_a_graph_input()
    {
        var model = Chain().Input("w", DataType.Float, 1).Initializer("w", [1f]).Node("Add", ["a", "w"], ["b"]).Output("b", DataType.Float, 2).Build();
        Assert.Empty(OnnxChecker.Check(model));
    }

    [Fact]
    public void A_cycle_is_reported_with_its_nodes()
    {
        var model = new GraphBuilder()
            .Input("x", DataType.Float, 2)
            .Node("Add", ["x", "c"], ["a"], "first", "")
            .Node("Relu", ["a"], ["b"], "second", "")
            .Node("Relu", ["b"], ["c"], "third", "")
            .Output("c", DataType.Float, 2)
            .Build();

        var problem = Assert.Single(OnnxChecker.Check(model));

        Assert.Contains("cycle", problem.Message, StringComparison.Ordinal);
        Assert.Contains("node 'first' (Add) -> node 'second' (Relu) -> node 'third' (Relu) -> node 'first' (Add)", problem.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Nodes_out_of_topological_order_are_reported()
    {
        var model = new GraphBuilder()
            .Input("x", DataType.Float, 2)
            .Node("Relu", ["a"], ["b"], "late", "")
            .Node("Relu", ["x"], ["a"], "early", "")
            .Output("b", DataType.Float, 2)
            .Build();

        var problem = Assert.Single(OnnxChecker.Check(model));
        Assert.Contains("topological order", problem.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Initializer_data_must_match_dims_and_type()
    {
        var model = Chain().Build();
        model.Graph.Initializer.Add(new TensorProto { Name = "short", DataType = (int)DataType.Float, Dims = { 3 }, RawData = ByteString.CopyFrom(new byte[8]) });
        model.Graph.Initializer.Add(new TensorProto { Name = "typed", DataType = (int)DataType.Int64, Dims = { 2, 2 }, Int64Data = { 1, 2, 3 } });
        model.Graph.Initializer.Add(new TensorProto { Name = "untyped", Dims = { 1 }, RawData = ByteString.CopyFrom(new byte[4]) });
        model.Graph.Initializer.Add(new TensorProto { Name = "negative", DataType = (int)DataType.Float, Dims = { -1 } });
        model.Graph.Initializer.Add(new TensorProto { Name = "ok", DataType = (int)DataType.Int8, Dims = { 2 }, Int32Data = { 1, 2 } });

        var problems = OnnxChecker.Check(model).Select(d => d.Message).ToList();

        Assert.Equal(4, problems.Count);
        Assert.Contains(problems, m => m.Contains("'short'", StringComparison.Ordinal) && m.Contains("holds 8 bytes", StringComparison.Ordinal));
        Assert.Contains(problems, m => m.Contains("'typed'", StringComparison.Ordinal) && m.Contains("holds 3 values", StringComparison.Ordinal));
        Assert.Contains(problems, m => m.Contains("'untyped'", StringComparison.Ordinal) && m.Contains("data type", StringComparison.Ordinal));
        Assert.Contains(problems, m => m.Contains("'negative'", StringComparison.Ordinal) && m.Contains("dims", StringComparison.Ordinal));
    }

    [Fact]
    public void Every_domain_used_needs_an_opset_import()
    {
        var model = Chain().Node("Fancy", ["a"], ["b"], null, "com.example").Output("b", DataType.Float, 2).Build();
        Assert.Contains("'com.example'", Assert.Single(OnnxChecker.Check(model)).Message, StringComparison.Ordinal);

        model.OpsetImport.Clear();
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "com.example", Version = 1 });
        Assert.Contains("default ONNX domain", Assert.Single(OnnxChecker.Check(model)).Message, StringComparison.Ordinal);

        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "ai.onnx", Version = 17 });
        Assert.Empty(OnnxChecker.Check(model));
    }

    [Fact]
    public void Function_bodies_may_import_their_own_domains()
    {
        var model = Chain().Opset("local", 1).Node("Twice", ["a"], ["b"], null, "local").Output("b", DataType.Float, 2).Build();
        var function = new FunctionProto { Name = "Twice", Domain = "local", Input = { "i" }, Output = { "o" } };
        function.Node.Add(new NodeProto { OpType = "Helper", Domain = "com.helper", Input = { "i" }, Output = { "o" } });
        model.Functions.Add(function);

        Assert.Contains("'com.helper'", Assert.Single(OnnxChecker.Check(model)).Message, StringComparison.Ordinal);

        function.OpsetImport.Add(new OperatorSetIdProto { Domain = "com.helper", Version = 1 });
        Assert.Empty(OnnxChecker.Check(model));
    }

    [Fact]
    public void Graph_outputs_must_be_produced()
    {
        var model = Chain().Output("nowhere", DataType.Float, 2).Build();
        Assert.Contains("'nowhere' is not produced", Assert.Single(OnnxChecker.Check(model)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Subgraphs_may_read_outer_values_and_run_in_onnx_runtime()
    {
        var model = IfModel(thenReads: "a");
        Assert.Empty(OnnxChecker.Check(model));

        using var dir = new TempDir();
        OnnxModelFile.Save(model, dir.File("if.onnx"));
        var y = Ort.Run(dir.File("if.onnx"), new Ort.Input("x", [2], Floats: [-1f, 2f]))["y"];
        Assert.Equal([0f, 2f], y); // x sums to 1 > 0, so the then-branch: Relu(x)
    }

    [Fact]
    public void Subgraphs_reading_undefined_values_are_reported()
    {
        var problem = Assert.Single(OnnxChecker.Check(IfModel(thenReads: "ghost")));
        Assert.Contains("'ghost'", problem.Message, StringComparison.Ordinal);
        Assert.Contains("then_branch", problem.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ThrowIfInvalid_reports_everything_at_once_as_MC2002()
    {
        var model = Chain().Node("Relu", ["missing"], ["b"]).Output("nowhere", DataType.Float, 2).Build();

        var error = Assert.Throws<CompressionException>(() => OnnxChecker.ThrowIfInvalid(model, "bad.onnx"));

        Assert.Equal(2, error.Diagnostics.Count);
        Assert.All(error.Diagnostics, d => Assert.Equal((DiagnosticCodes.ModelInvalid, "bad.onnx"), (d.Code, d.File)));
    }

    [Fact]
    public void A_model_without_a_graph_is_reported()
    {
        Assert.Single(OnnxChecker.Check(new ModelProto { IrVersion = 8 }));
    }

    /// <summary>x -> Relu -> a (no outputs declared yet).</summary>
    private static GraphBuilder Chain() =>
        new GraphBuilder().Input("x", DataType.Float, 2).Node("Relu", ["x"], ["a"]);

    /// <summary>y = If(sum(x) > 0, then: Relu(<paramref name="thenReads"/>), else: Neg(x)) where a = x.</summary>
    private static ModelProto IfModel(string thenReads)
    {
        var then = new GraphBuilder("then").Node("Relu", [thenReads], ["t"]).Output("t", DataType.Float, 2).BuildGraph();
        var otherwise = new GraphBuilder("else").Node("Neg", ["x"], ["e"]).Output("e", DataType.Float, 2).BuildGraph();
        return new GraphBuilder()
            .Input("x", DataType.Float, 2)
            .Initializer("zero", [0f], [])
            .Node("Identity", ["x"], ["a"])
            .Node("ReduceSum", ["x"], ["s"], Attr.Int("keepdims", 0))
            .Node("Greater", ["s", "zero"], ["c"])
            .Node("If", ["c"], ["y"], Attr.Graph("then_branch", then), Attr.Graph("else_branch", otherwise))
            .Output("y", DataType.Float, 2)
            .Build();
    }
}
