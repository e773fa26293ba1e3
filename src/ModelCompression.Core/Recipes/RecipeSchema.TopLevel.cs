using System.Collections;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ModelCompression.Recipes;

/// <summary>The JSON Schema of the whole recipe, written from the same description the loader checks against.</summary>
public static partial class RecipeSchema
{
    /// <summary>
    /// A JSON Schema (draft 2020-12) of the recipe file, for editors: a YAML language server given it
    /// (<c># yaml-language-server: $schema=recipe.schema.json</c>) completes and checks every key, with the same
    /// descriptions, types, ranges and defaults the loader holds recipes to (<see cref="RecipeKeys"/>, the stage and
    /// student [Option] records). What depends on several keys at once (a format's own sections, 'file' against
    /// train/test) is the loader's alone.
    /// </summary>
    public static string JsonSchema()
    {
        var root = Shape(RecipeKeys.Shape);
        var schema = new JsonObject
        {
            ["$schema"] = "https://json-schema.org/draft/2020-12/schema",
            ["title"] = "ModelCompression recipe",
        };
        foreach (var (name, value) in root.ToList())
        {
            root.Remove(name);
            schema[name] = value;
        }

        return schema.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>
    /// The top level and the data section as a Markdown table, one row per key path (data.csv.label), from the same
    /// description as the schema; the student's and the stages' options have tables of their own.
    /// </summary>
    private static void KeysSection(StringBuilder text)
    {
        text.AppendLine("### Recipe keys");
        text.AppendLine();
        text.AppendLine("| key | type | default | description |");
        text.AppendLine("|---|---|---|---|");
        Rows(text, RecipeKeys.Shape, string.Empty);
        text.AppendLine();

        static void Rows(StringBuilder text, MappingShape shape, string prefix)
        {
            foreach (var key in shape.Keys)
            {
                var type = key.Shape is ExternalShape ? "see below" : RecipeModelChecker.Expected(key.Shape);
                text.AppendLine(CultureInfo.InvariantCulture, $"| `{prefix}{key.Name}` | {type} | {(key.Default is null ? string.Empty : $"`{Text(key.Default)}`")} | {key.Description} |");
                foreach (var inner in Inner(key.Shape))
                {
                    Rows(text, inner, $"{prefix}{key.Name}.");
                }
            }
        }

        static IEnumerable<MappingShape> Inner(ValueShape shape) => shape switch
        {
            MappingShape mapping => [mapping],
            ListShape list => Inner(list.Item),
            MapShape map => Inner(map.Value),
            OneOfShape oneOf => oneOf.Choices.SelectMany(Inner),
            _ => [],
        };

        static string Text(object value) => value switch
        {
            bool flag => flag ? "true" : "false",
            string word => word,
            IEnumerable list => $"[{string.Join(", ", list.Cast<object>().Select(Text))}]",
            IFormattable number => number.ToString(null, CultureInfo.InvariantCulture),
            _ => value.ToString() ?? string.Empty,
        };
    }

    /// <summary>The schema of one value of <paramref name="shape"/>.</summary>
    private static JsonObject Shape(ValueShape shape)
    {
        var schema = shape switch
        {
            TextShape => new JsonObject { ["type"] = "string" },
            BoolShape => new JsonObject { ["type"] = "boolean" },
            NumberShape number => Number(number),
            EnumShape choice => new JsonObject { ["enum"] = new JsonArray([.. choice.Values().Select(v => JsonValue.Create(v))]) },
            ListShape list => List(list),
            MappingShape mapping => Mapping(mapping),
            MapShape map => new JsonObject { ["type"] = "object", ["additionalProperties"] = Shape(map.Value) },
            OneOfShape oneOf => new JsonObject { ["anyOf"] = new JsonArray([.. oneOf.Choices.Select(Shape)]) },
            ExternalShape external => external.Schema(),
            _ => throw new ArgumentException($"No schema for {shape.GetType().Name}.", nameof(shape)),
        };
        if (shape.Description is { } description)
        {
            schema["description"] = description;
        }

        return schema;
    }

    private static JsonObject Mapping(MappingShape mapping)
    {
        var properties = new JsonObject();
        foreach (var key in mapping.Keys)
        {
            var value = Shape(key.Shape);
            // The key's own description wins over its shape's: the shape's tells one-of alternatives apart.
            value["description"] = key.Description;
            if (key.Default is { } fallback)
            {
                value["default"] = JsonSerializer.SerializeToNode(fallback);
            }

            properties[key.Name] = value;
        }

        var result = new JsonObject { ["type"] = "object" };
        if (mapping.Keys.Where(k => k.Required).Select(k => JsonValue.Create(k.Name)).ToArray() is { Length: > 0 } required)
        {
            result["required"] = new JsonArray(required);
        }

        result["additionalProperties"] = false;
        result["properties"] = properties;
        return result;
    }

    private static JsonObject List(ListShape list)
    {
        var result = new JsonObject { ["type"] = "array", ["items"] = Shape(list.Item) };
        if (list.MinItems > 0)
        {
            result["minItems"] = list.MinItems;
        }

        return result;
    }

    private static JsonObject Number(NumberShape number)
    {
        var result = new JsonObject { ["type"] = number.Whole ? "integer" : "number" };
        if (!double.IsNaN(number.Min))
        {
            result[number.MinExclusive ? "exclusiveMinimum" : "minimum"] = number.Min;
        }

        if (!double.IsNaN(number.Max))
        {
            result["maximum"] = number.Max;
        }

        return result;
    }
}
