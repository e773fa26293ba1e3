using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Quantization;

/// <summary>What dynamic quantization did to a model.</summary>
/// <param name="QuantizedNodes">Names of the MatMul, Gemm and embedding Gather nodes whose weights are now int8.</param>
/// <param name="SkippedNodes">MatMul, Gemm, Conv and embedding Gather nodes left in float, each with the reason.</param>
public sealed record DynamicQuantizationReport(IReadOnlyList<string> QuantizedNodes, IReadOnlyList<string> SkippedNodes);

/// <summary>
/// Dynamic int8 quantization of MatMul and Gemm weights with standard ONNX operators that ONNX Runtime's
/// CPU provider implements: the activation goes through DynamicQuantizeLinear (uint8, scale and zero point
/// computed per batch at run time), MatMulInteger multiplies it with the int8 weight, and the int32 result
/// is scaled back to float by x_scale * w_scale. ONNX Runtime fuses this chain into one kernel.
/// Weights are symmetric (zero point 0), per tensor or per output column, and for <see cref="Int8Target.Any"/>
/// scaled so that no CPU's int16 pair sums can saturate (<see cref="SaturationCheck"/>). A weight that reaches
/// its layers through Identity nodes (PyTorch's shared and tied weights) is followed to its initializer and
/// quantized once for all of them. Embedding lookups (a Gather from a
/// constant table) get an int8 table, see <see cref="EmbeddingQuantizer"/>; their token ids stay as they are. A
/// decoder's tied output head, MatMul(x, Transpose(table)), gets its own int8 copy of the transposed table, and its
/// lookup then an int8 table as well (<see cref="TiedHead"/>), so neither keeps the float table.
/// Convolutions are left in float: ONNX Runtime's CPU provider lacks ConvInteger for most type pairs, and a
/// dynamically quantized convolution would re-quantize its whole input per call; static QDQ
/// (<see cref="StaticQuantizer"/>) quantizes them.
/// </summary>
public static class DynamicQuantizer
{
    /// <summary>Returns a quantized copy of <paramref name="source"/>; the input is not changed.</summary>
    /// <param name="source">The float model.</param>
    /// <param name="perChannel">One weight scale per output column instead of one per tensor.</param>
    /// <param name="include">Which MatMul, Gemm and embedding Gather nodes to quantize (null: all); the others are reported as excluded.</param>
    /// <param name="target">The CPUs the model must be exact on: <see cref="Int8Target.Any"/> bounds the weights' pair sums, <see cref="Int8Target.Vnni"/> uses the full int8 range.</param>
    /// <param name="activationScale">One activation scale and zero point per run (ONNX Runtime's fused DynamicQuantizeLinear) or one per row (token): see <see cref="ActivationScale"/>.</param>
    public static (ModelProto Model, DynamicQuantizationReport Report) Quantize(ModelProto source, bool perChannel, Func<NodeProto, bool>? include = null, Int8Target target = Int8Target.Any, ActivationScale activationScale = ActivationScale.Tensor)
    {
        ArgumentNullException.ThrowIfNull(source);
        var model = source.Clone();
        var graph = model.Graph;
        var aliases = GraphEdit.ConstantAliases(graph);
        var initializers = GraphEdit.Constants(graph, aliases);
        // One int8 copy per float weight (and layout), however many layers read it.
        var shared = new Dictionary<(string Source, bool Transposed), (string Weight, string Scale, string ZeroPoint, float[] Scales)>();
        var biases = new Dictionary<(string Source, float Beta), string>();
        var quantized = new List<string>();
        var skipped = new List<string>();
        var nodes = new List<NodeProto>();
        var quantizedActivations = new Dictionary<string, (string Q, string Scale, string ZeroPoint)>(StringComparer.Ordinal);
        var opset = source.OpsetImport.FirstOrDefault(o => OnnxVersions.IsDefaultDomain(o.Domain))?.Version ?? OnnxVersions.DefaultOpset;
        var columnSums = new Dictionary<string, string>(StringComparer.Ordinal);
        var names = new UniqueNames(graph);
        var producers = GraphEdit.Producers(graph);
        // Lookups left float for a reason a quantized tied head may remove (the head's Transpose also read the table).
        var lookupsLeftFloat = new List<(NodeProto Lookup, string Skipped)>();
        var tiedHeads = 0;

        // Per-axis DequantizeLinear (a per-column embedding scale) needs opset 13.
        var perColumnLookups = perChannel && source.OpsetImport.FirstOrDefault(o => OnnxVersions.IsDefaultDomain(o.Domain))?.Version >= 13;
        foreach (var node in graph.Node)
        {
            if (EmbeddingQuantizer.IsLookup(node, initializers))
            {
                nodes.Add(node);
                if (include is not null && !include(node))
                {
                    skipped.Add($"{node.Name} ({node.OpType}): excluded");
                }
                else if (EmbeddingQuantizer.WhyNot(node, graph, initializers, aliases) is { } why)
                {
                    skipped.Add($"{node.Name} ({node.OpType}): {why}");
                    lookupsLeftFloat.Add((node, skipped[^1]));
                }
                else
                {
                    nodes.Add(EmbeddingQuantizer.Quantize(graph, names, node, initializers[node.Input[0]], perColumnLookups));
                    quantized.Add(node.Name);
                }

                continue;
            }

            if (node.OpType is not ("MatMul" or "Gemm") || !GraphEdit.IsDefaultDomain(node))
            {
                if (node.OpType == "Conv" && GraphEdit.IsDefaultDomain(node))
                {
                    skipped.Add($"{node.Name} (Conv): dynamic mode leaves convolutions in float (static mode quantizes them)");
                }

                nodes.Add(node);
                continue;
            }

            if (include is not null && !include(node))
            {
                skipped.Add($"{node.Name} ({node.OpType}): excluded");
                nodes.Add(node);
                continue;
            }

            var plan = Plan(node, initializers, producers, out var reason);
            if (plan is null)
            {
                skipped.Add($"{node.Name} ({node.OpType}): {reason}");
                nodes.Add(node);
                continue;
            }

            var prefix = names.Make(
                string.IsNullOrEmpty(node.Name) ? node.OpType : node.Name,
                ".weight_int8", ".weight_scale", ".weight_scale_alpha", ".weight_zero_point", ".int32", ".float", ".scale", ".scaled", ".bias",
                ".MatMulInteger", ".Cast", ".ScaleProduct", ".Rescale", ".AddBias");
            var (k, n) = (plan.Value.Rows, plan.Value.Columns);
            var key = (aliases.GetValueOrDefault(node.Input[1], node.Input[1]), plan.Value.Transposed);
            if (!shared.TryGetValue(key, out var int8))
            {
                var (weights, scales) = QuantizeWeights(plan.Value.Weight, k, n, perChannel, 1f, target);
                int8 = ($"{prefix}.weight_int8", $"{prefix}.weight_scale", $"{prefix}.weight_zero_point", scales);
                graph.Initializer.Add(TensorData.FromInt8s(int8.Weight, weights, [k, n]));
                graph.Initializer.Add(TensorData.FromFloats(int8.Scale, scales, perChannel ? [n] : []));
                graph.Initializer.Add(TensorData.FromInt8s(int8.ZeroPoint, [0], []));
                shared[key] = int8;
            }

            var (weightName, scaleName, zeroPointName) = (int8.Weight, int8.Scale, int8.ZeroPoint);
            if (plan.Value.Alpha != 1f)
            {
                // Gemm's alpha folds into this layer's own scales: alpha * (x_s * w_s) * (x_q . w_q). The shared
                // scales stay for the other readers, or go with the unused-initializer sweep.
                scaleName = $"{prefix}.weight_scale_alpha";
                graph.Initializer.Add(TensorData.FromFloats(scaleName, [.. int8.Scales.Select(s => s * plan.Value.Alpha)], perChannel ? [n] : []));
            }

            var input = node.Input[0];
            if (!quantizedActivations.TryGetValue(input, out var activation))
            {
                activation = activationScale == ActivationScale.Row
                    ? RowQuantizedActivation.Add(graph, nodes, names, input, opset)
                    : TensorQuantizedActivation(nodes, names, input);
                quantizedActivations[input] = activation;
            }

            var output = node.Output[0];
            var scaledOutput = plan.Value.Bias is null ? output : $"{prefix}.scaled";
            var toFloat = new AttributeProto { Name = "to", Type = AttributeProto.Types.AttributeType.Int, I = (long)TensorProto.Types.DataType.Float };
            if (activationScale == ActivationScale.Row)
            {
                // Per-row zero points cannot be MatMulInteger's a_zero_point on every provider, so the product runs
                // without one and the zero point comes off afterwards, exactly: sum_k (q - z) w = sum_k q w - z sum_k w.
                if (!columnSums.TryGetValue(weightName, out var sums))
                {
                    sums = $"{weightName}.column_sums";
                    graph.Initializer.Add(TensorData.FromFloats(sums, ColumnSums(graph.Initializer.First(i => i.Name == weightName), k, n), [n]));
                    columnSums[weightName] = sums;
                }

                nodes.Add(GraphEdit.Node("MatMulInteger", $"{prefix}.MatMulInteger", [activation.Q, weightName, string.Empty, zeroPointName], [$"{prefix}.int32"]));
                nodes.Add(GraphEdit.Node("Cast", $"{prefix}.Cast", [$"{prefix}.int32"], [$"{prefix}.float"], toFloat));
                nodes.Add(GraphEdit.Node("Mul", $"{prefix}.ZeroPointTerm", [activation.ZeroPoint, sums], [$"{prefix}.zero_point_term"]));
                nodes.Add(GraphEdit.Node("Sub", $"{prefix}.Centre", [$"{prefix}.float", $"{prefix}.zero_point_term"], [$"{prefix}.centred"]));
                nodes.Add(GraphEdit.Node("Mul", $"{prefix}.RowScale", [$"{prefix}.centred", activation.Scale], [$"{prefix}.row_scaled"]));
                nodes.Add(GraphEdit.Node("Mul", $"{prefix}.Rescale", [$"{prefix}.row_scaled", scaleName], [scaledOutput]));
            }
            else
            {
                nodes.Add(GraphEdit.Node("MatMulInteger", $"{prefix}.MatMulInteger", [activation.Q, weightName, activation.ZeroPoint, zeroPointName], [$"{prefix}.int32"]));
                nodes.Add(GraphEdit.Node("Cast", $"{prefix}.Cast", [$"{prefix}.int32"], [$"{prefix}.float"], toFloat));
                nodes.Add(GraphEdit.Node("Mul", $"{prefix}.ScaleProduct", [activation.Scale, scaleName], [$"{prefix}.scale"]));
                nodes.Add(GraphEdit.Node("Mul", $"{prefix}.Rescale", [$"{prefix}.float", $"{prefix}.scale"], [scaledOutput]));
            }
            if (plan.Value.Bias is { } bias)
            {
                // A Gemm's bias as the Add needs it (beta applied, one value per column): the initializer itself
                // when it already is that, else one copy per bias and beta, however many layers share it.
                var biasSource = aliases.GetValueOrDefault(node.Input[2], node.Input[2]);
                var biasKey = (biasSource, plan.Value.Beta);
                if (!biases.TryGetValue(biasKey, out var biasName))
                {
                    var asIs = plan.Value.Beta == 1f && TensorData.ElementCount(initializers[biasSource]) == n && initializers[biasSource].Dims.Count == 1;
                    biasName = asIs ? biasSource : $"{prefix}.bias";
                    if (!asIs)
                    {
                        graph.Initializer.Add(TensorData.FromFloats(biasName, bias, [n]));
                    }

                    biases[biasKey] = biasName;
                }

                nodes.Add(GraphEdit.Node("Add", $"{prefix}.AddBias", [scaledOutput, biasName], [output]));
            }

            quantized.Add(node.Name);
            tiedHeads += plan.Value.TiedHead ? 1 : 0;
        }

        graph.Node.Clear();
        graph.Node.AddRange(nodes);
        if (tiedHeads > 0)
        {
            QuantizeUntiedLookups(model, source.Graph, names, lookupsLeftFloat, perColumnLookups, quantized, skipped);
        }

        GraphEdit.RemoveUnreadAliases(graph);
        GraphEdit.RemoveUnusedInitializers(graph);
        return (model, new DynamicQuantizationReport(quantized, skipped));
    }

