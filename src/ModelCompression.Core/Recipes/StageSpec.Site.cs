using ModelCompression.Stages;

namespace ModelCompression.Recipes;

/// <summary>Where the recipe writes a stage, and its entry in the stage catalog.</summary>
public sealed partial record StageSpec
{
    private static readonly IReadOnlyDictionary<string, int> NoLines = new Dictionary<string, int>();

    /// <summary>The recipe file the stage is written in.</summary>
    public string RecipePath { get; init; } = "";

    /// <summary>The line of each option key the recipe gives the stage, by key (a flow mapping's keys share the stage's line).</summary>
    public IReadOnlyDictionary<string, int> OptionLines { get; init; } = NoLines;

    /// <summary>Where errors about the stage and its options point.</summary>
    public StageSite Site => new(RecipePath, Line, OptionLines);

    /// <summary>The stage kind's descriptor.</summary>
    public IStageDescriptor Descriptor => StageCatalog.Get(Kind);
}
