using System.Globalization;
using System.Text.Json.Nodes;
using Json.Schema;
using ModelCompression.Recipes;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace ModelCompression.Core.Tests.Recipes;

/// <summary>
/// The recipe JSON Schema that editors use, checked the way an editor checks a file: with a JSON Schema validator,
/// against the YAML read as JSON (plain scalars typed as YAML types them).
/// </summary>
public sealed class RecipeJsonSchemaTests
{
    private static readonly Lazy<JsonSchema> Schema = new(() => JsonSchema.FromText(RecipeSchema.JsonSchema()));

    public static TheoryData<string> Recipes() =>
    [
        .. CookbookTests.Blocks(),
        File.ReadAllText(Repo.SampleRecipe),
        .. Directory.GetFiles(Path.Join(Repo.Root, "bench", "DistillParity"), "*.compress.yaml").Order().Select(File.ReadAllText),
    ];

    [Theory]
    [MemberData(nameof(Recipes))]
    public void Every_recipe_in_the_repository_is_valid(string recipe)
    {
        var result = Schema.Value.Evaluate(System.Text.Json.JsonSerializer.SerializeToElement(ToJson(recipe)), new EvaluationOptions { OutputFormat = OutputFormat.List });

        Assert.True(result.IsValid, Describe(result));
    }

    [Theory]
    [InlineData("  - distill: { epochs: 10, alpha: 1.5 }", "alpha above its maximum")]
    [InlineData("  - distill: { epoch: 10 }", "a misspelt option")]
    [InlineData("  - prune: { method: sideways }", "a value outside the enum")]
    [InlineData("  - distill: { hints: fc1.relu }", "a single text where a list is wanted")]
    [InlineData("  - shrink: { ratio: 0.5 }", "an unknown stage")]
    public void A_recipe_the_loader_refuses_is_invalid_here_too(string stage, string why)
    {
        var recipe = $"""
            data: {"{"} format: idx {"}"}
            student: {"{"} architecture: mlp, hidden: [64] {"}"}
            stages:
            {stage}
            """;

        var result = Schema.Value.Evaluate(System.Text.Json.JsonSerializer.SerializeToElement(ToJson(recipe)), new EvaluationOptions { OutputFormat = OutputFormat.List });

        Assert.False(result.IsValid, why);
    }

    [Theory]
    [InlineData("data: { format: parquet, train: a.csv, test: a.csv }", "a format not in the list")]
    [InlineData("data: { train: a.csv, test: a.csv, scale: half }", "a word where a number is wanted")]
    [InlineData("data: { train: a.csv, test: a.csv, shuffle: true }", "an unknown data key")]
    [InlineData("data: { file: a.jsonl, split: { test: 0.2 }, text: { tokenizer: cl100k_base, max_length: 0 } }", "max_length below its minimum")]
    [InlineData("data: { file: a.jsonl, split: { test: 0.2, seed: 1.5 } }", "a fraction where a whole seed is wanted")]
    [InlineData("data: { train: { inputs: a.npy, labels: b.npy, weights: c.npy }, test: a.csv }", "an unknown key in a split")]
    [InlineData("data: { train: a.csv, test: a.csv, normalize: { mean: 0.5 } }", "normalize without its std")]
    [InlineData("data: { train: a.csv, test: a.csv }\nteacher: []", "an empty list of teachers")]
    [InlineData("data: { train: a.csv, test: a.csv }\nthreads: -1", "threads below 0")]
    [InlineData("data: { train: a.csv, test: a.csv }\noutputs: { report: [pdf] }", "a report format not in the list")]
    public void A_top_level_or_data_mistake_the_loader_refuses_is_invalid_here_too(string head, string why)
    {
        var recipe = $"{head}\nstudent: {{ architecture: mlp }}\nstages: [finetune]\n";

        var result = Schema.Value.Evaluate(System.Text.Json.JsonSerializer.SerializeToElement(ToJson(recipe)), new EvaluationOptions { OutputFormat = OutputFormat.List });

        Assert.False(result.IsValid, why);
        Assert.True(
            Schema.Value.Evaluate(System.Text.Json.JsonSerializer.SerializeToElement(ToJson("data: { train: a.csv, test: a.csv }\nstudent: { architecture: mlp }\nstages: [finetune]\n")), new EvaluationOptions()).IsValid,
            "the same recipe without the mistake is valid");
    }

    [Fact]
    public void Options_carry_the_same_descriptions_ranges_and_defaults_as_the_loader()
    {
        var schema = JsonNode.Parse(RecipeSchema.JsonSchema())!;
        var distill = schema["properties"]!["stages"]!["items"]!["oneOf"]!.AsArray()
            .Single(s => s!["properties"]?["distill"] is not null)!["properties"]!["distill"]!["properties"]!;

        Assert.Equal(0.9, distill["alpha"]!["default"]!.GetValue<double>());
        Assert.Equal(1, distill["alpha"]!["maximum"]!.GetValue<double>());
        Assert.Equal(0, distill["temperature"]!["exclusiveMinimum"]!.GetValue<double>());
        Assert.Equal("array", distill["hints"]!["type"]!.GetValue<string>());
        Assert.Equal("adam", distill["optimizer"]!["default"]!.GetValue<string>());
        Assert.StartsWith("Weight of the teacher's soft targets", distill["alpha"]!["description"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public void The_committed_schema_is_the_one_the_engine_writes()
    {
        // Editors read docs/recipe.schema.json; regenerate it with 'dotnet compress schema > docs/recipe.schema.json'.
        var committed = File.ReadAllText(Path.Join(Repo.Root, "docs", "recipe.schema.json")).ReplaceLineEndings("\n").TrimEnd();
        Assert.Equal(RecipeSchema.JsonSchema().ReplaceLineEndings("\n").TrimEnd(), committed);
    }

    /// <summary>YAML as JSON, with plain scalars typed as YAML 1.2 types them (numbers, booleans, null).</summary>
    private static JsonNode? ToJson(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        return Convert(stream.Documents[0].RootNode);
    }

    private static JsonNode? Convert(YamlNode node) => node switch
    {
        YamlMappingNode mapping => new JsonObject(mapping.Children.Select(p => KeyValuePair.Create(((YamlScalarNode)p.Key).Value!, Convert(p.Value)))),
        YamlSequenceNode sequence => new JsonArray([.. sequence.Children.Select(Convert)]),
        YamlScalarNode { Style: ScalarStyle.Plain, Value: var text } => Plain(text),
        YamlScalarNode scalar => JsonValue.Create(scalar.Value),
        _ => throw new ArgumentException($"Unexpected YAML node {node.NodeType}."),
    };

    private static JsonNode? Plain(string? text) =>
        text is null or "" or "null" or "~" ? null
        : text is "true" or "false" ? JsonValue.Create(text == "true")
        : long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var whole) ? JsonValue.Create(whole)
        : double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var number) ? JsonValue.Create(number)
        : JsonValue.Create(text);

    private static string Describe(EvaluationResults result) =>
        string.Join("; ", (result.Details ?? []).Where(d => d.Errors is { Count: > 0 }).Select(d => $"{d.InstanceLocation}: {string.Join(", ", d.Errors!.Values)}"));
}