    /// <summary>The activation through ONNX Runtime's DynamicQuantizeLinear: one uint8 scale and zero point for the whole tensor.</summary>
    private static (string Q, string Scale, string ZeroPoint) TensorQuantizedActivation(List<NodeProto> nodes, UniqueNames names, string input)
    {
        var activationPrefix = names.Make($"{input}.quantized", string.Empty, ".scale", ".zero_point", ".DynamicQuantizeLinear");
        var activation = ($"{activationPrefix}", $"{activationPrefix}.scale", $"{activationPrefix}.zero_point");
        nodes.Add(GraphEdit.Node("DynamicQuantizeLinear", $"{activationPrefix}.DynamicQuantizeLinear", [input], [activation.Item1, activation.Item2, activation.Item3]));
        return activation;
    }

    /// <summary>Each output column's sum of the int8 weight codes (what a zero point of 1 adds to that column).</summary>
    private static float[] ColumnSums(TensorProto weight, int rows, int columns)
    {
        var codes = TensorData.ToInt8s(weight);
        var sums = new float[columns];
        for (var r = 0; r < rows; r++)
        {
            for (var c = 0; c < columns; c++)
            {
                sums[c] += codes[(r * columns) + c];
            }
        }

        return sums;
    }

    private readonly record struct WeightPlan(float[] Weight, int Rows, int Columns, bool Transposed, float[]? Bias, float Alpha, float Beta, bool TiedHead = false);

