using ModelCompression.Recipes;

namespace ModelCompression.Stages;

/// <summary>Options of the distill stage (response-based knowledge distillation).</summary>
public sealed record DistillOptions
{
    /// <summary>Passes over the training data.</summary>
    [Option("epochs", "Passes over the training data.", Min = 1, Max = 10000)]
    public int Epochs { get; init; } = 10;

    /// <summary>Samples per optimizer step.</summary>
    [Option("batch_size", "Samples per optimizer step.", Min = 1, Max = 1 << 20)]
    public int BatchSize { get; init; } = 128;

    /// <summary>Adam learning rate.</summary>
    [Option("learning_rate", "Adam learning rate.", Min = 0, MinExclusive = true, Max = 10)]
    public double LearningRate { get; init; } = 1e-3;

    /// <summary>Softening temperature T of the teacher's and student's softmax.</summary>
    [Option("temperature", "Softening temperature T of the teacher's and student's softmax.", Min = 0, MinExclusive = true, Max = 100)]
    public double Temperature { get; init; } = 4;

    /// <summary>Weight of the teacher's soft targets against the true labels (1 - alpha).</summary>
    [Option("alpha", "Weight of the teacher's soft targets; the labels get 1 - alpha.", Min = 0, Max = 1)]
    public double Alpha { get; init; } = 0.9;

    /// <summary>Seed of shuffling and dropout.</summary>
    [Option("seed", "Seed of shuffling and dropout: the same seed and data give the same weights.", Min = 0)]
    public int Seed { get; init; } = 1;
}

/// <summary>How weights are quantized.</summary>
public enum QuantizeMode
{
    /// <summary>int8 weights, activations quantized at run time (MatMul and Gemm).</summary>
    Dynamic,
}

/// <summary>Options of the quantize stage.</summary>
public sealed record QuantizeOptions
{
    /// <summary>The quantization mode.</summary>
    [Option("mode", "dynamic: int8 MatMul/Gemm weights with activations quantized at run time.")]
    public QuantizeMode Mode { get; init; } = QuantizeMode.Dynamic;

    /// <summary>One scale per output column instead of one per weight tensor.</summary>
    [Option("per_channel", "One scale per output column instead of one per weight tensor.")]
    public bool PerChannel { get; init; }
}

/// <summary>Options of the evaluate stage.</summary>
public sealed record EvaluateOptions
{
    /// <summary>Samples per ONNX Runtime call.</summary>
    [Option("batch_size", "Samples per ONNX Runtime call.", Min = 1, Max = 1 << 20)]
    public int BatchSize { get; init; } = 256;
}
