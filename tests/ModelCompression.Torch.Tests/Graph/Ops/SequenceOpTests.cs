using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Torch.Graph;
using ModelCompression.Torch.Native;
using TorchSharp;
using static ModelCompression.Torch.Tests.Graph.GraphTestSupport;
using static TorchSharp.torch;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Torch.Tests.Graph.Ops;

/// <summary>
/// The ops decoders bring (Trilu, CumSum, Sin, Cos) and the decoder uses of older ones (Where and Expand broadcasting,
/// zero-size tensors of an empty past): ONNX Runtime parity and finite-difference gradients, as for the other ops.
/// </summary>
public sealed class SequenceOpTests
{
    public SequenceOpTests() => TorchNativeLoader.EnsureLoaded();

    [Fact]
    public void Trilu_matches_onnx_runtime_for_every_diagonal_and_type()
    {
        var model = new GraphBuilder("trilu").Opset(17)
            .Input("x", DataType.Float, null).Input("ids", DataType.Int64, null).Input("flags", DataType.Bool, null)
            .Initializer("k1", [1L], []).Initializer("km1", [-1L], []).Initializer("k2", [2L], []).Initializer("k9", [9L], []).Initializer("km9", [-9L], [])
            .Node("Trilu", ["x"], ["upper"]).Node("Trilu", ["x", "k1"], ["upper_k1"]).Node("Trilu", ["x", "km1"], ["upper_km1"])
            .Node("Trilu", ["x"], ["lower"], Attr.Int("upper", 0)).Node("Trilu", ["x", "k2"], ["lower_k2"], Attr.Int("upper", 0))
            .Node("Trilu", ["x", "km1"], ["lower_km1"], Attr.Int("upper", 0))
            .Node("Trilu", ["x", "k9"], ["upper_beyond"]).Node("Trilu", ["x", "km9"], ["lower_beyond"], Attr.Int("upper", 0))
            .Node("Trilu", ["ids", "k1"], ["ids_lower"], Attr.Int("upper", 0))
            // PyTorch exports torch.tril of a bool matrix (its causal masks) as a bool Trilu.
            .Node("Trilu", ["flags", "km1"], ["flags_lower"], Attr.Int("upper", 0))
            .Output("upper", DataType.Float, null).Output("upper_k1", DataType.Float, null).Output("upper_km1", DataType.Float, null)
            .Output("lower", DataType.Float, null).Output("lower_k2", DataType.Float, null).Output("lower_km1", DataType.Float, null)
            .Output("upper_beyond", DataType.Float, null).Output("lower_beyond", DataType.Float, null).Output("ids_lower", DataType.Int64, null)
            .Output("flags_lower", DataType.Bool, null)
            .Build();
        using var scope = torch.NewDisposeScope();

        // Batched and non-square: [2, 3, 4, 5].
        OpParityTests.AssertMatchesOrt(model, new()
        {
            ["x"] = Floats([2, 3, 4, 5], seed: 1),
            ["ids"] = torch.arange(1, 13, ScalarType.Int64).reshape(3, 4),
            ["flags"] = torch.ones(2, 3, 4, ScalarType.Bool),
        });
    }

    [Fact]
    public void Trilu_of_a_causal_mask_with_an_offset_keeps_keys_up_to_the_query()
    {
        // The decoder's use: ones [sequence, past + sequence], lower part with k = past: query i sees keys j <= past + i.
        var model = new GraphBuilder("causal").Opset(17).Input("ones", DataType.Float, null).Input("k", DataType.Int64, null)
            .Node("Trilu", ["ones", "k"], ["y"], Attr.Int("upper", 0)).Output("y", DataType.Float, null).Build();
        using var scope = torch.NewDisposeScope();
        using var graph = TrainableGraph.Import(model);
        var y = graph.Forward(new Dictionary<string, Tensor> { ["ones"] = torch.ones(2, 5), ["k"] = torch.tensor(3L) })["y"];

        Assert.Equal([1.0, 1, 1, 1, 0, 1, 1, 1, 1, 1], ToDoubles(y));
        OpParityTests.AssertMatchesOrt(model, new() { ["ones"] = torch.ones(2, 5), ["k"] = torch.tensor(3L) });
    }

