using ModelCompression.Diagnostics;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Quantization;

/// <summary>The x86-64 CPUs an int8 model has to compute exactly on; it decides how wide its int8 weights may be.</summary>
public enum Int8Target
{
    /// <summary>
    /// Every x86-64 CPU ONNX Runtime runs on. Without VNNI (AVX2, AVX-512 without VNNI) ONNX Runtime's u8 x s8
    /// kernels add each pair of adjacent products into an int16 that saturates, so int8 weights are scaled until
    /// no two in one output channel can overflow it (see <see cref="SaturationCheck"/>).
    /// </summary>
    Any,

    /// <summary>
    /// Only CPUs with AVX-512 VNNI or AVX-VNNI, whose u8 x s8 kernels accumulate in int32: full-range int8
    /// weights (-127..127). On a CPU without VNNI such a model can be far off.
    /// </summary>
    Vnni,
}

/// <summary>What <see cref="SaturationCheck"/> found for one integer layer.</summary>
/// <param name="Layer">The node that multiplies by the weight (the MatMulInteger, or the Conv/MatMul/Gemm a DequantizeLinear feeds).</param>
/// <param name="OpType">Its operator type.</param>
/// <param name="Weight">The weight's initializer (or value) name.</param>
/// <param name="Kernel">u8s8 (int8 weight: pairs of products are summed into int16 without VNNI) or u8u8 (uint8 weight: ONNX Runtime widens both sides to int16 and sums in int32, no pair saturation).</param>
/// <param name="MaxPairSum">The largest |q_a| + |q_b| of two weights in one output channel (u8s8 only).</param>
/// <param name="Channel">The output channel with that sum.</param>
/// <param name="Unproven">Why nothing can be proven for this layer (the weight is computed at run time), or null.</param>
public sealed record IntegerLayerBound(string Layer, string OpType, string Weight, string Kernel, int MaxPairSum, long Channel, string? Unproven)
{
    /// <summary>True when no activation in 0..255 can make a pair of products leave int16.</summary>
    public bool Proven => Unproven is null && MaxPairSum <= SaturationCheck.MaxPairSum;
}

/// <summary>
/// Proves, from the int8 weights alone, that a quantized model computes the same on every x86-64 CPU. Without
/// VNNI, ONNX Runtime's u8 x s8 GEMM (vpmaddubsw) multiplies the uint8 activation (0..255; int8 activations are
/// shifted into that range) by the int8 weight and adds two products of adjacent k into an int16 with
/// saturation; with VNNI the products go straight into int32. A layer is exact on both when, in every output
/// channel, 255 * (|q_a| + |q_b|) &lt;= 32767 for the two largest |q|, i.e. |q_a| + |q_b| &lt;= 128: then no
/// pair can saturate, whichever two k the kernel packs together. The check reads MatMulInteger (dynamic
/// quantization), the integer kernels (QLinearConv, QLinearMatMul, ConvInteger and com.microsoft's QGemm,
/// MatMulIntegerToFloat, DynamicQuantizeMatMul), and DequantizeLinear weights feeding the weight input of a
/// Conv, MatMul or Gemm (QDQ). It does not depend on the CPU it runs on.
/// </summary>
public static class SaturationCheck
{
    /// <summary>The largest |q_a| + |q_b| two int8 weights of one output channel may have: 255 * 128 = 32640 &lt;= 32767.</summary>
    public const int MaxPairSum = 128;

    /// <summary>Integer kernels: the weight's input index and its output-channel axis (null: the last axis).</summary>
    private static readonly Dictionary<(string Domain, string OpType), (int Weight, int? Axis)> Kernels = new()
    {
        [("", "MatMulInteger")] = (1, null),
        [("", "ConvInteger")] = (1, 0),
        [("", "QLinearMatMul")] = (3, null),
        [("", "QLinearConv")] = (3, 0),
        [("com.microsoft", "MatMulIntegerToFloat")] = (1, null),
        [("com.microsoft", "DynamicQuantizeMatMul")] = (1, null),
        [("com.microsoft", "QGemm")] = (3, null),
    };

