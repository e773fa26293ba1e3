using Microsoft.ML.OnnxRuntime.Tensors;
using ModelCompression.Diagnostics;
using ModelCompression.Inference;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Quantization;

/// <summary>What the float16 conversion did.</summary>
/// <param name="Float16Nodes">Nodes that compute in float16.</param>
/// <param name="Float32Nodes">Nodes kept in float32 (with Casts around them) because ONNX Runtime's CPU provider has no float16 kernel for them, each as "name (op)".</param>
/// <param name="Float16Initializers">Float initializers now stored as float16.</param>
/// <param name="ClampedValues">Initializer values beyond float16's range (±65504) that were clamped.</param>
public sealed record Float16Report(IReadOnlyList<string> Float16Nodes, IReadOnlyList<string> Float32Nodes, int Float16Initializers, int ClampedValues);

/// <summary>
/// Converts a float32 model to float16 storage and, where ONNX Runtime's CPU provider can, float16 compute.
/// Graph inputs and outputs stay float32 (Casts at the boundaries). Every float initializer becomes float16.
/// Which nodes compute in float16 is checked, not assumed: ONNX Runtime silently wraps a float16 node that
/// has no float16 CPU kernel in Casts of its own, so the converter loads each candidate model, reads the graph
/// ONNX Runtime made of it, and moves every node that got such Casts (or was expanded into a float32 function
/// body, or cancelled one of the converter's Casts against one of its own) back to float32 until none does. (ONNX Runtime also runs a float16-capable node in float32 when all
/// its neighbours are float32, to save the Casts; the check sees that as well.) The x86-64 build of ONNX Runtime 1.31 (1.32 passes the converter's tests unchanged) has float16 kernels only for
/// data movement and LayerNormalization, so on that build the result is float16 storage (half the file) with
/// float32 compute: the Casts of constant weights are folded once, when the session loads.
/// </summary>
public static class Float16Converter
{
    /// <summary>Ops that only move data: they stay with their input's precision so no Cast pair surrounds them.</summary>
    private static readonly HashSet<string> PassThroughOps = new(StringComparer.Ordinal)
    {
        "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Identity", "Concat", "Slice", "Gather", "Expand", "Tile", "Split", "Dropout",
    };

    /// <summary>Returns the converted copy of <paramref name="source"/>; the input is not changed.</summary>
    /// <exception cref="CompressionException">MC2052: control flow, or a model that is already quantized.</exception>
    public static (ModelProto Model, Float16Report Report) Convert(ModelProto source)
    {
        ArgumentNullException.ThrowIfNull(source);
        var model = source.Clone();
        var graph = model.Graph;
        GraphEdit.NameNodes(graph);
        if (graph.Node.FirstOrDefault(n => n.Attribute.Any(a => a.G is not null || a.Graphs.Count > 0)) is { } control)
        {
            throw Unsupported($"node '{control.Name}' ({control.OpType}) has a subgraph; float16 conversion handles graphs without control flow");
        }

        if (graph.Node.FirstOrDefault(n => n.OpType.Contains("Quantize", StringComparison.Ordinal) || n.OpType.StartsWith("QLinear", StringComparison.Ordinal) || n.OpType.EndsWith("Integer", StringComparison.Ordinal)) is { } quantized)
        {
            throw Unsupported($"node '{quantized.Name}' ({quantized.OpType}) is quantized already; float16 conversion takes a float model");
        }

        var floats = FloatTensors(model);
        var candidates = graph.Node
            .Where(n => n.Input.Concat(n.Output).Any(floats.Contains) && !n.Attribute.Any(a => a.Name == "dtype"))
            .Select(n => n.Name)
            .ToList();
        var half = candidates.ToHashSet(StringComparer.Ordinal);
        ModelProto converted;
        int clamped;
        while (true)
        {
            (converted, clamped) = Build(model, floats, half);
            var fallback = NodesOnFloat32Kernels(converted, half);
            if (fallback.Count == 0)
            {
                // Pass-through ops between float32 neighbours would only add a Cast pair: move them over.
                var movers = PassThroughBetweenFloat32(model, floats, half);
                if (movers.Count == 0)
                {
                    break;
                }

                half.ExceptWith(movers);
                continue;
            }

            half.ExceptWith(fallback);
        }

        var types = graph.Node.ToDictionary(n => n.Name, n => n.OpType, StringComparer.Ordinal);
        return (converted, new Float16Report(
            [.. candidates.Where(half.Contains)],
            [.. candidates.Where(n => !half.Contains(n)).Select(n => $"{n} ({types[n]})")],
            converted.Graph.Initializer.Count(i => i.DataType == (int)DataType.Float16) - source.Graph.Initializer.Count(i => i.DataType == (int)DataType.Float16),
            clamped));
    }

