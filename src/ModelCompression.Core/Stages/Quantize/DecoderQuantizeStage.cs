using System.Diagnostics;
using System.Globalization;
using ModelCompression.Common;
using ModelCompression.Onnx;
using ModelCompression.Quantization;

namespace ModelCompression.Stages;

/// <summary>
/// quantize for task: generation: dynamic int8 (MatMul/Gemm weights, the tied output head with its own int8 copy, the
/// embedding table int8), int4 weight-only blocks (MatMulNBits) or fp16 weights of a decoder, its cache inputs and
/// outputs kept. The quantized decoder's quality is what the evaluation after the stage measures (exact match, ROUGE,
/// perplexity), and gates hold it; per-layer sensitivity and static calibration, which need the classifier's check
/// slice, are refused for decoders by the plan.
/// </summary>
/// <param name="options">The stage's options.</param>
public sealed class DecoderQuantizeStage(QuantizeOptions options) : IGenerativeStage
{
    /// <inheritdoc />
    public string Kind => "quantize";

    /// <inheritdoc />
    public void AddToKey(ContentHash key, GenerationContext context)
    {
        ArgumentNullException.ThrowIfNull(key);
        key.Add("options", System.Text.Json.JsonSerializer.Serialize(options));
    }

    /// <inheritdoc />
    public StageResult Run(GenerationContext context, string inputModel, string outputModel)
    {
        ArgumentNullException.ThrowIfNull(context);
        var clock = Stopwatch.StartNew();
        var source = OnnxModelFile.Load(inputModel);
        var invariant = CultureInfo.InvariantCulture;
        bool Included(Onnx.Proto.NodeProto node) => !options.ExcludedNodes.Contains(node.Name) && !options.ExcludedOpTypes.Contains(node.OpType);
        var details = new Dictionary<string, string>(StringComparer.Ordinal) { ["mode"] = options.Mode.ToString().ToLowerInvariant() };
        string summary;
        Onnx.Proto.ModelProto model;
        switch (options.Mode)
        {
            case QuantizeMode.Int4:
                var (int4, int4Report) = Int4Quantizer.Quantize(source, options.BlockSize, options.Int4Scheme == QuantizationScheme.Symmetric, Included, options.PerChannel);
                model = int4;
                details["block_size"] = options.BlockSize.ToString(invariant);
                details["quantized_nodes"] = int4Report.QuantizedNodes.Count.ToString(invariant);
                summary = $"int4 weight-only ({options.Int4Scheme.ToString().ToLowerInvariant()} blocks of {options.BlockSize}): {int4Report.QuantizedNodes.Count} MatMul/Gemm nodes, {int4Report.SkippedNodes.Count} left float";
                break;
            case QuantizeMode.Fp16:
                var (half, halfReport) = Float16Converter.Convert(source);
                model = half;
                details["float16_initializers"] = halfReport.Float16Initializers.ToString(invariant);
                summary = $"fp16: {halfReport.Float16Initializers} initializers stored as float16";
                break;
            default:
                // Per row unless asked otherwise: with one scale per run, a prompt's answer depended on its batch.
                var activations = options.ActivationScale == ActivationScaleChoice.Tensor ? ActivationScale.Tensor : ActivationScale.Row;
                var (int8, int8Report) = DynamicQuantizer.Quantize(source, options.PerChannel, Included, options.Target, activations);
                model = int8;
                details["quantized_nodes"] = int8Report.QuantizedNodes.Count.ToString(invariant);
                details["per_channel"] = options.PerChannel ? "true" : "false";
                details["activation_scale"] = activations.ToString().ToLowerInvariant();
                summary = $"dynamic int8 ({(options.PerChannel ? "per channel" : "per tensor")} weights, activations per {activations.ToString().ToLowerInvariant()}): {int8Report.QuantizedNodes.Count} MatMul/Gemm nodes, {int8Report.SkippedNodes.Count} left float";
                break;
        }

        if (Generation.DecoderSignature.Read(model, inputModel) != Generation.DecoderSignature.Read(source, inputModel))
        {
            throw new InvalidOperationException($"Quantizing '{inputModel}' changed its decoder signature.");
        }

        OnnxModelFile.Save(model, outputModel);
        details["bytes_before"] = new FileInfo(inputModel).Length.ToString(invariant);
        details["bytes_after"] = new FileInfo(outputModel).Length.ToString(invariant);
        return new StageResult(Kind, summary, details, null, clock.Elapsed.TotalSeconds);
    }

    /// <summary>Why <paramref name="options"/> cannot quantize a decoder; null when they can.</summary>
    internal static string? Problem(QuantizeOptions options) =>
        options.Mode == QuantizeMode.Static
            ? "static int8 calibrates activations on tensor samples; decoders take mode dynamic, int4 or fp16."
            : options.KeepSensitiveFloat || options.KeepFloatIfSlower
                ? "keep_sensitive_float and keep_float_if_slower measure a classifier's check slice; for decoders, gate the quantized model's metrics instead."
                : null;
}
