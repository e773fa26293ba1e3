using ModelCompression.Diagnostics;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Quantization;

/// <summary>
/// A float model made ready for static quantization: BatchNormalization folded into the preceding Conv
/// (an exact rewrite, so calibration sees the tensors the quantized model will have), every node named,
/// and the layers that can be quantized found.
/// </summary>
public sealed class StaticQuantizationPlan
{
    internal StaticQuantizationPlan(
        ModelProto model,
        QuantizationScheme activations,
        IReadOnlyList<string> candidates,
        IReadOnlyList<string> skipped,
        IReadOnlyList<string> foldedBatchNorms,
        IReadOnlyList<string> tensorsToCalibrate)
    {
        Model = model;
        Activations = activations;
        Candidates = candidates;
        Skipped = skipped;
        FoldedBatchNorms = foldedBatchNorms;
        TensorsToCalibrate = tensorsToCalibrate;
    }

    /// <summary>The prepared float model: computes what the input model computes.</summary>
    public ModelProto Model { get; }

    /// <summary>The activation scheme the plan was made for.</summary>
    public QuantizationScheme Activations { get; }

    /// <summary>The Conv, MatMul, Gemm and embedding Gather nodes that can be quantized and are not excluded, in graph order.</summary>
    public IReadOnlyList<string> Candidates { get; }

    /// <summary>Conv, MatMul, Gemm and embedding Gather nodes left in float, each as "name (op): reason".</summary>
    public IReadOnlyList<string> Skipped { get; }

    /// <summary>The BatchNormalization nodes folded into their Conv.</summary>
    public IReadOnlyList<string> FoldedBatchNorms { get; }

    /// <summary>The activations whose ranges quantizing any subset of <see cref="Candidates"/> needs.</summary>
    public IReadOnlyList<string> TensorsToCalibrate { get; }
}

