using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Pruning;

/// <summary>
/// Finds multi-head attention blocks whose heads can be removed (structured pruning of attention, as in Michel et
/// al. 2019), written out in plain ops as the built-in transformer and many exporters write them:
/// <code>
/// q|k|v = Reshape(MatMul(x, W) [+ b], [.., .., H, d]) -> Transpose      (per head)
/// scores = MatMul(q, k) [-> scale, mask ...] -> Softmax
/// out = MatMul(Reshape(Transpose(MatMul(scores, v)), [.., .., H*d]), Wo)
/// </code>
/// The target shapes may be constants or, as PyTorch exports <c>x.view(x.size()[:-1] + (H, d))</c>, a Concat of
/// batch and sequence sizes read at run time (Unsqueeze(Gather(Shape(x), 0|1))) and constants holding H, d and H*d.
/// A head is a unit of <c>d</c> features: its columns of Wq, Wk, Wv and their biases, and its rows of Wo. The
/// result is a <see cref="PrunableStructure"/>, so <see cref="StructuredPruner"/> scores and applies it like any
/// other structure, including the Reshape targets that hard-code H and H*d. PyTorch's nn.MultiheadAttention, which
/// packs Wq, Wk and Wv into one projection and folds the heads into the batch, is matched in its own form
/// (<see cref="PackedAttentionBlock"/>). Decoders are matched too (<see cref="AttentionBlock"/>): keys and values joined
/// to their cached past (the present, a graph output, or an empty past in an export without cache), rotary steps on
/// queries and keys, and a packed projection split into queries, keys and values; <see cref="DecoderHeadPruner"/> adds
/// what a decoder's cache needs.
/// </summary>
public static class AttentionHeadFinder
{
    /// <summary>The operator name structures found here carry.</summary>
    public const string AttentionOp = "Attention";

    /// <summary>
    /// Every attention block of <paramref name="model"/> in the recognised form; attention-like blocks that are not
    /// (a value read twice, head sizes computed at run time) are listed as skipped with the reason.
    /// </summary>
    public static (IReadOnlyList<PrunableStructure> Structures, IReadOnlyList<SkippedLayer> Skipped) Find(ModelProto model, NameFilter exclude)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(exclude);
        var graph = new GraphIndex(model.Graph);
        var structures = new List<PrunableStructure>();
        var skipped = new List<SkippedLayer>();
        foreach (var node in model.Graph.Node)
        {
            // The context product, Softmax(scores) · V, identifies an attention block.
            if (node.OpType != "MatMul" || !OnnxVersions.IsDefaultDomain(node.Domain) || graph.ProducedBy(node.Input[0], "Softmax") is null)
            {
                continue;
            }

            // PyTorch's nn.MultiheadAttention folds the heads into the batch ([L, B*H, d], transposed [1, 0, 2]);
            // the built-in transformer and Hugging Face models give them an axis of their own ([B, H, L, d]).
            AttentionBlockMatcher block = graph.ProducedBy(node.Input[1], "Transpose") is { } values && values.Attribute.Any(a => a.Name == "perm" && a.Ints.SequenceEqual([1L, 0, 2]))
                ? new PackedAttentionBlock(graph, node)
                : new AttentionBlock(graph, node);
            var reason = block.Match();
            if (reason is null && exclude.Matches([.. block.Nodes.Select(n => n.Name), .. block.Weights]))
            {
                skipped.Add(new SkippedLayer(node.Name, AttentionOp, "excluded by name", Expected: true));
            }
            else if (reason is null)
            {
                structures.Add(block.Structure());
            }
            else
            {
                skipped.Add(new SkippedLayer(node.Name, AttentionOp, reason, Expected: false));
            }
        }

        return (structures, skipped);
    }
}