    /// <summary>
    /// After tied heads were quantized (each with its own int8 copy of the table), their Transposes are unread:
    /// removes them, and gives each lookup that was left float only because the head shared its table an int8
    /// table too, right after the Gather; the report then lists the layers in graph order.
    /// </summary>
    private static void QuantizeUntiedLookups(ModelProto model, GraphProto source, UniqueNames names, List<(NodeProto Lookup, string Skipped)> lookups, bool perColumn, List<string> quantized, List<string> skipped)
    {
        var graph = model.Graph;
        TiedHead.RemoveUnreadTransposes(graph);
        GraphEdit.RemoveUnreadAliases(graph);
        var aliases = GraphEdit.ConstantAliases(graph);
        var initializers = GraphEdit.Constants(graph, aliases);
        var order = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < source.Node.Count; i++)
        {
            order.TryAdd(source.Node[i].Name, i);
        }
        foreach (var (lookup, entry) in lookups.Where(l => EmbeddingQuantizer.WhyNot(l.Lookup, graph, initializers, aliases) is null))
        {
            var dequantize = EmbeddingQuantizer.Quantize(graph, names, lookup, initializers[lookup.Input[0]], perColumn);
            graph.Node.Insert(graph.Node.IndexOf(lookup) + 1, dequantize);
            skipped.Remove(entry);
            quantized.Add(lookup.Name);
        }