    /// <summary>The float32 values of the graph: inputs, initializers and node outputs (types as ONNX Runtime infers them).</summary>
    private static HashSet<string> FloatTensors(ModelProto model)
    {
        var graph = model.Graph;
        var floats = new HashSet<string>(StringComparer.Ordinal);
        floats.UnionWith(graph.Input.Where(i => i.Type?.TensorType?.ElemType == (int)DataType.Float).Select(i => i.Name));
        floats.UnionWith(graph.Initializer.Where(i => i.DataType == (int)DataType.Float).Select(i => i.Name));
        string[] values = [.. graph.Node.SelectMany(n => n.Output).Where(o => o.Length > 0)];
        using var runner = OnnxRunner.WithIntermediateOutputs(model, "model (to read its value types)", values, threads: 1, Microsoft.ML.OnnxRuntime.GraphOptimizationLevel.ORT_DISABLE_ALL);
        floats.UnionWith(runner.OutputTypes.Where(t => t.Value == TensorElementType.Float).Select(t => t.Key));
        return floats;
    }

    /// <summary>The model with the <paramref name="half"/> nodes in float16 and every other node in float32.</summary>
    private static (ModelProto Model, int Clamped) Build(ModelProto source, IReadOnlySet<string> floatValues, HashSet<string> half)
    {
        var floats = new HashSet<string>(floatValues, StringComparer.Ordinal);
        var model = source.Clone();
        var graph = model.Graph;
        var names = new UniqueNames(graph);
        var graphInputs = graph.Input.Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        var graphOutputs = graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        var clamped = 0;
        var halfValues = new HashSet<string>(StringComparer.Ordinal);
        foreach (var initializer in graph.Initializer.Where(i => i.DataType == (int)DataType.Float && !graphInputs.Contains(i.Name) && !graphOutputs.Contains(i.Name)).ToList())
        {
            var (values, outOfRange) = ToHalves(TensorData.ToFloats(initializer));
            clamped += outOfRange;
            graph.Initializer[graph.Initializer.IndexOf(initializer)] = TensorData.FromHalves(initializer.Name, values, [.. initializer.Dims]);
            halfValues.Add(initializer.Name);
        }

        foreach (var node in graph.Node.Where(n => half.Contains(n.Name)))
        {
            halfValues.UnionWith(node.Output.Where(floats.Contains));
            MakeAttributesHalf(node);
        }

        // A float16 value the graph returns is written under a new name and cast back to float32 at the end.
        var tail = new List<NodeProto>();
        foreach (var output in graph.Output.Select(o => o.Name).Where(o => halfValues.Contains(o) && !graph.Initializer.Any(i => i.Name == o)))
        {
            var prefix = names.Make(output, ".float16", ".ToFloat32");
            foreach (var node in graph.Node)
            {
                for (var i = 0; i < node.Output.Count; i++)
                {
                    node.Output[i] = node.Output[i] == output ? $"{prefix}.float16" : node.Output[i];
                }

                for (var i = 0; i < node.Input.Count; i++)
                {
                    node.Input[i] = node.Input[i] == output ? $"{prefix}.float16" : node.Input[i];
                }
            }

            halfValues.Add($"{prefix}.float16");
            floats.Add($"{prefix}.float16");
            tail.Add(GraphEdit.Cast($"{prefix}.ToFloat32", $"{prefix}.float16", output, DataType.Float));
        }

        var casts = new Dictionary<(string, bool), string>();
        var ordered = new List<NodeProto>();
        foreach (var node in graph.Node)
        {
            for (var i = 0; i < node.Input.Count; i++)
            {
                var input = node.Input[i];
                if (!floats.Contains(input))
                {
                    continue;
                }

                var wantHalf = half.Contains(node.Name) && !Float32Only(node, i);
                if (wantHalf == halfValues.Contains(input))
                {
                    continue;
                }

                if (!casts.TryGetValue((input, wantHalf), out var cast))
                {
                    var suffix = wantHalf ? ".float16" : ".float32";
                    var prefix = names.Make(input, suffix, suffix + "_Cast");
                    cast = prefix + suffix;
                    casts[(input, wantHalf)] = cast;
                    ordered.Add(GraphEdit.Cast(cast + "_Cast", input, cast, wantHalf ? DataType.Float16 : DataType.Float));
                }

                node.Input[i] = cast;
            }

            ordered.Add(node);
        }

        ordered.AddRange(tail);
        graph.Node.Clear();
        graph.Node.AddRange(ordered);
        // Recorded float32 types of intermediate values may be float16 now; ONNX Runtime infers them again.
        foreach (var info in graph.ValueInfo.Where(v => floats.Contains(v.Name)).ToList())
        {
            graph.ValueInfo.Remove(info);
        }

        return (model, clamped);
    }

    /// <summary>Inputs that the ONNX spec types as float32 whatever the node computes in (Resize's roi and scales, Upsample's scales).</summary>
    private static bool Float32Only(NodeProto node, int input) =>
        (node.OpType == "Resize" && input is 1 or 2) || (node.OpType == "Upsample" && input == 1);

