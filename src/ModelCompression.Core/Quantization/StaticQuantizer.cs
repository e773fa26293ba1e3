using ModelCompression.Diagnostics;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Quantization;

/// <summary>
/// Static int8 quantization in the QDQ format, laid out so that ONNX Runtime's CPU provider fuses each layer
/// into an integer kernel:
/// <list type="bullet">
/// <item>Weights become int8 initializers (symmetric, per tensor or per output channel: Conv axis 0, MatMul
/// and Gemm the output axis) behind a DequantizeLinear; the float weights leave the file. For
/// <see cref="Int8Target.Any"/> they are scaled so that no CPU's int16 pair sums can saturate
/// (<see cref="SaturationCheck"/>). A weight several layers read through Identity nodes (PyTorch's shared and
/// tied weights) is stored once; each layer gets its own DequantizeLinear of it. Biases become int32
/// with scale input_scale * weight_scale, which is what QLinearConv and QGemm require.</item>
/// <item>Each layer's activation input gets a QuantizeLinear/DequantizeLinear pair with the calibrated range.
/// Only the quantized layer reads the pair's output; other readers of the tensor keep the float value.</item>
/// <item>A Conv's output gets a pair too (QLinearConv needs one), and so does any layer's output that a lone
/// ReLU reads (ONNX Runtime fuses such a layer only with a pair after the ReLU). With asymmetric activations
/// the pair sits on the ReLU's output, whose zero point is then 0, and ONNX Runtime drops the ReLU as
/// redundant; with symmetric ones it sits on the layer's output. Other MatMul and Gemm outputs stay float
/// (MatMulIntegerToFloat, QGemm with float output).</item>
/// <item>An activation that only passes through MaxPool, Reshape, Flatten, Transpose, Squeeze or Unsqueeze
/// after a quantized tensor reuses that tensor's scale and zero point, so ONNX Runtime drops the pair and
/// moves int8 data instead.</item>
/// </list>
/// Embedding lookups (a Gather from a constant table) get an int8 table and no activation pair (see
/// <see cref="EmbeddingQuantizer"/>): their indices are token ids, which are never quantized or calibrated.
/// Add, Mul and the other element-wise ops stay float: residual sums carry the widest activation ranges in a
/// network, and QLinearAdd only pays when both neighbours are integer already.
/// </summary>
public static class StaticQuantizer
{
    private static readonly HashSet<string> PassThroughOps = new(StringComparer.Ordinal)
    {
        "MaxPool", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze",
    };

    /// <summary>
    /// Prepares a copy of <paramref name="source"/> and finds its quantizable layers; <paramref name="include"/>
    /// (null: all) decides which of them are candidates, the others are reported as excluded.
    /// </summary>
    /// <exception cref="CompressionException">MC2052: the model's opset is below 13 (per-channel DequantizeLinear).</exception>
    public static StaticQuantizationPlan Plan(ModelProto source, QuantizationScheme activations, Func<NodeProto, bool>? include = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        var opset = source.OpsetImport.FirstOrDefault(o => OnnxVersions.IsDefaultDomain(o.Domain))?.Version ?? 0;
        if (opset < 13)
        {
            throw CompressionException.Error(
                DiagnosticCodes.QuantizeUnsupportedModel,
                $"Static quantization needs ONNX opset 13 or later (per-channel DequantizeLinear); the model imports opset {opset}.");
        }

        var model = source.Clone();
        GraphEdit.NameNodes(model.Graph);
        var folded = FoldBatchNorms(model.Graph);
        var graph = model.Graph;
        var aliases = GraphEdit.ConstantAliases(graph);
        var initializers = GraphEdit.Constants(graph, aliases);
        var candidates = new List<string>();
        var skipped = new List<string>();
        var tensors = new List<string>();
        foreach (var node in graph.Node.Where(n => GraphEdit.IsDefaultDomain(n) && n.OpType is "Conv" or "MatMul" or "Gemm" || EmbeddingQuantizer.IsLookup(n, initializers)))
        {
            if (node.OpType == "Gather")
            {
                // Weight-only: nothing to calibrate, and the indices are never quantized.
                var why = EmbeddingQuantizer.WhyNot(node, graph, initializers, aliases) ?? (include is not null && !include(node) ? "excluded" : null);
                (why is null ? candidates : skipped).Add(why is null ? node.Name : $"{node.Name} ({node.OpType}): {why}");
            }
            else if (QuantizableLayer.Analyze(node, graph, initializers) is not { } layer)
            {
                skipped.Add($"{node.Name} ({node.OpType}): {QuantizableLayer.WhyNot(node, initializers)}");
            }
            else if (include is not null && !include(node))
            {
                skipped.Add($"{node.Name} ({node.OpType}): excluded");
            }
            else
            {
                candidates.Add(node.Name);
                tensors.Add(layer.Input);
                if (OutputToQuantize(layer, graph, activations) is { } output)
                {
                    tensors.Add(output);
                }
            }
        }

        return new StaticQuantizationPlan(model, activations, candidates, skipped, folded, [.. tensors.Distinct(StringComparer.Ordinal)]);
    }

