using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Stages;

/// <summary>
/// A classifier's penultimate value: what its final linear layer (a Gemm, or a MatMul with or without a bias Add)
/// reads, followed back through Dropout and Identity, which leave the features as they are at inference.
/// </summary>
public static class PenultimateValue
{
    /// <summary>The penultimate value of <paramref name="model"/>'s first output; null when the output is not made that way or reads a graph input.</summary>
    public static string? Find(ModelProto model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var producers = model.Graph.Node.SelectMany(n => n.Output.Select(o => (Output: o, Node: n))).Where(p => p.Output.Length > 0)
            .GroupBy(p => p.Output, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First().Node, StringComparer.Ordinal);
        var initializers = model.Graph.Initializer.Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        if (model.Graph.Output.Count == 0 || !producers.TryGetValue(model.Graph.Output[0].Name, out var last) || !OnnxVersions.IsDefaultDomain(last.Domain))
        {
            return null;
        }

        if (last.OpType == "Add" && last.Input.Count == 2)
        {
            // A bias Add after a MatMul: the MatMul is the final layer.
            var computed = last.Input.Where(i => !initializers.Contains(i)).ToList();
            if (computed.Count != 1 || !producers.TryGetValue(computed[0], out last))
            {
                return null;
            }
        }

        if (last.OpType is not ("Gemm" or "MatMul") || !initializers.Contains(last.Input[1]))
        {
            return null;
        }

        var value = last.Input[0];
        while (producers.TryGetValue(value, out var node) && node.OpType is "Dropout" or "Identity")
        {
            value = node.Input[0];
        }

        return producers.ContainsKey(value) ? value : null;
    }
}
