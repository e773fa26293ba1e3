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
/// Autograd through each op family, checked by central finite differences in float64: the module is
/// converted with to(float64), which keeps integer constants as they are.
/// </summary>
public sealed class GradientTests
{
    public GradientTests() => TorchNativeLoader.EnsureLoaded();

    [Fact]
    public void Elementwise_and_activations()
    {
        var model = Graph(20, [3, 4], b => b
            .Initializer("w", RandomFloats(4, seed: 1), [4]).Initializer("bias", RandomFloats(4, seed: 2), [4])
            .Initializer("one", [1f], []).Initializer("lo", [-0.4f], []).Initializer("hi", [0.6f], [])
            .Node("Mul", ["x", "w"], ["xw"]).Node("Add", ["xw", "bias"], ["h"])
            .Node("Tanh", ["h"], ["o1"]).Node("Sigmoid", ["h"], ["o2"]).Node("Erf", ["h"], ["o3"])
            .Node("Gelu", ["h"], ["o4"]).Node("Gelu", ["h"], ["o5"], Attr.String("approximate", "tanh"))
            .Node("LeakyRelu", ["h"], ["o6"], Attr.Float("alpha", 0.1f)).Node("Relu", ["h"], ["o7"]).Node("Exp", ["h"], ["o8"])
            .Node("Mul", ["h", "h"], ["h2"]).Node("Add", ["h2", "one"], ["h2p"]).Node("Sqrt", ["h2p"], ["o9"])
            .Node("Div", ["h", "h2p"], ["o10"]).Node("Log", ["h2p"], ["o11"]).Node("Pow", ["h2p", "w"], ["o12"])
            .Node("Sub", ["bias", "h"], ["o13"]).Node("Neg", ["h"], ["o14"]).Node("Clip", ["h", "lo", "hi"], ["o15"])
            .Node("Greater", ["h", "lo"], ["g"]).Node("Where", ["g", "h", "h2"], ["o16"]),
            [.. Enumerable.Range(1, 16).Select(i => $"o{i}")]);
        CheckGradients(model, new() { ["x"] = Rand(3, 4) });
    }

    [Fact]
    public void Gemm_and_matmul()
    {
        var model = Graph(13, [3, 4], b => b
            .Initializer("w", RandomFloats(20, seed: 1), [5, 4]).Initializer("c", RandomFloats(5, seed: 2), [5])
            .Initializer("m", RandomFloats(2 * 5 * 3, seed: 3), [2, 5, 3])
            .Node("Gemm", ["x", "w", "c"], ["g"], Attr.Int("transB", 1), Attr.Float("alpha", 0.7f), Attr.Float("beta", 1.5f))
            .Node("MatMul", ["g", "m"], ["y"]), ["y"]);
        CheckGradients(model, new() { ["x"] = Rand(3, 4) });
    }

    [Fact]
    public void Conv_and_pooling()
    {
        var model = Graph(19, [2, 2, 7, 7], b => b
            .Initializer("w", RandomFloats(4 * 1 * 3 * 3, seed: 1), [4, 1, 3, 3]).Initializer("bias", RandomFloats(4, seed: 2), [4])
            .Node("Conv", ["x", "w", "bias"], ["c"], Attr.Int("group", 2), Attr.Ints("pads", 1, 0, 2, 1))
            .Node("MaxPool", ["c"], ["mp"], Attr.Ints("kernel_shape", 2, 2), Attr.Ints("strides", 2, 2), Attr.Int("ceil_mode", 1))
            .Node("AveragePool", ["c"], ["ap"], Attr.Ints("kernel_shape", 3, 3), Attr.Ints("strides", 2, 2), Attr.Ints("pads", 1, 1, 0, 1))
            .Node("GlobalAveragePool", ["c"], ["gp"]), ["mp", "ap", "gp"]);
        CheckGradients(model, new() { ["x"] = Rand(2, 2, 7, 7) });

        var conv1d = Graph(13, [2, 3, 9], b => b
            .Initializer("w", RandomFloats(2 * 3 * 3, seed: 4), [2, 3, 3])
            .Node("Conv", ["x", "w"], ["y"], Attr.String("auto_pad", "SAME_UPPER"), Attr.Ints("strides", 2), Attr.Ints("dilations", 1)), ["y"]);
        CheckGradients(conv1d, new() { ["x"] = Rand(2, 3, 9) });
    }

    [Fact]
    public void Batch_norm_in_training_mode_and_layer_norm()
    {
        var model = Graph(17, [4, 3, 2, 2], b => b
            .Initializer("s", RandomFloats(3, seed: 1), [3]).Initializer("bias", RandomFloats(3, seed: 2), [3])
            .Initializer("m", [0.1f, 0.2f, 0.3f], [3]).Initializer("v", [1f, 2f, 0.5f], [3])
            .Initializer("ls", RandomFloats(4, seed: 3), [2, 2]).Initializer("lb", RandomFloats(4, seed: 4), [2, 2])
            .Node("BatchNormalization", ["x", "s", "bias", "m", "v"], ["bn"])
            .Node("LayerNormalization", ["x", "ls", "lb"], ["ln"], Attr.Int("axis", -2))
            .Node("LayerNormalization", ["x", "ls"], ["ln2", "mean", "inv"], Attr.Int("axis", 2)), ["bn", "ln", "ln2", "mean", "inv"]);
        CheckGradients(model, new() { ["x"] = Rand(4, 3, 2, 2) }, train: true);
    }

    [Fact]
    public void Softmax_family()
    {
        var model = Graph(13, [2, 3, 4], b => b
            .Initializer("w", RandomFloats(4, seed: 1), [4])
            .Node("Mul", ["x", "w"], ["h"])
            .Node("Softmax", ["h"], ["s"], Attr.Int("axis", 1)).Node("LogSoftmax", ["h"], ["l"]), ["s", "l"]);
        CheckGradients(model, new() { ["x"] = Rand(2, 3, 4) });
    }

