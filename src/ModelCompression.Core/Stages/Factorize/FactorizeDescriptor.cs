using ModelCompression.Common;
using ModelCompression.Diagnostics;

namespace ModelCompression.Stages;

/// <summary>The factorize stage: low-rank (SVD) splits of large MatMul/Gemm weights, then recovery.</summary>
public sealed class FactorizeDescriptor : StageDescriptor<FactorizeOptions>
{
    /// <inheritdoc />
    public override string Kind => "factorize";

    /// <inheritdoc />
    protected override StageReads Reads(FactorizeOptions options) => PruneDescriptor.RecoveryReads(options);

    /// <inheritdoc />
    protected override string? TeacherUse(FactorizeOptions options) => options.ReadsTeacher ? PruneDescriptor.RecoveryTeacherUse : null;

    /// <inheritdoc />
    protected override bool ChangesGraph(FactorizeOptions options) => true;

    /// <inheritdoc />
    protected override IEnumerable<Diagnostic> Check(FactorizeOptions options, StageSite site, PlanView plan) => TrainingChecks.OutputWidth(plan);

    /// <inheritdoc />
    protected override void AddToKey(ContentHash key, FactorizeOptions options, StageContext context) => options.AddToKey(key, context);

    /// <inheritdoc />
    protected override IStage Create(FactorizeOptions options, StageSite site) => new FactorizeStage(options);
}
