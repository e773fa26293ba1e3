using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Quantization;

/// <summary>One weight stored as 4-bit blocks.</summary>
/// <param name="Nodes">The layers reading it (several when the weight is shared).</param>
/// <param name="Rows">K: inputs per output column.</param>
/// <param name="Columns">N: output columns.</param>
/// <param name="Bytes">Its bytes in the model: codes, scales and zero points.</param>
/// <param name="FloatBytes">Its bytes as float32.</param>
public sealed record Int4Weight(IReadOnlyList<string> Nodes, int Rows, int Columns, long Bytes, long FloatBytes);

/// <summary>What int4 quantization did to a model.</summary>
/// <param name="QuantizedNodes">The MatMul and Gemm nodes now MatMulNBits, and the embedding Gathers now reading an int8 table.</param>
/// <param name="SkippedNodes">MatMul, Gemm, Conv and embedding Gather nodes left in float, each with the reason.</param>
/// <param name="Weights">Each 4-bit weight with its size.</param>
public sealed record Int4QuantizationReport(IReadOnlyList<string> QuantizedNodes, IReadOnlyList<string> SkippedNodes, IReadOnlyList<Int4Weight> Weights);

/// <summary>
/// Weight-only 4-bit quantization with ONNX Runtime's com.microsoft MatMulNBits: every MatMul and Gemm whose weight
/// is a constant 2-D float tensor (also through Identity aliases, and a tied output head that reads an embedding
/// table through Transpose) becomes one MatMulNBits node of the same name with the weight in 4-bit blocks along K
/// (<see cref="Int4Blocks"/>). Activations stay float: the node is written with accuracy_level 1 (float32), so ONNX
/// Runtime dequantizes the blocks and multiplies in float32 on every CPU; unlike the int8 kernels there are no
/// integer pair sums that CPUs without VNNI could saturate, and the results differ between CPUs only by float
/// rounding order. (accuracy_level 4 would let ONNX Runtime quantize the activations to int8 per block, which is
/// faster and CPU-dependent.) Embedding lookups get an int8 table as in the int8 modes
/// (<see cref="EmbeddingQuantizer"/>): MatMulNBits has no Gather. A table that a tied head also reads is quantized for
/// both when both are quantized, the head's copy in 4 bits and the lookup's in int8, so no float copy is left; with
/// the head left float the lookup stays float too (the float table is kept anyway, and an int8 copy beside it would
/// make the file larger). Convolutions stay float.
/// </summary>
public static class Int4Quantizer
{
    /// <summary>The operator domain of MatMulNBits.</summary>
    public const string Domain = "com.microsoft";

    /// <summary>MatMulNBits' accuracy_level for float32 compute (input A is never quantized or downcast).</summary>
    public const int AccuracyLevelFloat32 = 1;

