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
        // Short names: a small decoder has a dozen of these chains, and long value names cost more bytes than its scales.
        var p = names.Make("rowq", string.Empty, ".max", ".min", ".high", ".low", ".range", ".safe", ".scale", ".neg", ".zpf", ".zp", ".div", ".round", ".shift", ".clip");
        var (zero, smallest, levels, axes) = Constants(graph);
        nodes.Add(Reduce("ReduceMax", $"{p}.max", input, $"{p}.max", axes, opset));
        nodes.Add(Reduce("ReduceMin", $"{p}.min", input, $"{p}.min", axes, opset));
        nodes.Add(GraphEdit.Node("Max", $"{p}.high", [$"{p}.max", zero], [$"{p}.high"]));
        nodes.Add(GraphEdit.Node("Min", $"{p}.low", [$"{p}.min", zero], [$"{p}.low"]));
        nodes.Add(GraphEdit.Node("Sub", $"{p}.range", [$"{p}.high", $"{p}.low"], [$"{p}.range"]));
        nodes.Add(GraphEdit.Node("Max", $"{p}.safe", [$"{p}.range", smallest], [$"{p}.safe"]));
        nodes.Add(GraphEdit.Node("Div", $"{p}.scale", [$"{p}.safe", levels], [$"{p}.scale"]));
        nodes.Add(GraphEdit.Node("Neg", $"{p}.neg", [$"{p}.low"], [$"{p}.neg"]));
        nodes.Add(GraphEdit.Node("Div", $"{p}.zpf", [$"{p}.neg", $"{p}.scale"], [$"{p}.zpf"]));
        nodes.Add(GraphEdit.Node("Round", $"{p}.zp", [$"{p}.zpf"], [$"{p}.zp"]));
        nodes.Add(GraphEdit.Node("Div", $"{p}.div", [input, $"{p}.scale"], [$"{p}.div"]));
        nodes.Add(GraphEdit.Node("Round", $"{p}.round", [$"{p}.div"], [$"{p}.round"]));
        nodes.Add(GraphEdit.Node("Add", $"{p}.shift", [$"{p}.round", $"{p}.zp"], [$"{p}.shift"]));
        nodes.Add(GraphEdit.Node("Clip", $"{p}.clip", [$"{p}.shift", zero, levels], [$"{p}.clip"]));
        nodes.Add(GraphEdit.Cast(p, $"{p}.clip", p, TensorProto.Types.DataType.Uint8));
        return (p, $"{p}.scale", $"{p}.zp");
    }

    /// <summary>The chains' shared constants (0, the smallest range, 255, the last axis), added to the graph once.</summary>
    private static (string Zero, string Smallest, string Levels, string Axes) Constants(GraphProto graph)
    {
        (string Name, TensorProto Tensor)[] constants =
        [
            ("rowq.zero", TensorData.FromFloats("rowq.zero", [0f], [])),
            ("rowq.smallest", TensorData.FromFloats("rowq.smallest", [SmallestRange], [])),
            ("rowq.levels", TensorData.FromFloats("rowq.levels", [255f], [])),
            ("rowq.axes", TensorData.FromInt64s("rowq.axes", [-1L], [1])),
        ];
        foreach (var (name, tensor) in constants)
        {
            if (!graph.Initializer.Any(i => i.Name == name))
            {
                graph.Initializer.Add(tensor);
            }
        }

        return ("rowq.zero", "rowq.smallest", "rowq.levels", "rowq.axes");
    }

    /// <summary>A reduction over the last axis, keeping it: axes as an attribute before opset 18, as an input from 18 on.</summary>
    private static NodeProto Reduce(string opType, string name, string input, string output, string axes, long opset) =>
        opset < 18
            ? GraphEdit.Node(opType, name, [input], [output], Attr.Ints("axes", -1), Attr.Int("keepdims", 1))
            : GraphEdit.Node(opType, name, [input, axes], [output], Attr.Int("keepdims", 1));
}
