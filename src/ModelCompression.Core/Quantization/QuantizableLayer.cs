using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Quantization;

/// <summary>
/// A quantizable Conv, MatMul or Gemm: where its activation and weight are, how the weight is laid out, and
/// where its bias is: its own third input, or for MatMul the constant of an Add that alone reads its output.
/// That Add's constant is quantized to int32 like a Gemm bias because ONNX Runtime fuses MatMul + Add into
/// a Gemm before its QDQ fusions run, and a Gemm with a float bias is not fused into QGemm.
/// </summary>
internal sealed record QuantizableLayer(NodeProto Node, string Input, int ChannelAxis, float Alpha, float Beta, (NodeProto Node, int Input)? Bias)
{
    public static QuantizableLayer? Analyze(NodeProto node, GraphProto graph, Dictionary<string, TensorProto> initializers) =>
        WhyNot(node, initializers) is null ? Describe(node, graph, initializers) : null;

    /// <summary>Why the node cannot be quantized, or null when it can.</summary>
    public static string? WhyNot(NodeProto node, Dictionary<string, TensorProto> initializers)
    {
        if (node.Input.Count < 2 || !initializers.TryGetValue(node.Input[1], out var weight))
        {
            return "the weight is not a constant";
        }

        if (weight.DataType != (int)DataType.Float)
        {
            return "the weight is not float";
        }

        if (initializers.ContainsKey(node.Input[0]))
        {
            return "the input is a constant too";
        }

        var bias = node.Input.Count > 2 && node.Input[2].Length > 0 ? node.Input[2] : null;
        switch (node.OpType)
        {
            case "Conv":
                if (weight.Dims.Count < 3)
                {
                    return "the weight is not a convolution kernel";
                }

                return bias is not null && !IsBias(initializers, bias, weight.Dims[0]) ? "the bias is not a float constant with one value per output channel" : null;
            case "MatMul":
                return weight.Dims.Count != 2 ? "the weight is not a matrix" : null;
            default:
                if (GraphEdit.Attribute(node, "transA")?.I is 1)
                {
                    return "transA is set";
                }

                if (weight.Dims.Count != 2)
                {
                    return "the weight is not a matrix";
                }

                return bias is not null && !IsBias(initializers, bias, OutputColumns(node, weight)) ? "the bias is not a float constant with one value per output column" : null;
        }
    }

    private static bool IsBias(Dictionary<string, TensorProto> initializers, string name, long channels) =>
        StaticQuantizer.IsFloatConstant(initializers, name) && TensorData.ElementCount(initializers[name]) == channels;

    private static long OutputColumns(NodeProto node, TensorProto weight) =>
        GraphEdit.Attribute(node, "transB")?.I is 1 ? weight.Dims[0] : weight.Dims[1];

    private static QuantizableLayer Describe(NodeProto node, GraphProto graph, Dictionary<string, TensorProto> initializers)
    {
        var weight = initializers[node.Input[1]];
        // The output channels: Conv's first axis; a [K, N] matrix's columns, or the rows of Gemm's transposed B.
        var axis = node.OpType switch
        {
            "Conv" => 0,
            "Gemm" when GraphEdit.Attribute(node, "transB")?.I is 1 => 0,
            _ => 1,
        };
        var alpha = node.OpType == "Gemm" ? GraphEdit.Attribute(node, "alpha")?.F ?? 1f : 1f;
        var beta = node.OpType == "Gemm" ? GraphEdit.Attribute(node, "beta")?.F ?? 1f : 1f;
        (NodeProto, int)? bias = node.Input.Count > 2 && node.Input[2].Length > 0 ? (node, 2) : null;
        if (node.OpType == "MatMul")
        {
            var output = node.Output[0];
            var readers = graph.Node.Where(n => n.Input.Contains(output)).ToList();
            if (readers is [{ OpType: "Add" } add] && GraphEdit.IsDefaultDomain(add) && add.Input.Count == 2
                && !graph.Output.Any(o => o.Name == output) && add.Input.IndexOf(output) is var own and >= 0
                && initializers.TryGetValue(add.Input[1 - own], out var constant) && constant.DataType == (int)DataType.Float
                && constant.Dims.Count == 1 && constant.Dims[0] == weight.Dims[1])
            {
                bias = (add, 1 - own);
            }
        }

        return new QuantizableLayer(node, node.Input[0], axis, alpha, beta, bias);
    }
}
