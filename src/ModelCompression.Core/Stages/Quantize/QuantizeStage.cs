using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.OnnxRuntime;
using ModelCompression.Common;
using ModelCompression.Data;
using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;
using ModelCompression.Inference;
using ModelCompression.Onnx.Proto;
using ModelCompression.Onnx;
using ModelCompression.Quantization;

namespace ModelCompression.Stages;

/// <summary>
/// Quantizes the student: dynamic int8 (MatMul/Gemm), static int8 QDQ with calibrated activations (Conv,
/// MatMul, Gemm), float16, or weight-only int4 (MatMul/Gemm as MatMulNBits). For the int8 modes it measures how much each layer alone costs in accuracy and
/// can leave the most sensitive layers in float. Every run compares the result with the float model on a
/// labelled slice of the training data (the test data decides gates, so no choice here is fitted to it) and
/// times both models, because int8 is not always faster. The output is accepted only after ONNX Runtime loads
/// it and runs a forward pass.
/// </summary>
/// <param name="options">The stage's options.</param>
/// <param name="site">Where the recipe writes the stage, for errors found once the model is known.</param>
public sealed class QuantizeStage(QuantizeOptions options, StageSite? site = null) : IStage
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    /// <summary>What ONNX Runtime turns quantized layers into: their presence shows the int8 path is taken.</summary>
    private static readonly HashSet<string> IntegerKernels = new(StringComparer.Ordinal)
    {
        "QLinearConv", "QLinearMatMul", "QGemm", "MatMulIntegerToFloat", "MatMulInteger", "DynamicQuantizeMatMul", "ConvInteger", "MatMulNBits",
    };

    /// <inheritdoc />
    public string Kind => "quantize";

    /// <inheritdoc />
    public void AddToKey(ContentHash key, StageContext context) => QuantizeDescriptor.Key(key, options, context);

    /// <inheritdoc />
    public StageResult Run(StageContext context, string inputModel, string outputModel)
    {
        var clock = Stopwatch.StartNew();
        var source = OnnxModelFile.Load(inputModel);
        var named = source.Clone();
        GraphEdit.NameNodes(named.Graph);
        // The plan checked the names already unless an earlier stage changed the graph; it is cheap to be sure.
        var problems = QuantizeDescriptor.Problems(options, [.. named.Graph.Node.Select(n => n.Name)], [.. named.Graph.Node.Select(n => n.OpType)], site ?? StageSite.None with { RecipePath = context.RecipePath }).ToList();
        if (problems.Count > 0)
        {
            throw new CompressionException(problems);
        }

        using (var runner = new OnnxRunner(inputModel, threads: 1))
        {
            // Every input the model takes (token ids and mask alike) must have its data tensor: MC2020 up front.
            runner.Bind(context.Train);
        }

        var (calibration, check, overlap) = Samples(context.Train);
        var slice = new CheckSlice(source, check);
        var details = new QuantizeDetails { Mode = options.Mode, CheckSamples = check.Count, CheckOverlapsCalibration = overlap };
        var (quantized, description) = options.Mode switch
        {
            QuantizeMode.Dynamic => Dynamic(named, slice, details, context, inputModel),
            QuantizeMode.Static => Static(named, calibration!, slice, details, context, inputModel),
            QuantizeMode.Int4 => Int4(named, slice, details, context, inputModel),
            _ => Float16(named, details),
        };
        var model = quantized ?? named;
        // Int4 computes in float32 (its int8 embedding tables are dequantized, never multiplied as integers).
        if (options.Mode is QuantizeMode.Dynamic or QuantizeMode.Static && quantized is not null)
        {
            CheckInt8Weights(model, details, context, inputModel);
        }

        var score = slice.Score(model, "quantized model");
        var drop = slice.FloatAccuracy - score.Accuracy;
        details.FloatAccuracy = slice.FloatAccuracy;
        details.QuantizedAccuracy = score.Accuracy;
        details.AccuracyDrop = drop;
        details.Agreement = score.Agreement;
        if (drop > options.MaxAccuracyDrop)
        {
            context.Reporter.Report(Diagnostic.Warning(
                DiagnosticCodes.QuantizedAccuracyDrop,
                $"quantize: accuracy on the {check.Count} check samples fell by {Points(drop)} points ({Percent(slice.FloatAccuracy)} -> {Percent(score.Accuracy)}), more than max_accuracy_drop {Points(options.MaxAccuracyDrop)}{(options.Mode == QuantizeMode.Fp16 || options.KeepSensitiveFloat ? "" : "; keep_sensitive_float: true leaves the most sensitive layers in float")}.",
                inputModel));
        }

        OnnxModelFile.Save(model, outputModel);
        CheckRuns(outputModel, context);
        var timing = quantized is null
            ? "nothing quantized, so no timing"
            : CompareLatency(source, model, check, details, context, inputModel, outputModel);

        return new StageResult(
            Kind,
            $"{description}; on {check.Count} check samples accuracy {Percent(slice.FloatAccuracy)} -> {Percent(score.Accuracy)}, agreement {Percent(score.Agreement)}; {timing}",
            StageDetails.Of(details),
            null,
            clock.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// Times the float and the quantized model, records it, and with keep_float_if_slower replaces the output by
    /// the float model when the quantized one is not faster. Returns the summary's timing clause.
    /// </summary>
    private string CompareLatency(ModelProto source, ModelProto model, Dataset check, QuantizeDetails details, StageContext context, string inputModel, string outputModel)
    {
        var latency = LatencyBenchmark.Compare(source, model, check, options.LatencyBatchSizes, options.LatencyThreads, options.LatencyRuns);
        var speedup = LatencyBenchmark.GeometricMeanSpeedup(latency);
        // Keys made from each timed configuration.
        var entries = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var m in latency)
        {
            var at = $"batch{m.BatchSize}.threads{m.Threads}";
            entries[$"latency_ms.float.{at}"] = m.FloatMs.ToString("0.####", Invariant);
            entries[$"latency_ms.quantized.{at}"] = m.QuantizedMs.ToString("0.####", Invariant);
            entries[$"speedup.{at}"] = m.Speedup.ToString("0.00", Invariant);
        }

        var ratio = speedup.ToString("0.00", Invariant);
        details.Latency = entries;
        details.Speedup = speedup;
        details.Faster = speedup > 1 ? "quantized" : "float";
        var configurations = $"p50 at batch {string.Join("/", options.LatencyBatchSizes)} x {string.Join("/", options.LatencyThreads)} threads";
        var keptFloat = options.KeepFloatIfSlower && speedup <= 1;
        details.KeptFloatModel = keptFloat;
        if (speedup > 1)
        {
            return $"quantized {ratio}x faster than float ({configurations})";
        }

        if (!keptFloat)
        {
            context.Reporter.Info($"quantize: the quantized model is not faster than the float one ({ratio}x); keep_float_if_slower: true would keep the float model.");
            return $"quantized NOT faster than float: {ratio}x ({configurations})";
        }

        OnnxModelFile.Save(source, outputModel);
        context.Reporter.Report(Diagnostic.Warning(
            DiagnosticCodes.QuantizedNotFaster,
            $"quantize: the {options.Mode.ToString().ToLowerInvariant()} model is not faster than the float one ({ratio}x, {configurations}); the float model is kept (keep_float_if_slower).",
            inputModel));
        return $"quantized NOT faster than float: {ratio}x ({configurations}); float model kept";
    }

    /// <summary>
    /// Records how the int8 weights are represented and the largest pair sum of any layer, and for target any
    /// proves that no layer can saturate the int16 pair sums of CPUs without VNNI (MC2054/MC2055 otherwise).
    /// </summary>
    private void CheckInt8Weights(ModelProto model, QuantizeDetails details, StageContext context, string inputModel)
    {
        var bounds = SaturationCheck.Analyze(model);
        var worst = bounds.Where(b => b.Unproven is null).MaxBy(b => b.MaxPairSum);
        details.Target = options.Target;
        details.Int8Weights = options.Target == Int8Target.Any
            ? $"s8 with |q_a| + |q_b| <= {SaturationCheck.MaxPairSum} per output channel (exact on AVX2, AVX-512 and VNNI CPUs)"
            : "full-range s8 -127..127 (exact only on CPUs with AVX-512 VNNI or AVX-VNNI)";
        details.MaxPairSum = worst is null ? "" : $"{worst.MaxPairSum} ({worst.Layer})";
        if (options.Target == Int8Target.Any)
        {
            SaturationCheck.ThrowIfUnproven(model, inputModel);
            return;
        }

        var over = bounds.Where(b => !b.Proven).Select(b => b.Layer).ToList();
        context.Reporter.Info(over.Count == 0
            ? "quantize: target vnni; every int8 layer also happens to fit the int16 pair sums of CPUs without VNNI."
            : $"quantize: target vnni: {over.Count}/{bounds.Count} int8 layers can saturate the int16 pair sums of CPUs without VNNI ({string.Join(", ", over)}); deploy this model only on CPUs with AVX-512 VNNI or AVX-VNNI.");
    }

    /// <summary>Dynamic int8; a null model when no layer can be quantized.</summary>
    private (ModelProto? Model, string Description) Dynamic(ModelProto source, CheckSlice slice, QuantizeDetails details, StageContext context, string inputModel)
    {
        details.PerChannel = options.PerChannel;
        var (_, report) = DynamicQuantizer.Quantize(source, options.PerChannel, n => !IsExcluded(n), options.Target, Activations);
        details.Skipped = report.SkippedNodes;
        var description = $"dynamic int8 ({(options.PerChannel ? "per channel" : "per tensor")}, {Representation})";
        if (report.QuantizedNodes.Count == 0)
        {
            Nothing(report.SkippedNodes, details, context, inputModel);
            return (null, $"{description}: nothing to quantize");
        }

        var (selection, sensitivity) = SelectLayers(report.QuantizedNodes, layers => DynamicQuantizer.Quantize(source, options.PerChannel, n => layers.Contains(n.Name), options.Target, Activations).Model, slice, details);
        return (selection.Model, $"{description}: {Layers(selection, sensitivity, report.QuantizedNodes.Count, report.SkippedNodes)}");
    }

    /// <summary>Weight-only int4 (MatMulNBits); a null model when no layer can be quantized.</summary>
    private (ModelProto? Model, string Description) Int4(ModelProto source, CheckSlice slice, QuantizeDetails details, StageContext context, string inputModel)
    {
        var symmetric = options.Int4Scheme == QuantizationScheme.Symmetric;
        details.BlockSize = options.BlockSize;
        details.Int4Scheme = options.Int4Scheme;
        var (_, report) = Int4Quantizer.Quantize(source, options.BlockSize, symmetric, n => !IsExcluded(n), options.PerChannel);
        details.Skipped = report.SkippedNodes;
        var description = $"int4 weight-only ({Lower(options.Int4Scheme)} blocks of {options.BlockSize}, float32 compute, embedding tables int8 {(options.PerChannel ? "per channel" : "per tensor")})";
        if (report.QuantizedNodes.Count == 0)
        {
            Nothing(report.SkippedNodes, details, context, inputModel);
            return (null, $"{description}: nothing to quantize");
        }

        var (selection, sensitivity) = SelectLayers(report.QuantizedNodes, layers => Int4Quantizer.Quantize(source, options.BlockSize, symmetric, n => layers.Contains(n.Name), options.PerChannel).Model, slice, details);
        Int4Sizes([.. report.Weights.Where(w => w.Nodes.Any(selection.Quantized.Contains))], details);
        return (selection.Model, $"{description}: {Layers(selection, sensitivity, report.QuantizedNodes.Count, report.SkippedNodes)}; {details.Int4Weights}");
    }

    /// <summary>Records what each 4-bit weight costs against float32.</summary>
    private static void Int4Sizes(IReadOnlyList<Int4Weight> weights, QuantizeDetails details)
    {
        var entries = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var weight in weights)
        {
            entries[$"int4_bytes.{weight.Nodes[0]}"] = weight.Bytes.ToString(Invariant);
            entries[$"float_bytes.{weight.Nodes[0]}"] = weight.FloatBytes.ToString(Invariant);
        }

        var (bytes, floatBytes) = (weights.Sum(w => w.Bytes), weights.Sum(w => w.FloatBytes));
        details.Int4Bytes = entries;
        details.Int4Weights = $"{weights.Count} weights in 4-bit blocks: {bytes.ToString("N0", Invariant)} bytes, {floatBytes.ToString("N0", Invariant)} as float32 ({(floatBytes == 0 ? 0 : (double)bytes / floatBytes).ToString("0.000", Invariant)}x)";
    }

    /// <summary>Static int8 QDQ; a null model when no layer can be quantized.</summary>
    private (ModelProto? Model, string Description) Static(ModelProto source, Dataset calibration, CheckSlice slice, QuantizeDetails details, StageContext context, string inputModel)
    {
        details.PerChannel = options.PerChannel;
        details.ActivationScheme = options.ActivationScheme;
        details.CalibrationMethod = options.CalibrationMethod;
        details.CalibrationSamples = calibration.Count;
        details.Percentile = options.CalibrationMethod == CalibrationMethod.Percentile ? options.Percentile : null;
        var plan = StaticQuantizer.Plan(source, options.ActivationScheme, n => !IsExcluded(n));
        details.Skipped = plan.Skipped;
        details.FoldedBatchNorms = plan.FoldedBatchNorms;
        var description = $"static int8 QDQ ({(options.PerChannel ? "per channel" : "per tensor")}, {Representation}, {Lower(options.ActivationScheme)} activations, {Lower(options.CalibrationMethod)} calibration on {calibration.Count} samples)";
        if (plan.Candidates.Count == 0)
        {
            Nothing(plan.Skipped, details, context, inputModel);
            return (null, $"{description}: nothing to quantize");
        }

        var ranges = ActivationCalibration.Collect(plan.Model, plan.TensorsToCalibrate, calibration, options.CalibrationMethod, options.Percentile, options.ActivationScheme);
        var (selection, sensitivity) = SelectLayers(plan.Candidates, layers => StaticQuantizer.Quantize(plan, ranges, layers, options.PerChannel, options.Target).Model, slice, details);
        return (selection.Model, $"{description}: {Layers(selection, sensitivity, plan.Candidates.Count, plan.Skipped)}");
    }

    private static (ModelProto? Model, string Description) Float16(ModelProto source, QuantizeDetails details)
    {
        var (model, report) = Float16Converter.Convert(source);
        details.Float16Nodes = report.Float16Nodes;
        details.Float32Nodes = report.Float32Nodes;
        details.Float16Initializers = report.Float16Initializers;
        details.ClampedValues = report.ClampedValues;
        var nodes = report.Float16Nodes.Count + report.Float32Nodes.Count;
        return (model, $"fp16: {report.Float16Initializers} initializers stored as float16, {report.Float16Nodes.Count}/{nodes} float nodes compute in float16 (the others have no float16 kernel in ONNX Runtime's CPU provider and run in float32 between Casts)");
    }

    /// <summary>
    /// Runs the sensitivity analysis (when asked for, or needed by keep_sensitive_float) and picks the layers
    /// to quantize; records both and what ONNX Runtime makes of the result.
    /// </summary>
    private (LayerSelection Selection, IReadOnlyList<LayerSensitivity> Sensitivity) SelectLayers(IReadOnlyList<string> candidates, Func<IReadOnlyCollection<string>, ModelProto> quantize, CheckSlice slice, QuantizeDetails details)
    {
        IReadOnlyList<LayerSensitivity> sensitivity = [];
        if (options.Sensitivity || options.KeepSensitiveFloat)
        {
            sensitivity = SensitivityAnalysis.Measure(candidates, quantize, slice);
            // Keys made from the layers' names.
            var entries = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var layer in sensitivity)
            {
                entries[$"sensitivity.{layer.Node}"] = Format(layer.AccuracyDrop);
                entries[$"sensitivity_agreement.{layer.Node}"] = Format(layer.Agreement);
            }

            details.Sensitivity = entries;
            details.SensitivityOrder = [.. sensitivity.Select(s => s.Node)];
        }

        LayerSelection selection;
        if (options.KeepSensitiveFloat)
        {
            selection = SensitivityAnalysis.KeepSensitiveFloat(candidates, sensitivity, quantize, slice, options.MaxAccuracyDrop);
        }
        else
        {
            var model = quantize(candidates);
            selection = new LayerSelection(model, candidates, [], slice.Score(model, "quantized model"));
        }

        details.Quantized = selection.Quantized;
        details.KeptFloat = selection.KeptFloat;
        var session = OnnxRunner.SessionGraph(selection.Model, "quantized model", GraphOptimizationLevel.ORT_ENABLE_EXTENDED);
        details.IntegerKernels = string.Join(", ", session.Graph.Node
            .Where(n => IntegerKernels.Contains(n.OpType))
            .GroupBy(n => n.OpType)
            .OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => $"{g.Key} x{g.Count()}"));
        return (selection, sensitivity);
    }

    private static void Nothing(IReadOnlyList<string> skipped, QuantizeDetails details, StageContext context, string inputModel)
    {
        context.Reporter.Report(Diagnostic.Warning(
            DiagnosticCodes.NothingToTransform,
            $"quantize: no layer could be quantized ({string.Join("; ", skipped)}); the model stays float.",
            inputModel));
        details.Quantized = [];
    }

    /// <summary>The int8 weight representation the target asks for, as the summary names it.</summary>
    private string Representation => options.Target == Int8Target.Any
        ? $"target any: s8 weights with |q_a| + |q_b| <= {SaturationCheck.MaxPairSum} per output channel, exact on every x86-64 CPU"
        : "target vnni: full-range s8 weights, exact only on VNNI CPUs";

    /// <summary>A classifier's activations: per tensor (ONNX Runtime's fused kernel) unless the recipe asks for rows.</summary>
    private ActivationScale Activations => options.ActivationScale == ActivationScaleChoice.Row ? ActivationScale.Row : ActivationScale.Tensor;

    private bool IsExcluded(NodeProto node) =>
        options.ExcludedNodes.Contains(node.Name) || options.ExcludedOpTypes.Contains(node.OpType);

    /// <summary>
    /// A seeded shuffle of the training data: the first calibration_samples rows calibrate (static mode), the
    /// next sensitivity_samples rows are the check slice. When the data is too small for both, the check slice
    /// re-uses calibration rows (and the details say so).
    /// </summary>
    private (Dataset? Calibration, Dataset Check, bool Overlap) Samples(Dataset train)
    {
        var order = Enumerable.Range(0, train.Count).ToArray();
        new Random(options.Seed).Shuffle(order);
        var calibrationCount = options.Mode == QuantizeMode.Static ? Math.Min(options.CalibrationSamples, train.Count) : 0;
        var checkRows = order.Skip(calibrationCount).Take(options.SensitivitySamples).ToArray();
        var overlap = checkRows.Length == 0;
        if (overlap)
        {
            checkRows = [.. order.Take(options.SensitivitySamples)];
        }

        return (
            calibrationCount > 0 ? train.Select([.. order.Take(calibrationCount)], $"{train.Source} (calibration)") : null,
            train.Select(checkRows, $"{train.Source} (quantize check)"),
            overlap);
    }

    /// <summary>
    /// What was quantized out of every layer considered (the candidates and those left float, whose reasons are
    /// listed), and the most sensitive layers (accuracy drop alone, in points; all of them are in the details).
    /// </summary>
    private static string Layers(LayerSelection selection, IReadOnlyList<LayerSensitivity> sensitivity, int candidates, IReadOnlyList<string> skipped)
    {
        const int Shown = 5;
        var text = $"{selection.Quantized.Count}/{candidates + skipped.Count} layers quantized";
        if (selection.KeptFloat.Count > 0)
        {
            text += $", kept in float by sensitivity: {string.Join(", ", selection.KeptFloat)}";
        }

        if (skipped.Count > 0)
        {
            text += $", left float: {string.Join("; ", skipped.Take(Shown))}" + (skipped.Count > Shown ? $"; {skipped.Count - Shown} more in the details" : "");
        }

        if (sensitivity.Count > 0)
        {
            text += $"; sensitivity (accuracy drop of each layer alone, points): {string.Join(", ", sensitivity.Take(Shown).Select(s => $"{s.Node} {Points(s.AccuracyDrop)}"))}"
                + (sensitivity.Count > Shown ? $", {sensitivity.Count - Shown} more in the details" : "");
        }

        return text;
    }

    private static string Format(double value) => value.ToString("0.0000", Invariant);

    private static string Percent(double value) => (value * 100).ToString("0.00", Invariant) + "%";

    private static string Points(double value) => (value * 100).ToString("0.0#", Invariant);

    private static string Lower(Enum choice) => choice.ToString().ToLowerInvariant();

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
