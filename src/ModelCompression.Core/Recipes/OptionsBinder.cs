using System.Globalization;
using System.Reflection;
using ModelCompression.Common;
using ModelCompression.Diagnostics;
using YamlDotNet.RepresentationModel;

namespace ModelCompression.Recipes;

/// <summary>
/// Binds a YAML mapping to an options record whose properties carry <see cref="OptionAttribute"/>: unknown
/// keys, wrong types and out-of-range values are all reported with their line.
/// </summary>
internal static class OptionsBinder
{
    public static T Bind<T>(YamlMappingNode? mapping, string what, YamlSource source)
        where T : new() => (T)Bind(typeof(T), mapping, what, source);

    public static object Bind(Type type, YamlMappingNode? mapping, string what, YamlSource source)
    {
        var options = Activator.CreateInstance(type)!;
        if (mapping is null)
        {
            return options;
        }

        var properties = Describe(type);
        foreach (var (keyNode, valueNode) in mapping.Children)
        {
            var key = (keyNode as YamlScalarNode)?.Value ?? string.Empty;
            var match = properties.FirstOrDefault(p => p.Option.Name == key);
            if (match.Property is null)
            {
                source.Error(
                    DiagnosticCodes.RecipeUnknownKey,
                    $"Unknown option '{key}' for {what}{Suggestions.Hint(key, [.. properties.Select(p => p.Option.Name)], "Options")}",
                    keyNode);
                continue;
            }

            if (Convert(match.Property.PropertyType, match.Option, valueNode, out var value, out var why))
            {
                match.Property.SetValue(options, value);
            }
            else
            {
                source.Error(DiagnosticCodes.RecipeInvalidValue, $"Option '{key}' of {what}: {why}.", valueNode);
            }
        }

        return options;
    }

    /// <summary>
    /// The line of each option key in <paramref name="mapping"/>, by key, so a problem found later (by the plan, or a
    /// stage) points at the option it is about; empty without a mapping.
    /// </summary>
    public static IReadOnlyDictionary<string, int> Lines(YamlMappingNode? mapping)
    {
        var lines = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var key in mapping?.Children.Keys ?? [])
        {
            if (key is YamlScalarNode { Value: { } name } && YamlSource.Line(key) is { } line)
            {
                lines.TryAdd(name, line);
            }
        }

        return lines;
    }

    /// <summary>The recipe options of an options type, in declaration order.</summary>
    public static IReadOnlyList<(PropertyInfo Property, OptionAttribute Option)> Describe(Type type) =>
        [.. type.GetProperties()
            .Select(p => (Property: p, Option: p.GetCustomAttribute<OptionAttribute>()))
            .Where(p => p.Option is not null)
            .Select(p => (p.Property, p.Option!))];

    private static bool Convert(Type type, OptionAttribute option, YamlNode node, out object? value, out string why)
    {
        value = null;
        why = string.Empty;
        if (type.IsArray)
        {
            var element = type.GetElementType()!;
            if (node is not YamlSequenceNode sequence)
            {
                why = element == typeof(int) ? "expected a list of whole numbers, like [64, 32]"
                    : element == typeof(double) ? "expected a list of numbers, like [0.5, 0.9]"
                    : "expected a list, like [a, b]";
                return false;
            }

            var items = Array.CreateInstance(element, sequence.Children.Count);
            var index = 0;
            foreach (var item in sequence)
            {
                if (!Convert(element, option, item, out var one, out why))
                {
                    return false;
                }

                items.SetValue(one, index++);
            }

            value = items;
            return true;
        }

        if (node is not YamlScalarNode { Value: { } text })
        {
            why = "expected a single value";
            return false;
        }

        if (type == typeof(string))
        {
            value = text;
            return true;
        }

        if (type == typeof(bool))
        {
            if (bool.TryParse(text, out var flag))
            {
                value = flag;
                return true;
            }

            why = $"'{text}' is not true or false";
            return false;
        }

        if (type.IsEnum)
        {
            var names = Enum.GetNames(type).Select(n => n.ToLowerInvariant()).ToArray();
            var index = Array.IndexOf(names, text.ToLowerInvariant());
            if (index >= 0)
            {
                value = Enum.GetValues(type).GetValue(index);
                return true;
            }

            why = Suggestions.Closest(text, names) is [var close]
                ? $"'{text}' is not one of {string.Join(", ", names)} (did you mean '{close}'?)"
                : $"'{text}' is not one of {string.Join(", ", names)}";
            return false;
        }

        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var number) || !double.IsFinite(number))
        {
            why = $"'{text}' is not a number";
            return false;
        }

        if (type == typeof(int) && (number != Math.Floor(number) || number is < int.MinValue or > int.MaxValue))
        {
            why = $"'{text}' is not a whole number";
            return false;
        }

        var belowMin = option.MinExclusive ? number <= option.Min : number < option.Min;
        if (belowMin || number > option.Max)
        {
            var low = double.IsNaN(option.Min) ? "-inf" : option.Min.ToString(CultureInfo.InvariantCulture);
            var high = double.IsNaN(option.Max) ? "inf" : option.Max.ToString(CultureInfo.InvariantCulture);
            why = $"{text} is out of range {(option.MinExclusive ? "(" : "[")}{low}, {high}]";
            return false;
        }

        value = type == typeof(int) ? (object)(int)number : number;
        return true;
    }
}
