using ModelCompression.Common;
using ModelCompression.Diagnostics;

namespace ModelCompression.Stages;

/// <summary>The distill stage: the student learns the teacher's soft targets (and feature hints) with the labels.</summary>
public sealed class DistillDescriptor : StageDescriptor<DistillOptions>
{
    /// <inheritdoc />
    public override string Kind => "distill";

    /// <inheritdoc />
    public override bool Trains => true;

    /// <inheritdoc />
    protected override StageReads Reads(DistillOptions options) =>
        StageReads.Train | StageReads.Validation
        | (options.Alpha > 0 || options.Hints.Length > 0 ? StageReads.Unlabelled : StageReads.None)
        | (options.Hints.Length > 0 ? StageReads.TeacherFeatures : StageReads.None);

    /// <inheritdoc />
    protected override string? TeacherUse(DistillOptions options) =>
        "distillation learns the teacher's soft targets (finetune trains on the labels alone)";

    /// <inheritdoc />
    protected override IEnumerable<Diagnostic> Check(DistillOptions options, StageSite site, PlanView plan) =>
        TrainingChecks.OutputWidth(plan).Concat(TrainingChecks.EarlyStopping(Kind, options, site, plan)).Concat(TrainingChecks.Hints(Kind, options, site, plan));

    /// <inheritdoc />
    protected override void AddToKey(ContentHash key, DistillOptions options, StageContext context) =>
        Create(options, StageSite.None).AddToKey(key, context);

    /// <inheritdoc />
    protected override IStage Create(DistillOptions options, StageSite site) => new DistillStage(options, site.Line);

    /// <inheritdoc />
    /// <remarks>Only a run that learned from the teacher (alpha above 0) has something to compare, and baseline: false turns it off.</remarks>
    protected override IStage? LabelsOnlyTwin(DistillOptions options, StageResult run) =>
        options is { Baseline: true, Alpha: > 0 } ? FinetuneStage.LabelsOnlyTwin(options, run) : null;

    /// <inheritdoc />
    protected override string? GenerationProblem(DistillOptions options) =>
        options.Hints.Length > 0 ? "feature hints apply to classifiers; a decoder learns from the teacher's answers and token distributions."
        : null;

    /// <inheritdoc />
    protected override IGenerativeStage CreateGenerative(DistillOptions options, StageSite site) => new DecoderDistillStage(options);

    /// <inheritdoc />
    protected override IGenerativeStage? GenerativeLabelsOnlyTwin(DistillOptions options, StageResult run) =>
        options.Baseline ? DecoderFinetuneStage.LabelsOnlyTwin(options, run) : null;
}