    [Fact]
    public void CumSum_matches_onnx_runtime_with_exclusive_reverse_and_integers()
    {
        var model = new GraphBuilder("cumsum").Opset(17)
            .Input("x", DataType.Float, null).Input("mask", DataType.Int64, null)
            .Initializer("a1", [1L], []).Initializer("am2", [-2], []).Initializer("alast", [-1L], [])
            .Node("CumSum", ["x", "a1"], ["inclusive"]).Node("CumSum", ["x", "am2"], ["exclusive"], Attr.Int("exclusive", 1))
            .Node("CumSum", ["x", "a1"], ["reverse"], Attr.Int("reverse", 1))
            .Node("CumSum", ["x", "alast"], ["both"], Attr.Int("exclusive", 1), Attr.Int("reverse", 1))
            .Node("CumSum", ["mask", "alast"], ["positions"])
            .Output("inclusive", DataType.Float, null).Output("exclusive", DataType.Float, null).Output("reverse", DataType.Float, null)
            .Output("both", DataType.Float, null).Output("positions", DataType.Int64, null)
            .Build();
        using var scope = torch.NewDisposeScope();
        var mask = torch.tensor(new long[] { 0, 0, 1, 1, 1, 1, 1, 1, 1, 0 }, [2, 5]);

        OpParityTests.AssertMatchesOrt(model, new() { ["x"] = Floats([3, 4, 5], seed: 2), ["mask"] = mask });
        using var graph = TrainableGraph.Import(model);
        var outputs = graph.Forward(new Dictionary<string, Tensor> { ["x"] = Floats([3, 4, 5], seed: 2), ["mask"] = mask });
        // Left padding: the first token of each row gets position 1 after padding, as Optimum's position ids count.
        Assert.Equal([0.0, 0, 1, 2, 3, 1, 2, 3, 4, 4], ToDoubles(outputs["positions"]));
        Assert.Equal(ScalarType.Int64, outputs["positions"].dtype);
    }

    [Fact]
    public void Sin_cos_where_and_expand_broadcast_as_onnx_runtime()
    {
        var model = new GraphBuilder("rope").Opset(17)
            .Input("x", DataType.Float, null).Input("condition", DataType.Bool, null)
            .Initializer("row", RandomFloats(4, seed: 3), [1, 4]).Initializer("scalar", [-2.5f], [])
            .Initializer("to3d", [2L, 1, 1], [3]).Initializer("to_empty", [0L, 4], [2])
            .Node("Sin", ["x"], ["sin"]).Node("Cos", ["x"], ["cos"])
            // condition [3, 1], x [3, 4], row [1, 4], scalar []: each operand broadcasts differently.
            .Node("Where", ["condition", "x", "row"], ["where_xy"]).Node("Where", ["condition", "scalar", "row"], ["where_scalar"])
            .Node("Expand", ["x", "to3d"], ["expand_rank"]).Node("Expand", ["row", "to_empty"], ["expand_empty"])
            .Output("sin", DataType.Float, null).Output("cos", DataType.Float, null).Output("where_xy", DataType.Float, null)
            .Output("where_scalar", DataType.Float, null).Output("expand_rank", DataType.Float, null).Output("expand_empty", DataType.Float, null)
            .Build();
        using var scope = torch.NewDisposeScope();

        OpParityTests.AssertMatchesOrt(model, new()
        {
            ["x"] = Floats([3, 4], seed: 4, bound: 6),
            ["condition"] = torch.tensor(new[] { true, false, true }, [3, 1]),
        });
    }