        quantized.Sort((a, b) => order.GetValueOrDefault(a, int.MaxValue).CompareTo(order.GetValueOrDefault(b, int.MaxValue)));
    }

    /// <summary>The weight as [K, N] row-major (transposed where Gemm says transB, or a tied head's table), or null with a reason.</summary>
    private static WeightPlan? Plan(NodeProto node, Dictionary<string, TensorProto> initializers, Dictionary<string, NodeProto> producers, out string reason)
    {
        reason = string.Empty;
        if (node.OpType == "MatMul" && node.Input.Count == 2 && TiedHead.Table(node.Input[1], producers, initializers) is { } table)
        {
            // MatMul(x, Transpose(table [N, K])): the head's own [K, N] int8 copy, read by MatMulInteger as any weight.
            var tableTensor = initializers[table];
            if (tableTensor.DataType != (int)TensorProto.Types.DataType.Float)
            {
                reason = "the weight is not a 2-D float tensor";
                return null;
            }

            var (vocabulary, width) = ((int)tableTensor.Dims[0], (int)tableTensor.Dims[1]);
            return new WeightPlan(Transpose(TensorData.ToFloats(tableTensor), vocabulary, width), width, vocabulary, true, null, 1f, 1f, TiedHead: true);
        }

        if (node.Input.Count < 2 || !initializers.TryGetValue(node.Input[1], out var weight))
        {
            reason = "the weight is not a constant";
            return null;
        }

        if (weight.DataType != (int)TensorProto.Types.DataType.Float || weight.Dims.Count != 2)
        {
            reason = "the weight is not a 2-D float tensor";
            return null;
        }

        var attributes = node.Attribute.ToDictionary(a => a.Name, StringComparer.Ordinal);
        var rows = (int)weight.Dims[0];
        var columns = (int)weight.Dims[1];
        var values = TensorData.ToFloats(weight);
        var alpha = 1f;
        var beta = 1f;
        var transposed = false;
        float[]? bias = null;
        if (node.OpType == "Gemm")
        {
            if (attributes.TryGetValue("transA", out var transA) && transA.I != 0)
            {
                reason = "transA is set";
                return null;
            }

            alpha = attributes.TryGetValue("alpha", out var a) ? a.F : 1f;
            beta = attributes.TryGetValue("beta", out var b) ? b.F : 1f;
            if (attributes.TryGetValue("transB", out var transB) && transB.I != 0)
            {
                values = Transpose(values, rows, columns);
                (rows, columns) = (columns, rows);
                transposed = true;
            }

            if (node.Input.Count > 2 && node.Input[2].Length > 0)
            {
                if (!initializers.TryGetValue(node.Input[2], out var c) || c.DataType != (int)TensorProto.Types.DataType.Float)
                {
                    reason = "the bias is not a float constant";
                    return null;
                }

                var biasValues = TensorData.ToFloats(c);
                if (biasValues.Length == 1)
                {
                    biasValues = Enumerable.Repeat(biasValues[0], columns).ToArray();
                }
                else if (biasValues.Length != columns)
                {
                    reason = "the bias does not broadcast per output column";
                    return null;
                }

                bias = [.. biasValues.Select(v => v * beta)];
            }
        }

        return new WeightPlan(values, rows, columns, transposed, bias, alpha, beta);
    }

    /// <summary>
    /// Symmetric int8 of a [K, N] weight: one scale per tensor or per output column (axis 1), alpha folded in;
    /// for <see cref="Int8Target.Any"/> each column's pair sums are bounded (MatMulInteger's output channels).
    /// </summary>
    internal static (sbyte[] Values, float[] Scales) QuantizeWeights(float[] weight, int rows, int columns, bool perChannel, float alpha = 1f, Int8Target target = Int8Target.Any)
    {
        var (values, scales) = QuantizationParameters.QuantizeWeight(weight, [rows, columns], perChannel ? 1 : null, target == Int8Target.Any ? 1 : null);

        // Gemm's alpha folds into the scales: alpha * (x_s * w_s) * (x_q . w_q).
        return (values, [.. scales.Select(s => s * alpha)]);
    }

    private static float[] Transpose(float[] values, int rows, int columns)
    {
        var result = new float[values.Length];
        for (var r = 0; r < rows; r++)
        {
            for (var c = 0; c < columns; c++)
            {
                result[(c * rows) + r] = values[(r * columns) + c];
            }
        }

        return result;
    }
}
