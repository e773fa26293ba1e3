using System.Globalization;
using ModelCompression.Diagnostics;
using YamlDotNet.RepresentationModel;

namespace ModelCompression.Recipes;

/// <summary>
/// Checks a recipe's YAML against its description (<see cref="RecipeKeys"/>, <see cref="DataKeys"/>): unknown keys
/// (MC1002, with "did you mean"), missing required keys (MC1004) and values of the wrong type or out of range (MC1003,
/// or the key's own code), each at its line. What depends on several keys at once (a format that keeps labels inside,
/// 'file' against 'train') is the binder's to check; it then reads values through the same keys, quietly, since
/// every malformed one is already reported.
/// </summary>
internal static class RecipeModelChecker
{
    /// <summary>The recipe's top level.</summary>
    public const string Root = "the recipe";

    /// <summary>
    /// Checks <paramref name="mapping"/>, called <paramref name="what"/> in messages (<see cref="Root"/> for the top
    /// level, else its dotted path such as data.csv), against <paramref name="shape"/>.
    /// </summary>
    public static void Check(YamlMappingNode mapping, MappingShape shape, string what, YamlSource source) =>
        CheckMapping(mapping, shape, what, source, DiagnosticCodes.RecipeInvalidValue);

    private static void CheckMapping(YamlMappingNode mapping, MappingShape shape, string what, YamlSource source, string code)
    {
        source.CheckKeys(mapping, what, shape.Names);
        foreach (var key in shape.Keys)
        {
            var node = YamlSource.Get(mapping, key.Name);
            if (node is null)
            {
                // An external value's reader reports it missing, with an example of what to write.
                if (key.Required && key.Shape is not ExternalShape)
                {
                    source.Error(DiagnosticCodes.RecipeMissingKey, $"{what} needs '{key.Name}'.", mapping);
                }

                continue;
            }

            var path = what == Root ? key.Name : $"{what}.{key.Name}";
            CheckValue(node, key.Shape, new Place(key.Name, what == Root ? null : what, path), source, key.InvalidCode == DiagnosticCodes.RecipeInvalidValue ? code : key.InvalidCode);
        }
    }

    /// <summary>Where a value sits: its label in messages ('threads', 'report[1]'), the mapping it is in (null at the top level), and its dotted path.</summary>
    private readonly record struct Place(string Label, string? In, string Path)
    {
        public string Must(string expected, YamlNode node) =>
            $"'{Label}'{(In is null ? string.Empty : $" in {In}")} must be {expected}, not {Written(node)}.";
    }

    private static void CheckValue(YamlNode node, ValueShape shape, Place place, YamlSource source, string code)
    {
        switch (shape)
        {
            case ExternalShape:
                // Checked by the reader of the [Option] records it is made of.
                return;
            case MappingShape mapping when node is YamlMappingNode given:
                CheckMapping(given, mapping, place.Path, source, code);
                return;
            case MapShape map when node is YamlMappingNode given:
                foreach (var (key, value) in given.Children)
                {
                    var name = (key as YamlScalarNode)?.Value ?? string.Empty;
                    CheckValue(value, map.Value, new Place(name, place.Path, $"{place.Path}.{name}"), source, code);
                }

                return;
            case ListShape list when node is YamlSequenceNode sequence:
                if (sequence.Children.Count < list.MinItems)
                {
                    source.Error(code, place.Must(Expected(list), node), node);
                }

                for (var i = 0; i < sequence.Children.Count; i++)
                {
                    var label = $"{place.Label}[{i}]";
                    CheckValue(sequence.Children[i], list.Item, place with { Label = label, Path = $"{place.Path}[{i}]" }, source, code);
                }

                return;
            case OneOfShape oneOf:
                CheckOneOf(node, oneOf, place, source, code);
                return;
            case EnumShape choice:
                CheckEnum(node, choice, place, source, code);
                return;
            case TextShape or BoolShape or NumberShape when node is YamlScalarNode { Value: { } text } && Accepts(shape, text):
                return;
            default:
                source.Error(code, place.Must(Expected(shape), node), node);
                return;
        }
    }