    /// <summary>
    /// Quantizes the <paramref name="nodes"/> (a subset of the plan's candidates; the others stay float) with the
    /// calibrated <paramref name="ranges"/>. Returns a new model; the plan is not changed.
    /// </summary>
    /// <param name="plan">The prepared model and its candidates.</param>
    /// <param name="ranges">The calibrated range of every tensor in the plan's <see cref="StaticQuantizationPlan.TensorsToCalibrate"/>.</param>
    /// <param name="nodes">The candidates to quantize.</param>
    /// <param name="perChannel">One weight scale per output channel instead of one per tensor.</param>
    /// <param name="target">The CPUs the model must be exact on: <see cref="Int8Target.Any"/> bounds the weights' pair sums, <see cref="Int8Target.Vnni"/> uses the full int8 range.</param>
    public static (ModelProto Model, StaticQuantizationReport Report) Quantize(
        StaticQuantizationPlan plan,
        IReadOnlyDictionary<string, (float Min, float Max)> ranges,
        IReadOnlyCollection<string> nodes,
        bool perChannel,
        Int8Target target = Int8Target.Any)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(ranges);
        ArgumentNullException.ThrowIfNull(nodes);
        var unknown = nodes.Where(n => !plan.Candidates.Contains(n)).ToList();
        if (unknown.Count > 0)
        {
            throw new ArgumentException($"Not quantizable candidates of this plan: {string.Join(", ", unknown)}.", nameof(nodes));
        }

        var model = plan.Model.Clone();
        var graph = model.Graph;
        var aliases = GraphEdit.ConstantAliases(graph);
        var initializers = GraphEdit.Constants(graph, aliases);
        var producers = GraphEdit.Producers(graph);
        var names = new UniqueNames(graph);
        var chosen = nodes.ToHashSet(StringComparer.Ordinal);
        var layers = graph.Node.Where(n => chosen.Contains(n.Name) && n.OpType != "Gather").Select(n => QuantizableLayer.Analyze(n, graph, initializers)!).ToList();
        var lookups = graph.Node.Where(n => chosen.Contains(n.Name) && n.OpType == "Gather").ToList();

        // Which activations get a pair, and whose readers switch to the dequantized value.
        var layerInputs = layers.Select(l => l.Input).ToHashSet(StringComparer.Ordinal);
        var outputs = layers.Select(l => OutputToQuantize(l, graph, plan.Activations)).OfType<string>().ToHashSet(StringComparer.Ordinal);
        var quantized = layerInputs.Union(outputs).ToHashSet(StringComparer.Ordinal);
        var parameters = new Dictionary<string, QuantizationParameters>(StringComparer.Ordinal);
        QuantizationParameters ParametersOf(string tensor)
        {
            if (parameters.TryGetValue(tensor, out var known))
            {
                return known;
            }

            // A value a pass-through op moved out of a quantized tensor keeps that tensor's grid exactly.
            var result = producers.TryGetValue(tensor, out var producer) && PassThroughOps.Contains(producer.OpType)
                && GraphEdit.IsDefaultDomain(producer) && quantized.Contains(producer.Input[0])
                ? ParametersOf(producer.Input[0])
                : ranges.TryGetValue(tensor, out var range)
                    ? QuantizationParameters.ForRange(range.Min, range.Max, plan.Activations)
                    : throw new ArgumentException($"No calibrated range for '{tensor}'.", nameof(ranges));
            parameters[tensor] = result;
            return result;
        }

        var pairs = new Dictionary<string, string>(StringComparer.Ordinal);
        var pairNodes = new Dictionary<string, List<NodeProto>>(StringComparer.Ordinal);
        foreach (var tensor in graph.Input.Select(i => i.Name).Concat(graph.Node.SelectMany(n => n.Output)).Where(quantized.Contains))
        {
            var (dequantized, added) = AddPair(graph, names, tensor, ParametersOf(tensor), plan.Activations);
            pairs[tensor] = dequantized;
            pairNodes[tensor] = added;
        }