    /// <summary>One entry per integer layer of <paramref name="model"/>'s main graph, in graph order.</summary>
    public static IReadOnlyList<IntegerLayerBound> Analyze(ModelProto model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var graph = model.Graph;
        var aliases = GraphEdit.ConstantAliases(graph);
        var constants = GraphEdit.Constants(graph, aliases);
        var producers = GraphEdit.Producers(graph);
        var bounds = new List<IntegerLayerBound>();
        foreach (var node in graph.Node)
        {
            var domain = OnnxVersions.IsDefaultDomain(node.Domain) ? "" : node.Domain;
            if (Kernels.TryGetValue((domain, node.OpType), out var kernel) && node.Input.Count > kernel.Weight)
            {
                var transB = node.OpType == "QGemm" && GraphEdit.Attribute(node, "transB")?.I is 1;
                bounds.Add(Bound(node, node.Input[kernel.Weight], transB ? 0 : kernel.Axis, constants, ZeroPointType(node, kernel.Weight, constants)));
            }
            else if (domain.Length == 0 && node.OpType is "Conv" or "MatMul" or "Gemm" && node.Input.Count > 1
                && producers.TryGetValue(node.Input[1], out var dequantize) && dequantize.OpType == "DequantizeLinear" && GraphEdit.IsDefaultDomain(dequantize))
            {
                int? axis = node.OpType switch
                {
                    "Conv" => 0,
                    "Gemm" when GraphEdit.Attribute(node, "transB")?.I is 1 => 0,
                    _ => null,
                };
                bounds.Add(Bound(node, dequantize.Input[0], axis, constants, dequantize.Input.Count > 2 ? TypeOf(dequantize.Input[2], constants) : null));
            }
        }

        return bounds;
    }

    /// <summary>
    /// Throws unless every integer layer is proven free of int16 pair saturation: MC2054 for a layer whose weights
    /// can overflow (naming the channel and its two largest |q|), MC2055 for one whose weight is not a constant.
    /// All such layers are reported at once.
    /// </summary>
    /// <param name="model">The quantized model.</param>
    /// <param name="file">The file the diagnostics name.</param>
    /// <exception cref="CompressionException">Some layer is not proven.</exception>
    public static void ThrowIfUnproven(ModelProto model, string? file)
    {
        var problems = Analyze(model).Where(b => !b.Proven).Select(b => b.Unproven is { } why
            ? Diagnostic.Error(
                DiagnosticCodes.QuantizedLayerUnproven,
                $"{b.Layer} ({b.OpType}): cannot prove that its int8 products stay inside int16 on CPUs without VNNI: {why}.",
                file)
            : Diagnostic.Error(
                DiagnosticCodes.QuantizedLayerSaturates,
                $"{b.Layer} ({b.OpType}): output channel {b.Channel} of weight '{b.Weight}' has two int8 values with |q_a| + |q_b| = {b.MaxPairSum} > {MaxPairSum}, so 255 * {b.MaxPairSum} = {255 * b.MaxPairSum} overflows the int16 pair sum of CPUs without VNNI (AVX2) and the layer computes wrong values there; quantize with target: any, or deploy only on VNNI CPUs (target: vnni).",
                file)).ToList();
        if (problems.Count > 0)
        {
            throw new CompressionException(problems);
        }
    }

    private static IntegerLayerBound Bound(NodeProto node, string weight, int? axis, Dictionary<string, TensorProto> constants, DataType? zeroPointType)
    {
        if (!constants.TryGetValue(weight, out var tensor))
        {
            // A computed operand: its type is that of its zero point, which a uint8 one makes safe.
            return zeroPointType == DataType.Uint8
                ? new IntegerLayerBound(node.Name, node.OpType, weight, "u8u8", 0, 0, null)
                : new IntegerLayerBound(node.Name, node.OpType, weight, "u8s8", 0, 0, "the int8 weight is computed at run time, not a constant");
        }

        switch ((DataType)tensor.DataType)
        {
            case DataType.Uint8:
                return new IntegerLayerBound(node.Name, node.OpType, weight, "u8u8", 0, 0, null);
            case DataType.Int8 when tensor.Dims.Count > 0:
                var (sum, channel) = QuantizationParameters.PairSum(TensorData.ToInt8s(tensor), tensor.Dims, axis ?? (tensor.Dims.Count - 1));
                return new IntegerLayerBound(node.Name, node.OpType, weight, "u8s8", sum, channel, null);
            default:
                return new IntegerLayerBound(node.Name, node.OpType, weight, "u8s8", 0, 0, $"the weight '{weight}' is a {(DataType)tensor.DataType} tensor of rank {tensor.Dims.Count}, not an int8 or uint8 matrix or kernel");
        }
    }

    /// <summary>The type of the weight's zero point (the input right after the weight's scale, or after the weight for MatMulInteger-style kernels), when it is a constant.</summary>
    private static DataType? ZeroPointType(NodeProto node, int weight, Dictionary<string, TensorProto> constants)
    {
        // MatMulInteger/ConvInteger: b_zero_point is input 3 (weight 1); QLinear*/QGemm: after the weight's scale.
        var zeroPoint = weight == 1 ? 3 : weight + 2;
        if (node.OpType is "MatMulIntegerToFloat")
        {
            zeroPoint = 5;
        }
        else if (node.OpType is "DynamicQuantizeMatMul")
        {
            zeroPoint = 3;
        }

        return node.Input.Count > zeroPoint ? TypeOf(node.Input[zeroPoint], constants) : null;
    }

    private static DataType? TypeOf(string name, Dictionary<string, TensorProto> constants) =>
        constants.TryGetValue(name, out var tensor) ? (DataType)tensor.DataType : null;
}