    [Fact]
    public void An_empty_past_flows_through_concat_shape_and_slice()
    {
        // A first step's cache: past [batch, heads, 0, head_width] joined to the new keys; the past length read back.
        var model = EmptyPastGraph();
        using var scope = torch.NewDisposeScope();

        foreach (var past in new[] { 0, 3 })
        {
            OpParityTests.AssertMatchesOrt(model, new() { ["past"] = Floats([2, 3, past, 4], seed: 5), ["new"] = Floats([2, 3, 2, 4], seed: 6) });
        }
    }

    [Fact]
    public void Gradients_of_trilu_cumsum_sin_cos_where_and_expand()
    {
        var model = new GraphBuilder("grad").Opset(17).Input("x", DataType.Float, 2, 3, 4).Input("condition", DataType.Bool, 3, 1)
            .Initializer("w", RandomFloats(4, seed: 1), [4]).Initializer("k", [1L], []).Initializer("axis", [-1L], [])
            .Initializer("shape", [2L, 2, 3, 4], [4])
            .Node("Mul", ["x", "w"], ["h"])
            .Node("Trilu", ["h", "k"], ["o1"]).Node("Trilu", ["h"], ["o2"], Attr.Int("upper", 0))
            .Node("CumSum", ["h", "axis"], ["o3"]).Node("CumSum", ["h", "axis"], ["o4"], Attr.Int("exclusive", 1), Attr.Int("reverse", 1))
            .Node("Sin", ["h"], ["o5"]).Node("Cos", ["h"], ["o6"])
            .Node("Where", ["condition", "h", "w"], ["o7"]).Node("Expand", ["h", "shape"], ["o8"])
            .Output("o1", DataType.Float, null).Output("o2", DataType.Float, null).Output("o3", DataType.Float, null)
            .Output("o4", DataType.Float, null).Output("o5", DataType.Float, null).Output("o6", DataType.Float, null)
            .Output("o7", DataType.Float, null).Output("o8", DataType.Float, null)
            .Build();

        GradientTests.CheckGradients(model, new()
        {
            ["x"] = Floats([2, 3, 4], seed: 7, bound: 1.5),
            ["condition"] = torch.tensor(new[] { true, false, true }, [3, 1]),
        });
    }

    [Fact]
    public void Gradients_flow_through_a_concat_with_an_empty_past()
    {
        GradientTests.CheckGradients(EmptyPastGraph(withLength: false), new() { ["past"] = Floats([2, 3, 0, 4], seed: 5), ["new"] = Floats([2, 3, 2, 4], seed: 6) });
    }

    private static ModelProto EmptyPastGraph(bool withLength = true)
    {
        var builder = new GraphBuilder("cache").Opset(17)
            .Input("past", DataType.Float, "batch", 3, "past", 4).Input("new", DataType.Float, "batch", 3, "sequence", 4)
            .Initializer("scale", RandomFloats(4, seed: 8), [4])
            .Initializer("two", [2L], [1]).Initializer("zero", [0L], [1]).Initializer("big", [long.MaxValue], [1])
            .Node("Mul", ["new", "scale"], ["scaled"])
            .Node("Concat", ["past", "scaled"], ["present"], Attr.Int("axis", 2))
            .Node("Shape", ["past"], ["past_length"], Attr.Int("start", 2), Attr.Int("end", 3))
            .Node("Slice", ["present", "past_length", "big", "two"], ["after_past"])
            .Node("Slice", ["past", "zero", "big", "two"], ["past_again"])
            .Node("Transpose", ["present"], ["keys_t"], Attr.Ints("perm", 0, 1, 3, 2))
            .Node("MatMul", ["scaled", "keys_t"], ["scores"])
            .Output("present", DataType.Float, null).Output("after_past", DataType.Float, null)
            .Output("past_again", DataType.Float, null).Output("scores", DataType.Float, null);
        // The gradient check wants float outputs only.
        return withLength ? builder.Output("past_length", DataType.Int64, null).Build() : builder.Build();
    }

    private static Tensor Floats(long[] shape, int seed, double bound = 1.0) =>
        torch.tensor(RandomFloats((int)shape.Aggregate(1L, (a, b) => a * b), seed, bound), shape);
}
