using System.Globalization;
using ModelCompression.Diagnostics;
using YamlDotNet.RepresentationModel;

namespace ModelCompression.Recipes;

/// <summary>
/// Reads typed values out of a YAML tree while collecting every problem (with file, line and column) instead
/// of stopping at the first, so a user sees all mistakes of a recipe at once.
/// </summary>
internal sealed class YamlSource(string file)
{
    public string File { get; } = file;

    public List<Diagnostic> Problems { get; } = [];

    public void Error(string code, string message, YamlNode? at) =>
        Problems.Add(Diagnostic.Error(code, message, File, Line(at), Column(at)));

    public static int? Line(YamlNode? node) => node is null ? null : (int)node.Start.Line;

    public static int? Column(YamlNode? node) => node is null ? null : (int)node.Start.Column;

    /// <summary>The mapping's keys, reporting any not in <paramref name="known"/> as MC1002 with the closest known key, or all of them.</summary>
    public void CheckKeys(YamlMappingNode mapping, string what, params string[] known)
    {
        foreach (var key in mapping.Children.Keys)
        {
            var name = (key as YamlScalarNode)?.Value ?? string.Empty;
            if (!known.Contains(name, StringComparer.Ordinal))
            {
                Error(DiagnosticCodes.RecipeUnknownKey, $"Unknown key '{name}' in {what}{Suggestions.Hint(name, known, "Known keys")}", key);
            }
        }
    }

    public static YamlNode? Get(YamlMappingNode mapping, string key) =>
        mapping.Children.TryGetValue(new YamlScalarNode(key), out var value) ? value : null;

    /// <summary>The value of <paramref name="key"/> in <paramref name="mapping"/>, or null.</summary>
    public static YamlNode? Get(YamlMappingNode mapping, RecipeKey key) => Get(mapping, key.Name);

    /// <summary>
    /// The text of <paramref name="key"/>; null when absent or not text. Quiet: <see cref="RecipeModelChecker"/> has
    /// reported a malformed value.
    /// </summary>
    public static string? Text(YamlMappingNode mapping, RecipeKey key) =>
        Get(mapping, key) is YamlScalarNode { Value: { Length: > 0 } value } ? value : null;

    /// <summary>The number of <paramref name="key"/>; null when absent or not a number (quiet, as <see cref="Text"/>).</summary>
    public static double? Number(YamlMappingNode mapping, RecipeKey key) =>
        Get(mapping, key) is YamlScalarNode { Value: { } text } ? ParseNumber(text) : null;

    /// <summary>The flag of <paramref name="key"/>; null when absent or not true/false (quiet, as <see cref="Text"/>).</summary>
    public static bool? Bool(YamlMappingNode mapping, RecipeKey key) =>
        Get(mapping, key) is YamlScalarNode { Value: { } text } ? ParseBool(text) : null;

    /// <summary>A finite number as recipes write it (invariant culture), or null.</summary>
    public static double? ParseNumber(string text) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && double.IsFinite(value) ? value : null;

    /// <summary>true/True/yes or false/False/no, or null.</summary>
    public static bool? ParseBool(string text) => text switch
    {
        "true" or "True" or "yes" => true,
        "false" or "False" or "no" => false,
        _ => null,
    };

    public YamlMappingNode? Mapping(YamlMappingNode parent, string key, string what, bool required)
    {
        var node = Get(parent, key);
        if (node is null)
        {
            if (required)
            {
                Error(DiagnosticCodes.RecipeMissingKey, $"{what} needs '{key}'.", parent);
            }

            return null;
        }

        if (node is YamlMappingNode mapping)
        {
            return mapping;
        }

        Error(DiagnosticCodes.RecipeInvalidValue, $"'{key}' in {what} must be a mapping (key: value lines).", node);
        return null;
    }

    public string? String(YamlMappingNode parent, string key, string what, bool required)
    {
        var node = Get(parent, key);
        if (node is null)
        {
            if (required)
            {
                Error(DiagnosticCodes.RecipeMissingKey, $"{what} needs '{key}'.", parent);
            }

            return null;
        }

        if (node is YamlScalarNode { Value: { Length: > 0 } value })
        {
            return value;
        }

        Error(DiagnosticCodes.RecipeInvalidValue, $"'{key}' in {what} must be a text value.", node);
        return null;
    }

    /// <summary>A path relative to the recipe's folder, made absolute; reports MC1005 when the file is missing.</summary>
    public string? ExistingFile(YamlMappingNode parent, string key, string what, string baseDirectory, bool required)
    {
        var value = String(parent, key, what, required);
        if (value is null)
        {
            return null;
        }

        return ExistingFile(value, Get(parent, key)!, $"{key} in {what}", baseDirectory);
    }

    /// <summary>
    /// <paramref name="value"/> (written at <paramref name="node"/>) relative to <paramref name="baseDirectory"/>, made
    /// absolute; reports MC1005 when the file is missing.
    /// </summary>
    public string? ExistingFile(string value, YamlNode node, string what, string baseDirectory)
    {
        var full = Path.GetFullPath(Path.Combine(baseDirectory, value));
        if (!System.IO.File.Exists(full))
        {
            Error(DiagnosticCodes.RecipeFileNotFound, $"File '{value}' ({what}) does not exist (looked for {full}).", node);
            return null;
        }

        return full;
    }
}
