using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Architectures;

/// <summary>
/// The builders' shared vocabulary over <see cref="GraphBuilder"/>: named nodes whose output carries the
/// node's name (so intermediate values read like the initializers, <c>encoder.layer0.attention.query</c>),
/// learned weights as initializers and every fixed number as a Constant node. The split matters: the trainer
/// turns every float initializer into a trainable parameter, so constants must not be initializers.
/// </summary>
internal sealed class GraphWriter
{
    private readonly GraphBuilder _builder;

    public GraphWriter(string graphName, Random random)
    {
        _builder = new GraphBuilder(graphName).Producer("ModelCompression", Version);
        Random = random;
    }

    /// <summary>The model's single generator: every weight is drawn from it in graph order.</summary>
    public Random Random { get; }

    public static string Version => typeof(GraphWriter).Assembly.GetName().Version?.ToString() ?? "0";

    public void Input(string name, DataType type, params Dim[] dims) => _builder.Input(name, type, dims);

    public void Output(string name, DataType type, params Dim[] dims) => _builder.Output(name, type, dims);

    public string Weight(string name, float[] values, params long[] dims)
    {
        _builder.Initializer(name, values, dims);
        return name;
    }

    /// <summary>A node with one output named after the node (made unique when the name is taken).</summary>
    public string Op(string opType, string name, string[] inputs, params AttributeProto[] attributes)
    {
        var output = _builder.UniqueName(name);
        _builder.Node(opType, inputs, [output], output, string.Empty, attributes);
        return output;
    }

    /// <summary>A float scalar constant.</summary>
    public string Scalar(string name, float value) =>
        Constant(name, TensorData.FromFloats(name, [value], []));

    /// <summary>A 1-D int64 constant (shapes, axes, slice bounds).</summary>
    public string Ints(string name, params long[] values) =>
        Constant(name, TensorData.FromInt64s(name, values, [values.Length]));

    /// <summary>A float tensor constant (fixed tables that must not train, e.g. rotary cos/sin).</summary>
    public string FloatConstant(string name, float[] values, params long[] dims) =>
        Constant(name, TensorData.FromFloats(name, values, dims));

    /// <summary>An int64 scalar constant (a Gather index that drops the axis).</summary>
    public string IntScalar(string name, long value) =>
        Constant(name, TensorData.FromInt64s(name, [value], []));

    /// <summary>
    /// Dropout with its ratio as an input (opset 12+) and no training_mode input: ONNX Runtime runs it as the
    /// identity and the trainer applies it only while training. Ratio 0 adds no node.
    /// </summary>
    public string Dropout(string name, string input, double ratio) =>
        ratio <= 0 ? input : Op("Dropout", name, [input, Scalar($"{name}.ratio", (float)ratio)]);

    /// <summary>x W + b over the last axis, any rank: MatMul then Add. W is stored [in, out].</summary>
    public string Linear(string name, string input, string weight, string bias)
    {
        var product = Op("MatMul", $"{name}.matmul", [input, weight]);
        return Op("Add", name, [product, bias]);
    }

    /// <summary>x Wᵀ + b on a [batch, in] matrix, W stored [out, in] as PyTorch's nn.Linear.</summary>
    public string Gemm(string name, string input, string weight, string bias, string? output = null)
    {
        var result = output ?? _builder.UniqueName(name);
        _builder.Node("Gemm", [input, weight, bias], [result], name, string.Empty, Attr.Int("transB", 1));
        return result;
    }

    /// <summary>The activation as opset-17 nodes; GELU is the exact Erf form.</summary>
    public string Activate(string name, string input, Activation activation)
    {
        if (activation != Activation.Gelu)
        {
            return Op(activation.ToString(), $"{name}.{activation.ToString().ToLowerInvariant()}", [input]);
        }

        var scaled = Op("Mul", $"{name}.gelu.scaled", [input, Scalar($"{name}.gelu.inv_sqrt2", (float)(1 / Math.Sqrt(2)))]);
        var erf = Op("Erf", $"{name}.gelu.erf", [scaled]);
        var onePlus = Op("Add", $"{name}.gelu.one_plus", [erf, Scalar($"{name}.gelu.one", 1f)]);
        var half = Op("Mul", $"{name}.gelu.half_x", [input, Scalar($"{name}.gelu.half", 0.5f)]);
        return Op("Mul", $"{name}.gelu", [half, onePlus]);
    }

    /// <summary>
    /// Mean over the sequence axis of [batch, seq, width] that counts only positions where the mask
    /// ([batch, seq], float 0/1) is 1; an all-padding row gives zeros instead of 0/0.
    /// </summary>
    public string MaskedMean(string name, string values, string maskFloat)
    {
        var mask3 = Op("Unsqueeze", $"{name}.mask", [maskFloat, Ints($"{name}.mask_axes", 2)]);
        var masked = Op("Mul", $"{name}.masked", [values, mask3]);
        var axes = Ints($"{name}.axes", 1);
        var sum = Op("ReduceSum", $"{name}.sum", [masked, axes], Attr.Int("keepdims", 0));
        var count = Op("ReduceSum", $"{name}.count", [mask3, axes], Attr.Int("keepdims", 0));
        var safeCount = Op("Clip", $"{name}.count_at_least_1", [count, Scalar($"{name}.one", 1f)]);
        return Op("Div", name, [sum, safeCount]);
    }

    public ModelProto Build() => _builder.Build();

    private string Constant(string name, TensorProto value)
    {
        var output = _builder.UniqueName(name);
        value.Name = output;
        _builder.Node("Constant", [], [output], output, string.Empty, Attr.Tensor("value", value));
        return output;
    }
}
