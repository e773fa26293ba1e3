using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Pruning;
using ModelCompression.Torch.Native;
using TorchSharp;
using static TorchSharp.torch;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Factorization;

/// <summary>
/// How the rank r of a factorized weight is chosen. A budget (<see cref="RankRatio"/> or
/// <see cref="ParamsRatio"/>), when set, wins over <see cref="Energy"/>.
/// </summary>
/// <param name="Energy">Smallest r whose singular values keep this fraction of Σσ² (the squared Frobenius norm).</param>
/// <param name="RankRatio">When above 0: r = ceil(ratio x min(m, n)).</param>
/// <param name="ParamsRatio">When above 0: the largest r whose factors hold at most this fraction of the m x n weights, r = floor(ratio x m n / (m + n)).</param>
public sealed record RankChoice(double Energy, double RankRatio = 0, double ParamsRatio = 0)
{
    /// <summary>The rank for singular values <paramref name="singular"/> (descending) of an m x n weight; at least 1.</summary>
    public int For(IReadOnlyList<double> singular, int m, int n)
    {
        ArgumentNullException.ThrowIfNull(singular);
        var full = Math.Min(m, n);
        if (RankRatio > 0)
        {
            return Math.Clamp((int)Math.Ceiling(RankRatio * full), 1, full);
        }

        if (ParamsRatio > 0)
        {
            return Math.Clamp((int)Math.Floor(ParamsRatio * m * n / (m + n)), 1, full);
        }

        var total = singular.Sum(s => s * s);
        var kept = 0.0;
        for (var r = 0; r < singular.Count; r++)
        {
            kept += singular[r] * singular[r];
            // A relative tolerance so that an exact rank-k matrix stops at k despite rounding in the tail.
            if (kept >= (Energy * total) - (1e-12 * total))
            {
                return r + 1;
            }
        }

        return full;
    }
}

/// <summary>One weight split in two.</summary>
/// <param name="Node">The MatMul/Gemm node.</param>
/// <param name="Weight">The weight's initializer name.</param>
/// <param name="Inputs">m: input features.</param>
/// <param name="Outputs">n: output features.</param>
/// <param name="Rank">r.</param>
/// <param name="KeptEnergy">Σσ² of the kept singular values over Σσ² of all.</param>
/// <param name="ParametersBefore">m x n.</param>
/// <param name="ParametersAfter">r x (m + n).</param>
public sealed record FactorizedLayer(string Node, string Weight, int Inputs, int Outputs, int Rank, double KeptEnergy, long ParametersBefore, long ParametersAfter);

/// <summary>What factorization did.</summary>
/// <param name="Factorized">Every weight that was split.</param>
/// <param name="Skipped">Every MatMul/Gemm left as it was, with the reason.</param>
public sealed record FactorizationReport(IReadOnlyList<FactorizedLayer> Factorized, IReadOnlyList<string> Skipped);

