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
/// One small graph per tricky operator semantic (attribute-versus-input forms across opsets, negative axes and
/// indices, huge Slice ends, auto_pad, ceil_mode, ...), run by the imported module and by ONNX Runtime: every
/// output must agree in shape and values.
/// </summary>
public sealed class OpParityTests
{
    public OpParityTests() => TorchNativeLoader.EnsureLoaded();

    private sealed record Case(ModelProto Model, Dictionary<string, Tensor> Inputs);

    private static readonly Dictionary<string, Func<Case>> Cases = new(StringComparer.Ordinal)
    {
        // Elementwise and activations.
        ["unary"] = () => Unary(13, ["Neg", "Exp", "Erf", "Relu", "Sigmoid", "Tanh", "Abs", "Floor", "Ceil"], Attr.Int("unused", 0)),
        ["sqrt_log_reciprocal"] = () => One(13, "x", Positive(2, 3, 4), b => b
            .Node("Sqrt", ["x"], ["a"]).Node("Log", ["x"], ["l"]).Node("Reciprocal", ["x"], ["r"]), ["a", "l", "r"]),
        ["leaky_relu"] = () => One(13, "x", Rand(3, 5), b => b.Node("LeakyRelu", ["x"], ["y"], Attr.Float("alpha", 0.2f)), ["y"]),
        ["gelu_opset20"] = () => One(20, "x", Rand(3, 5, bound: 4), b => b
            .Node("Gelu", ["x"], ["exact"]).Node("Gelu", ["x"], ["tanh"], Attr.String("approximate", "tanh")), ["exact", "tanh"]),
        ["binary_broadcast"] = () => One(13, "x", Positive(2, 3, 4), b => b
            .Initializer("v", RandomFloats(4, seed: 9, bound: 2), [4])
            .Node("Add", ["x", "v"], ["add"]).Node("Sub", ["v", "x"], ["sub"]).Node("Mul", ["x", "v"], ["mul"])
            .Node("Div", ["v", "x"], ["div"]).Node("Pow", ["x", "v"], ["pow"]), ["add", "sub", "mul", "div", "pow"]),
        ["pow_int64_exponent"] = () => One(13, "x", Rand(2, 3), b => b
            .Initializer("e", [3L], []).Node("Pow", ["x", "e"], ["y"]), ["y"]),
        ["int64_div_truncates"] = () => Int64Div(),
        ["min_max"] = () => One(13, "x", Rand(2, 3), b => b
            .Initializer("v", RandomFloats(3, seed: 4), [3])
            .Node("Min", ["x", "v"], ["lo"]).Node("Max", ["x", "v"], ["hi"]), ["lo", "hi"]),
        ["compare_logic_where"] = () => One(13, "x", Rand(3, 4), b => b
            .Initializer("v", RandomFloats(4, seed: 5), [4]).Initializer("zero", [0f], [])
            .Node("Equal", ["x", "x"], ["eq"]).Node("Less", ["x", "v"], ["lt"]).Node("Greater", ["x", "zero"], ["gt"])
            .Node("LessOrEqual", ["x", "v"], ["le"]).Node("GreaterOrEqual", ["x", "v"], ["ge"])
            .Node("Not", ["lt"], ["not"]).Node("Or", ["lt", "gt"], ["or"]).Node("And", ["lt", "gt"], ["and"]).Node("Xor", ["lt", "gt"], ["xor"])
            .Node("Where", ["or", "x", "v"], ["where"]),
            ["eq", "lt", "gt", "le", "ge", "not", "or", "and", "xor", "where"],
            [DataType.Bool, DataType.Bool, DataType.Bool, DataType.Bool, DataType.Bool, DataType.Bool, DataType.Bool, DataType.Bool, DataType.Bool, DataType.Float]),
        ["cast"] = () => One(13, "x", Rand(3, 4, bound: 3), b => b
            .Node("Cast", ["x"], ["i64"], Attr.Int("to", (long)DataType.Int64))
            .Node("Cast", ["x"], ["i32"], Attr.Int("to", (long)DataType.Int32))
            .Node("Cast", ["i64"], ["bool"], Attr.Int("to", (long)DataType.Bool))
            .Node("Cast", ["i64"], ["f"], Attr.Int("to", (long)DataType.Float)),
            ["i64", "i32", "bool", "f"], [DataType.Int64, DataType.Int32, DataType.Bool, DataType.Float]),
        ["clip_inputs"] = () => One(13, "x", Rand(3, 4, bound: 2), b => b
            .Initializer("lo", [-0.5f], []).Initializer("hi", [0.7f], [])
            .Node("Clip", ["x", "lo"], ["min_only"]).Node("Clip", ["x", "", "hi"], ["max_only"])
            .Node("Clip", ["x", "lo", "hi"], ["both"]).Node("Clip", ["x", "hi", "lo"], ["min_above_max"]).Node("Clip", ["x"], ["none"]),
            ["min_only", "max_only", "both", "min_above_max", "none"]),

        // Gemm and MatMul.
        ["gemm_transposed_alpha_beta"] = () => One(13, "x", Rand(4, 3), b => b
            .Initializer("w", RandomFloats(15, seed: 2), [5, 3]).Initializer("c", RandomFloats(5, seed: 3), [1, 5])
            .Node("Transpose", ["x"], ["xt"])
            .Node("Gemm", ["xt", "w", "c"], ["y"], Attr.Int("transA", 1), Attr.Int("transB", 1), Attr.Float("alpha", 0.5f), Attr.Float("beta", 2f)), ["y"]),
        ["matmul_batched_and_1d"] = () => One(13, "x", Rand(2, 1, 3, 4), b => b
            .Initializer("w", RandomFloats(40, seed: 2), [5, 4, 2]).Initializer("v", RandomFloats(4, seed: 3), [4])
            .Node("MatMul", ["x", "w"], ["y"]).Node("MatMul", ["x", "v"], ["z"]), ["y", "z"]),

        // Convolution and pooling.
        ["conv1d_asymmetric_pads"] = () => Conv([2, 3, 10], [4, 3, 3], Attr.Ints("strides", 2), Attr.Ints("pads", 1, 2)),
        ["conv2d_groups_dilations_strides"] = () => Conv([2, 4, 9, 9], [6, 2, 3, 3], Attr.Int("group", 2), Attr.Ints("dilations", 2, 1), Attr.Ints("strides", 1, 2), Attr.Ints("pads", 1, 0, 2, 1)),
        ["conv2d_same_upper"] = () => Conv([1, 2, 7, 8], [3, 2, 4, 3], Attr.String("auto_pad", "SAME_UPPER"), Attr.Ints("strides", 2, 2)),
        ["conv2d_same_lower"] = () => Conv([1, 2, 7, 8], [3, 2, 4, 3], Attr.String("auto_pad", "SAME_LOWER"), Attr.Ints("strides", 2, 3)),
        ["conv2d_valid_kernel_shape"] = () => Conv([1, 2, 7, 8], [3, 2, 3, 3], Attr.String("auto_pad", "VALID"), Attr.Ints("kernel_shape", 3, 3)),
        ["maxpool_ceil_drops_window_in_right_pad"] = () => Pool("MaxPool", [1, 2, 5, 5], Attr.Ints("kernel_shape", 2, 2), Attr.Ints("strides", 2, 2), Attr.Ints("pads", 1, 1, 1, 1), Attr.Int("ceil_mode", 1)),
        ["maxpool_ceil_asymmetric"] = () => Pool("MaxPool", [2, 3, 8, 7], Attr.Ints("kernel_shape", 3, 2), Attr.Ints("strides", 2, 2), Attr.Ints("pads", 0, 1, 1, 0), Attr.Int("ceil_mode", 1)),
        ["maxpool_dilations_pads"] = () => Pool("MaxPool", [1, 2, 9, 9], Attr.Ints("kernel_shape", 3, 3), Attr.Ints("dilations", 2, 2), Attr.Ints("pads", 2, 1, 2, 2)),
        ["maxpool_same_lower_strided"] = () => Pool("MaxPool", [1, 2, 9, 8], Attr.Ints("kernel_shape", 3, 2), Attr.Ints("strides", 2, 3), Attr.String("auto_pad", "SAME_LOWER")),
        ["maxpool1d"] = () => Pool("MaxPool", [2, 3, 11], Attr.Ints("kernel_shape", 3), Attr.Ints("strides", 2), Attr.Ints("pads", 1, 1)),
        ["avgpool_count_include_pad"] = () => Pool("AveragePool", [1, 2, 7, 7], Attr.Ints("kernel_shape", 3, 3), Attr.Ints("strides", 2, 2), Attr.Ints("pads", 1, 1, 1, 1), Attr.Int("count_include_pad", 1)),
        ["avgpool_exclude_pad_asymmetric"] = () => Pool("AveragePool", [1, 2, 7, 6], Attr.Ints("kernel_shape", 3, 2), Attr.Ints("strides", 2, 2), Attr.Ints("pads", 0, 1, 2, 0)),
        ["avgpool_ceil_include_pad"] = () => Pool("AveragePool", [1, 2, 6, 6], Attr.Ints("kernel_shape", 3, 3), Attr.Ints("strides", 2, 2), Attr.Ints("pads", 1, 1, 1, 1), Attr.Int("ceil_mode", 1), Attr.Int("count_include_pad", 1)),
        ["avgpool_ceil_exclude_pad"] = () => Pool("AveragePool", [1, 2, 6, 6], Attr.Ints("kernel_shape", 3, 3), Attr.Ints("strides", 2, 2), Attr.Int("ceil_mode", 1)),
        ["avgpool1d_same_upper"] = () => Pool("AveragePool", [2, 3, 10], Attr.Ints("kernel_shape", 4), Attr.Ints("strides", 3), Attr.String("auto_pad", "SAME_UPPER")),
        ["global_pools"] = () => One(13, "x", Rand(2, 3, 4, 5), b => b
            .Node("GlobalAveragePool", ["x"], ["avg"]).Node("GlobalMaxPool", ["x"], ["max"]), ["avg", "max"]),
        ["pad_constant_opset13"] = () => One(13, "x", Rand(2, 3, 4), b => b
            .Initializer("pads", [0L, 1, 2, 0, 0, 1], [6]).Initializer("value", [1.5f], [])
            .Node("Pad", ["x", "pads", "value"], ["y"]).Node("Pad", ["x", "pads"], ["zero"]), ["y", "zero"]),
        ["pad_axes_opset18"] = () => One(18, "x", Rand(2, 3, 4), b => b
            .Initializer("pads", [2L, 1], [2]).Initializer("axes", [-1L], [1]).Initializer("value", [-3f], [])
            .Node("Pad", ["x", "pads", "value", "axes"], ["y"]), ["y"]),
        ["pad_reflect_edge"] = () => One(13, "x", Rand(1, 2, 4, 5), b => b
            .Initializer("pads", [0L, 0, 1, 2, 0, 0, 2, 1], [8])
            .Node("Pad", ["x", "pads"], ["reflect"], Attr.String("mode", "reflect"))
            .Node("Pad", ["x", "pads"], ["edge"], Attr.String("mode", "edge")), ["reflect", "edge"]),

        // Normalization and softmax.
        ["batchnorm_eval"] = () => One(15, "x", Rand(2, 3, 4, 5), b => b
            .Initializer("s", RandomFloats(3, seed: 1), [3]).Initializer("b", RandomFloats(3, seed: 2), [3])
            .Initializer("m", RandomFloats(3, seed: 3), [3]).Initializer("v", [0.5f, 1f, 2f], [3])
            .Node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], Attr.Float("epsilon", 1e-3f)), ["y"]),
        ["layernorm_axis_with_stats"] = () => One(17, "x", Rand(2, 3, 4), b => b
            .Initializer("s", RandomFloats(12, seed: 1), [3, 4]).Initializer("b", RandomFloats(12, seed: 2), [3, 4])
            .Node("LayerNormalization", ["x", "s", "b"], ["y", "mean", "inv"], Attr.Int("axis", -2), Attr.Float("epsilon", 1e-3f))
            .Node("LayerNormalization", ["x", "s"], ["fused"], Attr.Int("axis", 1)), ["y", "mean", "inv", "fused"]),
        ["softmax_opset13_axes"] = () => One(13, "x", Rand(2, 3, 4, bound: 3), b => b
            .Node("Softmax", ["x"], ["s1"], Attr.Int("axis", 1)).Node("Softmax", ["x"], ["slast"])
            .Node("LogSoftmax", ["x"], ["l0"], Attr.Int("axis", 0)), ["s1", "slast", "l0"]),
        ["softmax_opset11_coerces_to_2d"] = () => One(11, "x", Rand(2, 3, 4, bound: 3), b => b
            .Node("Softmax", ["x"], ["s"]).Node("LogSoftmax", ["x"], ["l"], Attr.Int("axis", 2)), ["s", "l"]),
        ["dropout_eval_with_mask"] = () => One(13, "x", Rand(3, 4), b => b
            .Initializer("ratio", [0.3f], []).Node("Dropout", ["x", "ratio"], ["y", "mask"]), ["y", "mask"], [DataType.Float, DataType.Bool]),

        // Shape ops.
        ["shape_start_end_opset15"] = () => One(15, "x", Rand(2, 3, 4, 5), b => b
            .Node("Shape", ["x"], ["all"]).Node("Shape", ["x"], ["mid"], Attr.Int("start", 1), Attr.Int("end", -1))
            .Node("Shape", ["x"], ["tail"], Attr.Int("start", -2)).Node("Size", ["x"], ["size"]),
            ["all", "mid", "tail", "size"], [DataType.Int64, DataType.Int64, DataType.Int64, DataType.Int64]),
        ["reshape_zero_and_minus_one"] = () => One(13, "x", Rand(2, 3, 4), b => b
            .Initializer("s1", [0L, -1], [2]).Initializer("s2", [-1L, 0, 2], [3])
            .Node("Reshape", ["x", "s1"], ["a"]).Node("Reshape", ["x", "s2"], ["b"]), ["a", "b"]),
        ["flatten_transpose_concat"] = () => One(13, "x", Rand(2, 3, 4), b => b
            .Node("Flatten", ["x"], ["f0"], Attr.Int("axis", 0)).Node("Flatten", ["x"], ["fneg"], Attr.Int("axis", -1))
            .Node("Transpose", ["x"], ["t"]).Node("Transpose", ["x"], ["p"], Attr.Ints("perm", 1, 2, 0))
            .Node("Concat", ["x", "x"], ["c"], Attr.Int("axis", -1)), ["f0", "fneg", "t", "p", "c"]),
        ["split_opset13_input_and_equal"] = () => One(13, "x", Rand(2, 4, 3), b => b
            .Initializer("sizes", [1L, 3], [2])
            .Node("Split", ["x", "sizes"], ["a", "b"], Attr.Int("axis", 1)).Node("Split", ["x"], ["c", "d"], Attr.Int("axis", -2)),
            ["a", "b", "c", "d"]),
        ["split_opset18_num_outputs_uneven"] = () => One(18, "x", Rand(7, 2), b => b
            .Node("Split", ["x"], ["a", "b", "c"], Attr.Int("num_outputs", 3)), ["a", "b", "c"]),
        ["split_opset11_attribute"] = () => One(11, "x", Rand(2, 5), b => b
            .Node("Split", ["x"], ["a", "b"], Attr.Int("axis", 1), Attr.Ints("split", 2, 3)), ["a", "b"]),
        ["slice_huge_ends_negative_steps"] = () => SliceCase(),
        ["gather_any_axis_negative_indices"] = () => One(13, "x", Rand(3, 4, 5), b => b
            .Initializer("i", [0L, -1, 2, -4], [2, 2]).Initializer("k", [-1L], [])
            .Node("Gather", ["x", "i"], ["g1"], Attr.Int("axis", 1)).Node("Gather", ["x", "k"], ["g0"])
            .Node("Gather", ["x", "i"], ["g2"], Attr.Int("axis", -1)), ["g1", "g0", "g2"]),
        ["squeeze_unsqueeze_opset13"] = () => One(13, "x", Rand(1, 3, 1, 4), b => b
            .Initializer("ua", [-1L, 0], [2]).Initializer("sa", [0L, -2], [2])
            .Node("Unsqueeze", ["x", "ua"], ["u"]).Node("Squeeze", ["x", "sa"], ["s"]).Node("Squeeze", ["x"], ["all"]),
            ["u", "s", "all"]),
        ["squeeze_unsqueeze_opset11_attributes"] = () => One(11, "x", Rand(1, 3, 1, 4), b => b
            .Node("Unsqueeze", ["x"], ["u"], Attr.Ints("axes", 1, -1)).Node("Squeeze", ["x"], ["s"], Attr.Ints("axes", 2)), ["u", "s"]),
        ["expand_bidirectional"] = () => One(13, "x", Rand(3, 1), b => b
            .Initializer("s1", [2L, 1, 4], [3]).Initializer("s2", [1L, 1], [2])
            .Node("Expand", ["x", "s1"], ["a"]).Node("Expand", ["x", "s2"], ["b"]), ["a", "b"]),
        ["range_int_and_float"] = () => One(13, "x", Rand(2), b => b
            .Initializer("s", [1L], []).Initializer("l", [10L], []).Initializer("d", [3L], []).Initializer("dn", [-4L], [])
            .Initializer("fs", [0.5f], []).Initializer("fl", [2f], []).Initializer("fd", [0.4f], [])
            .Node("Range", ["s", "l", "d"], ["ri"]).Node("Range", ["l", "s", "dn"], ["rneg"]).Node("Range", ["fs", "fl", "fd"], ["rf"]),
            ["ri", "rneg", "rf"], [DataType.Int64, DataType.Int64, DataType.Float]),
        ["constant_of_shape_and_constants"] = () => ConstantsCase(),
        ["tile"] = () => One(13, "x", Rand(2, 3), b => b.Initializer("r", [2L, 3], [2]).Node("Tile", ["x", "r"], ["y"]), ["y"]),

        // Reductions.
        ["reduce_opset13_attributes"] = () => One(13, "x", Rand(2, 3, 4), b => b
            .Initializer("ax", [-1L], [1])
            .Node("ReduceMean", ["x"], ["mean"], Attr.Ints("axes", 1), Attr.Int("keepdims", 0))
            .Node("ReduceSum", ["x", "ax"], ["sum"]).Node("ReduceMax", ["x"], ["max"], Attr.Ints("axes", 0, 2))
            .Node("ReduceMin", ["x"], ["min"], Attr.Ints("axes", -2))
            .Node("ReduceSum", ["x"], ["sum_all"], Attr.Int("keepdims", 0)).Node("ReduceSum", ["x"], ["noop"], Attr.Int("noop_with_empty_axes", 1))
            .Node("ReduceMean", ["x"], ["mean_all"]), ["mean", "sum", "max", "min", "sum_all", "noop", "mean_all"]),
        ["reduce_opset18_inputs"] = () => One(18, "x", Rand(2, 3, 4), b => b
            .Initializer("a12", [1L, 2], [2]).Initializer("alast", [-1L], [1])
            .Node("ReduceMean", ["x", "a12"], ["mean"]).Node("ReduceMax", ["x", "alast"], ["max"], Attr.Int("keepdims", 0))
            .Node("ReduceMean", ["x"], ["mean_all"], Attr.Int("keepdims", 0)).Node("ReduceMax", ["x"], ["noop"], Attr.Int("noop_with_empty_axes", 1)),
            ["mean", "max", "mean_all", "noop"]),
    };

    public static TheoryData<string> CaseNames() => [.. Cases.Keys];

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void Module_matches_onnx_runtime(string name)
    {
        using var scope = torch.NewDisposeScope();
        var (model, inputs) = Cases[name]();
        AssertMatchesOrt(model, inputs);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(5)]
    public void A_shape_subgraph_follows_the_batch_size(int batch)
    {
        // Shape -> Gather -> Unsqueeze -> Concat -> Reshape, as exporters write for x.view(x.size(0), -1).
        var model = new GraphBuilder("dyn").Opset(13)
            .Input("x", DataType.Float, "batch", 3, 4)
            .Initializer("zero", [0L], []).Initializer("minus_one", [-1L], [1]).Initializer("axes", [0L], [1])
            .Node("Shape", ["x"], ["shape"]).Node("Gather", ["shape", "zero"], ["n"])
            .Node("Unsqueeze", ["n", "axes"], ["n1"]).Node("Concat", ["n1", "minus_one"], ["target"], Attr.Int("axis", 0))
            .Node("Reshape", ["x", "target"], ["y"])
            .Output("y", DataType.Float, "batch", 12)
            .Build();
        using var scope = torch.NewDisposeScope();
        AssertMatchesOrt(model, new() { ["x"] = Rand(batch, 3, 4) });
    }

    [Fact]
    public void Integer_and_bool_graph_inputs_flow_through()
    {
        var model = new GraphBuilder("ids").Opset(13)
            .Input("ids", DataType.Int64, "batch", 5).Input("mask", DataType.Bool, "batch", 5)
            .Initializer("table", RandomFloats(10 * 3, seed: 1), [10, 3]).Initializer("zero", [0f], [])
            .Node("Gather", ["table", "ids"], ["e"]).Node("Unsqueeze", ["mask", "ax"], ["m"])
            .Initializer("ax", [-1L], [1])
            .Node("Where", ["m", "e", "zero"], ["y"])
            .Output("y", DataType.Float, "batch", 5, 3)
            .Build();
        using var scope = torch.NewDisposeScope();
        AssertMatchesOrt(model, new()
        {
            ["ids"] = torch.tensor(new long[] { 1, 9, 0, 3, 3, 4, 5, 6, 7, 8 }, [2, 5]),
            ["mask"] = torch.tensor(new[] { true, false, true, true, false, false, true, true, false, true }, [2, 5]),
        });
    }

    [Fact]
    public void Dilated_same_pooling_keeps_the_onnx_output_size()
    {
        // ONNX: SAME_* gives ceil(input / stride) with the dilated kernel. ONNX Runtime's CPU pooling sizes the
        // padding off the undilated kernel (and its Conv rejects the combination), so this follows the spec.
        var (model, inputs) = Pool("MaxPool", [1, 1, 9, 9], Attr.Ints("kernel_shape", 3, 3), Attr.Ints("dilations", 2, 2), Attr.String("auto_pad", "SAME_UPPER"));
        using var scope = torch.NewDisposeScope();
        using var graph = TrainableGraph.Import(model);
        var x = torch.arange(81, ScalarType.Float32).reshape(1, 1, 9, 9);
        var y = graph.Forward(new Dictionary<string, Tensor> { ["x"] = x })["y"];

        Assert.Equal([1L, 1, 9, 9], y.shape);
        // Total padding (9-1)*1 + 5 - 9 = 4, two on each side: the window at (0,0) covers rows/cols 0 and 2.
        Assert.Equal(20f, y[0, 0, 0, 0].item<float>());
        Assert.Equal(80f, y[0, 0, 8, 8].item<float>());
    }

    internal static void AssertMatchesOrt(ModelProto model, Dictionary<string, Tensor> inputs, double tolerance = 1e-5)
    {
        var expected = RunOrtAll(model, inputs);
        using var graph = TrainableGraph.Import(model);
        graph.eval();
        using var noGrad = torch.no_grad();
        var actual = graph.Forward(inputs);
        Assert.Equal(expected.Count, actual.Count);
        for (var i = 0; i < expected.Count; i++)
        {
            var name = graph.OutputNames[i];
            Assert.True(expected[i].Shape.SequenceEqual(actual[name].shape), $"output '{name}': shape [{string.Join(",", actual[name].shape)}], ONNX Runtime [{string.Join(",", expected[i].Shape)}]");
            var error = RelativeError(ToDoubles(actual[name]), expected[i].Data);
            Assert.True(error <= tolerance, $"output '{name}': relative error {error}");
        }
    }

    private static Tensor Rand(params long[] shape) => Rand(shape, 1.0);

    private static Tensor Rand(long a, long b, long c, double bound) => Rand([a, b, c], bound);

    private static Tensor Rand(long a, long b, double bound) => Rand([a, b], bound);

    private static Tensor Rand(long[] shape, double bound)
    {
        var count = (int)shape.Aggregate(1L, (x, y) => x * y);
        return torch.tensor(RandomFloats(count, seed: count + shape.Length, bound), shape);
    }

    private static Tensor Positive(params long[] shape) => Rand(shape, 1.0).abs() + 0.1f;

    /// <summary>A graph with one float input <paramref name="name"/> whose outputs are all floats unless typed.</summary>
    private static Case One(int opset, string name, Tensor input, Func<GraphBuilder, GraphBuilder> body, string[] outputs, DataType[]? types = null)
    {
        var builder = body(new GraphBuilder("op").Opset(opset).Input(name, DataType.Float, null));
        for (var i = 0; i < outputs.Length; i++)
        {
            builder.Output(outputs[i], types?[i] ?? DataType.Float, null);
        }

        return new Case(builder.Build(), new() { [name] = input });
    }

    private static Case Unary(int opset, string[] ops, AttributeProto unused)
    {
        _ = unused;
        return One(opset, "x", Rand(3, 4, bound: 2), b =>
        {
            foreach (var op in ops)
            {
                b.Node(op, ["x"], [op.ToLowerInvariant()]);
            }

            return b;
        }, [.. ops.Select(o => o.ToLowerInvariant())]);
    }

    private static Case Int64Div()
    {
        var model = new GraphBuilder("div").Opset(13)
            .Input("a", DataType.Int64, null).Initializer("b", [2L, -3, 4], [3])
            .Node("Div", ["a", "b"], ["q"]).Output("q", DataType.Int64, null).Build();
        return new Case(model, new() { ["a"] = torch.tensor(new long[] { 7, -7, 9, -9, 5, -1 }, [2, 3]) });
    }

    private static Case Conv(long[] input, long[] weight, params AttributeProto[] attributes) =>
        One(13, "x", Rand(input, 1.0), b => b
            .Initializer("w", RandomFloats((int)weight.Aggregate(1L, (x, y) => x * y), seed: 7), weight)
            .Initializer("bias", RandomFloats((int)weight[0], seed: 8), [weight[0]])
            .Node("Conv", ["x", "w", "bias"], ["y"], attributes).Node("Conv", ["x", "w"], ["nobias"], attributes), ["y", "nobias"]);

    private static Case Pool(string op, long[] input, params AttributeProto[] attributes) =>
        One(19, "x", Rand(input, 2.0), b => b.Node(op, ["x"], ["y"], attributes), ["y"]);

    private static Case SliceCase() => One(13, "x", Rand(4, 5, 6), b => b
        .Initializer("s1", [1L, -1], [2]).Initializer("e1", [long.MaxValue, long.MinValue], [2]).Initializer("a1", [0L, 2], [2]).Initializer("st1", [1L, -1], [2])
        .Node("Slice", ["x", "s1", "e1", "a1", "st1"], ["to_ends"])
        .Initializer("s2", [-2L], [1]).Initializer("e2", [-100L], [1]).Initializer("a2", [-2L], [1]).Initializer("st2", [-2L], [1])
        .Node("Slice", ["x", "s2", "e2", "a2", "st2"], ["back_by_two"])
        .Initializer("s3", [0L, 1], [2]).Initializer("e3", [3L, 100], [2])
        .Node("Slice", ["x", "s3", "e3"], ["no_axes_no_steps"])
        .Initializer("s4", [10L], [1]).Initializer("e4", [0L], [1]).Initializer("a4", [1L], [1]).Initializer("st4", [-3L], [1])
        .Node("Slice", ["x", "s4", "e4", "a4", "st4"], ["clamped_start_neg_step"])
        .Initializer("s5", [3L], [1]).Initializer("e5", [1L], [1]).Initializer("a5", [2L], [1])
        .Node("Slice", ["x", "s5", "e5", "a5"], ["empty"])
        .Initializer("s6", [0L], [1]).Initializer("e6", [6L], [1]).Initializer("st6", [4L], [1])
        .Node("Slice", ["x", "s6", "e6", "a5", "st6"], ["strided"]),
        ["to_ends", "back_by_two", "no_axes_no_steps", "clamped_start_neg_step", "empty", "strided"]);

    private static Case ConstantsCase()
    {
        var value = TensorData.FromInt64s("v", [7L], [1]);
        var half = TensorData.FromFloats("h", [0.5f, -1f, 2f], [3]);
        return One(13, "x", Rand(2, 3), b => b
            .Node("Shape", ["x"], ["shape"])
            .Node("ConstantOfShape", ["shape"], ["sevens"], Attr.Tensor("value", value))
            .Node("ConstantOfShape", ["shape"], ["zeros"])
            .Node("Constant", [], ["cf"], Attr.Float("value_float", 1.5f))
            .Node("Constant", [], ["cfs"], Attr.Floats("value_floats", 1f, 2f, 3f))
            .Node("Constant", [], ["ci"], Attr.Int("value_int", 4))
            .Node("Constant", [], ["cis"], Attr.Ints("value_ints", 1, 2, 3))
            .Node("Constant", [], ["ct"], Attr.Tensor("value", half))
            .Node("Mul", ["x", "cf"], ["a"]).Node("Add", ["x", "cfs"], ["b"]).Node("Sub", ["x", "ct"], ["c"])
            .Node("Add", ["sevens", "ci"], ["d"]).Node("Mul", ["sevens", "cis"], ["e"]),
            ["zeros", "a", "b", "c", "d", "e"], [DataType.Float, DataType.Float, DataType.Float, DataType.Float, DataType.Int64, DataType.Int64]);
    }
}
