using System.Globalization;
using System.Text;
using ModelCompression.Architectures;

namespace ModelCompression.Recipes;

/// <summary>
/// Describes every recipe option from the same [Option] attributes that validation uses, so help text and docs
/// cannot drift from what the loader accepts.
/// </summary>
public static class RecipeSchema
{
    /// <summary>One option: its recipe key, type, default and description.</summary>
    /// <param name="Name">The recipe key.</param>
    /// <param name="Type">The value type as a user writes it (number, whole number, true/false, list, one of …).</param>
    /// <param name="Default">The default value as text.</param>
    /// <param name="Description">What the option does.</param>
    public sealed record OptionInfo(string Name, string Type, string Default, string Description);

    /// <summary>The options of every stage, by stage kind.</summary>
    public static IReadOnlyDictionary<string, IReadOnlyList<OptionInfo>> Stages() =>
        RecipeLoader.StageOptionTypes.ToDictionary(s => s.Key, s => Options(s.Value));

    /// <summary>The options of every built-in student architecture, by name.</summary>
    public static IReadOnlyDictionary<string, IReadOnlyList<OptionInfo>> Architectures() =>
        ArchitectureRegistry.All.ToDictionary(a => a.Name, a => Options(a.OptionsType));

    /// <summary>All of it as Markdown tables.</summary>
    public static string Markdown()
    {
        var text = new StringBuilder();
        Section(text, "Stage", Stages());
        Section(text, "Student architecture", Architectures());
        return text.ToString();
    }

    private static void Section(StringBuilder text, string what, IReadOnlyDictionary<string, IReadOnlyList<OptionInfo>> groups)
    {
        foreach (var (name, options) in groups)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"### {what} `{name}`");
            text.AppendLine();
            text.AppendLine("| option | type | default | description |");
            text.AppendLine("|---|---|---|---|");
            foreach (var option in options)
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"| `{option.Name}` | {option.Type} | `{option.Default}` | {option.Description} |");
            }

            text.AppendLine();
        }
    }

    private static IReadOnlyList<OptionInfo> Options(Type type)
    {
        var defaults = Activator.CreateInstance(type);
        return [.. OptionsBinder.Describe(type).Select(p => new OptionInfo(
            p.Option.Name,
            TypeName(p.Property.PropertyType),
            Format(p.Property.GetValue(defaults)),
            p.Option.Description))];
    }

    private static string TypeName(Type type) =>
        type == typeof(int) ? "whole number"
        : type == typeof(double) ? "number"
        : type == typeof(bool) ? "true/false"
        : type == typeof(int[]) ? "list of whole numbers"
        : type == typeof(double[]) ? "list of numbers"
        : type.IsEnum ? "one of " + string.Join(", ", Enum.GetNames(type).Select(n => n.ToLowerInvariant()))
        : "text";

    private static string Format(object? value) => value switch
    {
        null => "",
        int[] list => $"[{string.Join(", ", list)}]",
        double[] list => $"[{string.Join(", ", list.Select(v => v.ToString(CultureInfo.InvariantCulture)))}]",
        bool flag => flag ? "true" : "false",
        Enum e => e.ToString().ToLowerInvariant(),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };
}
