using System.Diagnostics;
using System.Globalization;
using ModelCompression.Common;
using ModelCompression.Generation;
using ModelCompression.Onnx;
using ModelCompression.Pruning;
using ModelCompression.Torch.Training;

namespace ModelCompression.Stages;

/// <summary>
/// prune for task: generation: whole decoder layers (layers_to_drop or keep_layers; the cache inputs and outputs of a
/// dropped layer go with it and the later ones are renumbered) or whole attention heads (the same share of every
/// layer's heads, so the KV cache keeps one head count; the cache shapes shrink with them), then recovery: the pruned
/// decoder fine-tuned on the gold answers and the teacher's answers of an earlier generate stage.
/// </summary>
/// <param name="options">The stage's options.</param>
public sealed class DecoderPruneStage(PruneOptions options) : IGenerativeStage
{
    /// <inheritdoc />
    public string Kind => "prune";

    /// <inheritdoc />
    public void AddToKey(ContentHash key, GenerationContext context)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(context);
        key.Add("options", System.Text.Json.JsonSerializer.Serialize(options with { TensorBoardDirectory = null }))
            .Add("max_length", context.Settings.MaxLength.ToString(CultureInfo.InvariantCulture))
            .Add("teacher_answers", context.TeacherAnswersHash);
        context.AddDataToKey(key);
    }

    /// <inheritdoc />
    public StageResult Run(GenerationContext context, string inputModel, string outputModel)
    {
        ArgumentNullException.ThrowIfNull(context);
        var clock = Stopwatch.StartNew();
        var source = OnnxModelFile.Load(inputModel);
        var invariant = CultureInfo.InvariantCulture;
        Onnx.Proto.ModelProto pruned;
        string what;
        if (options.Method == PruneMethod.Layers)
        {
            var layers = DecoderLayerDropper.Layers(source);
            var drop = options.LayersToDrop.Length > 0 ? options.LayersToDrop : [.. layers.Except(options.KeepLayers)];
            pruned = DecoderLayerDropper.Drop(source, drop, inputModel);
            what = $"dropped decoder layers [{string.Join(", ", drop.Order())}] of {layers.Count}";
        }
        else
        {
            pruned = DecoderHeadPruner.Prune(source, options.Sparsity, inputModel);
            what = $"removed {options.Sparsity.ToString("P0", invariant)} of every layer's attention heads";
        }

        var details = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["method"] = options.Method.ToString().ToLowerInvariant(),
            ["parameters_before"] = Parameters(source).ToString(invariant),
            ["parameters_after"] = Parameters(pruned).ToString(invariant),
            ["layers_before"] = DecoderLayerDropper.Layers(source).Count.ToString(invariant),
            ["layers_after"] = DecoderLayerDropper.Layers(pruned).Count.ToString(invariant),
        };
        var summary = $"{what}: {details["parameters_before"]} -> {details["parameters_after"]} parameters";
        if (options.RecoveryEpochs == 0)
        {
            OnnxModelFile.Save(pruned, outputModel);
            return new StageResult(Kind, summary + ", no recovery", details, null, clock.Elapsed.TotalSeconds);
        }

        var train = DecoderTraining.GoldAndTeacherRows(context);

        var settings = options.Recovery(options.RecoveryEpochs).Training;
        var trained = DecoderTraining.Run(Kind, context, inputModel, train, new LanguageModelObjective(0), settings, teacher: null, pruned);
        OnnxModelFile.Save(trained.Model, outputModel);
        var recovery = DecoderTraining.Result(Kind, settings, train, trained, context.TeacherAnswers.Count > 0 ? $"recovery on {context.TeacherAnswers.Count} teacher answers too" : null, clock.Elapsed);
        var merged = new Dictionary<string, string>(recovery.Details, StringComparer.Ordinal);
        foreach (var (name, value) in details)
        {
            merged[name] = value;
        }

        return recovery with { Summary = $"{summary}; recovery {recovery.Summary}", Details = merged };
    }

    /// <summary>Why <paramref name="options"/> cannot prune a decoder; null when they can.</summary>
    internal static string? Problem(PruneOptions options) =>
        options.Method is not (PruneMethod.Layers or PruneMethod.Heads)
            ? $"decoders are pruned by whole layers or attention heads (method: layers or heads), not {options.Method.ToString().ToLowerInvariant()}."
            : options.Method == PruneMethod.Heads && !string.IsNullOrEmpty(options.Exclude)
                ? "exclude would leave layers with different head counts, and a decoder's KV cache has one: prune every layer's heads alike."
                : options.Alpha > 0
                    ? "recovery of a decoder trains on the gold and teacher answers (alpha 0); for token-level distillation, put a distill stage after prune."
                    : null;

    private static long Parameters(Onnx.Proto.ModelProto model) => model.Graph.Initializer.Sum(t => t.Dims.Aggregate(1L, (a, b) => a * b));
}