        foreach (var node in graph.Node)
        {
            for (var i = 0; i < node.Input.Count; i++)
            {
                var input = node.Input[i];
                var reads = outputs.Contains(input) || (i == 0 && chosen.Contains(node.Name) && layerInputs.Contains(input));
                if (reads && pairs.TryGetValue(input, out var dequantized))
                {
                    node.Input[i] = dequantized;
                }
            }
        }

        var weights = new SharedWeights(graph, names, initializers, aliases, perChannel, target);
        var weightNodes = layers.ToDictionary(l => l.Node.Name, l => weights.Quantize(l, ParametersOf(l.Input).Scale), StringComparer.Ordinal);
        var lookupNodes = lookups.ToDictionary(n => n.Name, n => EmbeddingQuantizer.Quantize(graph, names, n, initializers[n.Input[0]], perChannel), StringComparer.Ordinal);

        var ordered = new List<NodeProto>();
        foreach (var tensor in graph.Input.Select(i => i.Name).Where(pairNodes.ContainsKey))
        {
            ordered.AddRange(pairNodes[tensor]);
        }

        foreach (var node in graph.Node)
        {
            ordered.AddRange(weightNodes.GetValueOrDefault(node.Name) ?? []);
            ordered.Add(node);
            if (lookupNodes.TryGetValue(node.Name, out var dequantize))
            {
                ordered.Add(dequantize);
            }

            foreach (var output in node.Output.Where(pairNodes.ContainsKey))
            {
                ordered.AddRange(pairNodes[output]);
            }
        }

