using ModelCompression.Onnx.Proto;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Architectures;

/// <summary>
/// The built-in MLP student as an ONNX graph: input [batch, …sample shape] -> Flatten (when a sample has more
/// than one axis) -> (Gemm -> activation -> Dropout) per hidden layer -> Gemm -> logits [batch, classes].
/// Weights are stored [out, in] with transB = 1, as PyTorch exports nn.Linear, and named like PyTorch's
/// (<c>fc1.weight</c>, <c>fc1.bias</c>, …, the last one the classifier).
/// </summary>
public static class MlpBuilder
{
    /// <summary>The registry name.</summary>
    public const string Name = "mlp";

    /// <summary>The graph's input name.</summary>
    public const string InputName = "input";

    /// <summary>The graph's output name.</summary>
    public const string OutputName = "logits";

    /// <summary>Builds the graph over flat samples of <paramref name="inputs"/> values with seeded initial weights.</summary>
    public static ModelProto Build(int inputs, IReadOnlyList<int> hidden, int classes, Activation activation, int seed)
    {
        ArgumentNullException.ThrowIfNull(hidden);
        return Build(
            new MlpOptions { Hidden = [.. hidden], Activation = activation, Seed = seed },
            new ArchitectureInputs([inputs], classes));
    }

    /// <summary>Builds the graph for samples of <see cref="ArchitectureInputs.SampleShape"/>; throws <see cref="InvalidArchitectureOptionsException"/> on bad options.</summary>
    public static ModelProto Build(MlpOptions options, ArchitectureInputs inputs)
    {
        InvalidArchitectureOptionsException.ThrowIfInvalid(Name, options, inputs);
        var graph = new GraphWriter("mlp", new Random(options.Seed));
        var sample = inputs.SampleShape;
        graph.Input(InputName, DataType.Float, ["batch", .. sample.Select(d => (Onnx.Dim)d)]);
        graph.Output(OutputName, DataType.Float, "batch", inputs.Classes);

        var current = InputName;
        var width = sample.Aggregate(1, (a, b) => checked(a * b));
        if (sample.Count > 1)
        {
            current = graph.Op("Flatten", "flatten", [current], Onnx.Attr.Int("axis", 1));
        }

        int[] widths = [.. options.Hidden, inputs.Classes];
        for (var layer = 0; layer < widths.Length; layer++)
        {
            var name = $"fc{layer + 1}";
            var outputs = widths[layer];
            // PyTorch's default nn.Linear init (Kaiming-uniform with a = sqrt 5: weights and biases alike
            // U(±1/sqrt(fan_in))) rather than He init: MLP students start where a PyTorch user's would, and
            // students built before the other architectures existed keep their exact bytes (cache keys, baselines).
            var bound = 1.0 / Math.Sqrt(width);
            var weight = graph.Weight($"{name}.weight", Init.Uniform(graph.Random, (long)outputs * width, bound), outputs, width);
            var bias = graph.Weight($"{name}.bias", Init.Uniform(graph.Random, outputs, bound), outputs);
            var last = layer == widths.Length - 1;
            current = graph.Gemm(name, current, weight, bias, last ? OutputName : $"{name}.out");
            if (!last)
            {
                current = graph.Activate(name, current, options.Activation);
                current = graph.Dropout($"{name}.dropout", current, options.Dropout);
            }

            width = outputs;
        }

        return graph.Build();
    }
}
