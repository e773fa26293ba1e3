using ModelCompression.Common;

namespace ModelCompression.Stages;

/// <summary>Which of ONNX Runtime's graph optimizations the optimize stage applies.</summary>
public enum OptimizeLevel
{
    /// <summary>Semantics-preserving rewrites in standard ONNX ops: any ONNX runtime (and every later stage) can run the result.</summary>
    Basic,

    /// <summary>Basic, then ONNX Runtime's CPU fusions into its own contrib ops (com.microsoft): the result runs in ONNX Runtime only.</summary>
    Extended,
}

/// <summary>Options of the optimize stage.</summary>
public sealed record OptimizeOptions
{
    /// <summary>Which optimizations run.</summary>
    [Option("level", "basic: ONNX Runtime's semantics-preserving rewrites that keep standard ONNX ops (constant folding; Identity, Dropout, Slice and Unsqueeze elimination; Conv+BatchNormalization, Conv+Add and Conv+Mul folding; Reshape fusion); every runtime and every later stage takes the result. extended: also ONNX Runtime's CPU fusions (Gemm+activation, MatMul+Add, GELU, LayerNormalization, attention) into com.microsoft ops: faster in ONNX Runtime, but only ONNX Runtime runs it, and prune, factorize and training stages cannot read those ops, so put it last.")]
    public OptimizeLevel Level { get; init; } = OptimizeLevel.Basic;

    /// <summary>Training samples the optimized model is compared on.</summary>
    [Option("check_samples", "Training samples both models run on: the optimized model is accepted only if its outputs match the input model's (max_difference).", Min = 1)]
    public int CheckSamples { get; init; } = 256;

    /// <summary>The largest output difference accepted, relative to the largest output magnitude.</summary>
    [Option("max_difference", "The largest difference between the two models' outputs on the check samples, relative to the largest output magnitude; float rounding in folded weights is ~1e-6.", Min = 0)]
    public double MaxDifference { get; init; } = 1e-4;
}
