using ModelCompression.Common;
using ModelCompression.Quantization;

namespace ModelCompression.Stages;

/// <summary>How the quantize stage turns the float model into a smaller one.</summary>
public enum QuantizeMode
{
    /// <summary>int8 MatMul/Gemm weights; activations quantized at run time (convolutions stay float).</summary>
    Dynamic,

    /// <summary>int8 weights and activations (QuantizeLinear/DequantizeLinear pairs) with calibrated activation ranges.</summary>
    Static,

    /// <summary>float16 weights, float32 inputs and outputs.</summary>
    Fp16,

    /// <summary>4-bit MatMul/Gemm weights in blocks (ONNX Runtime's MatMulNBits), float activations; embedding tables int8.</summary>
    Int4,
}

/// <summary>The quantize stage's choice of <see cref="ActivationScale"/> for dynamic int8.</summary>
public enum ActivationScaleChoice
{
    /// <summary>Per row for decoders (task: generation), per tensor for the other tasks.</summary>
    Auto,

    /// <summary><see cref="ActivationScale.Tensor"/>.</summary>
    Tensor,

    /// <summary><see cref="ActivationScale.Row"/>.</summary>
    Row,
}

/// <summary>Options of the quantize stage.</summary>
public sealed record QuantizeOptions : ICheckedOptions
{
    /// <summary>The quantization mode.</summary>
    [Option("mode", "dynamic: int8 MatMul/Gemm weights, activations quantized at run time (convolutions stay float); static: int8 weights and calibrated int8 activations (QDQ) for Conv, MatMul and Gemm; both int8 modes store embedding tables (Gather from a constant) in int8, never the token ids; fp16: float16 weights with float32 inputs and outputs; int4: weight-only 4-bit blocks for every MatMul/Gemm with a constant weight, a tied output head (MatMul over Transpose of the embedding table) included, as ONNX Runtime's com.microsoft MatMulNBits (runs in ONNX Runtime only), activations stay float32 and embedding tables become int8 as in the int8 modes.")]
    public QuantizeMode Mode { get; init; } = QuantizeMode.Dynamic;

    /// <summary>One weight scale per output channel instead of one per weight tensor.</summary>
    [Option("per_channel", "One weight scale per output channel (Conv axis 0, MatMul/Gemm output axis) instead of one per weight tensor; int4 mode: applies to the int8 embedding tables only (the 4-bit weights have a scale per block).")]
    public bool PerChannel { get; init; }

    /// <summary>The CPUs the int8 model must compute correctly on.</summary>
    [Option("target", "dynamic and static: the x86-64 CPUs the int8 model must be exact on. any: every CPU ONNX Runtime runs on; the int8 weights are scaled so that no two in an output channel sum to more than 128 in magnitude, because CPUs without VNNI (AVX2-only, AVX-512 without VNNI) add pairs of u8 x s8 products into a saturating int16, and the stage proves it for every layer (MC2054/MC2055). vnni: only CPUs with AVX-512 VNNI or AVX-VNNI; full-range int8 weights (-127..127), which can be badly wrong on other CPUs.")]
    public Int8Target Target { get; init; } = Int8Target.Any;

    /// <summary>How dynamic mode scales activations at run time.</summary>
    [Option("activation_scale", "dynamic: tensor (one scale and zero point per run for each quantized activation, ONNX Runtime's fused kernel; fastest, but a row's result depends on the other rows of its batch), row (one per row, i.e. per token of a decoder: a prompt gets the same answer alone as in any batch; unfused standard operators, slower) or auto (row for task: generation, tensor otherwise).")]
    public ActivationScaleChoice ActivationScale { get; init; } = ActivationScaleChoice.Auto;

    /// <summary>Inputs per 4-bit block (int4 mode).</summary>
    [Option("block_size", "int4: inputs (along K) per 4-bit block, each with its own scale: 16, 32, 64, 128 or 256 (MatMulNBits takes powers of two from 16). Smaller blocks are more accurate and larger: per block of 32 the float scale adds 1 bit per weight (4.0 bits of codes + 1.0), per block of 128 a quarter bit. The product is computed in float32 (accuracy_level 1), so the model gives the same results on every x86-64 CPU up to float rounding: there are no int8 pair sums to saturate on AVX2.", Min = 16, Max = 256)]
    public int BlockSize { get; init; } = 32;

    /// <summary>Symmetric or asymmetric 4-bit blocks (int4 mode).</summary>
    [Option("int4_scheme", "int4: symmetric (codes -8..7 around 0, no zero points stored; the largest magnitude of a block maps to -8) or asymmetric (each block's range, widened to include 0, maps onto 0..15 with its own 4-bit zero point, packed two per byte; better for blocks whose values lean to one side).")]
    public QuantizationScheme Int4Scheme { get; init; } = QuantizationScheme.Symmetric;

    /// <summary>How static mode quantizes activations.</summary>
    [Option("activation_scheme", "static: asymmetric (uint8 with a zero point; ONNX Runtime's fast path on x86, ReLU outputs use the whole range) or symmetric (int8, zero point 0).")]
    public QuantizationScheme ActivationScheme { get; init; } = QuantizationScheme.Asymmetric;

