using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using ModelCompression.Onnx;
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
/// operation cheaper, not fewer). Shapes are not inferred from rules: the graph is run once in ONNX Runtime on one
/// real sample (batch 1) with every node output exposed, so every shape is the one the runtime really computes.
/// Ops inside subgraphs (If, Loop, Scan) are not counted.
/// </summary>
public static class FlopsEstimator
{
    /// <summary>
    /// FLOPs of one sample: <paramref name="sample"/> fed to <paramref name="inputName"/> with shape
    /// <paramref name="inputShape"/> (batch 1 first). Null when the graph cannot be probed (ONNX Runtime refuses
    /// the graph with its intermediate outputs exposed, or the model is over protobuf's 2 GB in memory).
    /// </summary>
    public static long? Estimate(ModelProto model, string inputName, float[] sample, long[] inputShape)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(inputShape);
        if (inputShape.Length == 0 || inputShape[0] != 1)
        {
            throw new ArgumentException($"The probe runs one sample: the input shape must start with 1, not [{string.Join(", ", inputShape)}].", nameof(inputShape));
        }

        var shapes = Shapes(model, inputName, sample, inputShape);
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

    /// <summary>Shapes of the graph input, the initializers and every node output, from one real run.</summary>
    private static Dictionary<string, long[]>? Shapes(ModelProto model, string inputName, float[] sample, long[] inputShape)
    {
        var probe = model.Clone();
        var graph = probe.Graph;
        var exposed = graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var name in graph.Node.SelectMany(n => n.Output).Where(name => name.Length > 0))
        {
            if (exposed.Add(name))
            {
                // ONNX Runtime infers the type of a graph output that a node produces; the name is enough.
                graph.Output.Add(new ValueInfoProto { Name = name });
            }
        }

        // Protobuf serializes at most 2 GB; the tensors are nearly all of a model's bytes.
        if (graph.Initializer.Sum(t => (long)t.CalculateSize()) > int.MaxValue - (1 << 20))
        {
            return null;
        }

        var shapes = new Dictionary<string, long[]>(StringComparer.Ordinal);
        foreach (var initializer in graph.Initializer)
        {
            shapes[initializer.Name] = [.. initializer.Dims];
        }

        shapes[inputName] = inputShape;
        try
        {
            using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL, IntraOpNumThreads = 1 };
            using var session = new InferenceSession(probe.ToByteArray(), options);
            string[] outputs = [.. session.OutputMetadata.Keys];
            using var input = OrtValue.CreateTensorValueFromMemory(sample, inputShape);
            using var runOptions = new RunOptions();
            using var results = session.Run(runOptions, [inputName], [input], outputs);
            for (var i = 0; i < outputs.Length; i++)
            {
                if (results[i].OnnxType == OnnxValueType.ONNX_TYPE_TENSOR)
                {
                    shapes[outputs[i]] = results[i].GetTensorTypeAndShape().Shape;
                }
            }
        }
        catch (OnnxRuntimeException)
        {
            return null;
        }

        return shapes;
    }
}
