using ModelCompression.Common;
using ModelCompression.Diagnostics;

namespace ModelCompression.Stages;

/// <summary>The generate stage (task: generation): the teacher writes answers to the prompts, which later stages train on.</summary>
public sealed class GenerateDescriptor : StageDescriptor<GenerateOptions>
{
    /// <inheritdoc />
    public override string Kind => "generate";

    /// <inheritdoc />
    public override bool KeepsModel => true;

    /// <inheritdoc />
    protected override StageReads Reads(GenerateOptions options) => StageReads.Train | StageReads.Unlabelled;

    /// <inheritdoc />
    protected override string? TeacherUse(GenerateOptions options) => "the teacher writes the answers";

    /// <inheritdoc />
    protected override IEnumerable<Diagnostic> Check(GenerateOptions options, StageSite site, PlanView plan) =>
        [site.Error(DiagnosticCodes.RecipeInvalidValue, "generate writes a generative teacher's answers; it applies to task: generation only.")];

    /// <inheritdoc />
    protected override void AddToKey(ContentHash key, GenerateOptions options, StageContext context) =>
        throw new InvalidOperationException("generate runs in task: generation recipes only (the plan refuses it elsewhere).");

    /// <inheritdoc />
    protected override IStage? Create(GenerateOptions options, StageSite site) =>
        throw new InvalidOperationException("generate runs in task: generation recipes only (the plan refuses it elsewhere).");

    /// <inheritdoc />
    protected override string? GenerationProblem(GenerateOptions options) =>
        options.SamplesPerPrompt > 1 && (options.Temperature == 0 || options.TopK == 1)
            ? $"samples_per_prompt {options.SamplesPerPrompt} with greedy decoding gives the same answer every time: set temperature above 0 (and top_k other than 1)."
            : null;

    /// <inheritdoc />
    protected override IGenerativeStage CreateGenerative(GenerateOptions options, StageSite site) => new GenerateStage(options);
}