    /// <summary>How static mode picks each activation's range.</summary>
    [Option("calibration_method", "static: minmax (observed range), percentile (clip |x| at the given percentile) or entropy (clip |x| where the KL divergence between the float and int8 histograms is smallest).")]
    public CalibrationMethod CalibrationMethod { get; init; } = CalibrationMethod.MinMax;

    /// <summary>Training samples run through the float model to calibrate activation ranges.</summary>
    [Option("calibration_samples", "static: training samples (seeded random choice) run through the float model to calibrate activation ranges.", Min = 1, Max = 1 << 20)]
    public int CalibrationSamples { get; init; } = 256;

    /// <summary>The percentile of |x| that percentile calibration keeps.</summary>
    [Option("percentile", "static with calibration_method percentile: the percentile of |x| kept inside the range, e.g. 99.99.", Min = 50, Max = 100)]
    public double Percentile { get; init; } = 99.99;

    /// <summary>Node names that stay float, comma-separated.</summary>
    [Option("exclude_nodes", "Node names to leave in float, separated by commas (e.g. 'fc1,classifier').")]
    public string ExcludeNodes { get; init; } = "";

    /// <summary>Operator types that stay float, comma-separated.</summary>
    [Option("exclude_op_types", "Operator types to leave in float, separated by commas (e.g. 'Conv').")]
    public string ExcludeOpTypes { get; init; } = "";

    /// <summary>Whether to measure each layer's accuracy effect alone.</summary>
    [Option("sensitivity", "dynamic, static and int4: measure the accuracy drop of quantizing each layer alone (the others float) on a held-out slice of the training data, and list it in the report.")]
    public bool Sensitivity { get; init; } = true;

    /// <summary>Labelled training samples the sensitivity analysis and the accuracy check run on.</summary>
    [Option("sensitivity_samples", "Labelled training samples (seeded, disjoint from the calibration samples where the data allows) on which the float and quantized models are compared and the sensitivity is measured. The test data is not used: it decides gates.", Min = 1, Max = 1 << 20)]
    public int SensitivitySamples { get; init; } = 1000;

    /// <summary>Whether the most sensitive layers go back to float until the accuracy drop is small enough.</summary>
    [Option("keep_sensitive_float", "dynamic, static and int4: leave the most sensitive layers in float, one at a time in sensitivity order, until the accuracy drop against the float model on the check slice is at most max_accuracy_drop.")]
    public bool KeepSensitiveFloat { get; init; }

    /// <summary>The largest accuracy drop (a fraction) accepted on the check slice.</summary>
    [Option("max_accuracy_drop", "Largest accuracy drop (fraction, 0.005 = half a point) against the float model on the check slice; beyond it the stage warns, and keep_sensitive_float restores layers.", Min = 0, Max = 1)]
    public double MaxAccuracyDrop { get; init; } = 0.005;

    /// <summary>Whether the float model is kept when the quantized one is not faster.</summary>
    [Option("keep_float_if_slower", "Keep the float model (with a warning) when the quantized model is not faster than it at the measured batch sizes and thread counts (geometric mean of the p50 speed-ups). The choice then depends on the machine's timing.")]
    public bool KeepFloatIfSlower { get; init; }

    /// <summary>Batch sizes the latency comparison runs.</summary>
    [Option("latency_batch_sizes", "Batch sizes at which the float and quantized models' latencies are compared.", Min = 1, Max = 1 << 16)]
    public int[] LatencyBatchSizes { get; init; } = [1, 64];

    /// <summary>ONNX Runtime intra-op thread counts the latency comparison runs.</summary>
    [Option("latency_threads", "ONNX Runtime intra-op thread counts at which the latencies are compared.", Min = 1, Max = 1024)]
    public int[] LatencyThreads { get; init; } = [1, 2];

    /// <summary>Timed runs per model, batch size and thread count.</summary>
    [Option("latency_runs", "Timed runs per model, batch size and thread count (after 5 warm-up runs); the p50 is compared.", Min = 1, Max = 100000)]
    public int LatencyRuns { get; init; } = 30;

    /// <summary>Seed of the calibration and check samples.</summary>
    [Option("seed", "Seed of the choice of calibration and check samples.", Min = 0)]
    public int Seed { get; init; } = 1;

    /// <summary>Problems that the value ranges alone do not catch, each in one sentence.</summary>
    public IReadOnlyList<string> Validate() =>
        Int4Blocks.SupportedBlockSizes.Contains(BlockSize)
            ? []
            : [$"block_size {BlockSize} is not one MatMulNBits takes ({string.Join(", ", Int4Blocks.SupportedBlockSizes)}: a power of two from 16 to 256)"];

    /// <summary>The node names of <see cref="ExcludeNodes"/>.</summary>
    internal IReadOnlySet<string> ExcludedNodes => Split(ExcludeNodes);

    /// <summary>The operator types of <see cref="ExcludeOpTypes"/>.</summary>
    internal IReadOnlySet<string> ExcludedOpTypes => Split(ExcludeOpTypes);

    private static HashSet<string> Split(string? list) =>
        new((list ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries), StringComparer.Ordinal);
}
