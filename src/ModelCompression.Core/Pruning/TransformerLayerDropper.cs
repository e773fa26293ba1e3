using System.Globalization;
using System.Text.RegularExpressions;
using ModelCompression.Diagnostics;
using ModelCompression.Inference;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Pruning;

/// <summary>
/// Depth pruning of a transformer encoder (student = teacher minus layers, as DistilBERT). A layer is found by its
/// node names: <c>encoder.layer{i}.*</c> as the built-in transformer names them, or a <c>/layers.{i}/</c> or
/// <c>/layer.{i}/</c> scope as PyTorch's exporter writes module paths (nn.TransformerEncoder, Hugging Face
/// encoders), together with the Constant nodes only that layer reads. Each layer maps the residual stream to a
/// stream of the same shape, so removing it means its readers read its input instead. The other layers keep their
/// names and weights.
/// </summary>
public static partial class TransformerLayerDropper
{
    /// <summary>The encoder layer indices of <paramref name="model"/>, ascending (empty when it has none).</summary>
    public static IReadOnlyList<int> Layers(ModelProto model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return [.. model.Graph.Node.Select(n => LayerOf(n.Name)).OfType<int>().Distinct().Order()];
    }

    /// <summary>
    /// Returns a copy of <paramref name="source"/> without the encoder layers in <paramref name="drop"/>.
    /// Throws MC2062 when a layer does not exist, when no layer would be left, or when a layer is not a single
    /// residual block (one stream in, one value of the same shape out).
    /// </summary>
    public static ModelProto Drop(ModelProto source, IReadOnlyCollection<int> drop, string? modelPath = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(drop);
        var layers = Layers(source);
        var problems = new List<string>();
        if (layers.Count == 0)
        {
            problems.Add("the model has no encoder layers (nodes named encoder.layer{i}.* as the built-in transformer names them, or in a /layers.{i}/ or /layer.{i}/ scope as PyTorch exports name them)");
        }

        problems.AddRange(DroppedLayers.Problems(layers, drop));

        if (problems.Count > 0)
        {
            throw new CompressionException([.. problems.Select(p => Diagnostic.Error(DiagnosticCodes.LayerDropInvalid, $"Cannot drop transformer layers: {p}.", modelPath))]);
        }

        // The shapes tell the residual stream from the other values a layer reads (the attention mask, shapes).
        var inspection = ModelInspector.Inspect(source, modelPath ?? "the model");
        var shapes = inspection.Values.Where(v => v.Shape is not null).ToDictionary(v => v.Name, v => (v.ElementType, v.Shape!), StringComparer.Ordinal);
        foreach (var input in inspection.Inputs)
        {
            shapes.TryAdd(input.Name, (input.ElementType, [.. input.Dimensions.Select(d => (long)d)]));
        }

        var model = source.Clone();
        var graph = model.Graph;
        foreach (var layer in drop.Distinct().Order())
        {
            var nodes = Members(graph, layer);
            var made = nodes.SelectMany(n => n.Output).Where(o => o.Length > 0).ToHashSet(StringComparer.Ordinal);
            var constants = graph.Initializer.Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
            var outputs = graph.Node.Except(nodes).SelectMany(n => n.Input).Concat(graph.Output.Select(o => o.Name))
                .Where(made.Contains).Distinct().ToList();
            var reads = nodes.SelectMany(n => n.Input).Where(i => i.Length > 0 && !made.Contains(i) && !constants.Contains(i)).Distinct().ToList();
            var streams = outputs.Count == 1 && shapes.TryGetValue(outputs[0], out var output)
                ? reads.Where(r => shapes.TryGetValue(r, out var read) && read.ElementType == output.ElementType && read.Item2.SequenceEqual(output.Item2)).ToList()
                : [];
            if (outputs.Count != 1 || streams.Count != 1 || graph.Output.Any(o => o.Name == outputs[0]))
            {
                throw CompressionException.Error(
                    DiagnosticCodes.LayerDropInvalid,
                    $"Cannot drop transformer layer {layer}: it is not one residual block (values read outside it: {string.Join(", ", outputs)}; inputs of its output's shape: {(streams.Count == 0 ? "none" : string.Join(", ", streams))}).",
                    modelPath);
            }

            foreach (var node in nodes)
            {
                graph.Node.Remove(node);
            }

            foreach (var node in graph.Node)
            {
                for (var k = 0; k < node.Input.Count; k++)
                {
                    if (node.Input[k] == outputs[0])
                    {
                        node.Input[k] = streams[0];
                    }
                }
            }

            foreach (var info in graph.ValueInfo.Where(v => made.Contains(v.Name)).ToList())
            {
                graph.ValueInfo.Remove(info);
            }
        }

        StructuredPruner.RemoveUnused(graph);
        return model;
    }

    /// <summary>The nodes of <paramref name="layer"/>: those named in it, and the Constant nodes only they read.</summary>
    private static List<NodeProto> Members(GraphProto graph, int layer)
    {
        var nodes = graph.Node.Where(n => LayerOf(n.Name) == layer).ToList();
        var inLayer = nodes.ToHashSet();
        var readersOf = graph.Node.SelectMany(n => n.Input.Select(input => (Input: input, Node: n))).ToLookup(r => r.Input, r => r.Node, StringComparer.Ordinal);
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

    [GeneratedRegex(@"^encoder\.layer(?<builtin>\d+)\.|/layers?\.(?<scope>\d+)/", RegexOptions.CultureInvariant)]
    private static partial Regex LayerName();
}