        graph.Node.Clear();
        graph.Node.AddRange(ordered);
        GraphEdit.RemoveUnreadAliases(graph);
        GraphEdit.RemoveUnusedInitializers(graph);
        return (model, new StaticQuantizationReport([.. graph.Node.Select(n => n.Name).Where(chosen.Contains)], [.. quantized.Order(StringComparer.Ordinal)]));
    }

    /// <summary>
    /// The activation after the layer that gets a pair, or null. ONNX Runtime fuses a layer whose output a lone
    /// ReLU reads only when a QuantizeLinear right after the ReLU makes the ReLU redundant, which takes a zero
    /// point at the type's minimum: so with asymmetric activations the pair goes on the ReLU's output (zero
    /// point 0), with symmetric ones on the layer's output (the ReLU then runs between DequantizeLinear and
    /// QuantizeLinear). Without a ReLU, a Conv still needs an output pair (QLinearConv has no float output);
    /// MatMul and Gemm do not (MatMulIntegerToFloat and QGemm give float). A MatMul's output is that of its
    /// bias Add, if it has one.
    /// </summary>
    private static string? OutputToQuantize(QuantizableLayer layer, GraphProto graph, QuantizationScheme activations)
    {
        var output = layer.Bias is ({ } biasNode, _) && biasNode != layer.Node ? biasNode.Output[0] : layer.Node.Output[0];
        var readers = graph.Node.Where(n => n.Input.Contains(output)).ToList();
        var graphOutputs = graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        if (readers is [{ OpType: "Relu" } relu] && GraphEdit.IsDefaultDomain(relu)
            && !graphOutputs.Contains(output) && !graphOutputs.Contains(relu.Output[0]))
        {
            return activations == QuantizationScheme.Asymmetric ? relu.Output[0] : output;
        }

        return layer.Node.OpType == "Conv" ? output : null;
    }

    private static (string Dequantized, List<NodeProto> Nodes) AddPair(GraphProto graph, UniqueNames names, string tensor, QuantizationParameters parameters, QuantizationScheme scheme)
    {
        var prefix = names.Make(tensor, ".scale", ".zero_point", ".quantized", ".dequantized", ".QuantizeLinear", ".DequantizeLinear");
        graph.Initializer.Add(TensorData.FromFloats($"{prefix}.scale", [parameters.Scale], []));
        graph.Initializer.Add(scheme == QuantizationScheme.Asymmetric
            ? TensorData.FromUInt8s($"{prefix}.zero_point", [(byte)parameters.ZeroPoint], [])
            : TensorData.FromInt8s($"{prefix}.zero_point", [(sbyte)parameters.ZeroPoint], []));
        string[] quantization = [$"{prefix}.scale", $"{prefix}.zero_point"];
        return ($"{prefix}.dequantized",
        [
            GraphEdit.Node("QuantizeLinear", $"{prefix}.QuantizeLinear", [tensor, .. quantization], [$"{prefix}.quantized"]),
            GraphEdit.Node("DequantizeLinear", $"{prefix}.DequantizeLinear", [$"{prefix}.quantized", .. quantization], [$"{prefix}.dequantized"]),
        ]);
    }


    /// <summary>
    /// Folds each inference-mode BatchNormalization that alone reads a Conv's output into that Conv:
    /// W' = W * g / sqrt(v + eps) per output channel, b' = (b - m) * g / sqrt(v + eps) + beta. The Conv then
    /// writes the BatchNormalization's output.
    /// </summary>
    private static List<string> FoldBatchNorms(GraphProto graph)
    {
        var folded = new List<string>();
        var initializers = GraphEdit.Constants(graph, GraphEdit.ConstantAliases(graph));
        var producers = GraphEdit.Producers(graph);
        var consumers = GraphEdit.Consumers(graph);
        var graphOutputs = graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        var names = new UniqueNames(graph);
        foreach (var norm in graph.Node.Where(n => n.OpType == "BatchNormalization" && GraphEdit.IsDefaultDomain(n)).ToList())
        {
            if (!producers.TryGetValue(norm.Input[0], out var conv) || conv.OpType != "Conv" || !GraphEdit.IsDefaultDomain(conv)
                || consumers[conv.Output[0]].Count != 1 || graphOutputs.Contains(conv.Output[0])
                || GraphEdit.Attribute(norm, "training_mode")?.I is 1 || norm.Output.Skip(1).Any(o => o.Length > 0)
                || norm.Input.Skip(1).Take(4).Any(i => !IsFloatConstant(initializers, i))
                || conv.Input.Count < 2 || !IsFloatConstant(initializers, conv.Input[1])
                || (conv.Input.Count > 2 && conv.Input[2].Length > 0 && !IsFloatConstant(initializers, conv.Input[2])))
            {
                continue;
            }

            var weight = initializers[conv.Input[1]];
            var w = TensorData.ToFloats(weight);
            var channels = (int)weight.Dims[0];
            var perChannel = w.Length / channels;
            var (gamma, beta, mean, variance) = (Floats(norm, 1), Floats(norm, 2), Floats(norm, 3), Floats(norm, 4));
            var epsilon = GraphEdit.Attribute(norm, "epsilon")?.F ?? 1e-5f;
            var bias = conv.Input.Count > 2 && conv.Input[2].Length > 0 ? TensorData.ToFloats(initializers[conv.Input[2]]) : new float[channels];
            var newWeight = new float[w.Length];
            var newBias = new float[channels];
            for (var c = 0; c < channels; c++)
            {
                var factor = gamma[c] / Math.Sqrt(variance[c] + epsilon);
                for (var k = 0; k < perChannel; k++)
                {
                    newWeight[(c * perChannel) + k] = (float)(w[(c * perChannel) + k] * factor);
                }

                newBias[c] = (float)(((bias[c] - mean[c]) * factor) + beta[c]);
            }

            var prefix = names.Make(conv.Name, ".folded_weight", ".folded_bias");
            graph.Initializer.Add(TensorData.FromFloats($"{prefix}.folded_weight", newWeight, [.. weight.Dims]));
            graph.Initializer.Add(TensorData.FromFloats($"{prefix}.folded_bias", newBias, [channels]));
            conv.Input[1] = $"{prefix}.folded_weight";
            if (conv.Input.Count > 2)
            {
                conv.Input[2] = $"{prefix}.folded_bias";
            }
            else
            {
                conv.Input.Add($"{prefix}.folded_bias");
            }

            conv.Output[0] = norm.Output[0];
            graph.Node.Remove(norm);
            folded.Add(norm.Name);
        }

        GraphEdit.RemoveUnreadAliases(graph);
        GraphEdit.RemoveUnusedInitializers(graph);
        return folded;

        float[] Floats(NodeProto node, int input) => TensorData.ToFloats(initializers[node.Input[input]]);
    }

    /// <summary>True when <paramref name="initializers"/> hold <paramref name="name"/> as a float tensor.</summary>
    internal static bool IsFloatConstant(Dictionary<string, TensorProto> initializers, string name) =>
        initializers.TryGetValue(name, out var tensor) && tensor.DataType == (int)DataType.Float;
}
