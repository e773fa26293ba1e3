using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Quantization;

/// <summary>
/// Weight-only int8 for embedding lookups, which both int8 modes share: in a text model the token table is
/// most of the file (vocabulary × width), so quantizing only the MatMuls barely shrinks it. The Gather then
/// picks rows of an int8 table (symmetric, one scale per tensor or per column) and a DequantizeLinear after it
/// turns the picked rows back to float, exactly as the whole table would dequantize; ONNX Runtime's CPU
/// provider gathers int8 natively. The indices (token ids, int64) are never quantized or calibrated.
/// </summary>
internal static class EmbeddingQuantizer
{
    /// <summary>
    /// A Gather whose data is a constant (also through Identity aliases, see <see cref="GraphEdit.ConstantAliases"/>):
    /// an embedding lookup, quantizable or not (a Gather over computed values, such as a shape, is not one).
    /// </summary>
    public static bool IsLookup(NodeProto node, IReadOnlyDictionary<string, TensorProto> initializers) =>
        node.OpType == "Gather" && GraphEdit.IsDefaultDomain(node) && node.Input.Count == 2 && initializers.ContainsKey(node.Input[0]);

    /// <summary>Why the lookup <paramref name="node"/> cannot be quantized, or null when it can.</summary>
    public static string? WhyNot(NodeProto node, GraphProto graph, IReadOnlyDictionary<string, TensorProto> initializers, IReadOnlyDictionary<string, string> aliases)
    {
        var table = initializers[node.Input[0]];
        if (table.DataType != (int)DataType.Float || table.Dims.Count != 2)
        {
            return "the table is not a 2-D float tensor";
        }

        if (GraphEdit.Attribute(node, "axis")?.I is { } axis && axis is not (0 or -2))
        {
            return "it gathers along the columns, not the rows";
        }

        if (initializers.ContainsKey(node.Input[1]))
        {
            return "the indices are constant too";
        }

        // A table another node also reads (tied input and output embeddings), directly or through an Identity,
        // would have to stay float for it.
        var source = aliases.GetValueOrDefault(node.Input[0], node.Input[0]);
        var names = aliases.Where(a => a.Value == source).Select(a => a.Key).Append(source).ToHashSet(StringComparer.Ordinal);
        bool IsAlias(NodeProto n) => n.OpType == "Identity" && n.Output.Count == 1 && aliases.ContainsKey(n.Output[0]);
        if (graph.Node.Any(n => n != node && !IsAlias(n) && n.Input.Any(names.Contains)) || graph.Output.Any(o => names.Contains(o.Name)))
        {
            return "the table is shared with other nodes";
        }

        return null;
    }

    /// <summary>
    /// Makes the lookup <paramref name="node"/> (one <see cref="WhyNot"/> accepts) gather from an int8 table;
    /// returns the DequantizeLinear to place right after it, which writes the Gather's old output. The float
    /// table (and an Identity it reached the Gather through) is left for the caller's sweeps.
    /// </summary>
    /// <param name="graph">The graph to add the int8 table to.</param>
    /// <param name="names">Names taken in the graph.</param>
    /// <param name="node">The Gather.</param>
    /// <param name="table">Its float table (the initializer its data input names or copies).</param>
    /// <param name="perChannel">One scale per column instead of one per table.</param>
    public static NodeProto Quantize(GraphProto graph, UniqueNames names, NodeProto node, TensorProto table, bool perChannel)
    {
        var prefix = names.Make(string.IsNullOrEmpty(node.Name) ? node.OpType : node.Name, ".table_int8", ".table_scale", ".table_zero_point", ".gathered_int8", ".DequantizeLinear");
        // Per column (axis 1 of [rows, width]): the gathered rows keep the width as their last axis.
        var (values, scales) = QuantizationParameters.QuantizeWeight(TensorData.ToFloats(table), table.Dims, perChannel ? 1 : null);
        long[] scaleDims = perChannel ? [scales.Length] : [];
        graph.Initializer.Add(TensorData.FromInt8s($"{prefix}.table_int8", values, [.. table.Dims]));
        graph.Initializer.Add(TensorData.FromFloats($"{prefix}.table_scale", scales, scaleDims));
        graph.Initializer.Add(TensorData.FromInt8s($"{prefix}.table_zero_point", new sbyte[scales.Length], scaleDims));
        var output = node.Output[0];
        node.Input[0] = $"{prefix}.table_int8";
        node.Output[0] = $"{prefix}.gathered_int8";
        return GraphEdit.Node(
            "DequantizeLinear",
            $"{prefix}.DequantizeLinear",
            [$"{prefix}.gathered_int8", $"{prefix}.table_scale", $"{prefix}.table_zero_point"],
            [output],
            perChannel ? [Attr.Int("axis", -1)] : []);
    }
}
