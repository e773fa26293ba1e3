namespace ModelCompression.Common;

/// <summary>
/// Marks a property of a stage's options record as a recipe option. The same name and description feed
/// recipe validation, CLI help and docs.
/// </summary>
/// <param name="name">The recipe key (snake_case).</param>
/// <param name="description">What the option does, one sentence.</param>
[AttributeUsage(AttributeTargets.Property)]
public sealed class OptionAttribute(string name, string description) : Attribute
{
    /// <summary>The recipe key.</summary>
    public string Name { get; } = name;

    /// <summary>What the option does.</summary>
    public string Description { get; } = description;

    /// <summary>Smallest allowed value of a number (inclusive); NaN for none.</summary>
    public double Min { get; init; } = double.NaN;

    /// <summary>Largest allowed value of a number (inclusive); NaN for none.</summary>
    public double Max { get; init; } = double.NaN;

    /// <summary>True when <see cref="Min"/> itself is not allowed (e.g. a learning rate above 0).</summary>
    public bool MinExclusive { get; init; }
}
