using ModelCompression.Evaluation;
using ModelCompression.Recipes;
using ModelCompression.Stages;

namespace ModelCompression.Pipeline;

/// <summary>A recipe whose every stage passed the plan's checks: what runs, in order, and what each stage reads.</summary>
/// <param name="Stages">The recipe's stages in order, evaluate entries included.</param>
/// <param name="Evaluation">How evaluations measure: the last evaluate entry's options, or the defaults.</param>
public sealed record RunPlan(IReadOnlyList<PlannedStage> Stages, EvaluateOptions Evaluation);

/// <summary>One stage of a <see cref="RunPlan"/>.</summary>
/// <param name="Spec">The stage as the recipe writes it.</param>
/// <param name="Reads">What it reads besides its input model.</param>
/// <param name="Deferred">The checks left to the stage's start because an earlier stage can change its input graph, in words.</param>
public sealed record PlannedStage(StageSpec Spec, StageReads Reads, IReadOnlyList<string> Deferred)
{
    /// <summary>The stage to run; null for an entry that runs nothing (evaluate).</summary>
    public IStage? Create() => Spec.Descriptor.Create(Spec.Options, Spec.Site);
}
