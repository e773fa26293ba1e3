using ModelCompression.Common;
using ModelCompression.Diagnostics;

namespace ModelCompression.Stages;

/// <summary>The finetune stage: supervised training on the labels (the teacher's weights only with init_from_teacher).</summary>
public sealed class FinetuneDescriptor : StageDescriptor<FinetuneOptions>
{
    /// <inheritdoc />
    public override string Kind => "finetune";

    /// <inheritdoc />
    public override bool Trains => true;

    /// <inheritdoc />
    protected override StageReads Reads(FinetuneOptions options) => StageReads.Train | StageReads.Validation;

    /// <inheritdoc />
    protected override string? TeacherUse(FinetuneOptions options) =>
        options.InitFromTeacher ? "init_from_teacher copies the teacher's weights" : null;

    /// <inheritdoc />
    protected override IEnumerable<Diagnostic> Check(FinetuneOptions options, StageSite site, PlanView plan) =>
        TrainingChecks.OutputWidth(plan).Concat(TrainingChecks.EarlyStopping(Kind, options, site, plan));

    /// <inheritdoc />
    protected override void AddToKey(ContentHash key, FinetuneOptions options, StageContext context) =>
        Create(options, StageSite.None).AddToKey(key, context);

    /// <inheritdoc />
    protected override IStage Create(FinetuneOptions options, StageSite site) => new FinetuneStage(options);

    /// <inheritdoc />
    protected override string? GenerationProblem(FinetuneOptions options) =>
        null;

    /// <inheritdoc />
    protected override IGenerativeStage CreateGenerative(FinetuneOptions options, StageSite site) => new DecoderFinetuneStage(options);
}
