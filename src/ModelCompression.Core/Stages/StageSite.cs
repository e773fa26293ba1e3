using ModelCompression.Diagnostics;

namespace ModelCompression.Stages;

/// <summary>
/// Where a stage is written in its recipe: the file, the stage's line and the line of each option key, so a problem
/// with one option points at that option.
/// </summary>
/// <param name="RecipePath">The recipe file ("" for a stage made in code).</param>
/// <param name="Line">The stage's line (0 when unknown).</param>
/// <param name="OptionLines">The line of each option key the recipe gives, by key.</param>
public sealed record StageSite(string RecipePath, int Line, IReadOnlyDictionary<string, int> OptionLines)
{
    /// <summary>A stage made in code, not read from a recipe.</summary>
    public static StageSite None { get; } = new("", 0, new Dictionary<string, int>());

    /// <summary>The line of <paramref name="option"/> (its recipe key); the stage's line when the recipe does not give it.</summary>
    public int LineOf(string option) => OptionLines.TryGetValue(option, out var line) ? line : Line;

    /// <summary>An error about <paramref name="option"/> (null: about the stage), at its line of the recipe.</summary>
    public Diagnostic Error(string code, string message, string? option = null)
    {
        var line = option is null ? Line : LineOf(option);
        return Diagnostic.Error(code, message, RecipePath.Length == 0 ? null : RecipePath, line > 0 ? line : null);
    }
}
