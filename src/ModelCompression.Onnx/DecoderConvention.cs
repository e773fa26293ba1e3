using System.Globalization;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Onnx;

/// <summary>
/// The input and output names of a causal language model (decoder) as PyTorch and Hugging Face Optimum export them,
/// which ONNX Runtime GenAI also reads. Every decoder the engine builds, trains, imports or generates with follows it:
/// <list type="bullet">
/// <item><c>input_ids</c> int64 [batch, sequence]: the new tokens.</item>
/// <item><c>attention_mask</c> int64 [batch, past_sequence + sequence]: 1 for a token, 0 for padding (batched
/// generation pads on the left), over the cached tokens and the new ones.</item>
/// <item><c>position_ids</c> int64 [batch, sequence] (optional; an export may derive positions itself).</item>
/// <item><c>past_key_values.{i}.key</c> / <c>.value</c> float [batch, heads, past_sequence, head_width] for every
/// layer i (optional: an export "without cache" has none). A first step, and training, pass past_sequence 0.</item>
/// <item>Outputs: <c>logits</c> float [batch, sequence, vocabulary]; with cache inputs also
/// <c>present.{i}.key</c> / <c>.value</c> [batch, heads, past_sequence + sequence, head_width], the next step's past.</item>
/// </list>
/// </summary>
public static class DecoderConvention
{
    /// <summary>The token ids input.</summary>
    public const string InputIds = "input_ids";

    /// <summary>The attention mask input (cached and new tokens).</summary>
    public const string AttentionMask = "attention_mask";

    /// <summary>The position ids input.</summary>
    public const string PositionIds = "position_ids";

    /// <summary>The logits output.</summary>
    public const string Logits = "logits";

    /// <summary>The cached keys of layer <paramref name="layer"/> (input).</summary>
    public static string PastKey(int layer) => string.Create(CultureInfo.InvariantCulture, $"past_key_values.{layer}.key");

    /// <summary>The cached values of layer <paramref name="layer"/> (input).</summary>
    public static string PastValue(int layer) => string.Create(CultureInfo.InvariantCulture, $"past_key_values.{layer}.value");

    /// <summary>The keys of layer <paramref name="layer"/> after this step (output).</summary>
    public static string PresentKey(int layer) => string.Create(CultureInfo.InvariantCulture, $"present.{layer}.key");

    /// <summary>The values of layer <paramref name="layer"/> after this step (output).</summary>
    public static string PresentValue(int layer) => string.Create(CultureInfo.InvariantCulture, $"present.{layer}.value");

    /// <summary>
    /// Whether <paramref name="model"/>'s graph looks like a decoder of this convention: an <c>input_ids</c> input and a
    /// <c>logits</c> output of rank 3.
    /// </summary>
    public static bool IsDecoder(ModelProto model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var graph = model.Graph;
        return graph.Input.Any(i => i.Name == InputIds)
            && graph.Output.Any(o => o.Name == Logits && o.Type?.TensorType?.Shape?.Dim.Count is null or 3);
    }

    /// <summary>The number of layers whose past key and value are graph inputs (0 for a graph without cache inputs).</summary>
    public static int CachedLayers(ModelProto model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var inputs = model.Graph.Input.Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        var layers = 0;
        while (inputs.Contains(PastKey(layers)) && inputs.Contains(PastValue(layers)))
        {
            layers++;
        }

        return layers;
    }
}
