using ModelCompression.Diagnostics;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Generation;

/// <summary>
/// What a decoder file of the <see cref="DecoderConvention"/> takes and gives, read from its graph: whether it has
/// position ids and cache inputs, and the shape of its cache (layers, key/value heads, head width), its vocabulary
/// and the length of its position table where the graph says them.
/// </summary>
/// <param name="CachedLayers">Layers whose past key and value are inputs; 0 for an export without cache inputs.</param>
/// <param name="KeyValueHeads">Heads of the cached keys and values (dimension 1 of a past input); 0 without cache.</param>
/// <param name="HeadWidth">Width of one cached head (dimension 3 of a past input); 0 without cache.</param>
/// <param name="HasPositionIds">Whether <c>position_ids</c> is an input (an export may derive positions itself).</param>
/// <param name="Vocabulary">The last dimension of <c>logits</c> when the graph fixes it; null when it is symbolic.</param>
/// <param name="MaxPositions">
/// Rows of the position embedding table that <c>position_ids</c> indexes (a Gather of an initializer), null when the
/// graph has none (rotary positions, positions derived inside the graph).
/// </param>
public sealed record DecoderSignature(int CachedLayers, int KeyValueHeads, int HeadWidth, bool HasPositionIds, int? Vocabulary, int? MaxPositions)
{
    /// <summary>Whether the model takes a past and returns a present (KV cache).</summary>
    public bool HasCache => CachedLayers > 0;

    /// <summary>
    /// Reads the signature of <paramref name="model"/>, loaded from <paramref name="modelPath"/> (named in messages).
    /// Every way the graph departs from the convention is reported at once as MC2080: no <c>input_ids</c> or
    /// <c>attention_mask</c>, ids that are not int64, no rank-3 float <c>logits</c>, a past without its present, a
    /// past that is not float [batch, heads, past, width] with fixed heads and width, or an input the convention
    /// does not know (the generator could not feed it).
    /// </summary>
    public static DecoderSignature Read(ModelProto model, string modelPath)
    {
        ArgumentNullException.ThrowIfNull(model);
        var graph = model.Graph;
        var initializers = graph.Initializer.Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        // IR versions before 4 list initializers among the inputs too; those are not fed.
        var inputs = graph.Input.Where(i => !initializers.Contains(i.Name)).ToDictionary(i => i.Name, StringComparer.Ordinal);
        var outputs = graph.Output.ToDictionary(o => o.Name, StringComparer.Ordinal);
        var problems = new List<string>();

        foreach (var name in new[] { DecoderConvention.InputIds, DecoderConvention.AttentionMask, DecoderConvention.PositionIds })
        {
            if (inputs.TryGetValue(name, out var input) && ElementType(input) != TensorProto.Types.DataType.Int64)
            {
                problems.Add($"input '{name}' is {ElementType(input)}, not int64");
            }
            else if (!inputs.ContainsKey(name) && name != DecoderConvention.PositionIds)
            {
                problems.Add($"it has no input '{name}'");
            }
        }

        int? vocabulary = null;
        if (!outputs.TryGetValue(DecoderConvention.Logits, out var logits))
        {
            problems.Add($"it has no output '{DecoderConvention.Logits}'");
        }
        else if (ElementType(logits) != TensorProto.Types.DataType.Float || Dims(logits) is not { Count: 3 } logitDims)
        {
            problems.Add($"output '{DecoderConvention.Logits}' is not float [batch, sequence, vocabulary]");
        }
        else if (logitDims[2].DimValue > 0)
        {
            vocabulary = checked((int)logitDims[2].DimValue);
        }

        var layers = DecoderConvention.CachedLayers(model);
        var (heads, width) = (0, 0);
        for (var layer = 0; layer < layers; layer++)
        {
            foreach (var (past, present) in new[] { (DecoderConvention.PastKey(layer), DecoderConvention.PresentKey(layer)), (DecoderConvention.PastValue(layer), DecoderConvention.PresentValue(layer)) })
            {
                if (!outputs.ContainsKey(present))
                {
                    problems.Add($"input '{past}' has no output '{present}'");
                }

                if (ElementType(inputs[past]) != TensorProto.Types.DataType.Float || Dims(inputs[past]) is not { Count: 4 } dims || dims[1].DimValue <= 0 || dims[3].DimValue <= 0)
                {
                    problems.Add($"input '{past}' is not float [batch, heads, past_sequence, head_width] with fixed heads and head width");
                }
                else if (heads == 0)
                {
                    (heads, width) = (checked((int)dims[1].DimValue), checked((int)dims[3].DimValue));
                }
                else if (dims[1].DimValue != heads || dims[3].DimValue != width)
                {
                    problems.Add($"input '{past}' has {dims[1].DimValue} heads of {dims[3].DimValue}; layer 0 has {heads} of {width}");
                }
            }
        }

        var known = new HashSet<string>([DecoderConvention.InputIds, DecoderConvention.AttentionMask, DecoderConvention.PositionIds], StringComparer.Ordinal);
        for (var layer = 0; layer < layers; layer++)
        {
            known.Add(DecoderConvention.PastKey(layer));
            known.Add(DecoderConvention.PastValue(layer));
        }

        if (inputs.Keys.Where(name => !known.Contains(name)).Order(StringComparer.Ordinal).ToList() is { Count: > 0 } unknown)
        {
            problems.Add($"it has inputs the convention does not know: {string.Join(", ", unknown.Select(u => $"'{u}'"))}"
                + (unknown.Any(u => u.StartsWith("past_key_values.", StringComparison.Ordinal)) ? " (past inputs must be numbered from layer 0, a key and a value for each)" : string.Empty));
        }

        if (problems.Count > 0)
        {
            throw new CompressionException(
                [.. problems.Select(p => Diagnostic.Error(DiagnosticCodes.DecoderNotInConvention, $"Model '{modelPath}' is not a decoder of the convention (input_ids, attention_mask, position_ids, past_key_values.{{i}}.key/value -> logits, present.{{i}}.key/value): {p}.", modelPath))]);
        }

        return new DecoderSignature(layers, heads, width, inputs.ContainsKey(DecoderConvention.PositionIds), vocabulary, PositionTableRows(graph, initializers));
    }

