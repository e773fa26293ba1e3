using System.Text;
using ModelCompression.Onnx.Proto;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Onnx.Tests;

public sealed class GraphBuilderTests
{
    [Fact]
    public void Gemm_relu_mlp_runs_in_onnx_runtime_and_matches_a_hand_computation()
    {
        float[] w1 = [1, 2, -1, 0.5f, 0, 1];     // [3, 2]
        float[] b1 = [0.5f, -10, 1];
        float[] w2 = [1, 1, 1, -1, 0, 2];        // [2, 3]
        float[] b2 = [0, 1];
        var model = new GraphBuilder("mlp")
            .Input("x", DataType.Float, "batch", 2)
            .Initializer("w1", w1, [3, 2])
            .Initializer("b1", b1, [3])
            .Initializer("w2", w2, [2, 3])
            .Initializer("b2", b2, [2])
            .Node("Gemm", ["x", "w1", "b1"], ["h"], Attr.Int("transB", 1))
            .Node("Relu", ["h"], ["r"])
            .Node("Gemm", ["r", "w2", "b2"], ["y"], Attr.Int("transB", 1))
            .Output("y", DataType.Float, "batch", 2)
            .Build();
        Assert.Empty(OnnxChecker.Check(model));

        using var dir = new TempDir();
        OnnxModelFile.Save(model, dir.File("mlp.onnx"));
        float[] x = [1, 2, -3, 4];
        var y = Ort.Run(dir.File("mlp.onnx"), new Ort.Input("x", [2, 2], Floats: x))["y"];

        var expected = new float[4];
        for (var n = 0; n < 2; n++)
        {
            var r = new float[3];
            for (var j = 0; j < 3; j++)
            {
                r[j] = Math.Max(0, x[n * 2] * w1[j * 2] + x[n * 2 + 1] * w1[j * 2 + 1] + b1[j]);
            }

            for (var k = 0; k < 2; k++)
            {
                expected[n * 2 + k] = r[0] * w2[k * 3] + r[1] * w2[k * 3 + 1] + r[2] * w2[k * 3 + 2] + b2[k];
            }
        }

        Assert.Equal(expected, y);
    }