    /// <summary>Returns a quantized copy of <paramref name="source"/>; the input is not changed.</summary>
    /// <param name="source">The float model.</param>
    /// <param name="blockSize">Inputs per 4-bit block, one of <see cref="Int4Blocks.SupportedBlockSizes"/>.</param>
    /// <param name="symmetric">Symmetric blocks (zero point 8, none stored) or asymmetric blocks (a packed 4-bit zero point per block).</param>
    /// <param name="include">Which MatMul, Gemm and embedding Gather nodes to quantize (null: all); the others are reported as excluded.</param>
    /// <param name="perChannelEmbeddings">One int8 scale per embedding column instead of one per table (needs opset 13; per table below it).</param>
    public static (ModelProto Model, Int4QuantizationReport Report) Quantize(ModelProto source, int blockSize, bool symmetric, Func<NodeProto, bool>? include = null, bool perChannelEmbeddings = false)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (!Int4Blocks.SupportedBlockSizes.Contains(blockSize))
        {
            throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, $"MatMulNBits block sizes are {string.Join(", ", Int4Blocks.SupportedBlockSizes)}.");
        }

        var model = source.Clone();
        var graph = model.Graph;
        var aliases = GraphEdit.ConstantAliases(graph);
        var initializers = GraphEdit.Constants(graph, aliases);
        var producers = GraphEdit.Producers(graph);
        var names = new UniqueNames(graph);
        var quantized = new HashSet<string>(StringComparer.Ordinal);
        var skipped = new List<string>();
        // One 4-bit copy per float weight and orientation, however many layers read it; alpha gets its own scales.
        var shared = new Dictionary<(string Source, bool Transposed), (string Weight, string Scales, string? ZeroPoints, Int4Blocks Blocks, List<string> Nodes)>();
        var nodes = new List<NodeProto>();
        foreach (var node in graph.Node)
        {
            if (node.OpType is not ("MatMul" or "Gemm") || !GraphEdit.IsDefaultDomain(node))
            {
                if (node.OpType == "Conv" && GraphEdit.IsDefaultDomain(node))
                {
                    skipped.Add($"{node.Name} (Conv): int4 mode leaves convolutions in float (MatMulNBits covers matrix products only)");
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

            var plan = Plan(node, initializers, aliases, producers, out var reason);
            if (plan is null)
            {
                skipped.Add($"{node.Name} ({node.OpType}): {reason}");
                nodes.Add(node);
                continue;
            }

            var p = plan.Value;
            var prefix = names.Make(string.IsNullOrEmpty(node.Name) ? node.OpType : node.Name, ".weight_int4", ".weight_scales", ".weight_zero_points", ".weight_scales_alpha", ".bias");
            var key = (p.Source, p.Transposed);
            if (!shared.TryGetValue(key, out var int4))
            {
                var blocks = Int4Blocks.Quantize(p.Weight(), p.Columns, p.Rows, blockSize, symmetric);
                int4 = ($"{prefix}.weight_int4", $"{prefix}.weight_scales", symmetric ? null : $"{prefix}.weight_zero_points", blocks, []);
                graph.Initializer.Add(TensorData.FromUInt8s(int4.Weight, blocks.Packed, [blocks.Columns, blocks.BlocksPerColumn, blocks.BlobSize]));
                graph.Initializer.Add(TensorData.FromFloats(int4.Scales, blocks.Scales, [blocks.Columns, blocks.BlocksPerColumn]));
                if (int4.ZeroPoints is not null)
                {
                    graph.Initializer.Add(TensorData.FromUInt8s(int4.ZeroPoints, blocks.ZeroPoints!, [blocks.Columns, (blocks.BlocksPerColumn + 1) / 2]));
                }

                shared[key] = int4;
            }

            int4.Nodes.Add(node.Name);
            var scales = int4.Scales;
            if (p.Alpha != 1f)
            {
                // Gemm's alpha folds into this layer's own scales: alpha x A x dequant(B) = A x dequant(B, alpha x scales).
                scales = $"{prefix}.weight_scales_alpha";
                graph.Initializer.Add(TensorData.FromFloats(scales, int4.Blocks.WithScalesTimes(p.Alpha).Scales, [p.Columns, int4.Blocks.BlocksPerColumn]));
            }

            string[] inputs = [node.Input[0], int4.Weight, scales, int4.ZeroPoints ?? string.Empty];
            if (p.Bias is { } bias)
            {
                graph.Initializer.Add(TensorData.FromFloats($"{prefix}.bias", bias, [p.Columns]));
                // Inputs 4 (g_idx, deprecated) stays empty; 5 is the bias, added to the product.
                inputs = [.. inputs, string.Empty, $"{prefix}.bias"];
            }

            var replacement = GraphEdit.Node("MatMulNBits", node.Name, inputs, [node.Output[0]],
                Attr.Int("K", p.Rows), Attr.Int("N", p.Columns), Attr.Int("bits", 4), Attr.Int("block_size", blockSize), Attr.Int("accuracy_level", AccuracyLevelFloat32));
            replacement.Domain = Domain;
            nodes.Add(replacement);
            quantized.Add(node.Name);
        }

        graph.Node.Clear();
        graph.Node.AddRange(nodes);
        if (quantized.Count > 0 && !model.OpsetImport.Any(o => o.Domain == Domain))
        {
            model.OpsetImport.Add(new OperatorSetIdProto { Domain = Domain, Version = 1 });
        }

        // A tied head's Transpose of the table is unread now; with it gone the lookup may be the table's only reader.
        TiedHead.RemoveUnreadTransposes(graph);
        GraphEdit.RemoveUnreadAliases(graph);
        var lookups = QuantizeLookups(model, names, include, perChannelEmbeddings, skipped);
        GraphEdit.RemoveUnreadAliases(graph);
        GraphEdit.RemoveUnusedInitializers(graph);

        // Graph order, as the int8 quantizers report.
        var order = source.Graph.Node.Select(n => n.Name).Where(n => quantized.Contains(n) || lookups.Contains(n)).ToList();
        var weights = shared.Values.Select(w => new Int4Weight(w.Nodes, w.Blocks.Rows, w.Blocks.Columns, w.Blocks.Bytes, (long)w.Blocks.Rows * w.Blocks.Columns * sizeof(float))).ToList();
        return (model, new Int4QuantizationReport(order, skipped, weights));
    }

    /// <summary>The layer's weight as [N, K] (one row per output column) and its bias, or null with a reason.</summary>
    private readonly record struct WeightPlan(string Source, bool Transposed, TensorProto Tensor, int Rows, int Columns, float[]? Bias, float Alpha)
    {
        /// <summary>[N, K] row-major: the stored tensor itself when it already is (Gemm transB, a tied head's table), else transposed.</summary>
        public float[] Weight()
        {
            var values = TensorData.ToFloats(Tensor);
            return Transposed ? Transpose(values, Rows, Columns) : values;
        }
    }

    private static WeightPlan? Plan(NodeProto node, Dictionary<string, TensorProto> initializers, Dictionary<string, string> aliases, Dictionary<string, NodeProto> producers, out string reason)
    {
        reason = string.Empty;
        if (node.Input.Count < 2)
        {
            reason = "the weight is not a constant";
            return null;
        }

        // A tied output head: MatMul(x, Transpose(table)). The table's rows are already the head's output columns.
        var weightName = node.Input[1];
        var tiedHead = false;
        if (node.OpType == "MatMul" && TiedHead.Table(weightName, producers, initializers) is { } table)
        {
            weightName = table;
            tiedHead = true;
        }

        if (!initializers.TryGetValue(weightName, out var weight))
        {
            reason = "the weight is not a constant";
            return null;
        }

        if (weight.DataType != (int)TensorProto.Types.DataType.Float || weight.Dims.Count != 2)
        {
            reason = "the weight is not a 2-D float tensor";
            return null;
        }

        var source = aliases.GetValueOrDefault(weightName, weightName);
        var (first, second) = ((int)weight.Dims[0], (int)weight.Dims[1]);
        if (node.OpType == "MatMul")
        {
            // MatMul's weight is [K, N]; the tied head's table is [N, K].
            return tiedHead
                ? new WeightPlan(source, false, weight, second, first, null, 1f)
                : new WeightPlan(source, true, weight, first, second, null, 1f);
        }

        var attributes = node.Attribute.ToDictionary(a => a.Name, StringComparer.Ordinal);
        if (attributes.TryGetValue("transA", out var transA) && transA.I != 0)
        {
            // MatMulNBits has no transposed A; a Transpose in front would be exact but is not worth a special case.
            reason = "transA is set";
            return null;
        }

        var transB = attributes.TryGetValue("transB", out var t) && t.I != 0;
        var (rows, columns) = transB ? (second, first) : (first, second);
        var alpha = attributes.TryGetValue("alpha", out var a) ? a.F : 1f;
        var beta = attributes.TryGetValue("beta", out var b) ? b.F : 1f;
        float[]? bias = null;
        if (node.Input.Count > 2 && node.Input[2].Length > 0)
        {
            if (!initializers.TryGetValue(node.Input[2], out var c) || c.DataType != (int)TensorProto.Types.DataType.Float)
            {
                reason = "the bias is not a float constant";
                return null;
            }

            var values = TensorData.ToFloats(c);
            if (values.Length == 1)
            {
                values = [.. Enumerable.Repeat(values[0], columns)];
            }
            else if (values.Length != columns)
            {
                reason = "the bias does not broadcast per output column";
                return null;
            }

            bias = [.. values.Select(v => v * beta)];
        }

        // Gemm's A is 2-D by the operator's definition, so MatMulNBits (which also takes higher ranks) is exact.
        return new WeightPlan(source, !transB, weight, rows, columns, bias, alpha);
    }

    /// <summary>Int8 tables for the embedding lookups, as the int8 modes make them; returns the lookups quantized.</summary>
    private static HashSet<string> QuantizeLookups(ModelProto model, UniqueNames names, Func<NodeProto, bool>? include, bool perChannel, List<string> skipped)
    {
        var graph = model.Graph;
        var aliases = GraphEdit.ConstantAliases(graph);
        var initializers = GraphEdit.Constants(graph, aliases);
        // Per-axis DequantizeLinear (a per-column scale) needs opset 13.
        var perColumn = perChannel && model.OpsetImport.FirstOrDefault(o => OnnxVersions.IsDefaultDomain(o.Domain))?.Version >= 13;
        var quantized = new HashSet<string>(StringComparer.Ordinal);
        var nodes = new List<NodeProto>();
        foreach (var node in graph.Node)
        {
            nodes.Add(node);
            if (!EmbeddingQuantizer.IsLookup(node, initializers))
            {
                continue;
            }

            if (include is not null && !include(node))
            {
                skipped.Add($"{node.Name} ({node.OpType}): excluded");
            }
            else if (EmbeddingQuantizer.WhyNot(node, graph, initializers, aliases) is { } why)
            {
                skipped.Add($"{node.Name} ({node.OpType}): {why}");
            }
            else
            {
                nodes.Add(EmbeddingQuantizer.Quantize(graph, names, node, initializers[node.Input[0]], perColumn));
                quantized.Add(node.Name);
            }
        }

        graph.Node.Clear();
        graph.Node.AddRange(nodes);
        return quantized;
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
