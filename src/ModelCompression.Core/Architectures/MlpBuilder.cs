using System.Globalization;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Architectures;

/// <summary>
/// The built-in MLP student as an ONNX graph: input [batch, inputs] -> (Gemm -> activation) per hidden layer
/// -> Gemm -> logits [batch, classes]. Weights are stored [out, in] with transB = 1, as PyTorch exports
/// nn.Linear, and named like PyTorch's (<c>fc1.weight</c>, <c>fc1.bias</c>).
/// </summary>
public static class MlpBuilder
{
    /// <summary>The graph's input name.</summary>
    public const string InputName = "input";

    /// <summary>The graph's output name.</summary>
    public const string OutputName = "logits";

    /// <summary>Builds the graph with seeded initial weights.</summary>
    public static ModelProto Build(int inputs, IReadOnlyList<int> hidden, int classes, Activation activation, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(inputs, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(classes, 1);
        var random = new Random(seed);
        var builder = new GraphBuilder("mlp")
            .Producer("ModelCompression", CompressionVersion())
            .Input(InputName, DataType.Float, "batch", inputs)
            .Output(OutputName, DataType.Float, "batch", classes);
        var current = InputName;
        var width = inputs;
        int[] widths = [.. hidden, classes];
        for (var layer = 0; layer < widths.Length; layer++)
        {
            var name = string.Create(CultureInfo.InvariantCulture, $"fc{layer + 1}");
            var outputs = widths[layer];
            ArgumentOutOfRangeException.ThrowIfLessThan(outputs, 1, nameof(hidden));
            builder.Initializer($"{name}.weight", Uniform(random, outputs * width, width), [outputs, width]);
            builder.Initializer($"{name}.bias", Uniform(random, outputs, width), [outputs]);
            var last = layer == widths.Length - 1;
            var gemmOut = last ? OutputName : $"{name}.out";
            builder.Node("Gemm", [current, $"{name}.weight", $"{name}.bias"], [gemmOut], name, string.Empty, Attr.Int("transB", 1));
            current = gemmOut;
            if (!last)
            {
                var activated = $"{name}.{activation.ToString().ToLowerInvariant()}";
                builder.Node(activation.ToString(), [current], [activated], activated, string.Empty);
                current = activated;
            }

            width = outputs;
        }

        return builder.Build();
    }

    /// <summary>
    /// PyTorch's default nn.Linear initialisation (Kaiming-uniform with a = sqrt(5)), weights and biases
    /// alike U(-1/sqrt(fan_in), 1/sqrt(fan_in)): students start where a PyTorch user's would.
    /// </summary>
    private static float[] Uniform(Random random, int count, int fanIn)
    {
        var bound = 1.0 / Math.Sqrt(fanIn);
        var values = new float[count];
        for (var i = 0; i < count; i++)
        {
            values[i] = (float)(((random.NextDouble() * 2) - 1) * bound);
        }

        return values;
    }

    private static string CompressionVersion() =>
        typeof(MlpBuilder).Assembly.GetName().Version?.ToString() ?? "0";
}