    private static void CheckOneOf(YamlNode node, OneOfShape shape, Place place, YamlSource source, string code)
    {
        var fits = shape.Choices.Where(c => Fits(c, node)).ToList();
        if (fits.Count == 0)
        {
            source.Error(code, place.Must(Expected(shape), node), node);
            return;
        }

        // Among several texts (a column name or number), the first that takes the value wins; if none does, the first one's complaint stands.
        foreach (var choice in fits.Skip(1).Any() ? fits : [])
        {
            var trial = new YamlSource(source.File);
            CheckValue(node, choice, place, trial, code);
            if (trial.Problems.Count == 0)
            {
                return;
            }
        }

        CheckValue(node, fits[0], place, source, code);
    }

    private static void CheckEnum(YamlNode node, EnumShape shape, Place place, YamlSource source, string code)
    {
        if (node is YamlScalarNode { Value: { } text } && shape.Accepts(text))
        {
            return;
        }

        var written = (node as YamlScalarNode)?.Value;
        if (written is { Length: > 0 } && shape.Invalid is { } invalid)
        {
            source.Error(code, invalid(written), node);
            return;
        }

        var names = shape.Values();
        var close = written is null ? [] : Suggestions.Closest(written, names);
        var message = place.Must(Expected(shape), node);
        source.Error(code, close.Count > 0 ? $"{message[..^1]} (did you mean {string.Join(" or ", close.Select(c => $"'{c}'"))}?)." : message, node);
    }

    /// <summary>Whether <paramref name="shape"/> is written as <paramref name="node"/> is (text, list or mapping).</summary>
    private static bool Fits(ValueShape shape, YamlNode node) => shape switch
    {
        MappingShape or MapShape => node is YamlMappingNode,
        ListShape => node is YamlSequenceNode,
        OneOfShape oneOf => oneOf.Choices.Any(c => Fits(c, node)),
        ExternalShape external => !external.MappingOnly || node is YamlMappingNode,
        _ => node is YamlScalarNode,
    };

    private static bool Accepts(ValueShape shape, string text) => shape switch
    {
        TextShape => text.Length > 0,
        BoolShape => YamlSource.ParseBool(text) is not null,
        NumberShape number => YamlSource.ParseNumber(text) is { } value
            && (!number.Whole || (value == Math.Floor(value) && value is >= int.MinValue and <= int.MaxValue))
            && !(number.MinExclusive ? value <= number.Min : value < number.Min)
            && !(value > number.Max),
        _ => false,
    };

    /// <summary>What a value of <paramref name="shape"/> is, in words, for "must be …".</summary>
    internal static string Expected(ValueShape shape) => shape switch
    {
        TextShape => "a text value",
        BoolShape => "true or false",
        NumberShape number => (number.Whole ? "a whole number" : "a number") + Range(number),
        EnumShape choice => $"one of {string.Join(", ", choice.Values())}",
        ListShape { MinItems: > 0 } => "a list of at least one value",
        ListShape => "a list, e.g. [a, b]",
        MappingShape or MapShape => "a mapping (key: value lines)",
        OneOfShape oneOf => string.Join(" or ", oneOf.Choices.Select(c => c.Description is { } d ? char.ToLowerInvariant(d[0]) + d[1..].TrimEnd('.') : Expected(c))),
        _ => "as described",
    };

    private static string Range(NumberShape number)
    {
        static string F(double v) => v.ToString(CultureInfo.InvariantCulture);
        return (double.IsNaN(number.Min), double.IsNaN(number.Max)) switch
        {
            (false, false) => $" from {F(number.Min)} to {F(number.Max)}",
            (false, true) => number.MinExclusive ? $" above {F(number.Min)}" : $", {F(number.Min)} or more",
            (true, false) => $", at most {F(number.Max)}",
            _ => string.Empty,
        };
    }

    private static string Written(YamlNode node) => node switch
    {
        YamlScalarNode { Value: { } text } => $"'{text}'",
        YamlSequenceNode { Children.Count: 0 } => "an empty list",
        YamlSequenceNode => "a list",
        YamlMappingNode => "a mapping",
        _ => "nothing",
    };
}
