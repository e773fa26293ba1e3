using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Pruning;

/// <summary>
/// Finds the layers whose units can be removed without breaking the graph. From each MatMul/Gemm/Conv with a
/// constant weight it follows the output forward through ops that treat every unit on its own (bias Add,
/// activations, Dropout, BatchNormalization, pooling, Flatten and a flattening Reshape) to the one
/// MatMul/Gemm/Conv that reads the units. Anything else on the way — a residual Add with another tensor, a
/// reshape into attention heads, LayerNormalization across the units, a second reader, a graph output — means
/// the layer is left whole, with the reason.
/// </summary>
public static class StructureFinder
{
    // Ops that treat every unit on its own, as StructureWalk follows them; GraphIndex reads them too, to work out ranks.
    internal static readonly HashSet<string> Elementwise = new(StringComparer.Ordinal)
    {
        "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Erf", "Elu", "Selu", "Celu", "Softplus", "Softsign", "HardSigmoid",
        "HardSwish", "Gelu", "Mish", "ThresholdedRelu", "Neg", "Abs", "Exp", "Log", "Sqrt", "Reciprocal", "Identity", "Cast",
    };

    internal static readonly HashSet<string> Combining = new(StringComparer.Ordinal)
    {
        "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "PRelu",
    };

    internal static readonly HashSet<string> Pooling = new(StringComparer.Ordinal)
    {
        "MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool",
    };

    /// <summary>Every prunable structure of <paramref name="model"/>, and every MatMul/Gemm/Conv left whole with its reason.</summary>
    /// <param name="model">The model; not changed.</param>
    /// <param name="exclude">Producer nodes or weights not to prune.</param>
    public static (IReadOnlyList<PrunableStructure> Structures, IReadOnlyList<SkippedLayer> Skipped) Find(ModelProto model, NameFilter exclude)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(exclude);
        var graph = new GraphIndex(model.Graph);
        var structures = new List<PrunableStructure>();
        var skipped = new List<SkippedLayer>();
        var hasControlFlow = model.Graph.Node.Any(n => n.Attribute.Any(a => a.G is not null || a.Graphs.Count > 0));
        for (var i = 0; i < model.Graph.Node.Count; i++)
        {
            var node = model.Graph.Node[i];
            if (node.OpType is not ("MatMul" or "Gemm" or "Conv") || !OnnxVersions.IsDefaultDomain(node.Domain))
            {
                continue;
            }

            if (exclude.Matches(node.Name, node.Input.Count > 1 ? node.Input[1] : string.Empty))
            {
                skipped.Add(new SkippedLayer(node.Name, node.OpType, "excluded by name", Expected: true));
                continue;
            }

            if (graph.GraphOutputs.Contains(node.Output[0]))
            {
                skipped.Add(new SkippedLayer(node.Name, node.OpType, $"it makes the graph output '{node.Output[0]}'", Expected: true));
                continue;
            }

            if (hasControlFlow)
            {
                skipped.Add(new SkippedLayer(node.Name, node.OpType, "the graph has control flow (If/Loop/Scan), whose subgraphs are not followed", Expected: false));
                continue;
            }

            var walk = new StructureWalk(graph, node, i);
            if (walk.Run() is { } reason)
            {
                skipped.Add(new SkippedLayer(node.Name, node.OpType, reason, Expected: false));
            }
            else
            {
                structures.Add(walk.Result!);
            }
        }

        return (structures, skipped);
    }
}
