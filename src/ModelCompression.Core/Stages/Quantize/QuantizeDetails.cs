using ModelCompression.Quantization;

namespace ModelCompression.Stages;

/// <summary>
/// What the quantize stage reports (report.json's "details"), in report.json's order. The stage fills it as it goes
/// (each mode sets its own part); what a mode does not set stays null and is left out.
/// </summary>
public sealed record QuantizeDetails
{
    /// <summary>The quantization mode.</summary>
    [Detail("mode")]
    public required QuantizeMode Mode { get; init; }

    /// <summary>Training samples the accuracy check and the sensitivity analysis read.</summary>
    [Detail("check_samples")]
    public required int CheckSamples { get; init; }

    /// <summary>Whether the check slice re-used calibration samples (the data was too small for both).</summary>
    [Detail("check_overlaps_calibration")]
    public required bool CheckOverlapsCalibration { get; init; }

    /// <summary>Per-channel weight scales (int8 modes).</summary>
    [Detail("per_channel")]
    public bool? PerChannel { get; set; }

    /// <summary>Static mode's activation scheme.</summary>
    [Detail("activation_scheme")]
    public QuantizationScheme? ActivationScheme { get; set; }

    /// <summary>Static mode's calibration method.</summary>
    [Detail("calibration_method")]
    public CalibrationMethod? CalibrationMethod { get; set; }

    /// <summary>Static mode's calibration samples.</summary>
    [Detail("calibration_samples")]
    public int? CalibrationSamples { get; set; }

    /// <summary>The percentile of percentile calibration.</summary>
    [Detail("percentile")]
    public double? Percentile { get; set; }

    /// <summary>The layers left float, with why (int8 modes).</summary>
    [Detail("skipped", Separator = "; ")]
    public IReadOnlyList<string>? Skipped { get; set; }

    /// <summary>BatchNorms folded into the Conv before them (static mode).</summary>
    [Detail("folded_batch_norms")]
    public IReadOnlyList<string>? FoldedBatchNorms { get; set; }

    /// <summary>Each layer's accuracy drop and agreement when quantized alone, as "sensitivity.&lt;node&gt;" and "sensitivity_agreement.&lt;node&gt;".</summary>
    public IReadOnlyDictionary<string, string>? Sensitivity { get; set; }

    /// <summary>The layers from most to least sensitive.</summary>
    [Detail("sensitivity_order")]
    public IReadOnlyList<string>? SensitivityOrder { get; set; }

    /// <summary>The layers quantized (empty when nothing could be).</summary>
    [Detail("quantized")]
    public IReadOnlyList<string>? Quantized { get; set; }

    /// <summary>The candidate layers kept float by the sensitivity analysis.</summary>
    [Detail("kept_float")]
    public IReadOnlyList<string>? KeptFloat { get; set; }

    /// <summary>ONNX Runtime's integer kernels in the optimized session graph, with counts.</summary>
    [Detail("onnxruntime_integer_kernels")]
    public string? IntegerKernels { get; set; }

    /// <summary>Float16 mode: the nodes computing in float16.</summary>
    [Detail("float16_nodes")]
    public IReadOnlyList<string>? Float16Nodes { get; set; }

    /// <summary>Float16 mode: the nodes kept in float32.</summary>
    [Detail("float32_nodes")]
    public IReadOnlyList<string>? Float32Nodes { get; set; }

    /// <summary>Float16 mode: initializers stored as float16.</summary>
    [Detail("float16_initializers")]
    public int? Float16Initializers { get; set; }

    /// <summary>Float16 mode: values clamped to float16's range.</summary>
    [Detail("clamped_values")]
    public int? ClampedValues { get; set; }

    /// <summary>The CPUs the int8 weights are exact on.</summary>
    [Detail("target")]
    public Int8Target? Target { get; set; }

    /// <summary>How the int8 weights are represented, in words.</summary>
    [Detail("int8_weights")]
    public string? Int8Weights { get; set; }

    /// <summary>The largest pair sum of any proven layer, with the layer ("" when none is proven).</summary>
    [Detail("max_pair_sum")]
    public string? MaxPairSum { get; set; }

    /// <summary>Int4 mode: inputs per 4-bit block.</summary>
    [Detail("block_size")]
    public int? BlockSize { get; set; }

    /// <summary>Int4 mode: symmetric or asymmetric blocks.</summary>
    [Detail("int4_scheme")]
    public QuantizationScheme? Int4Scheme { get; set; }

    /// <summary>Int4 mode: the 4-bit weights' bytes against their float32 bytes, in words.</summary>
    [Detail("int4_weights")]
    public string? Int4Weights { get; set; }

    /// <summary>Int4 mode: each 4-bit weight's bytes, as "int4_bytes.&lt;node&gt;" (the first layer reading it), and "float_bytes.&lt;node&gt;" as float32.</summary>
    public IReadOnlyDictionary<string, string>? Int4Bytes { get; set; }

    /// <summary>The float model's accuracy on the check slice.</summary>
    [Detail("float_accuracy", Format = "0.0000")]
    public double? FloatAccuracy { get; set; }

    /// <summary>The quantized model's accuracy on the check slice.</summary>
    [Detail("quantized_accuracy", Format = "0.0000")]
    public double? QuantizedAccuracy { get; set; }

    /// <summary>Float accuracy minus quantized accuracy.</summary>
    [Detail("accuracy_drop", Format = "0.0000")]
    public double? AccuracyDrop { get; set; }

    /// <summary>How often the quantized model's prediction is the float model's.</summary>
    [Detail("agreement", Format = "0.0000")]
    public double? Agreement { get; set; }

    /// <summary>Each timed configuration's float and quantized p50 and speed-up, as "latency_ms.float.batchB.threadsT" and so on.</summary>
    public IReadOnlyDictionary<string, string>? Latency { get; set; }

    /// <summary>The geometric mean speed-up over the configurations.</summary>
    [Detail("speedup", Format = "0.00")]
    public double? Speedup { get; set; }

    /// <summary>Which model is faster: "quantized" or "float".</summary>
    [Detail("faster")]
    public string? Faster { get; set; }

    /// <summary>Whether keep_float_if_slower kept the float model.</summary>
    [Detail("kept_float_model")]
    public bool? KeptFloatModel { get; set; }
}
