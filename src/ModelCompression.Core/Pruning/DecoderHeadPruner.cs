using ModelCompression.Diagnostics;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Pruning;

/// <summary>
/// Removes attention heads from a decoder in <see cref="DecoderConvention"/>: each layer's query, key and value
/// columns, its output projection's rows and the head count of its reshapes, and with a cache its
/// <c>past_key_values.{i}.key|value</c> and <c>present.{i}.key|value</c> lose the same heads ([batch, heads, sequence,
/// head_width]). The kept heads compute what they did. Blocks are found by <see cref="AttentionHeadFinder"/>; unlike
/// an encoder, where a block the finder cannot follow just keeps its heads, a decoder's cache has one head count for
/// every layer, so any block that cannot be pruned refuses the whole model (MC2075) rather than leave a cache that no
/// runtime can feed.
/// </summary>
public static class DecoderHeadPruner
{
    /// <summary>
    /// Every attention block of <paramref name="model"/> as a structure whose units are its heads, in graph order.
    /// MC2075 (naming <paramref name="modelPath"/>) when the model is not a decoder of the convention, has no attention
    /// block, has a block that cannot be pruned (named by its context node, with the reason), or has a cache input
    /// that no pruned block follows.
    /// </summary>
    public static IReadOnlyList<PrunableStructure> Find(ModelProto model, string? modelPath = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (!DecoderConvention.IsDecoder(model))
        {
            throw Refused($"the model is not a decoder of the convention (an input '{DecoderConvention.InputIds}' and a rank-3 output '{DecoderConvention.Logits}')", modelPath);
        }

        var (structures, skipped) = AttentionHeadFinder.Find(model, NameFilter.None);
        var problems = skipped.Select(s => $"the attention block at node '{s.Node}' cannot be pruned: {s.Reason}").ToList();
        if (structures.Count == 0 && problems.Count == 0)
        {
            problems.Add("no attention block was found (a Softmax whose result multiplies per-head values)");
        }

        var cached = DecoderConvention.CachedLayers(model);
        var followed = structures.SelectMany(s => s.Cache?.GraphValues ?? []).ToHashSet(StringComparer.Ordinal);
        for (var layer = 0; layer < cached && problems.Count == 0; layer++)
        {
            foreach (var name in new[] { DecoderConvention.PastKey(layer), DecoderConvention.PastValue(layer), DecoderConvention.PresentKey(layer), DecoderConvention.PresentValue(layer) })
            {
                if (!followed.Contains(name))
                {
                    problems.Add($"'{name}' is not the cache of any attention block found, so its heads could not follow");
                }
            }
        }

        if (problems.Count > 0)
        {
            throw new CompressionException([.. problems.Select(p => Diagnostic.Error(DiagnosticCodes.DecoderHeadsNotPrunable, $"Cannot prune the attention heads of decoder '{modelPath ?? "the model"}': {p}.", modelPath))]);
        }

        return structures;
    }

    /// <summary>
    /// Returns a copy of <paramref name="model"/> that keeps, in each block of <paramref name="plan"/>, only its kept heads.
    /// With a cache every block must keep as many heads as the others (MC2075): the convention's past inputs share one
    /// head count.
    /// </summary>
    public static ModelProto Apply(ModelProto model, IReadOnlyList<PrunedStructure> plan, string? modelPath = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(plan);
        if (DecoderConvention.CachedLayers(model) > 0 && plan.Select(p => p.Kept.Length).Distinct().Count() > 1)
        {
            throw Refused(
                $"its cache needs one head count in every layer, and the plan keeps {string.Join(", ", plan.Select(p => $"{p.Kept.Length} of {p.Structure.Units} at '{p.Structure.Producer}'"))}",
                modelPath);
        }

        return StructuredPruner.Apply(model, plan);
    }

    /// <summary>
    /// Removes the round(<paramref name="sparsity"/> x heads) heads of lowest L2 score (<see cref="StructuredPruner.L2Scores"/>)
    /// from every block (at least one head stays), so blocks of as many heads keep as many.
    /// </summary>
    public static ModelProto Prune(ModelProto model, double sparsity, string? modelPath = null)
    {
        var structures = Find(model, modelPath);
        var plan = structures.Select(s => new PrunedStructure(s, StructuredPruner.KeepHighest(StructuredPruner.L2Scores(model, s), sparsity))).ToList();
        return Apply(model, plan, modelPath);
    }

    private static CompressionException Refused(string why, string? modelPath) =>
        CompressionException.Error(DiagnosticCodes.DecoderHeadsNotPrunable, $"Cannot prune the attention heads of decoder '{modelPath ?? "the model"}': {why}.", modelPath);
}
