using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Pruning;

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
        var graph = new GraphIndex(model.Graph);
        if (model.Graph.Output.Count == 0 || !graph.Producers.TryGetValue(model.Graph.Output[0].Name, out var last) || !OnnxVersions.IsDefaultDomain(last.Domain))
        {
            return null;
        }

        if (last.OpType == "Add" && last.Input.Count == 2)
        {
            // A bias Add after a MatMul: the MatMul is the final layer.
            var computed = last.Input.Where(i => !graph.Initializers.ContainsKey(i)).ToList();
            if (computed.Count != 1 || !graph.Producers.TryGetValue(computed[0], out last))
            {
                return null;
            }
        }

        if (last.OpType is not ("Gemm" or "MatMul") || !graph.Initializers.ContainsKey(last.Input[1]))
        {
            return null;
        }

        var value = last.Input[0];
        while ((graph.ProducedBy(value, "Dropout") ?? graph.ProducedBy(value, "Identity")) is { } passThrough)
        {
            value = passThrough.Input[0];
        }

        return graph.Producers.ContainsKey(value) ? value : null;
    }
}
