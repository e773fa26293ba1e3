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

    /// <summary>
    /// Exact GELU, 0.5 x (1 + erf(x / sqrt 2)), written with Erf: the Gelu operator only exists from opset 20
    /// and the built-in graphs target opset 17.
    /// </summary>
    Gelu,
}
