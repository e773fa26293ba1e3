using ModelCompression.Common;
using ModelCompression.Diagnostics;

namespace ModelCompression.Stages;

/// <summary>The sweep stage: one distill trial per grid point, the best by validation accuracy continues.</summary>
public sealed class SweepDescriptor : StageDescriptor<SweepOptions>
{
    /// <inheritdoc />
    public override string Kind => "sweep";

    /// <inheritdoc />
    public override bool Trains => true;

    /// <inheritdoc />
    protected override StageReads Reads(SweepOptions options) =>
        StageReads.Train | StageReads.Validation | StageReads.Unlabelled
        | (options.Hints.Length > 0 ? StageReads.TeacherFeatures : StageReads.None);

    /// <inheritdoc />
    protected override string? TeacherUse(SweepOptions options) => "a sweep's trials distil the teacher's soft targets";

    /// <inheritdoc />
    protected override IEnumerable<Diagnostic> Check(SweepOptions options, StageSite site, PlanView plan)
    {
        // Trials are ranked on a validation set, which the data's own validation split is (each trial validates on it).
        IEnumerable<Diagnostic> validation = options.ValidationFraction <= 0 && !plan.HasValidationSplit
            ? [site.Error(DiagnosticCodes.RecipeInvalidValue, "sweep: trials are ranked by validation accuracy; set validation_fraction above 0 or give the data a validation split.", "validation_fraction")]
            : [];
        return TrainingChecks.OutputWidth(plan).Concat(validation).Concat(TrainingChecks.EarlyStopping(Kind, options, site, plan)).Concat(TrainingChecks.Hints(Kind, options, site, plan));
    }

    /// <inheritdoc />
    protected override void AddToKey(ContentHash key, SweepOptions options, StageContext context) =>
        Create(options, StageSite.None).AddToKey(key, context);

    /// <inheritdoc />
    protected override IStage Create(SweepOptions options, StageSite site) => new SweepStage(options, site.Line);
}
