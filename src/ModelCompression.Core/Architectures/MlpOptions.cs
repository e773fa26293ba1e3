using ModelCompression.Recipes;

namespace ModelCompression.Architectures;

/// <summary>Hidden-layer activation of a built-in architecture.</summary>
public enum Activation
{
    /// <summary>max(0, x).</summary>
    Relu,

    /// <summary>Hyperbolic tangent.</summary>
    Tanh,

    /// <summary>Logistic sigmoid.</summary>
    Sigmoid,
}

/// <summary>Options of the built-in MLP student.</summary>
public sealed record MlpOptions
{
    /// <summary>Widths of the hidden layers.</summary>
    [Option("hidden", "Widths of the hidden layers, e.g. [64] or [256, 128].")]
    public int[] Hidden { get; init; } = [64];

    /// <summary>Hidden activation.</summary>
    [Option("activation", "Hidden activation: relu, tanh or sigmoid.")]
    public Activation Activation { get; init; } = Activation.Relu;

    /// <summary>Seed of the initial weights.</summary>
    [Option("seed", "Seed of the initial weights.", Min = 0)]
    public int Seed { get; init; } = 1;
}
