using ModelCompression.Diagnostics;

namespace ModelCompression.Recipes;

/// <summary>
/// One key of a recipe mapping, described once: its name, what it means, the shape of its value and whether it
/// must be given. <see cref="RecipeModelChecker"/> checks a recipe against these (unknown keys with "did you mean",
/// missing keys, types, ranges, each at its line), <see cref="RecipeSchema"/> turns the same objects into the JSON
/// Schema, and the loader reads values through them, so no key name, range or description is written twice.
/// </summary>
/// <param name="Name">The key as recipes write it.</param>
/// <param name="Description">What it means, for the schema (editors show it on hover).</param>
/// <param name="Shape">The value it takes.</param>
internal sealed record RecipeKey(string Name, string Description, ValueShape Shape)
{
    /// <summary>Whether the mapping must have this key (reported MC1004 when absent).</summary>
    public bool Required { get; init; }

    /// <summary>The value used when the key is absent, for the schema's <c>default</c>; null when there is none to show.</summary>
    public object? Default { get; init; }

    /// <summary>
    /// The code for a wrong value anywhere under this key (MC1003 unless the key belongs to a family with its own
    /// code, such as gates).
    /// </summary>
    public string InvalidCode { get; init; } = DiagnosticCodes.RecipeInvalidValue;

    /// <summary><see cref="Default"/> as a <typeparamref name="T"/>: the value a binder takes when the key is absent.</summary>
    public T DefaultAs<T>() => (T)Convert.ChangeType(Default ?? throw new InvalidOperationException($"Recipe key '{Name}' has no default."), typeof(T), System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>The shape of a recipe value. <see cref="Description"/> tells the alternatives of a <see cref="OneOfShape"/> apart.</summary>
internal abstract record ValueShape
{
    /// <summary>What a value of this shape is, in a few words (for a one-of alternative); null when the key's description says it.</summary>
    public string? Description { get; init; }
}

/// <summary>Any non-empty text (a file name, a tensor name).</summary>
internal sealed record TextShape : ValueShape;

/// <summary>true or false.</summary>
internal sealed record BoolShape : ValueShape;

/// <summary>A number, optionally whole and within a range.</summary>
/// <param name="Whole">Whether only whole numbers are allowed.</param>
internal sealed record NumberShape(bool Whole) : ValueShape
{
    /// <summary>Smallest allowed value (inclusive unless <see cref="MinExclusive"/>); NaN for none.</summary>
    public double Min { get; init; } = double.NaN;

    /// <summary>Largest allowed value (inclusive); NaN for none.</summary>
    public double Max { get; init; } = double.NaN;

    /// <summary>True when <see cref="Min"/> itself is not allowed.</summary>
    public bool MinExclusive { get; init; }
}

/// <summary>
/// One name out of a list. The list is read when needed (<paramref name="Values"/>), so a catalog that grows (the
/// tasks, the data formats) is the one place its names live.
/// </summary>
/// <param name="Values">The accepted names, in the order messages list them.</param>
internal sealed record EnumShape(Func<IReadOnlyList<string>> Values) : ValueShape
{
    /// <summary>Whether case and surrounding blanks are ignored (as the command line does for the same names).</summary>
    public bool IgnoreCase { get; init; }

    /// <summary>
    /// The message for a name not in the list, given what was written; null for the generic one ("'key' must be one
    /// of …, not 'x'", with "did you mean").
    /// </summary>
    public Func<string, string>? Invalid { get; init; }

    /// <summary>Whether <paramref name="text"/> is one of the names.</summary>
    public bool Accepts(string text) => IgnoreCase
        ? Values().Contains(text.Trim(), StringComparer.OrdinalIgnoreCase)
        : Values().Contains(text, StringComparer.Ordinal);
}

/// <summary>A list of values of one shape.</summary>
/// <param name="Item">Each item's shape.</param>
internal sealed record ListShape(ValueShape Item) : ValueShape
{
    /// <summary>The fewest items allowed.</summary>
    public int MinItems { get; init; }
}

/// <summary>A mapping with a fixed set of keys.</summary>
/// <param name="Keys">The keys, in the order messages and the schema list them.</param>
internal sealed record MappingShape(IReadOnlyList<RecipeKey> Keys) : ValueShape
{
    /// <summary>The key called <paramref name="name"/>, or null.</summary>
    public RecipeKey? Find(string name) => Keys.FirstOrDefault(k => k.Name == name);

    /// <summary>Every key name, in order.</summary>
    public string[] Names => [.. Keys.Select(k => k.Name)];
}

/// <summary>A mapping whose keys the user names (e.g. tensor name to file), every value of one shape.</summary>
/// <param name="Value">Each value's shape.</param>
internal sealed record MapShape(ValueShape Value) : ValueShape;

/// <summary>
/// One of several shapes, told apart by the YAML node (text, list or mapping) and, among texts, by which one accepts
/// the value.
/// </summary>
/// <param name="Choices">The alternatives.</param>
internal sealed record OneOfShape(IReadOnlyList<ValueShape> Choices) : ValueShape;

/// <summary>
/// A value described elsewhere by its own [Option] records (the student, the stages): the checker leaves it to that
/// reader, and the schema asks <paramref name="Schema"/> for it.
/// </summary>
/// <param name="Schema">Writes the value's JSON Schema.</param>
internal sealed record ExternalShape(Func<System.Text.Json.Nodes.JsonObject> Schema) : ValueShape
{
    /// <summary>The value is always a mapping: among alternatives (<see cref="OneOfShape"/>) it takes mappings only.</summary>
    public bool MappingOnly { get; init; }
}
