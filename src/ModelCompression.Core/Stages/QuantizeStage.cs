using System.Diagnostics;
using System.Globalization;
using ModelCompression.Diagnostics;
using ModelCompression.Inference;
using ModelCompression.Onnx;
using ModelCompression.Pipeline;
using ModelCompression.Quantization;

namespace ModelCompression.Stages;

/// <summary>
/// Quantizes the student's MatMul/Gemm weights to int8 (dynamic quantization). The output is accepted only
/// after ONNX Runtime loads it and runs a forward pass.
/// </summary>
public sealed class QuantizeStage(QuantizeOptions options) : IStage
{
    /// <inheritdoc />
    public string Kind => "quantize";

    /// <inheritdoc />
    public void AddToKey(ContentHash key, StageContext context) => key
        .Add("options", System.Text.Json.JsonSerializer.Serialize(options));

    /// <inheritdoc />
    public StageResult Run(StageContext context, string inputModel, string outputModel)
    {
        var clock = Stopwatch.StartNew();
        var (model, report) = DynamicQuantizer.Quantize(OnnxModelFile.Load(inputModel), options.PerChannel);
        if (report.QuantizedNodes.Count == 0)
        {
            context.Reporter.Report(Diagnostic.Warning(
                DiagnosticCodes.NothingToTransform,
                $"quantize: no MatMul/Gemm weight could be quantized ({string.Join("; ", report.SkippedNodes)}); the model stays float.",
                inputModel));
        }

        OnnxModelFile.Save(model, outputModel);
        CheckRuns(outputModel, context);
        return new StageResult(
            Kind,
            $"dynamic int8 ({(options.PerChannel ? "per channel" : "per tensor")}): {report.QuantizedNodes.Count} layers quantized, {report.SkippedNodes.Count} left in float",
            new Dictionary<string, string>
            {
                ["mode"] = options.Mode.ToString().ToLowerInvariant(),
                ["per_channel"] = options.PerChannel.ToString(CultureInfo.InvariantCulture).ToLowerInvariant(),
                ["quantized"] = string.Join(", ", report.QuantizedNodes),
                ["skipped"] = string.Join("; ", report.SkippedNodes),
            },
            null,
            clock.Elapsed.TotalSeconds);
    }

    private static void CheckRuns(string modelPath, StageContext context)
    {
        var probe = context.Test.Select([.. Enumerable.Range(0, Math.Min(8, context.Test.Count))], "quantize check");
        using var runner = new OnnxRunner(modelPath, threads: 1);
        var outputs = runner.Run(probe, probe.Count);
        if (outputs.Any(v => !float.IsFinite(v)))
        {
            throw CompressionException.Error(DiagnosticCodes.Internal, "The quantized model produced non-finite outputs.", modelPath);
        }
    }
}
