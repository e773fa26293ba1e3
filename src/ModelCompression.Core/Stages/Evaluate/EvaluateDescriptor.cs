using ModelCompression.Common;
using ModelCompression.Evaluation;

namespace ModelCompression.Stages;

/// <summary>
/// The evaluate entry: no stage runs for it (every stage's output is evaluated); it sets how evaluations measure
/// (the last entry of the recipe wins).
/// </summary>
public sealed class EvaluateDescriptor : StageDescriptor<EvaluateOptions>
{
    /// <inheritdoc />
    public override string Kind => "evaluate";

    /// <inheritdoc />
    protected override StageReads Reads(EvaluateOptions options) => StageReads.Test;

    /// <inheritdoc />
    protected override void AddToKey(ContentHash key, EvaluateOptions options, StageContext context) =>
        throw new InvalidOperationException("evaluate runs no stage, so it has no stage cache entry; its options are part of every evaluation's key.");

    /// <inheritdoc />
    protected override IStage? Create(EvaluateOptions options, StageSite site) => null;

    /// <inheritdoc />
    /// <remarks>For task: generation every stage's decoder is evaluated on the test conversations; the options here do not apply.</remarks>
    protected override string? GenerationProblem(EvaluateOptions options) => null;
}
