using ModelCompression.Onnx.Proto;

namespace ModelCompression.Quantization;

/// <summary>
/// A tied output head, as decoders write it: MatMul(x, Transpose(table)), where the table is the embedding lookup's
/// constant [vocabulary, width]. The quantizers store the head's own quantized copy of the table; once no float
/// reader of the table is left (the Transpose goes with the head), the lookup can have an int8 table too.
/// </summary>
internal static class TiedHead
{
    /// <summary>The table that <paramref name="weight"/> (a MatMul's B) transposes, or null when it is not a Transpose of a constant 2-D table.</summary>
    public static string? Table(string weight, IReadOnlyDictionary<string, NodeProto> producers, IReadOnlyDictionary<string, TensorProto> initializers) =>
        !initializers.ContainsKey(weight) && producers.TryGetValue(weight, out var producer) && IsTableTranspose(producer, initializers) ? producer.Input[0] : null;

    /// <summary>A default-domain Transpose of a constant 2-D tensor that swaps its two axes (perm [1, 0], or none: reversed).</summary>
    public static bool IsTableTranspose(NodeProto node, IReadOnlyDictionary<string, TensorProto> initializers) =>
        node.OpType == "Transpose" && GraphEdit.IsDefaultDomain(node) && node.Input.Count == 1 && node.Output.Count == 1
        && initializers.TryGetValue(node.Input[0], out var table) && table.Dims.Count == 2
        && (GraphEdit.Attribute(node, "perm") is not { } perm || perm.Ints is [1, 0]);

    /// <summary>Removes the Transposes of constants that no node reads and no graph output names any more.</summary>
    public static void RemoveUnreadTransposes(GraphProto graph)
    {
        var initializers = GraphEdit.Constants(graph, GraphEdit.ConstantAliases(graph));
        var read = graph.Node.SelectMany(n => n.Input).Concat(graph.Output.Select(o => o.Name)).ToHashSet(StringComparer.Ordinal);
        foreach (var node in graph.Node.Where(n => IsTableTranspose(n, initializers) && !read.Contains(n.Output[0])).ToList())
        {
            graph.Node.Remove(node);
        }
    }
}
