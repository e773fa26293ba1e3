using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using ModelCompression.Data;
using ModelCompression.Diagnostics;
using ModelCompression.Inference;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Evaluation;

/// <summary>
/// Estimates the floating-point operations one sample costs: 2 × multiply-adds of the ops that dominate a
/// network's cost. Counted (everything else, e.g. activations, pooling, normalization, bias adds and elementwise
/// ops, is not):
/// <list type="bullet">
/// <item>MatMul, and its quantized forms MatMulInteger, QLinearMatMul, MatMulIntegerToFloat, DynamicQuantizeMatMul:
/// 2 × elements(Y) × K, K the last axis of A (m×k times k×n is 2·m·k·n);</item>
/// <item>Gemm (and QGemm): 2 × M × N × K, K from A's shape and transA;</item>
/// <item>Conv, ConvInteger, QLinearConv: 2 × elements(Y) × Cin/group × kernel elements
/// (= 2 · Cout · Cin/group · kH · kW · Hout · Wout per image);</item>
/// <item>ConvTranspose: 2 × elements(X) × Cout/group × kernel elements.</item>
/// </list>
/// Quantized ops count as their float equivalents, so quantization leaves the estimate unchanged (it makes each
/// operation cheaper, not fewer). A transformer's attention products (Q·Kᵀ and the weighted sum of values) are
/// MatMuls between activations and count like any other, at the sequence length of the sample. Shapes are not
/// inferred from rules: the graph is run once in ONNX Runtime on one real sample (batch 1, every input the model
/// takes fed from the data) with every node output exposed, so every shape is the one the runtime really
/// computes. Ops inside subgraphs (If, Loop, Scan) are not counted.
/// </summary>
public static class FlopsEstimator
{
    /// <summary>
    /// FLOPs of the one sample in <paramref name="sample"/> (its tensors bound to the model's inputs by name, see
    /// <see cref="DataSchema"/>). Null when the graph cannot be probed (ONNX Runtime refuses the graph with its
    /// intermediate outputs exposed, or the model is over protobuf's 2 GB in memory).
    /// </summary>
    public static long? Estimate(ModelProto model, Dataset sample)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(sample);
        if (sample.Count != 1)
        {
            throw new ArgumentException($"The probe runs one sample, not {sample.Count}.", nameof(sample));
        }

        var shapes = Shapes(model, sample);
        if (shapes is null)
        {
            return null;
        }

        long total = 0;
        foreach (var node in model.Graph.Node)
        {
            total += NodeFlops(node, shapes);
        }

        return total;
    }

    /// <summary>The FLOPs of one node given the shapes of the tensors around it; 0 for ops not counted.</summary>
    internal static long NodeFlops(NodeProto node, IReadOnlyDictionary<string, long[]> shapes)
    {
        long[]? Shape(int input) => input < node.Input.Count && shapes.TryGetValue(node.Input[input], out var shape) ? shape : null;
        var output = node.Output.Count > 0 && shapes.TryGetValue(node.Output[0], out var y) ? y : null;
        switch (node.OpType)
        {
            case "MatMul" or "MatMulInteger" or "QLinearMatMul" or "MatMulIntegerToFloat" or "DynamicQuantizeMatMul":
                return Shape(0) is { Length: > 0 } a && output is not null ? 2 * Elements(output) * a[^1] : 0;
            case "Gemm" or "QGemm":
                var transposed = node.Attribute.FirstOrDefault(t => t.Name == "transA")?.I == 1;
                return Shape(0) is { Length: 2 } matrix && output is not null ? 2 * Elements(output) * (transposed ? matrix[0] : matrix[1]) : 0;
            case "Conv" or "ConvInteger" or "QLinearConv":
                var weight = Shape(node.OpType == "QLinearConv" ? 3 : 1);
                return weight is { Length: > 1 } && output is not null ? 2 * Elements(output) * (Elements(weight) / weight[0]) : 0;
            case "ConvTranspose":
                return Shape(0) is { } x && Shape(1) is { Length: > 1 } kernel ? 2 * Elements(x) * (Elements(kernel) / kernel[0]) : 0;
            default:
                return 0;
        }
    }

    private static long Elements(long[] shape) => shape.Aggregate(1L, (a, b) => checked(a * b));

    /// <summary>Shapes of the graph inputs, the initializers and every node output, from one real run.</summary>
    private static Dictionary<string, long[]>? Shapes(ModelProto model, Dataset sample)
    {
        // Protobuf serializes at most 2 GB; the tensors are nearly all of a model's bytes.
        if (model.Graph.Initializer.Sum(t => (long)t.CalculateSize()) > int.MaxValue - (1 << 20))
        {
            return null;
        }

        var shapes = new Dictionary<string, long[]>(StringComparer.Ordinal);
        foreach (var initializer in model.Graph.Initializer)
        {
            shapes[initializer.Name] = [.. initializer.Dims];
        }

        var initializers = shapes.Keys.ToHashSet(StringComparer.Ordinal);
        string[] values =
        [
            .. model.Graph.Input.Select(i => i.Name).Where(name => !initializers.Contains(name)),
            .. model.Graph.Node.SelectMany(n => n.Output).Where(name => name.Length > 0).Distinct(StringComparer.Ordinal),
        ];
        try
        {
            using var runner = OnnxRunner.WithIntermediateOutputs(model, "model with every value exposed (FLOPs probe)", values, threads: 1, GraphOptimizationLevel.ORT_DISABLE_ALL);
            runner.Run(sample, 1, values, (_, _, results) =>
            {
                for (var i = 0; i < values.Length; i++)
                {
                    if (results[i].OnnxType == OnnxValueType.ONNX_TYPE_TENSOR)
                    {
                        shapes[values[i]] = results[i].GetTensorTypeAndShape().Shape;
                    }
                }
            });
        }
        catch (Exception e) when (e is OnnxRuntimeException || (e is CompressionException c && c.Diagnostics.All(d => d.Code == DiagnosticCodes.Internal)))
        {
            return null;
        }

        return shapes;
    }
}
