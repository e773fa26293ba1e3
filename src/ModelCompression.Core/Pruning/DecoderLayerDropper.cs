using System.Globalization;
using System.Text.RegularExpressions;
using ModelCompression.Diagnostics;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Pruning;

/// <summary>
/// Depth pruning of a decoder in <see cref="DecoderConvention"/> (student = teacher minus layers). A layer is found by
/// its node names: <c>decoder.layer{i}.*</c> as the built-in decoder names them, or a <c>/h.{i}/</c> (GPT-2),
/// <c>/layers.{i}/</c> or <c>/layer.{i}/</c> scope as PyTorch's exporter writes module paths; the nodes that read the
/// layer's past or make its present belong to it too, and so do the Constant nodes only it reads. Each layer maps the
/// residual stream to a stream of the same shape, so removing it means its readers read its input instead.
/// <para>
/// A decoder with a cache also loses the layer's <c>past_key_values.{i}.key|value</c> inputs and
/// <c>present.{i}.key|value</c> outputs, and the later layers' cache names are renumbered so that they are again
/// consecutive from 0, as the convention (and every runtime that feeds the cache by index) needs. The kept layers keep
/// their node and weight names.
/// </para>
/// </summary>
public static partial class DecoderLayerDropper
{
    /// <summary>The decoder layer indices of <paramref name="model"/>, ascending (empty when it has none).</summary>
    public static IReadOnlyList<int> Layers(ModelProto model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return [.. model.Graph.Node.Select(n => LayerOf(n.Name)).OfType<int>().Distinct().Order()];
    }

    /// <summary>
    /// Returns a copy of <paramref name="source"/> without the decoder layers in <paramref name="drop"/>, its cache
    /// renumbered. Throws MC2062, naming <paramref name="modelPath"/>, when the model is not a decoder of the
    /// convention, a layer does not exist, no layer would be left, the cache inputs do not pair one to one with the
    /// layers, or a layer is not one residual block (one stream in, one value out besides its present).
    /// </summary>
    public static ModelProto Drop(ModelProto source, IReadOnlyCollection<int> drop, string? modelPath = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(drop);
        var layers = Layers(source).ToList();
        var cached = DecoderConvention.CachedLayers(source);
        var problems = new List<string>();
        if (!DecoderConvention.IsDecoder(source))
        {
            problems.Add($"the model is not a decoder of the convention (an input '{DecoderConvention.InputIds}' and a rank-3 output '{DecoderConvention.Logits}')");
        }
        else if (layers.Count == 0)
        {
            problems.Add("the model has no decoder layers (nodes named decoder.layer{i}.* as the built-in decoder names them, or in a /h.{i}/, /layers.{i}/ or /layer.{i}/ scope as PyTorch exports name them)");
        }

        problems.AddRange(DroppedLayers.Problems(layers, drop));

        if (cached > 0 && cached != layers.Count)
        {
            problems.Add($"its cache has past_key_values for {cached} layers but it has {layers.Count} layers ({string.Join(", ", layers)})");
        }

        if (problems.Count > 0)
        {
            throw new CompressionException([.. problems.Select(p => Diagnostic.Error(DiagnosticCodes.LayerDropInvalid, $"Cannot drop decoder layers: {p}.", modelPath))]);
        }

        var model = source.Clone();
        var graph = model.Graph;
        // The k-th layer (by index, ascending) owns past_key_values.{k}: layers keep their names when others go, so
        // after a first drop the names and the cache numbers differ.
        var dropped = drop.Distinct().Order().ToList();
        foreach (var layer in dropped)
        {
            RemoveLayer(graph, layer, cached > 0 ? layers.IndexOf(layer) : null, modelPath);
        }

        if (cached > 0)
        {
            Renumber(graph, [.. Enumerable.Range(0, cached).Except(dropped.Select(l => layers.IndexOf(l)))]);
        }

        DeadCode.Eliminate(model);
        return model;
    }