/// <summary>What static quantization did.</summary>
/// <param name="QuantizedNodes">The layers now taking int8 weights and activations.</param>
/// <param name="QuantizedTensors">The activations that got a QuantizeLinear/DequantizeLinear pair.</param>
public sealed record StaticQuantizationReport(IReadOnlyList<string> QuantizedNodes, IReadOnlyList<string> QuantizedTensors);

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
            else if (Layer.Analyze(node, graph, initializers) is not { } layer)
            {
                skipped.Add($"{node.Name} ({node.OpType}): {Layer.WhyNot(node, initializers)}");
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
        var layers = graph.Node.Where(n => chosen.Contains(n.Name) && n.OpType != "Gather").Select(n => Layer.Analyze(n, graph, initializers)!).ToList();
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
        var weightNodes = layers.ToDictionary(l => l.Node.Name, l => QuantizeWeights(weights, l, ParametersOf(l.Input).Scale), StringComparer.Ordinal);
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
    private static string? OutputToQuantize(Layer layer, GraphProto graph, QuantizationScheme activations)
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
    /// Replaces the layer's float weight (and bias) by integer initializers behind DequantizeLinear nodes. The int8
    /// weight is shared with other layers that read the same float weight; the bias is the layer's own (its scale
    /// depends on the layer's input scale).
    /// </summary>
    private static List<NodeProto> QuantizeWeights(SharedWeights weights, Layer layer, float inputScale)
    {
        var node = layer.Node;
        var (graph, names, perChannel) = (weights.Graph, weights.Names, weights.PerChannel);
        var prefix = names.Make(
            node.Name,
            ".weight_dequantized", ".weight_DequantizeLinear",
            ".bias_int32", ".bias_scale", ".bias_dequantized", ".bias_DequantizeLinear");
        var int8 = weights.Get(node, layer.ChannelAxis, layer.Alpha);
        if (layer.Alpha != 1f)
        {
            GraphEdit.SetFloat(node, "alpha", 1f);
        }

        long[] scaleDims = perChannel ? [int8.Scales.Length] : [];
        AttributeProto[] axisAttribute = perChannel ? [Attr.Int("axis", layer.ChannelAxis)] : [];
        var added = new List<NodeProto>
        {
            GraphEdit.Node(
                "DequantizeLinear",
                $"{prefix}.weight_DequantizeLinear",
                [int8.Weight, int8.Scale, int8.ZeroPoint],
                [$"{prefix}.weight_dequantized"],
                axisAttribute),
        };
        node.Input[1] = $"{prefix}.weight_dequantized";

        if (layer.Bias is var (biasNode, biasInput))
        {
            var bias = TensorData.ToFloats(weights.Constants[biasNode.Input[biasInput]]);
            if (layer.Beta != 1f)
            {
                bias = [.. bias.Select(v => v * layer.Beta)];
            }

            var (biasValues, biasScales) = QuantizationParameters.QuantizeBias(bias, inputScale, int8.Scales);
            graph.Initializer.Add(TensorData.FromInt32s($"{prefix}.bias_int32", biasValues, [biasValues.Length]));
            graph.Initializer.Add(TensorData.FromFloats($"{prefix}.bias_scale", biasScales, scaleDims));
            added.Add(GraphEdit.Node(
                "DequantizeLinear",
                $"{prefix}.bias_DequantizeLinear",
                [$"{prefix}.bias_int32", $"{prefix}.bias_scale"],
                [$"{prefix}.bias_dequantized"],
                perChannel ? [Attr.Int("axis", 0)] : []));
            biasNode.Input[biasInput] = $"{prefix}.bias_dequantized";
            if (node.OpType == "Gemm")
            {
                // QGemm takes beta = 1 only; the factor is in the int32 bias now.
                GraphEdit.SetFloat(node, "beta", 1f);
            }
        }

        return added;
    }

    /// <summary>
    /// The int8 copies of the float weights, one per float weight (followed through Identity aliases), channel
    /// axis and Gemm alpha, named after the first layer that needs it.
    /// </summary>
    private sealed class SharedWeights(
        GraphProto graph, UniqueNames names, Dictionary<string, TensorProto> constants, IReadOnlyDictionary<string, string> aliases, bool perChannel, Int8Target target)
    {
        private readonly Dictionary<(string Source, int Axis, float Alpha), (string Weight, string Scale, string ZeroPoint, float[] Scales)> _made = [];

        public GraphProto Graph => graph;

        public UniqueNames Names => names;

        public bool PerChannel => perChannel;

        public Dictionary<string, TensorProto> Constants => constants;

        public (string Weight, string Scale, string ZeroPoint, float[] Scales) Get(NodeProto node, int channelAxis, float alpha)
        {
            var key = (aliases.GetValueOrDefault(node.Input[1], node.Input[1]), channelAxis, alpha);
            if (_made.TryGetValue(key, out var made))
            {
                return made;
            }

            var weight = constants[node.Input[1]];
            var values = TensorData.ToFloats(weight);
            if (alpha != 1f)
            {
                values = [.. values.Select(v => v * alpha)];
            }

            var (quantized, scales) = QuantizationParameters.QuantizeWeight(values, weight.Dims, perChannel ? channelAxis : null, target == Int8Target.Any ? channelAxis : null);
            var prefix = names.Make(node.Name, ".weight_int8", ".weight_scale", ".weight_zero_point");
            long[] scaleDims = perChannel ? [scales.Length] : [];
            graph.Initializer.Add(TensorData.FromInt8s($"{prefix}.weight_int8", quantized, [.. weight.Dims]));
            graph.Initializer.Add(TensorData.FromFloats($"{prefix}.weight_scale", scales, scaleDims));
            graph.Initializer.Add(TensorData.FromInt8s($"{prefix}.weight_zero_point", new sbyte[scales.Length], scaleDims));
            made = ($"{prefix}.weight_int8", $"{prefix}.weight_scale", $"{prefix}.weight_zero_point", scales);
            _made[key] = made;
            return made;
        }
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

    private static bool IsFloatConstant(Dictionary<string, TensorProto> initializers, string name) =>
        initializers.TryGetValue(name, out var tensor) && tensor.DataType == (int)DataType.Float;

    /// <summary>
    /// A quantizable Conv, MatMul or Gemm: where its activation and weight are, how the weight is laid out, and
    /// where its bias is: its own third input, or for MatMul the constant of an Add that alone reads its output.
    /// That Add's constant is quantized to int32 like a Gemm bias because ONNX Runtime fuses MatMul + Add into
    /// a Gemm before its QDQ fusions run, and a Gemm with a float bias is not fused into QGemm.
    /// </summary>
    private sealed record Layer(NodeProto Node, string Input, int ChannelAxis, float Alpha, float Beta, (NodeProto Node, int Input)? Bias)
    {
        public static Layer? Analyze(NodeProto node, GraphProto graph, Dictionary<string, TensorProto> initializers) =>
            WhyNot(node, initializers) is null ? Describe(node, graph, initializers) : null;

        /// <summary>Why the node cannot be quantized, or null when it can.</summary>
        public static string? WhyNot(NodeProto node, Dictionary<string, TensorProto> initializers)
        {
            if (node.Input.Count < 2 || !initializers.TryGetValue(node.Input[1], out var weight))
            {
                return "the weight is not a constant";
            }

            if (weight.DataType != (int)DataType.Float)
            {
                return "the weight is not float";
            }

            if (initializers.ContainsKey(node.Input[0]))
            {
                return "the input is a constant too";
            }

            var bias = node.Input.Count > 2 && node.Input[2].Length > 0 ? node.Input[2] : null;
            switch (node.OpType)
            {
                case "Conv":
                    if (weight.Dims.Count < 3)
                    {
                        return "the weight is not a convolution kernel";
                    }

                    return bias is not null && !IsBias(initializers, bias, weight.Dims[0]) ? "the bias is not a float constant with one value per output channel" : null;
                case "MatMul":
                    return weight.Dims.Count != 2 ? "the weight is not a matrix" : null;
                default:
                    if (GraphEdit.Attribute(node, "transA")?.I is 1)
                    {
                        return "transA is set";
                    }

                    if (weight.Dims.Count != 2)
                    {
                        return "the weight is not a matrix";
                    }

                    return bias is not null && !IsBias(initializers, bias, OutputColumns(node, weight)) ? "the bias is not a float constant with one value per output column" : null;
            }
        }

        private static bool IsBias(Dictionary<string, TensorProto> initializers, string name, long channels) =>
            IsFloatConstant(initializers, name) && TensorData.ElementCount(initializers[name]) == channels;

        private static long OutputColumns(NodeProto node, TensorProto weight) =>
            GraphEdit.Attribute(node, "transB")?.I is 1 ? weight.Dims[0] : weight.Dims[1];

        private static Layer Describe(NodeProto node, GraphProto graph, Dictionary<string, TensorProto> initializers)
        {
            var weight = initializers[node.Input[1]];
            // The output channels: Conv's first axis; a [K, N] matrix's columns, or the rows of Gemm's transposed B.
            var axis = node.OpType switch
            {
                "Conv" => 0,
                "Gemm" when GraphEdit.Attribute(node, "transB")?.I is 1 => 0,
                _ => 1,
            };
            var alpha = node.OpType == "Gemm" ? GraphEdit.Attribute(node, "alpha")?.F ?? 1f : 1f;
            var beta = node.OpType == "Gemm" ? GraphEdit.Attribute(node, "beta")?.F ?? 1f : 1f;
            (NodeProto, int)? bias = node.Input.Count > 2 && node.Input[2].Length > 0 ? (node, 2) : null;
            if (node.OpType == "MatMul")
            {
                var output = node.Output[0];
                var readers = graph.Node.Where(n => n.Input.Contains(output)).ToList();
                if (readers is [{ OpType: "Add" } add] && GraphEdit.IsDefaultDomain(add) && add.Input.Count == 2
                    && !graph.Output.Any(o => o.Name == output) && add.Input.IndexOf(output) is var own and >= 0
                    && initializers.TryGetValue(add.Input[1 - own], out var constant) && constant.DataType == (int)DataType.Float
                    && constant.Dims.Count == 1 && constant.Dims[0] == weight.Dims[1])
                {
                    bias = (add, 1 - own);
                }
            }

            return new Layer(node, node.Input[0], axis, alpha, beta, bias);
        }
    }
}
