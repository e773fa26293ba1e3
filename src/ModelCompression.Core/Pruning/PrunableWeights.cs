using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Pruning;

/// <summary>A weight that magnitude pruning may zero: the constant weight input of a MatMul, Gemm or Conv.</summary>
/// <param name="Initializer">The weight's initializer name.</param>
/// <param name="Node">The node that multiplies by it.</param>
/// <param name="OpType">MatMul, Gemm or Conv.</param>
/// <param name="Dims">The weight's shape.</param>
/// <param name="ReductionAxis">
/// For a 2-D weight the axis of the input features it sums over (0 for MatMul's [in, out], 1 for Gemm with
/// transB's [out, in]); -1 for convolutions.
/// </param>
public sealed record PrunableWeight(string Initializer, string Node, string OpType, long[] Dims, int ReductionAxis)
{
    /// <summary>Number of weights.</summary>
    public long Count => Dims.Aggregate(1L, (a, b) => a * b);
}

/// <summary>Finds the weights of a model that pruning applies to: MatMul/Gemm/Conv weights, not biases or norms.</summary>
public static class PrunableWeights
{
    /// <summary>
    /// The float constant weights of MatMul (2-D), Gemm and Conv nodes, each once, in graph order, minus those
    /// whose initializer or node name <paramref name="exclude"/> matches; <paramref name="skipped"/> says why the
    /// other MatMul/Gemm/Conv nodes are left alone.
    /// </summary>
    public static IReadOnlyList<PrunableWeight> Find(ModelProto model, NameFilter exclude, out IReadOnlyList<string> skipped)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(exclude);
        var initializers = model.Graph.Initializer.ToDictionary(i => i.Name, StringComparer.Ordinal);
        var found = new List<PrunableWeight>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var reasons = new List<string>();
        foreach (var node in model.Graph.Node)
        {
            if (node.OpType is not ("MatMul" or "Gemm" or "Conv") || !OnnxVersions.IsDefaultDomain(node.Domain))
            {
                continue;
            }

            var label = $"{node.Name} ({node.OpType})";
            if (node.Input.Count < 2 || !initializers.TryGetValue(node.Input[1], out var weight) || weight.DataType != (int)DataType.Float)
            {
                reasons.Add($"{label}: the weight is not a float constant");
                continue;
            }

            if (exclude.Matches(weight.Name, node.Name))
            {
                reasons.Add($"{label}: excluded by name");
                continue;
            }

            var rank = weight.Dims.Count;
            int reductionAxis;
            switch (node.OpType)
            {
                case "MatMul" when rank == 2:
                    reductionAxis = 0;
                    break;
                case "Gemm":
                    reductionAxis = Attribute(node, "transB") != 0 ? 1 : 0;
                    break;
                case "Conv" when rank >= 3:
                    reductionAxis = -1;
                    break;
                default:
                    reasons.Add($"{label}: the weight has rank {rank}");
                    continue;
            }

            if (seen.Add(weight.Name))
            {
                found.Add(new PrunableWeight(weight.Name, node.Name, node.OpType, [.. weight.Dims], reductionAxis));
            }
        }

        skipped = reasons;
        return found;
    }

    /// <summary>An integer attribute of <paramref name="node"/>, or <paramref name="fallback"/> when it is absent.</summary>
    internal static long Attribute(NodeProto node, string name, long fallback = 0) =>
        node.Attribute.FirstOrDefault(a => a.Name == name) is { } attribute ? attribute.I : fallback;
}
