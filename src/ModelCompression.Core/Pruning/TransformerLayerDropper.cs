using System.Globalization;
using System.Text.RegularExpressions;
using ModelCompression.Diagnostics;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Pruning;

/// <summary>
/// Depth pruning of the built-in Transformer (student = teacher minus layers, as DistilBERT): a layer is every
/// node and initializer named <c>encoder.layer{i}.*</c> (see <see cref="Architectures.TransformerBuilder"/>).
/// Each layer maps the residual stream x to x + attention + feed-forward, so removing it means its readers read
/// its input instead. The other layers keep their names and weights.
/// </summary>
public static partial class TransformerLayerDropper
{
    /// <summary>The encoder layer indices of <paramref name="model"/>, ascending (empty when it has none).</summary>
    public static IReadOnlyList<int> Layers(ModelProto model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return [.. model.Graph.Node
            .Select(n => LayerName().Match(n.Name))
            .Where(m => m.Success)
            .Select(m => int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture))
            .Distinct()
            .Order()];
    }

    /// <summary>
    /// Returns a copy of <paramref name="source"/> without the encoder layers in <paramref name="drop"/>.
    /// Throws MC2062 when a layer does not exist, when no layer would be left, or when a layer is not a single
    /// residual block (one stream in, one out).
    /// </summary>
    public static ModelProto Drop(ModelProto source, IReadOnlyCollection<int> drop, string? modelPath = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(drop);
        var layers = Layers(source);
        var problems = new List<string>();
        if (layers.Count == 0)
        {
            problems.Add("the model has no encoder layers (nodes named encoder.layer{i}.*, as the built-in transformer names them)");
        }

        var missing = drop.Where(i => !layers.Contains(i)).Distinct().Order().ToList();
        if (layers.Count > 0 && missing.Count > 0)
        {
            problems.Add($"layer(s) {string.Join(", ", missing)} do not exist; the model has layers {string.Join(", ", layers)}");
        }

        if (layers.Count > 0 && layers.All(drop.Contains))
        {
            problems.Add($"dropping layers {string.Join(", ", drop.Distinct().Order())} would leave none of the {layers.Count}");
        }

        if (problems.Count > 0)
        {
            throw new CompressionException([.. problems.Select(p => Diagnostic.Error(DiagnosticCodes.LayerDropInvalid, $"Cannot drop transformer layers: {p}.", modelPath))]);
        }

        var model = source.Clone();
        var graph = model.Graph;
        foreach (var layer in drop.Distinct().Order())
        {
            var prefix = $"encoder.layer{layer}.";
            var nodes = graph.Node.Where(n => n.Name.StartsWith(prefix, StringComparison.Ordinal)).ToList();
            var made = nodes.SelectMany(n => n.Output).Where(o => o.Length > 0).ToHashSet(StringComparer.Ordinal);
            var stream = nodes[0].Input[0];
            var outputs = graph.Node.Except(nodes).SelectMany(n => n.Input).Concat(graph.Output.Select(o => o.Name))
                .Where(made.Contains).Distinct().ToList();
            if (made.Contains(stream) || outputs.Count != 1 || graph.Output.Any(o => o.Name == outputs[0]))
            {
                throw CompressionException.Error(
                    DiagnosticCodes.LayerDropInvalid,
                    $"Cannot drop transformer layer {layer}: it is not one residual block (its first node '{nodes[0].Name}' reads '{stream}'; values read outside it: {string.Join(", ", outputs)}).",
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
                        node.Input[k] = stream;
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

    [GeneratedRegex(@"^encoder\.layer(\d+)\.", RegexOptions.CultureInvariant)]
    private static partial Regex LayerName();
}
