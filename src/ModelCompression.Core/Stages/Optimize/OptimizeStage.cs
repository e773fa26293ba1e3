using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.OnnxRuntime;
using ModelCompression.Common;
using ModelCompression.Diagnostics;
using ModelCompression.Inference;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Stages;

/// <summary>
/// Rewrites the model with ONNX Runtime's own graph optimizer (offline, as ONNX Runtime does at session start) and
/// keeps the result: BatchNormalization folded into the Conv before it, constants folded, Identity and Dropout
/// gone. A PyTorch export often carries all three, and a smaller graph loads faster and leaves later stages
/// (quantize's calibration and sensitivity runs) less to do. The output must give the input model's outputs on a
/// slice of the training data, or it is rejected (MC2061).
/// </summary>
public sealed class OptimizeStage(OptimizeOptions options) : IStage
{
    /// <inheritdoc />
    public string Kind => "optimize";

    /// <inheritdoc />
    public void AddToKey(ContentHash key, StageContext context) =>
        key.Add("options", System.Text.Json.JsonSerializer.Serialize(options)).Add("data", context.DataHash);

    /// <inheritdoc />
    public StageResult Run(StageContext context, string inputModel, string outputModel)
    {
        var clock = Stopwatch.StartNew();
        var input = OnnxModelFile.Load(inputModel);
        var level = options.Level == OptimizeLevel.Basic ? GraphOptimizationLevel.ORT_ENABLE_BASIC : GraphOptimizationLevel.ORT_ENABLE_EXTENDED;
        var optimized = OnnxRunner.SessionGraph(input, "the model to optimize", level);
        OnnxModelFile.Save(optimized, outputModel);
        TransformedModelCheck.Verify(outputModel, context, Kind);
        var (difference, samples) = OutputDifference(input, optimized, context);
        if (difference > options.MaxDifference)
        {
            throw CompressionException.Error(
                DiagnosticCodes.TransformedModelRejected,
                string.Create(CultureInfo.InvariantCulture, $"{Kind}: the optimized model was not accepted: its outputs differ from the input model's by {difference:G3} (relative to the largest output) on {samples} training samples, above max_difference {options.MaxDifference:G3}."),
                outputModel);
        }

        var details = new OptimizeDetails
        {
            Level = options.Level,
            NodesBefore = input.Graph.Node.Count,
            NodesAfter = optimized.Graph.Node.Count,
            OpTypesChanged = OpTypeChanges(input, optimized),
            InitializersBefore = input.Graph.Initializer.Count,
            InitializersAfter = optimized.Graph.Initializer.Count,
            SizeBytesBefore = new FileInfo(inputModel).Length,
            SizeBytesAfter = new FileInfo(outputModel).Length,
            CheckSamples = samples,
            MaxDifference = difference,
        };
        var summary = string.Create(
            CultureInfo.InvariantCulture,
            $"ONNX Runtime {options.Level.ToString().ToLowerInvariant()} optimizations: {details.NodesBefore} -> {details.NodesAfter} nodes{(details.OpTypesChanged.Count > 0 ? $" ({string.Join(", ", details.OpTypesChanged)})" : "")}; outputs within {difference:G3} of the input model's on {samples} training samples");
        return new StageResult(Kind, summary, StageDetails.Of(details), null, clock.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// The largest difference between the two models' outputs on the first training samples, relative to the largest
    /// output magnitude of the input model, and how many samples it was measured on. Both run with ONNX Runtime's
    /// optimizations off: with them on, the input model would be optimized the same way at session start, and the
    /// check would compare the optimizer's output with itself.
    /// </summary>
    private (double Difference, int Samples) OutputDifference(ModelProto input, ModelProto optimized, StageContext context)
    {
        var slice = context.Train.Select([.. Enumerable.Range(0, Math.Min(options.CheckSamples, context.Train.Count))], $"{Kind} check");
        float[] before, after;
        using (var runner = OnnxRunner.FromModel(input, "the input model", threads: 1, GraphOptimizationLevel.ORT_DISABLE_ALL))
        {
            before = runner.Run(slice, 64);
        }

        using (var runner = OnnxRunner.FromModel(optimized, "the optimized model", threads: 1, GraphOptimizationLevel.ORT_DISABLE_ALL))
        {
            after = runner.Run(slice, 64);
        }

        var scale = before.Select(v => Math.Abs((double)v)).DefaultIfEmpty(0).Max();
        var largest = before.Zip(after, (b, a) => Math.Abs((double)b - a)).DefaultIfEmpty(0).Max();
        return (scale > 0 ? largest / scale : largest, slice.Count);
    }

    /// <summary>How the count of each op type changed ("BatchNormalization -2", "FusedConv +2"), op types in name order.</summary>
    private static IReadOnlyList<string> OpTypeChanges(ModelProto before, ModelProto after)
    {
        static Dictionary<string, int> Count(ModelProto model) => model.Graph.Node
            .GroupBy(n => n.Domain is "" or "ai.onnx" ? n.OpType : $"{n.Domain}.{n.OpType}")
            .ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        var (was, now) = (Count(before), Count(after));
        return [.. was.Keys.Union(now.Keys).Order(StringComparer.Ordinal)
            .Select(op => (Op: op, Change: now.GetValueOrDefault(op) - was.GetValueOrDefault(op)))
            .Where(c => c.Change != 0)
            .Select(c => string.Create(CultureInfo.InvariantCulture, $"{c.Op} {c.Change:+0;-0}"))];
    }
}

/// <summary>What the optimize stage did, as report.json shows it.</summary>
internal sealed record OptimizeDetails
{
    [Detail("level")]
    public OptimizeLevel Level { get; init; }

    [Detail("nodes_before")]
    public int NodesBefore { get; init; }

    [Detail("nodes_after")]
    public int NodesAfter { get; init; }

    [Detail("op_types_changed")]
    public IReadOnlyList<string> OpTypesChanged { get; init; } = [];

    [Detail("initializers_before")]
    public int InitializersBefore { get; init; }

    [Detail("initializers_after")]
    public int InitializersAfter { get; init; }

    [Detail("size_bytes_before")]
    public long SizeBytesBefore { get; init; }

    [Detail("size_bytes_after")]
    public long SizeBytesAfter { get; init; }

    [Detail("check_samples")]
    public int CheckSamples { get; init; }

    [Detail("max_difference", Format = "G3")]
    public double MaxDifference { get; init; }
}
