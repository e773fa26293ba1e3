using ModelCompression.Common;
using ModelCompression.Diagnostics;

namespace ModelCompression.Stages;

/// <summary>The prune stage: magnitude, N:M, structured units, attention heads or transformer layers, then recovery.</summary>
public sealed class PruneDescriptor : StageDescriptor<PruneOptions>
{
    /// <summary>Why a recovering stage (prune, factorize) needs the recipe's teacher.</summary>
    internal const string RecoveryTeacherUse = "alpha above 0 mixes the teacher's soft targets into recovery training (alpha 0 recovers on the labels alone; recovery_teacher: dense learns from the unpruned model instead)";

    /// <inheritdoc />
    public override string Kind => "prune";

    /// <summary>What a recovering stage reads besides the teacher: the training data, a test probe, and its input's own soft targets with recovery_teacher: dense.</summary>
    internal static StageReads RecoveryReads(RecoveryOptions options) =>
        StageReads.Train | StageReads.Test
        | (options.Alpha > 0 && options.RecoveryTeacher == RecoveryTeacher.Dense ? StageReads.DenseModel : StageReads.None);

    /// <inheritdoc />
    protected override StageReads Reads(PruneOptions options) => RecoveryReads(options);

    /// <inheritdoc />
    protected override string? TeacherUse(PruneOptions options) => options.ReadsTeacher ? RecoveryTeacherUse : null;

    /// <inheritdoc />
    protected override bool ChangesGraph(PruneOptions options) =>
        options.Method is PruneMethod.Structured or PruneMethod.Heads or PruneMethod.Layers;

    /// <inheritdoc />
    protected override IEnumerable<Diagnostic> Check(PruneOptions options, StageSite site, PlanView plan)
    {
        foreach (var problem in TrainingChecks.OutputWidth(plan))
        {
            yield return problem;
        }

        if (options.Method == PruneMethod.Structured && options.Criterion == UnitCriterion.Taylor && !plan.TrainHasLabels)
        {
            yield return site.Error(DiagnosticCodes.DataSchemaMismatch, TaylorNeedsLabels, "criterion");
        }

        if (options.Method != PruneMethod.Layers)
        {
            yield break;
        }

        if (plan.Input is not { } model)
        {
            plan.Defer("prune: the layers named in keep_layers and layers_to_drop");
            yield break;
        }

        foreach (var problem in LayerProblems(options, model.TransformerLayers, site))
        {
            yield return problem;
        }
    }

    /// <inheritdoc />
    protected override void AddToKey(ContentHash key, PruneOptions options, StageContext context) => options.AddToKey(key, context);

    /// <inheritdoc />
    protected override IStage Create(PruneOptions options, StageSite site) => new PruneStage(options, site);

    /// <summary>What the taylor criterion says of training data without labels.</summary>
    internal const string TaylorNeedsLabels = "prune: the taylor criterion needs labelled training data.";

    /// <summary>
    /// keep_layers and layers_to_drop must name encoder layers the model has (MC2062 at the option's line); the plan
    /// and, when an earlier stage changes the graph, the stage itself check it.
    /// </summary>
    internal static IEnumerable<Diagnostic> LayerProblems(PruneOptions options, IReadOnlyList<int> layers, StageSite site)
    {
        if (layers.Count == 0)
        {
            var option = options.KeepLayers.Length > 0 ? "keep_layers" : "layers_to_drop";
            yield return site.Error(
                DiagnosticCodes.LayerDropInvalid,
                "Cannot prune transformer layers: the model has no encoder layers (nodes named encoder.layer{i}.* as the built-in transformer names them, or in a /layers.{i}/ or /layer.{i}/ scope as PyTorch exports name them).",
                option);
            yield break;
        }

        if (options.KeepLayers.Except(layers).ToList() is { Count: > 0 } unknown)
        {
            yield return site.Error(
                DiagnosticCodes.LayerDropInvalid,
                $"Cannot keep transformer layer(s) {string.Join(", ", unknown)}: the model has layers {string.Join(", ", layers)}.",
                "keep_layers");
        }

        if (options.LayersToDrop.Except(layers).Distinct().Order().ToList() is { Count: > 0 } missing)
        {
            yield return site.Error(
                DiagnosticCodes.LayerDropInvalid,
                $"Cannot drop transformer layer(s) {string.Join(", ", missing)}: the model has layers {string.Join(", ", layers)}.",
                "layers_to_drop");
        }
    }

    /// <inheritdoc />
    protected override string? GenerationProblem(PruneOptions options) => DecoderPruneStage.Problem(options);

    /// <inheritdoc />
    protected override IGenerativeStage CreateGenerative(PruneOptions options, StageSite site) => new DecoderPruneStage(options);
}
