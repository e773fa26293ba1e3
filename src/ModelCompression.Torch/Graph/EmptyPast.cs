using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using static TorchSharp.torch;

namespace ModelCompression.Torch.Graph;

/// <summary>
/// The cache inputs of a decoder graph (<see cref="DecoderConvention"/>): <c>past_key_values.{i}.key</c> and
/// <c>.value</c>, [batch, heads, past_sequence, head_width]. Training and a first generation step have no past, and a
/// trainer feeds only <c>input_ids</c>, <c>attention_mask</c> and <c>position_ids</c>: <see cref="Fill"/> gives every
/// cache input the caller left out an empty past, [batch, heads, 0, head_width], so one graph serves training and
/// cached generation.
/// </summary>
internal sealed class EmptyPast
{
    private readonly (string Name, long Heads, long HeadWidth)[] _inputs;

    private EmptyPast((string, long, long)[] inputs) => _inputs = inputs;

    /// <summary>
    /// The cache inputs of <paramref name="graph"/> whose heads and head width are fixed numbers (a symbolic one cannot
    /// be made up: such an input must then be given).
    /// </summary>
    public static EmptyPast Of(GraphProto graph)
    {
        var layers = DecoderConvention.CachedLayers(new ModelProto { Graph = graph });
        var inputs = new List<(string, long, long)>();
        for (var i = 0; i < layers; i++)
        {
            foreach (var name in new[] { DecoderConvention.PastKey(i), DecoderConvention.PastValue(i) })
            {
                var dims = graph.Input.First(v => v.Name == name).Type?.TensorType?.Shape?.Dim;
                if (dims is { Count: 4 } && dims[1].HasDimValue && dims[3].HasDimValue)
                {
                    inputs.Add((name, dims[1].DimValue, dims[3].DimValue));
                }
            }
        }

        return new EmptyPast([.. inputs]);
    }

    /// <summary>
    /// <paramref name="given"/> with an empty past for every cache input it lacks; the batch size is read from the
    /// first given input (all of a decoder's inputs lead with it). <paramref name="given"/> itself when nothing is missing.
    /// </summary>
    public IReadOnlyDictionary<string, Tensor> Fill(IReadOnlyDictionary<string, Tensor> given, ScalarType floatType, Device? device)
    {
        if (_inputs.All(i => given.ContainsKey(i.Name)) || given.Count == 0)
        {
            return given;
        }

        var first = given.TryGetValue(DecoderConvention.InputIds, out var ids) ? ids : given.Values.First();
        var batch = first.dim() > 0 ? first.shape[0] : 1;
        var filled = new Dictionary<string, Tensor>(given, StringComparer.Ordinal);
        foreach (var (name, heads, headWidth) in _inputs)
        {
            if (!filled.ContainsKey(name))
            {
                filled[name] = zeros([batch, heads, 0, headWidth], floatType, device ?? first.device);
            }
        }

        return filled;
    }
}
