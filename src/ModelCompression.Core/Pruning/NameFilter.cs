using System.IO.Enumeration;

namespace ModelCompression.Pruning;

/// <summary>
/// Names a transform must leave alone: a comma-separated list of initializer or node names, each of which may
/// use <c>*</c> (any run of characters) and <c>?</c> (one character), e.g. <c>classifier.*, fc1.weight</c>.
/// </summary>
public sealed class NameFilter
{
    private readonly string[] _patterns;

    /// <summary>Parses <paramref name="patterns"/>; null or blank excludes nothing.</summary>
    public NameFilter(string? patterns)
    {
        _patterns = string.IsNullOrWhiteSpace(patterns)
            ? []
            : [.. patterns.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];
    }

    /// <summary>A filter that matches nothing.</summary>
    public static NameFilter None { get; } = new(null);

    /// <summary>The patterns, as given.</summary>
    public IReadOnlyList<string> Patterns => _patterns;

    /// <summary>True when any of <paramref name="names"/> matches any pattern (case-sensitive, as ONNX names are).</summary>
    public bool Matches(params string[] names) =>
        _patterns.Any(pattern => names.Any(name => name.Length > 0 && FileSystemName.MatchesSimpleExpression(pattern, name, ignoreCase: false)));
}