    /// <summary>
    /// Removes the nodes of <paramref name="layer"/> and its cache (<paramref name="cache"/>: its number in the cache
    /// names, null without cache), and points its readers at its input stream.
    /// </summary>
    private static void RemoveLayer(GraphProto graph, int layer, int? cache, string? modelPath)
    {
        string[] cacheInputs = cache is { } c ? [DecoderConvention.PastKey(c), DecoderConvention.PastValue(c)] : [];
        string[] cacheOutputs = cache is { } p ? [DecoderConvention.PresentKey(p), DecoderConvention.PresentValue(p)] : [];
        var nodes = Members(graph, layer, cacheInputs, cacheOutputs);
        var inLayer = nodes.ToHashSet();
        var made = nodes.SelectMany(n => n.Output).Where(o => o.Length > 0).ToHashSet(StringComparer.Ordinal);
        if (cacheOutputs.FirstOrDefault(o => !made.Contains(o)) is { } stray)
        {
            throw Invalid(layer, $"its present '{stray}' is not made by a node of the layer", modelPath);
        }

        if (graph.Node.Where(n => !inLayer.Contains(n)).FirstOrDefault(n => n.Input.Any(cacheInputs.Contains)) is { } reader)
        {
            throw Invalid(layer, $"node '{reader.Name}' outside the layer reads its past '{cacheInputs[0]}'", modelPath);
        }

        var graphOutputs = graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        var readOutside = graph.Node.Where(n => !inLayer.Contains(n)).SelectMany(n => n.Input).Concat(graphOutputs)
            .Where(made.Contains).Distinct().Except(cacheOutputs).ToList();

        // The stream in: what the layer reads that is computed outside it and read by no other layer (the attention
        // bias, rotary tables and the empty past of an export without cache are shared by every layer).
        var constants = graph.Initializer.Select(i => i.Name).Concat(graph.Node.Where(n => n.OpType == "Constant").SelectMany(n => n.Output))
            .Concat(graph.Input.Select(i => i.Name)).ToHashSet(StringComparer.Ordinal);
        var readByOtherLayers = graph.Node.Where(n => !inLayer.Contains(n) && LayerOf(n.Name) is not null).SelectMany(n => n.Input).ToHashSet(StringComparer.Ordinal);
        var streams = nodes.SelectMany(n => n.Input)
            .Where(i => i.Length > 0 && !made.Contains(i) && !constants.Contains(i) && !readByOtherLayers.Contains(i))
            .Distinct().ToList();
        if (readOutside.Count != 1 || streams.Count != 1 || graphOutputs.Contains(readOutside[0]))
        {
            throw Invalid(
                layer,
                $"it is not one residual block (values read outside it besides its present: {Listed(readOutside)}; inputs read by it alone: {Listed(streams)})",
                modelPath);
        }

        var index = new GraphIndex(graph);
        if (index.Rank(streams[0]) is { } inRank && index.Rank(readOutside[0]) is { } outRank && inRank != outRank)
        {
            throw Invalid(layer, $"its input '{streams[0]}' has rank {inRank} and its output '{readOutside[0]}' rank {outRank}", modelPath);
        }

        foreach (var node in nodes)
        {
            graph.Node.Remove(node);
        }

        foreach (var node in graph.Node)
        {
            for (var k = 0; k < node.Input.Count; k++)
            {
                if (node.Input[k] == readOutside[0])
                {
                    node.Input[k] = streams[0];
                }
            }
        }

        foreach (var info in graph.ValueInfo.Where(v => made.Contains(v.Name)).ToList())
        {
            graph.ValueInfo.Remove(info);
        }

        foreach (var input in graph.Input.Where(i => cacheInputs.Contains(i.Name)).ToList())
        {
            graph.Input.Remove(input);
        }

        foreach (var output in graph.Output.Where(o => cacheOutputs.Contains(o.Name)).ToList())
        {
            graph.Output.Remove(output);
        }
    }

