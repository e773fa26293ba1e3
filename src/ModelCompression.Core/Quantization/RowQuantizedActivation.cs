using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Quantization;

/// <summary>How dynamic quantization scales an activation at run time.</summary>
public enum ActivationScale
{
    /// <summary>
    /// One uint8 scale and zero point for the whole tensor of a run (ONNX Runtime's DynamicQuantizeLinear, fused with the
    /// MatMul into one kernel). The fastest; but a row's result then depends on the other rows of the batch.
    /// </summary>
    Tensor,

    /// <summary>
    /// One uint8 scale and zero point per row of the last axis (per token of a decoder): a row's result depends on that
    /// row alone, so a prompt gets the same answer alone as in any batch, and an outlier token does not coarsen the
    /// others' steps. Written with standard operators, not fused: slower than <see cref="Tensor"/>.
    /// </summary>
    Row,
}

/// <summary>
/// Per-row dynamic quantization of an activation in standard ONNX operators, with DynamicQuantizeLinear's arithmetic
/// applied to each row of the last axis: the row's range widened to include 0, scale = range / 255, zero point =
/// round(-min / scale), q = saturate(round(x / scale) + zero point) in uint8 (round half to even, as Round is).
/// </summary>
internal static class RowQuantizedActivation
{
    /// <summary>Keeps an all-zero row's scale above 0 (its codes are then all the zero point, 0).</summary>
    private const float SmallestRange = 1e-12f;

    /// <summary>
    /// Appends the nodes (and their constants) that quantize <paramref name="input"/> per row; returns the uint8 codes,
    /// the float scale and the float zero point, the latter two of the input's shape with a last axis of 1.
    /// </summary>
    public static (string Q, string Scale, string ZeroPoint) Add(GraphProto graph, List<NodeProto> nodes, UniqueNames names, string input, long opset)
    {
        var p = names.Make($"{input}.row_quantized", string.Empty, ".max", ".min", ".high", ".low", ".range", ".safe_range", ".scale", ".negated_low",
            ".zero_point_float", ".zero_point", ".divided", ".rounded", ".shifted", ".clipped", ".axes", ".zero", ".smallest", ".levels", ".top");
        graph.Initializer.Add(TensorData.FromFloats($"{p}.zero", [0f], []));
        graph.Initializer.Add(TensorData.FromFloats($"{p}.smallest", [SmallestRange], []));
        graph.Initializer.Add(TensorData.FromFloats($"{p}.levels", [255f], []));
        nodes.Add(Reduce("ReduceMax", $"{p}.ReduceMax", input, $"{p}.max", $"{p}.axes", graph, opset));
        nodes.Add(Reduce("ReduceMin", $"{p}.ReduceMin", input, $"{p}.min", $"{p}.axes", graph, opset));
        nodes.Add(GraphEdit.Node("Max", $"{p}.High", [$"{p}.max", $"{p}.zero"], [$"{p}.high"]));
        nodes.Add(GraphEdit.Node("Min", $"{p}.Low", [$"{p}.min", $"{p}.zero"], [$"{p}.low"]));
        nodes.Add(GraphEdit.Node("Sub", $"{p}.Range", [$"{p}.high", $"{p}.low"], [$"{p}.range"]));
        nodes.Add(GraphEdit.Node("Max", $"{p}.SafeRange", [$"{p}.range", $"{p}.smallest"], [$"{p}.safe_range"]));
        nodes.Add(GraphEdit.Node("Div", $"{p}.Scale", [$"{p}.safe_range", $"{p}.levels"], [$"{p}.scale"]));
        nodes.Add(GraphEdit.Node("Neg", $"{p}.NegatedLow", [$"{p}.low"], [$"{p}.negated_low"]));
        nodes.Add(GraphEdit.Node("Div", $"{p}.ZeroPointFloat", [$"{p}.negated_low", $"{p}.scale"], [$"{p}.zero_point_float"]));
        nodes.Add(GraphEdit.Node("Round", $"{p}.ZeroPoint", [$"{p}.zero_point_float"], [$"{p}.zero_point"]));
        nodes.Add(GraphEdit.Node("Div", $"{p}.Divide", [input, $"{p}.scale"], [$"{p}.divided"]));
        nodes.Add(GraphEdit.Node("Round", $"{p}.Round", [$"{p}.divided"], [$"{p}.rounded"]));
        nodes.Add(GraphEdit.Node("Add", $"{p}.Shift", [$"{p}.rounded", $"{p}.zero_point"], [$"{p}.shifted"]));
        nodes.Add(GraphEdit.Node("Clip", $"{p}.Clip", [$"{p}.shifted", $"{p}.zero", $"{p}.levels"], [$"{p}.clipped"]));
        nodes.Add(GraphEdit.Cast($"{p}.Cast", $"{p}.clipped", p, TensorProto.Types.DataType.Uint8));
        return (p, $"{p}.scale", $"{p}.zero_point");
    }

    /// <summary>A reduction over the last axis, keeping it: axes as an attribute before opset 18, as an input from 18 on.</summary>
    private static NodeProto Reduce(string opType, string name, string input, string output, string axes, GraphProto graph, long opset)
    {
        if (opset < 18)
        {
            return GraphEdit.Node(opType, name, [input], [output], Attr.Ints("axes", -1), Attr.Int("keepdims", 1));
        }

        if (!graph.Initializer.Any(i => i.Name == axes))
        {
            graph.Initializer.Add(TensorData.FromInt64s(axes, [-1L], [1]));
        }

        return GraphEdit.Node(opType, name, [input, axes], [output], Attr.Int("keepdims", 1));
    }
}