/// <summary>
/// Low-rank factorization of MatMul/Gemm weights by truncated SVD: W (m x n) = U Σ Vᵀ ≈ (U_r √Σ_r)(√Σ_r V_rᵀ),
/// the best rank-r approximation in the Frobenius norm (Eckart–Young). The node becomes two of the same kind,
/// x·A then ·B; a Gemm's bias, alpha and beta stay on the second. A weight is left whole where r (m + n) ≥ m n,
/// which would not shrink it. The SVD runs in float64 through TorchSharp.
/// </summary>
public static class LowRankFactorizer
{
    /// <summary>Returns a factorized copy of <paramref name="source"/>; the input is not changed.</summary>
    public static (ModelProto Model, FactorizationReport Report) Factorize(ModelProto source, RankChoice rank, NameFilter exclude)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(rank);
        ArgumentNullException.ThrowIfNull(exclude);
        var model = source.Clone();
        var graph = model.Graph;
        var initializers = graph.Initializer.ToDictionary(i => i.Name, StringComparer.Ordinal);
        var uses = graph.Node.SelectMany(n => n.Input).Concat(graph.Output.Select(o => o.Name))
            .GroupBy(n => n, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        var taken = new HashSet<string>(
            graph.Node.SelectMany(n => n.Output.Append(n.Name)).Concat(graph.Initializer.Select(i => i.Name)).Concat(graph.Input.Select(i => i.Name)),
            StringComparer.Ordinal);
        var factorized = new List<FactorizedLayer>();
        var skipped = new List<string>();
        var nodes = new List<NodeProto>();
        foreach (var node in graph.Node)
        {
            if (node.OpType is not ("MatMul" or "Gemm") || !OnnxVersions.IsDefaultDomain(node.Domain))
            {
                nodes.Add(node);
                continue;
            }

            var label = $"{node.Name} ({node.OpType})";
            var why = Check(node, initializers, uses, exclude, out var weight);
            if (why is not null)
            {
                skipped.Add($"{label}: {why}");
                nodes.Add(node);
                continue;
            }

            var (rows, columns) = ((int)weight!.Dims[0], (int)weight.Dims[1]);
            var transB = node.OpType == "Gemm" && PrunableWeights.Attribute(node, "transB") != 0;
            var (inputs, outputs) = transB ? (columns, rows) : (rows, columns);
            var split = Split(TensorData.ToFloats(weight), rows, columns, rank);
            if (split is not { } factors)
            {
                skipped.Add($"{label}: the weight is all zeros");
                nodes.Add(node);
                continue;
            }

            var r = factors.Rank;
            if ((long)r * (inputs + outputs) >= (long)inputs * outputs)
            {
                skipped.Add($"{label}: rank {r} would not shrink it ({r} x ({inputs} + {outputs}) >= {inputs} x {outputs})");
                nodes.Add(node);
                continue;
            }

            // Stored S = A_s B_s. Without transB, x S = (x A_s) B_s; with transB, x Sᵀ = (x B_sᵀ) A_sᵀ, and Gemm's
            // transB reads the stored [r, K] and [N, r] factors transposed.
            var (first, firstDims, second, secondDims) = transB
                ? (factors.Right, new long[] { r, columns }, factors.Left, new long[] { rows, r })
                : (factors.Left, new long[] { rows, r }, factors.Right, new long[] { r, columns });
            var stem = string.IsNullOrEmpty(node.Name) ? node.Output[0] : node.Name;
            var firstWeight = Unique(taken, $"{weight.Name}.factor1");
            var secondWeight = Unique(taken, $"{weight.Name}.factor2");
            var middle = Unique(taken, $"{node.Output[0]}.factor1");
            graph.Initializer.Add(TensorData.FromFloats(firstWeight, first, firstDims));
            graph.Initializer.Add(TensorData.FromFloats(secondWeight, second, secondDims));

            var firstNode = new NodeProto { OpType = node.OpType, Name = Unique(taken, $"{stem}.factor1"), Domain = node.Domain };
            firstNode.Input.AddRange([node.Input[0], firstWeight]);
            firstNode.Output.Add(middle);
            var secondNode = node.Clone();
            secondNode.Name = Unique(taken, $"{stem}.factor2");
            secondNode.Input[0] = middle;
            secondNode.Input[1] = secondWeight;
            if (node.OpType == "Gemm")
            {
                // transA belongs to the first product; alpha, beta and C to the second, as (x A)(alpha B) + beta C.
                firstNode.Attribute.AddRange(node.Attribute.Where(a => a.Name is "transA" or "transB").Select(a => a.Clone()));
                foreach (var transA in secondNode.Attribute.Where(a => a.Name == "transA").ToList())
                {
                    secondNode.Attribute.Remove(transA);
                }
            }

            nodes.Add(firstNode);
            nodes.Add(secondNode);
            factorized.Add(new FactorizedLayer(node.Name, weight.Name, inputs, outputs, r, factors.KeptEnergy, (long)inputs * outputs, (long)r * (inputs + outputs)));
        }

        graph.Node.Clear();
        graph.Node.AddRange(nodes);
        StructuredPruner.RemoveUnused(graph);
        return (model, new FactorizationReport(factorized, skipped));
    }

    /// <summary>
    /// Splits a row-major <paramref name="rows"/> x <paramref name="columns"/> matrix W into Left (rows x r) and
    /// Right (r x columns) with Left·Right the best rank-r approximation; null for an all-zero W.
    /// </summary>
    public static (float[] Left, float[] Right, int Rank, double KeptEnergy, double[] Singular)? Split(float[] weight, int rows, int columns, RankChoice rank)
    {
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(rank);
        if (weight.Length != (long)rows * columns)
        {
            throw new ArgumentException($"{weight.Length} values do not fill {rows} x {columns}.", nameof(weight));
        }

        TorchNativeLoader.EnsureLoaded();
        using var scope = torch.NewDisposeScope();
        var w = torch.tensor(weight.Select(v => (double)v).ToArray(), [rows, columns], ScalarType.Float64);
        var (u, s, vh) = torch.linalg.svd(w, fullMatrices: false);
        var singular = s.data<double>().ToArray();
        var total = singular.Sum(v => v * v);
        if (total == 0)
        {
            return null;
        }

        var r = rank.For(singular, rows, columns);
        var kept = singular.Take(r).Sum(v => v * v) / total;
        // √Σ on both sides keeps the two factors at the same scale, which recovery training prefers.
        var root = s.narrow(0, 0, r).sqrt();
        var left = u.narrow(1, 0, r) * root.unsqueeze(0);
        var right = vh.narrow(0, 0, r) * root.unsqueeze(1);
        return (Floats(left), Floats(right), r, kept, singular);
    }

    private static string? Check(NodeProto node, Dictionary<string, TensorProto> initializers, Dictionary<string, int> uses, NameFilter exclude, out TensorProto? weight)
    {
        weight = null;
        if (node.Input.Count < 2 || !initializers.TryGetValue(node.Input[1], out var w) || w.DataType != (int)DataType.Float)
        {
            return "the weight is not a float constant";
        }

        if (exclude.Matches(node.Name, w.Name))
        {
            return "excluded by name";
        }

        if (w.Dims.Count != 2)
        {
            return $"the weight has rank {w.Dims.Count}";
        }

        if (uses.GetValueOrDefault(w.Name) != 1)
        {
            return $"the weight '{w.Name}' is shared with other nodes";
        }

        weight = w;
        return null;
    }

    private static float[] Floats(Tensor tensor) =>
        tensor.to_type(ScalarType.Float32).contiguous().data<float>().ToArray();

    private static string Unique(HashSet<string> taken, string stem)
    {
        var name = stem;
        for (var i = 1; !taken.Add(name); i++)
        {
            name = $"{stem}_{i}";
        }

        return name;
    }
}