    /// <summary>The rows of the initializer that a Gather indexes with <c>position_ids</c> (a learned position table), or null.</summary>
    /// <summary>
    /// The rows of the smallest table the position ids index: a learned position embedding (an initializer) or the
    /// rotary cos/sin tables (Constant nodes, as the built-in decoder writes them); null when no Gather reads a table
    /// by the position ids.
    /// </summary>
    private static int? PositionTableRows(GraphProto graph, HashSet<string> initializers)
    {
        var constants = graph.Node.Where(n => n.OpType == "Constant" && n.Output.Count == 1 && n.Attribute.Any(a => a.Name == "value" && a.T is not null))
            .ToDictionary(n => n.Output[0], n => n.Attribute.First(a => a.Name == "value").T, StringComparer.Ordinal);
        var rows = graph.Node
            .Where(n => n.OpType == "Gather" && n.Input.Count == 2 && n.Input[1] == DecoderConvention.PositionIds)
            .Select(n => initializers.Contains(n.Input[0]) ? graph.Initializer.First(i => i.Name == n.Input[0]) : constants.GetValueOrDefault(n.Input[0]))
            .Where(t => t is { Dims.Count: 2 } && t.Dims[0] > 0)
            .Select(t => checked((int)t!.Dims[0]))
            .ToList();
        return rows.Count > 0 ? rows.Min() : null;
    }

    private static TensorProto.Types.DataType ElementType(ValueInfoProto value) => (TensorProto.Types.DataType)(value.Type?.TensorType?.ElemType ?? 0);

    private static IReadOnlyList<TensorShapeProto.Types.Dimension>? Dims(ValueInfoProto value) => value.Type?.TensorType?.Shape?.Dim;
}
