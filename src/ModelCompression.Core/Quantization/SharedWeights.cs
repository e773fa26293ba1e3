using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Quantization;

/// <summary>
/// The int8 copies of the float weights, one per float weight (followed through Identity aliases), channel
/// axis and Gemm alpha, named after the first layer that needs it.
/// </summary>
internal sealed class SharedWeights(
    GraphProto graph, UniqueNames names, Dictionary<string, TensorProto> constants, IReadOnlyDictionary<string, string> aliases, bool perChannel, Int8Target target)
{
    private readonly Dictionary<(string Source, int Axis, float Alpha), (string Weight, string Scale, string ZeroPoint, float[] Scales)> _made = [];

    /// <summary>
    /// Replaces the layer's float weight (and bias) by integer initializers behind DequantizeLinear nodes. The int8
    /// weight is shared with other layers that read the same float weight; the bias is the layer's own (its scale
    /// depends on the layer's input scale).
    /// </summary>
    public List<NodeProto> Quantize(QuantizableLayer layer, float inputScale)
    {
        var node = layer.Node;
        var prefix = names.Make(
            node.Name,
            ".weight_dequantized", ".weight_DequantizeLinear",
            ".bias_int32", ".bias_scale", ".bias_dequantized", ".bias_DequantizeLinear");
        var int8 = Get(node, layer.ChannelAxis, layer.Alpha);
        if (layer.Alpha != 1f)
        {
            GraphEdit.SetFloat(node, "alpha", 1f);
        }

        long[] scaleDims = perChannel ? [int8.Scales.Length] : [];
        AttributeProto[] axisAttribute = perChannel ? [Attr.Int("axis", layer.ChannelAxis)] : [];
        var added = new List<NodeProto>
        {
            GraphEdit.Node(
                "DequantizeLinear",
                $"{prefix}.weight_DequantizeLinear",
                [int8.Weight, int8.Scale, int8.ZeroPoint],
                [$"{prefix}.weight_dequantized"],
                axisAttribute),
        };
        node.Input[1] = $"{prefix}.weight_dequantized";

        if (layer.Bias is var (biasNode, biasInput))
        {
            var bias = TensorData.ToFloats(constants[biasNode.Input[biasInput]]);
            if (layer.Beta != 1f)
            {
                bias = [.. bias.Select(v => v * layer.Beta)];
            }

            var (biasValues, biasScales) = QuantizationParameters.QuantizeBias(bias, inputScale, int8.Scales);
            graph.Initializer.Add(TensorData.FromInt32s($"{prefix}.bias_int32", biasValues, [biasValues.Length]));
            graph.Initializer.Add(TensorData.FromFloats($"{prefix}.bias_scale", biasScales, scaleDims));
            added.Add(GraphEdit.Node(
                "DequantizeLinear",
                $"{prefix}.bias_DequantizeLinear",
                [$"{prefix}.bias_int32", $"{prefix}.bias_scale"],
                [$"{prefix}.bias_dequantized"],
                perChannel ? [Attr.Int("axis", 0)] : []));
            biasNode.Input[biasInput] = $"{prefix}.bias_dequantized";
            if (node.OpType == "Gemm")
            {
                // QGemm takes beta = 1 only; the factor is in the int32 bias now.
                GraphEdit.SetFloat(node, "beta", 1f);
            }
        }

        return added;
    }

    /// <summary>The int8 copy of <paramref name="node"/>'s weight for this channel axis and alpha, made on first use.</summary>
    private (string Weight, string Scale, string ZeroPoint, float[] Scales) Get(NodeProto node, int channelAxis, float alpha)
    {
        var key = (aliases.GetValueOrDefault(node.Input[1], node.Input[1]), channelAxis, alpha);
        if (_made.TryGetValue(key, out var made))
        {
            return made;
        }

        var weight = constants[node.Input[1]];
        var values = TensorData.ToFloats(weight);
        if (alpha != 1f)
        {
            values = [.. values.Select(v => v * alpha)];
        }

        var (quantized, scales) = QuantizationParameters.QuantizeWeight(values, weight.Dims, perChannel ? channelAxis : null, target == Int8Target.Any ? channelAxis : null);
        var prefix = names.Make(node.Name, ".weight_int8", ".weight_scale", ".weight_zero_point");
        long[] scaleDims = perChannel ? [scales.Length] : [];
        graph.Initializer.Add(TensorData.FromInt8s($"{prefix}.weight_int8", quantized, [.. weight.Dims]));
        graph.Initializer.Add(TensorData.FromFloats($"{prefix}.weight_scale", scales, scaleDims));
        graph.Initializer.Add(TensorData.FromInt8s($"{prefix}.weight_zero_point", new sbyte[scales.Length], scaleDims));
        made = ($"{prefix}.weight_int8", $"{prefix}.weight_scale", $"{prefix}.weight_zero_point", scales);
        _made[key] = made;
        return made;
    }
}
