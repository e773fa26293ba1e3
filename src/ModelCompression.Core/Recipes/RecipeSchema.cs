using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.Json;
using System.Text;
using ModelCompression.Architectures;
using ModelCompression.Common;
using ModelCompression.Generation;
using ModelCompression.Stages;

namespace ModelCompression.Recipes;

/// <summary>
/// Describes every recipe option from the same [Option] attributes that validation uses, so help text and docs
/// cannot drift from what the loader accepts.
/// </summary>
public static partial class RecipeSchema
{
    /// <summary>One option: its recipe key, type, default and description.</summary>
    /// <param name="Name">The recipe key.</param>
    /// <param name="Type">The value type as a user writes it (number, whole number, true/false, list, one of …).</param>
    /// <param name="Default">The default value as text.</param>
    /// <param name="Description">What the option does.</param>
    public sealed record OptionInfo(string Name, string Type, string Default, string Description);

    /// <summary>The options of every stage, by stage kind.</summary>
    public static IReadOnlyDictionary<string, IReadOnlyList<OptionInfo>> Stages() =>
        StageCatalog.All.ToDictionary(s => s.Kind, s => Options(s.OptionsType));

    /// <summary>The options of every built-in student architecture, by name.</summary>
    public static IReadOnlyDictionary<string, IReadOnlyList<OptionInfo>> Architectures() =>
        ArchitectureRegistry.All.ToDictionary(a => a.Name, a => Options(a.OptionsType));

    /// <summary>All of it as Markdown tables.</summary>
    public static string Markdown()
    {
        var text = new StringBuilder();
        KeysSection(text);
        Section(text, "Section", new Dictionary<string, IReadOnlyList<OptionInfo>> { [RecipeKeys.Generation.Name] = Options(typeof(GenerationSettings)) });
        Section(text, "Teacher", new Dictionary<string, IReadOnlyList<OptionInfo>> { ["endpoint"] = Options(typeof(Teachers.EndpointTeacherOptions)) });
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

    /// <summary>The schema of 'stages': a list of stages, each a kind alone or a kind with its options.</summary>
    internal static JsonObject StagesSchema()
    {
        var stageItems = new JsonArray { new JsonObject { ["enum"] = new JsonArray([.. StageCatalog.Kinds.Select(k => JsonValue.Create(k))]) } };
        foreach (var (kind, type) in StageCatalog.All.Select(d => (d.Kind, d.OptionsType)))
        {
            stageItems.Add(new JsonObject
            {
                ["type"] = "object",
                ["properties"] = new JsonObject { [kind] = OptionsObject(type, null) },
                ["required"] = new JsonArray(kind),
                ["additionalProperties"] = false,
            });
        }

        return new JsonObject { ["type"] = "array", ["items"] = new JsonObject { ["oneOf"] = stageItems } };
    }

    /// <summary>The schema of 'generation': the <see cref="GenerationSettings"/> options.</summary>
    internal static JsonObject GenerationSchema() => OptionsObject(typeof(GenerationSettings), null);

    /// <summary>The schema of an endpoint 'teacher': the <see cref="Teachers.EndpointTeacherOptions"/> options.</summary>
    internal static JsonObject EndpointTeacherSchema() => OptionsObject(typeof(Teachers.EndpointTeacherOptions), null);

    /// <summary>The schema of 'student': an ONNX file, or a built-in architecture with its options.</summary>
    internal static JsonObject StudentSchema()
    {
        var students = new JsonArray { Shape(RecipeKeys.StudentEntry.File) };
        foreach (var architecture in ArchitectureRegistry.All)
        {
            students.Add(OptionsObject(architecture.OptionsType, architecture.Name));
        }

        return new JsonObject { ["oneOf"] = students };
    }

    /// <summary>An object of <paramref name="type"/>'s options; with <paramref name="architecture"/>, also the architecture key naming it.</summary>
    private static JsonObject OptionsObject(Type type, string? architecture)
    {
        var defaults = Activator.CreateInstance(type);
        var properties = new JsonObject();
        if (architecture is not null)
        {
            properties[RecipeKeys.StudentEntry.Architecture.Name] = new JsonObject { ["const"] = architecture };
        }

        foreach (var (property, option) in OptionsBinder.Describe(type))
        {
            var value = ValueSchema(property.PropertyType, option);
            value["description"] = option.Description;
            if (property.GetValue(defaults) is { } fallback && JsonSerializer.SerializeToNode(fallback is Enum e ? e.ToString().ToLowerInvariant() : fallback) is { } node)
            {
                value["default"] = node;
            }

            properties[option.Name] = value;
        }

        var result = new JsonObject { ["type"] = "object", ["properties"] = properties, ["additionalProperties"] = false };
        if (architecture is not null)
        {
            result["required"] = new JsonArray(RecipeKeys.StudentEntry.Architecture.Name);
        }

        return result;
    }

    private static JsonObject ValueSchema(Type type, OptionAttribute option)
    {
        if (type.IsArray)
        {
            return new JsonObject { ["type"] = "array", ["items"] = ValueSchema(type.GetElementType()!, option) };
        }

        if (type.IsEnum)
        {
            return new JsonObject { ["enum"] = new JsonArray([.. Enum.GetNames(type).Select(n => JsonValue.Create(n.ToLowerInvariant()))]) };
        }

        if (type == typeof(bool))
        {
            return new JsonObject { ["type"] = "boolean" };
        }

        if (type != typeof(int) && type != typeof(double))
        {
            return new JsonObject { ["type"] = "string" };
        }

        var number = new JsonObject { ["type"] = type == typeof(int) ? "integer" : "number" };
        if (!double.IsNaN(option.Min))
        {
            number[option.MinExclusive ? "exclusiveMinimum" : "minimum"] = option.Min;
        }

        if (!double.IsNaN(option.Max))
        {
            number["maximum"] = option.Max;
        }

        return number;
    }

    private static string TypeName(Type type) =>
        type == typeof(int) ? "whole number"
        : type == typeof(double) ? "number"
        : type == typeof(bool) ? "true/false"
        : type == typeof(int[]) ? "list of whole numbers"
        : type == typeof(double[]) ? "list of numbers"
        : type == typeof(string[]) ? "list of text"
        : type.IsEnum ? "one of " + string.Join(", ", Enum.GetNames(type).Select(n => n.ToLowerInvariant()))
        : "text";

    private static string Format(object? value) => value switch
    {
        null => "",
        int[] list => $"[{string.Join(", ", list)}]",
        double[] list => $"[{string.Join(", ", list.Select(v => v.ToString(CultureInfo.InvariantCulture)))}]",
        string[] list => $"[{string.Join(", ", list)}]",
        bool flag => flag ? "true" : "false",
        Enum e => e.ToString().ToLowerInvariant(),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };
}
