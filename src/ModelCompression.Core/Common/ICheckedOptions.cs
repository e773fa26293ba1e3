namespace ModelCompression.Common;

/// <summary>
/// Options whose values can conflict in ways a single option's range cannot say (e.g. n below m): the recipe
/// loader reports every problem at the stage's line before any work starts.
/// </summary>
public interface ICheckedOptions
{
    /// <summary>Problems with the options taken together, each in one sentence; empty when they fit.</summary>
    IReadOnlyList<string> Validate();
}