    [Fact]
    public void Model_fields_attributes_shapes_and_opsets_are_written()
    {
        var body = new GraphBuilder("body").Input("a", DataType.Float).Output("a", DataType.Float).BuildGraph();
        var model = new GraphBuilder("g")
            .IrVersion(9)
            .Opset(18)
            .Opset("com.example", 2)
            .Producer("maker", "2.0")
            .Metadata("k", "v")
            .ModelDoc("model doc")
            .GraphDoc("graph doc")
            .Input("ids", DataType.Int64, "batch", "seq")
            .Input("any", DataType.Float, null)
            .Input("scalar", DataType.Float)
            .ValueInfo("mid", DataType.Float, Dim.Unknown, 3)
            .Initializer("i8", new sbyte[] { -1, 2 }, [2])
            .Initializer("u8", new byte[] { 1, 2, 3, 4 }, [2, 2])
            .Initializer("i64", new long[] { 7 }, [])
            .Node("Custom", ["ids"], ["mid"], "my_node", "com.example",
                Attr.Int("i", 3), Attr.Float("f", 0.5f), Attr.String("s", "hé"), Attr.Ints("is", 1, 2),
                Attr.Floats("fs", 1.5f), Attr.Strings("ss", "a", "b"), Attr.Tensor("t", TensorData.FromFloats("c", [1f, 2f])),
                Attr.Graph("body", body))
            .Output("mid", DataType.Float, "batch", 3)
            .Build();

        Assert.Equal(9, model.IrVersion);
        Assert.Equal([("", 18L), ("com.example", 2L)], model.OpsetImport.Select(o => (o.Domain, o.Version)));
        Assert.Equal(("maker", "2.0"), (model.ProducerName, model.ProducerVersion));
        Assert.Equal(("k", "v"), (model.MetadataProps[0].Key, model.MetadataProps[0].Value));
        Assert.Equal(("model doc", "graph doc"), (model.DocString, model.Graph.DocString));

        var ids = model.Graph.Input[0].Type.TensorType;
        Assert.Equal((int)DataType.Int64, ids.ElemType);
        Assert.Equal(["batch", "seq"], ids.Shape.Dim.Select(d => d.DimParam));
        Assert.Null(model.Graph.Input[1].Type.TensorType.Shape);
        Assert.Empty(model.Graph.Input[2].Type.TensorType.Shape.Dim);
        var mid = model.Graph.ValueInfo[0].Type.TensorType.Shape.Dim;
        Assert.Equal(TensorShapeProto.Types.Dimension.ValueOneofCase.None, mid[0].ValueCase);
        Assert.Equal(3, mid[1].DimValue);

        Assert.Equal([-1, 2], TensorData.ToInt8s(model.Graph.Initializer[0]));
        Assert.Equal([2L, 2L], model.Graph.Initializer[1].Dims);
        Assert.Empty(model.Graph.Initializer[2].Dims);

        var node = model.Graph.Node[0];
        Assert.Equal(("my_node", "com.example"), (node.Name, node.Domain));
        var attributes = node.Attribute.ToDictionary(a => a.Name);
        Assert.Equal(3, attributes["i"].I);
        Assert.Equal(AttributeProto.Types.AttributeType.Int, attributes["i"].Type);
        Assert.Equal(0.5f, attributes["f"].F);
        Assert.Equal("hé", attributes["s"].S.ToStringUtf8());
        Assert.Equal([1L, 2L], attributes["is"].Ints);
        Assert.Equal([1.5f], attributes["fs"].Floats);
        Assert.Equal(["a", "b"], attributes["ss"].Strings.Select(s => Encoding.UTF8.GetString(s.Span)));
        Assert.Equal([1f, 2f], TensorData.ToFloats(attributes["t"].T));
        Assert.Equal("body", attributes["body"].G.Name);
        Assert.Empty(OnnxChecker.Check(model));
    }

    [Fact]
    public void Defaults_are_ir_8_and_opset_17_and_node_names_are_generated()
    {
        var model = new GraphBuilder()
            .Input("x", DataType.Float, 1)
            .Node("Relu", ["x"], ["a"])
            .Node("Relu", ["a"], ["b"])
            .Output("b", DataType.Float, 1)
            .Build();

        Assert.Equal(OnnxVersions.DefaultIrVersion, model.IrVersion);
        Assert.Equal(OnnxVersions.DefaultOpset, Assert.Single(model.OpsetImport).Version);
        Assert.Equal(["Relu_0", "Relu_1"], model.Graph.Node.Select(n => n.Name));
    }

    [Fact]
    public void Unique_names_avoid_every_name_in_the_graph()
    {
        var b = new GraphBuilder().Input("x", DataType.Float, 1).Initializer("relu", [1f]);

        Assert.Equal("relu_1", b.Op("Relu", ["x"]));
        Assert.Equal("relu_2", b.Op("Relu", ["relu_1"]));
        Assert.Equal("x_1", b.UniqueName("x"));
        Assert.Equal("fresh", b.UniqueName("fresh"));
        Assert.Equal("fresh_1", b.UniqueName("fresh"));
    }

    [Fact]
    public void Build_returns_independent_copies()
    {
        var b = new GraphBuilder().Input("x", DataType.Float, 1).Node("Relu", ["x"], ["y"]).Output("y", DataType.Float, 1);
        var first = b.Build();
        first.Graph.Node.Clear();
        b.Node("Relu", ["y"], ["z"]);

        Assert.Single(first.Graph.Input);
        Assert.Empty(first.Graph.Node);
        Assert.Equal(2, b.Build().Graph.Node.Count);
    }

    [Fact]
    public void Initializer_dims_must_match_the_values()
    {
        var b = new GraphBuilder();
        Assert.Throws<ArgumentException>(() => b.Initializer("w", new float[6], [2, 2]));
        Assert.Throws<ArgumentOutOfRangeException>(() => Dim.FromValue(-1));
    }
}