    /// <summary>Switches the attributes that fix a float output type (Cast's target, constant values) to float16.</summary>
    private static void MakeAttributesHalf(NodeProto node)
    {
        foreach (var attribute in node.Attribute)
        {
            if (node.OpType == "Cast" && attribute.Name == "to" && attribute.I == (long)DataType.Float)
            {
                attribute.I = (long)DataType.Float16;
            }
            else if (node.OpType is "Constant" or "ConstantOfShape" && attribute.Name == "value" && attribute.T?.DataType == (int)DataType.Float)
            {
                attribute.T = TensorData.FromHalves(attribute.T.Name, ToHalves(TensorData.ToFloats(attribute.T)).Values, [.. attribute.T.Dims]);
            }
        }
    }

    private static (Half[] Values, int Clamped) ToHalves(float[] values)
    {
        var max = (float)Half.MaxValue;
        var clamped = values.Count(v => Math.Abs(v) > max);
        return ([.. values.Select(v => (Half)Math.Clamp(v, -max, max))], clamped);
    }

    /// <summary>
    /// Loads the model in ONNX Runtime with graph optimizations off, saves the graph the session runs, and
    /// returns the float16 nodes that run in float32 there: those it wrapped in Casts of its own, those whose
    /// Casts from or to float32 it removed (it cancels one of ours against one it inserted), and those it
    /// replaced by a float32 function body.
    /// </summary>
    private static HashSet<string> NodesOnFloat32Kernels(ModelProto model, HashSet<string> half)
    {
        var session = OnnxRunner.SessionGraph(model, "float16 model", Microsoft.ML.OnnxRuntime.GraphOptimizationLevel.ORT_DISABLE_ALL);
        var ours = model.Graph.Node.Select(n => n.Name).ToHashSet(StringComparer.Ordinal);
        var present = session.Graph.Node.Select(n => n.Name).ToHashSet(StringComparer.Ordinal);
        // Constant nodes become initializers when a session loads; they have no kernel to miss.
        var fallback = model.Graph.Node.Where(n => half.Contains(n.Name) && n.OpType != "Constant" && !present.Contains(n.Name)).Select(n => n.Name).ToHashSet(StringComparer.Ordinal);
        // A Cast ONNX Runtime inserted to float32 feeds a node that computes in float32, one to float16 follows one.
        fallback.UnionWith(CastNeighbours(session.Graph, session.Graph.Node.Where(n => n.OpType == "Cast" && !ours.Contains(n.Name)), DataType.Float, ours));
        // A Cast of ours that it removed did the opposite: the node after a removed Cast to float16 reads float32.
        fallback.UnionWith(CastNeighbours(model.Graph, model.Graph.Node.Where(n => n.OpType == "Cast" && !present.Contains(n.Name)), DataType.Float16, ours));
        fallback.IntersectWith(half);
        return fallback;
    }

    /// <summary>The nodes the <paramref name="casts"/> to <paramref name="readerType"/> feed, and the nodes the other casts read from.</summary>
    private static IEnumerable<string> CastNeighbours(GraphProto graph, IEnumerable<NodeProto> casts, DataType readerType, HashSet<string> ours)
    {
        var producers = GraphEdit.Producers(graph);
        var consumers = GraphEdit.Consumers(graph);
        foreach (var cast in casts)
        {
            var neighbours = GraphEdit.Attribute(cast, "to")?.I == (long)readerType
                ? consumers.GetValueOrDefault(cast.Output[0], [])
                : producers.TryGetValue(cast.Input[0], out var producer) ? [producer] : [];
            foreach (var node in neighbours.Where(n => ours.Contains(n.Name)))
            {
                yield return node.Name;
            }
        }
    }

    /// <summary>Float16 pass-through nodes whose float inputs are all float32 values: moving them to float32 saves two Casts.</summary>
    private static List<string> PassThroughBetweenFloat32(ModelProto model, HashSet<string> floats, HashSet<string> half)
    {
        var graph = model.Graph;
        var initializers = graph.Initializer.Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        var halfValues = new HashSet<string>(initializers.Where(floats.Contains), StringComparer.Ordinal);
        var movers = new List<string>();
        foreach (var node in graph.Node)
        {
            var floatInputs = node.Input.Where(i => floats.Contains(i) && !initializers.Contains(i)).ToList();
            if (half.Contains(node.Name) && PassThroughOps.Contains(node.OpType) && floatInputs.Count > 0 && floatInputs.All(i => !halfValues.Contains(i)))
            {
                movers.Add(node.Name);
            }
            else if (half.Contains(node.Name))
            {
                halfValues.UnionWith(node.Output.Where(floats.Contains));
            }
        }

        return movers;
    }

    private static CompressionException Unsupported(string why) =>
        CompressionException.Error(DiagnosticCodes.QuantizeUnsupportedModel, $"fp16: {why}.");
}