    /// <summary>
    /// The nodes of <paramref name="layer"/>: those named in it (but Constants that other nodes read too), those named in
    /// no layer that read its past or make its present (the built-in decoder names those Concats after the present), and
    /// the Constant nodes only they read.
    /// </summary>
    private static List<NodeProto> Members(GraphProto graph, int layer, string[] cacheInputs, string[] cacheOutputs)
    {
        var nodes = graph.Node.Where(n => LayerOf(n.Name) is { } named
            ? named == layer
            : n.Input.Any(cacheInputs.Contains) || n.Output.Any(cacheOutputs.Contains)).ToList();
        var readersOf = graph.Node.SelectMany(n => n.Input.Select(input => (Input: input, Node: n))).ToLookup(r => r.Input, r => r.Node, StringComparer.Ordinal);
        // A Constant named in the layer that other layers read stays (PyTorch's exporter makes one constant of a buffer
        // that every layer holds, in the first layer's scope).
        var named = nodes.ToHashSet();
        nodes.RemoveAll(n => n.OpType == "Constant" && n.Output.Any(o => readersOf[o].Any(r => !named.Contains(r))));
        var inLayer = nodes.ToHashSet();
        foreach (var constant in graph.Node.Where(n => n.OpType == "Constant" && !inLayer.Contains(n)))
        {
            var readers = readersOf[constant.Output[0]].ToList();
            if (readers.Count > 0 && readers.All(inLayer.Contains) && !graph.Output.Any(o => o.Name == constant.Output[0]))
            {
                nodes.Add(constant);
            }
        }

        return nodes;
    }

    /// <summary>Renames the cache of the kept layers (old indices, ascending) to past_key_values.{0..}, present.{0..}.</summary>
    private static void Renumber(GraphProto graph, IReadOnlyList<int> kept)
    {
        var renamed = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < kept.Count; i++)
        {
            renamed[DecoderConvention.PastKey(kept[i])] = DecoderConvention.PastKey(i);
            renamed[DecoderConvention.PastValue(kept[i])] = DecoderConvention.PastValue(i);
            renamed[DecoderConvention.PresentKey(kept[i])] = DecoderConvention.PresentKey(i);
            renamed[DecoderConvention.PresentValue(kept[i])] = DecoderConvention.PresentValue(i);
        }

        string Rename(string name) => renamed.GetValueOrDefault(name, name);
        foreach (var node in graph.Node)
        {
            for (var k = 0; k < node.Input.Count; k++)
            {
                node.Input[k] = Rename(node.Input[k]);
            }

            for (var k = 0; k < node.Output.Count; k++)
            {
                node.Output[k] = Rename(node.Output[k]);
            }

            // The built-in decoder names the node that makes a present after it.
            node.Name = Rename(node.Name);
        }

        foreach (var value in graph.Input.Concat(graph.Output).Concat(graph.ValueInfo))
        {
            value.Name = Rename(value.Name);
        }
    }

    private static string Listed(IReadOnlyList<string> values) => values.Count == 0 ? "none" : string.Join(", ", values.Select(v => $"'{v}'"));

    private static CompressionException Invalid(int layer, string why, string? modelPath) =>
        CompressionException.Error(DiagnosticCodes.LayerDropInvalid, $"Cannot drop decoder layer {layer}: {why}.", modelPath);

    private static int? LayerOf(string nodeName)
    {
        var match = LayerName().Match(nodeName);
        if (!match.Success)
        {
            return null;
        }

        var index = match.Groups["builtin"].Success ? match.Groups["builtin"] : match.Groups["scope"];
        return int.Parse(index.Value, CultureInfo.InvariantCulture);
    }

    [GeneratedRegex(@"^decoder\.layer(?<builtin>\d+)\.|/(?:h|layers?)\.(?<scope>\d+)/", RegexOptions.CultureInvariant)]
    private static partial Regex LayerName();
}