    [Fact]
    public void Shape_ops_on_a_float_path()
    {
        var model = Graph(13, [2, 3, 4], b => b
            .Initializer("table", RandomFloats(6 * 4, seed: 1), [6, 4]).Initializer("ids", [0L, 5, -1, 2], [2, 2])
            .Initializer("shape", [0L, -1], [2]).Initializer("sizes", [1L, 2], [2])
            .Initializer("starts", [-1L, 0], [2]).Initializer("ends", [long.MinValue, long.MaxValue], [2])
            .Initializer("axes", [2L, 1], [2]).Initializer("steps", [-2L, 2], [2]).Initializer("u", [0L], [1])
            .Initializer("expand", [2L, 1, 1, 1], [4]).Initializer("pads", [0L, 1, 0, 0, 0, 1], [6])
            .Node("Gather", ["table", "ids"], ["g"]).Node("Reshape", ["x", "shape"], ["r"])
            .Node("Transpose", ["x"], ["t"], Attr.Ints("perm", 2, 0, 1)).Node("Concat", ["x", "g"], ["c"], Attr.Int("axis", 1))
            .Node("Split", ["x", "sizes"], ["s1", "s2"], Attr.Int("axis", 1)).Node("Slice", ["x", "starts", "ends", "axes", "steps"], ["sl"])
            .Node("Unsqueeze", ["x", "u"], ["un"]).Node("Expand", ["un", "expand"], ["ex"]).Node("Squeeze", ["un", "u"], ["sq"])
            .Node("Pad", ["x", "pads"], ["p"]).Node("Flatten", ["x"], ["f"]), ["g", "r", "t", "c", "s1", "s2", "sl", "ex", "sq", "p", "f"]);
        CheckGradients(model, new() { ["x"] = Rand(2, 3, 4) });
    }

    [Fact]
    public void Reductions()
    {
        var model = Graph(18, [2, 3, 4], b => b
            .Initializer("a", [1L], [1]).Initializer("b", [-1L, 0], [2])
            .Node("ReduceMean", ["x", "a"], ["mean"]).Node("ReduceSum", ["x", "b"], ["sum"], Attr.Int("keepdims", 0))
            .Node("ReduceMax", ["x", "a"], ["max"]).Node("ReduceMin", ["x"], ["min"]), ["mean", "sum", "max", "min"]);
        CheckGradients(model, new() { ["x"] = Rand(2, 3, 4) });
    }

    /// <summary>
    /// Compares autograd's gradient of sum_i(output_i * fixed random weights) with central differences, for
    /// every parameter and float input (up to 16 elements each).
    /// </summary>
    internal static void CheckGradients(ModelProto model, Dictionary<string, Tensor> inputs, bool train = false)
    {
        using var scope = torch.NewDisposeScope();
        using var graph = TrainableGraph.Import(model);
        graph.to(ScalarType.Float64);
        graph.train(train);
        var x = inputs.ToDictionary(p => p.Key, p => p.Value.is_floating_point() ? p.Value.to_type(ScalarType.Float64).detach().requires_grad_(true) : p.Value);
        var outputs = graph.Forward(x);
        var weights = outputs.ToDictionary(p => p.Key, p => torch.tensor(RandomFloats((int)p.Value.numel(), seed: p.Key.Length, bound: 1).Select(v => (double)v).ToArray(), p.Value.shape));
        Tensor Loss() => graph.Forward(x).Select(p => (p.Value * weights[p.Key]).sum()).Aggregate((a, b) => a + b);

        Assert.All(outputs.Values, o => Assert.Equal(ScalarType.Float64, o.dtype));
        Loss().backward();
        var checkedTensors = graph.ParametersByName.Select(p => (p.Key, (Tensor)p.Value))
            .Concat(x.Where(p => p.Value.requires_grad).Select(p => (p.Key, p.Value))).ToList();
        Assert.NotEmpty(checkedTensors);
        const double H = 1e-6;
        foreach (var (name, tensor) in checkedTensors)
        {
            var grad = tensor.grad ?? throw new InvalidOperationException($"'{name}' got no gradient.");
            Assert.Equal(ScalarType.Float64, tensor.dtype);
            var analytic = ToDoubles(grad);
            var flat = tensor.detach().view(-1);
            var count = (int)flat.numel();
            var step = Math.Max(1, count / 16);
            for (var i = 0; i < count; i += step)
            {
                double Probe(double delta)
                {
                    using var noGrad = torch.no_grad();
                    flat[i].add_(delta);
                    var value = Loss().item<double>();
                    flat[i].add_(-delta);
                    return value;
                }

                var numeric = (Probe(H) - Probe(-H)) / (2 * H);
                Assert.True(
                    Math.Abs(numeric - analytic[i]) <= 1e-5 + (1e-4 * Math.Abs(numeric)),
                    $"d loss / d {name}[{i}]: autograd {analytic[i]}, finite difference {numeric}");
            }
        }
    }

    private static ModelProto Graph(int opset, long[] input, Func<GraphBuilder, GraphBuilder> body, string[] outputs)
    {
        var builder = body(new GraphBuilder("grad").Opset(opset).Input("x", DataType.Float, [.. input.Select(d => (Dim)d)]));
        foreach (var output in outputs)
        {
            builder.Output(output, DataType.Float, null);
        }

        return builder.Build();
    }

    private static Tensor Rand(params long[] shape) =>
        torch.tensor(RandomFloats((int)shape.Aggregate(1L, (a, b) => a * b), seed: shape.Length, bound: 1.5), shape);
}
