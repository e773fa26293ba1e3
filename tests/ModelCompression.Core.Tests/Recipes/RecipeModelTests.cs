using System.Text.Json.Nodes;
using Json.Schema;
using ModelCompression.Diagnostics;
using ModelCompression.Recipes;
using YamlDotNet.RepresentationModel;

namespace ModelCompression.Core.Tests.Recipes;

/// <summary>
/// The recipe's top level and data section are described once (<see cref="RecipeKeys"/>, <see cref="DataKeys"/>):
/// every key of that description is in the JSON Schema where it belongs and is accepted by the loader's check, and the
/// check's messages name the key, its place and its line.
/// </summary>
public sealed class RecipeModelTests : IDisposable
{
    private const string Data = "data: { format: idx, train: { inputs: teacher.onnx, labels: teacher.onnx }, test: { inputs: teacher.onnx, labels: teacher.onnx } }\n";
    private const string Rest = "teacher: teacher.onnx\nstudent: { architecture: mlp }\nstages: [distill]\n";

    private readonly TempDir _dir = new();

    public RecipeModelTests() => File.WriteAllBytes(_dir.File("teacher.onnx"), [0]);

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Every_key_of_the_description_is_in_the_schema_with_its_description_and_required_ness()
    {
        var schema = JsonNode.Parse(RecipeSchema.JsonSchema())!.AsObject();
        var seen = new List<string>();

        Walk(RecipeKeys.Shape, [schema], "", seen);

        Assert.Equal(Paths(RecipeKeys.Shape, "").Order(StringComparer.Ordinal), seen.Order(StringComparer.Ordinal));
        Assert.Contains("data.text.tokenizer.wordpiece", seen);
        Assert.Contains("teacher.weight", seen);
        Assert.Contains("gates.significant", seen);

        // A mapping of the description is one or more objects of the schema (alternatives of a one-of, items of a list).
        static void Walk(MappingShape shape, IReadOnlyList<JsonObject> objects, string prefix, List<string> seen)
        {
            var found = Assert.Single(objects, o => o["properties"] is JsonObject p && shape.Keys.All(k => p.ContainsKey(k.Name)));
            var properties = found["properties"]!.AsObject();
            Assert.Equal(shape.Names, properties.Select(p => p.Key));
            Assert.False(found["additionalProperties"]!.GetValue<bool>());
            var required = found["required"]?.AsArray().Select(r => r!.GetValue<string>()).ToList() ?? [];
            foreach (var key in shape.Keys)
            {
                var property = properties[key.Name]!.AsObject();
                Assert.Equal(key.Description, property["description"]!.GetValue<string>());
                Assert.Equal(key.Required, required.Contains(key.Name));
                seen.Add(prefix + key.Name);
                foreach (var (inner, candidates) in Mappings(key.Shape, property))
                {
                    Walk(inner, candidates, $"{prefix}{key.Name}.", seen);
                }
            }
        }
    }

    [Fact]
    public void The_options_markdown_has_a_row_for_every_key_of_the_description()
    {
        var markdown = RecipeSchema.Markdown();

        foreach (var path in Paths(RecipeKeys.Shape, ""))
        {
            Assert.Contains($"| `{path}` |", markdown, StringComparison.Ordinal);
        }

        Assert.Contains($"| `threads` | a whole number from 0 to {Recipe.MaxThreads} | `0` | {RecipeKeys.Threads.Description} |", markdown, StringComparison.Ordinal);
        Assert.Contains("| `outputs.report` | a list, e.g. [a, b] | `[json, md]` |", markdown, StringComparison.Ordinal);
        // The generation section is an [Option] record like a stage's: its table follows the recipe keys.
        Assert.Contains("### Section `generation`", markdown, StringComparison.Ordinal);
        Assert.Contains("| `task_type` | one of math, nli, qa, summarization, conversation | `conversation` |", markdown, StringComparison.Ordinal);
        // So is an endpoint teacher's mapping.
        Assert.Contains("### Teacher `endpoint`", markdown, StringComparison.Ordinal);
        Assert.Contains("| `min_success_ratio` |", markdown, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_key_and_every_alternative_of_the_description_is_accepted_by_the_check_and_the_schema()
    {
        var schema = JsonSchema.FromText(RecipeSchema.JsonSchema());
        var documents = Examples(RecipeKeys.Shape).Cast<JsonObject>().ToList();
        var covered = new HashSet<string>(StringComparer.Ordinal);

        foreach (var document in documents)
        {
            var text = document.ToJsonString();
            var stream = new YamlStream();
            stream.Load(new StringReader(text)); // JSON is YAML: the loader's parser reads what the schema validator reads
            var source = new YamlSource("example.compress.yaml");

            RecipeModelChecker.Check((YamlMappingNode)stream.Documents[0].RootNode, RecipeKeys.Shape, RecipeModelChecker.Root, source);

            Assert.True(source.Problems.Count == 0, $"{text}\n{string.Join("\n", source.Problems)}");
            var result = schema.Evaluate(System.Text.Json.JsonSerializer.SerializeToElement(document), new EvaluationOptions { OutputFormat = OutputFormat.List });
            Assert.True(result.IsValid, text);
            Cover(document, "", covered);
        }

        Assert.Superset(Paths(RecipeKeys.Shape, "").ToHashSet(StringComparer.Ordinal), covered);
    }

    [Fact]
    public void An_unknown_top_level_or_data_key_gets_the_closest_name_at_its_line()
    {
        var path = _dir.Write("typos.compress.yaml", """
            data:
              format: idx
              train: { inputs: teacher.onnx, labels: teacher.onnx }
              test: { inputs: teacher.onnx, labels: teacher.onnx }
              scael: 0.5
              csv: { delimeter: ';' }
              text: { tokeniser: cl100k_base }
            teacher: teacher.onnx
            student: { architecture: mlp }
            stages: [distill]
            theads: 2
            outputs: { reprot: [json] }
            """);

        var e = Assert.Throws<CompressionException>(() => RecipeLoader.Load(path));

        var unknown = e.Diagnostics.Where(d => d.Code == DiagnosticCodes.RecipeUnknownKey).Select(d => (d.Line!.Value, d.Message)).Order().ToList();
        Assert.Equal(
            [
                (5, "Unknown key 'scael' in data: did you mean 'scale'?"),
                (6, "Unknown key 'delimeter' in data.csv: did you mean 'delimiter'?"),
                (7, "Unknown key 'tokeniser' in data.text: did you mean 'tokenizer'?"),
                (11, "Unknown key 'theads' in the recipe: did you mean 'threads'?"),
                (12, "Unknown key 'reprot' in outputs: did you mean 'report'?"),
            ],
            unknown);
        Assert.All(e.Diagnostics, d => Assert.Equal(path, d.File));
    }

    [Theory]
    [InlineData("idx", "  scale: half\n", 5, "'scale' in data must be a number, not 'half'.")]
    [InlineData("csv", "  csv: { header: maybe }\n", 5, "'header' in data.csv must be true or false, not 'maybe'.")]
    [InlineData("idx", "  split: { validation: 0.1, seed: [1] }\n", 5, "'seed' in data.split must be a whole number, not a list.")]
    [InlineData("idx", "  split:\n    unlabelled: 0.1\n    validation: -0.1\n", 7, "'validation' in data.split must be a number, 0 or more, not '-0.1'.")]
    [InlineData("idx", "  classes: red\n", 5, "'classes' in data must be a list, e.g. [a, b], not 'red'.")]
    [InlineData("idx", "  normalize: { mean: 0.5, std: [0.2, 0] }\n", 5, "'std[1]' in data.normalize must be a number above 0, not '0'.")]
    [InlineData("idx", "  normalize: sometimes\n", 5, "'normalize' in data must be one of auto, per_feature, global, not 'sometimes'.")]
    [InlineData("idx", "  text: [tokenizer]\n", 5, "'text' in data must be a mapping (key: value lines), not a list.")]
    public void A_wrong_type_in_the_data_section_is_a_coded_error_at_its_line(string format, string line, int at, string message)
    {
        // csv keeps the labels inside the file; idx has them in a file of their own.
        var split = format == "csv" ? "teacher.onnx" : "{ inputs: teacher.onnx, labels: teacher.onnx }";
        var path = _dir.Write("types.compress.yaml", $"data:\n  format: {format}\n  train: {split}\n  test: {split}\n{line}{Rest}");

        var e = Assert.Throws<CompressionException>(() => RecipeLoader.Load(path));

        var d = Assert.Single(e.Diagnostics);
        Assert.Equal((DiagnosticCodes.RecipeInvalidValue, at, path, message), (d.Code, d.Line!.Value, d.File, d.Message));
    }

    [Fact]
    public void A_missing_required_key_is_MC1004_at_its_mapping()
    {
        var path = _dir.Write("missing.compress.yaml", Data + "teacher:\n  - { weight: 2 }\n" + "student: { architecture: mlp }\nstages: [distill]\ngates:\n  - { significant: true }\n");

        var e = Assert.Throws<CompressionException>(() => RecipeLoader.Load(path));

        Assert.Equal(
            [(3, "teacher[0] needs 'model'."), (7, "gates[0] needs 'gate'.")],
            e.Diagnostics.Where(d => d.Code == DiagnosticCodes.RecipeMissingKey).Select(d => (d.Line!.Value, d.Message)).Order());
    }

    [Theory]
    [InlineData("teacher: []\n", "'teacher' must be a list of at least one value, not an empty list.")]
    [InlineData("teacher: { model: teacher.onnx }\n", "'teacher' as a mapping is a teacher behind an endpoint and needs 'endpoint: URL' (an OpenAI-compatible server) with 'model: NAME'; an ONNX teacher is a file ('teacher: teacher.onnx') or a list ('teacher: [{ model: a.onnx, weight: 2 }, b.onnx]').")]
    [InlineData("teacher:\n  - { model: teacher.onnx, weight: 0 }\n", "'weight' in teacher[0] must be a number above 0, not '0'.")]
    [InlineData("threads: 2000\n", "'threads' must be a whole number from 0 to 1024, not '2000'.")]
    [InlineData("outputs: { model: [a.onnx] }\n", "'model' in outputs must be a text value, not a list.")]
    public void A_wrong_top_level_value_names_its_place_and_what_it_must_be(string line, string message)
    {
        var path = _dir.Write("top.compress.yaml", Data + line + "student: { architecture: mlp }\nstages: [finetune]\n");

        var d = Assert.Single(Assert.Throws<CompressionException>(() => RecipeLoader.Load(path)).Diagnostics);

        Assert.Equal((DiagnosticCodes.RecipeInvalidValue, message), (d.Code, d.Message));
        Assert.InRange(d.Line!.Value, 2, 3);
    }

    [Fact]
    public void Task_is_one_of_the_task_list_in_the_check_and_the_schema()
    {
        var task = JsonNode.Parse(RecipeSchema.JsonSchema())!["properties"]!["task"]!;
        Assert.Equal(RecipeKeys.Tasks, task["enum"]!.AsArray().Select(v => v!.GetValue<string>()));
        Assert.Equal(RecipeKeys.Tasks[0], task["default"]!.GetValue<string>());

        var path = _dir.Write("task.compress.yaml", "task: clasification\n" + Data + Rest);
        var d = Assert.Single(Assert.Throws<CompressionException>(() => RecipeLoader.Load(path)).Diagnostics);
        Assert.Equal((DiagnosticCodes.RecipeInvalidValue, 1, "task 'clasification' is not supported: did you mean 'classification'?"), (d.Code, d.Line!.Value, d.Message));
    }

    /// <summary>Every key path of the description ("data.csv.label").</summary>
    private static IEnumerable<string> Paths(MappingShape shape, string prefix) =>
        shape.Keys.SelectMany(k => Mappings(k.Shape, null).SelectMany(m => Paths(m.Shape, $"{prefix}{k.Name}.")).Prepend(prefix + k.Name)).Distinct();

    /// <summary>The mappings inside a shape (through lists, maps and one-ofs), with the schema objects they may be (of <paramref name="schema"/>).</summary>
    private static IEnumerable<(MappingShape Shape, IReadOnlyList<JsonObject> Candidates)> Mappings(ValueShape shape, JsonObject? schema)
    {
        IReadOnlyList<JsonObject> Candidates(JsonObject? node) => node is null ? []
            : node["anyOf"] is JsonArray any ? [.. any.SelectMany(a => Candidates(a!.AsObject()))]
            : node["items"] is JsonObject items ? Candidates(items)
            : node["additionalProperties"] is JsonObject values ? Candidates(values)
            : [node];

        return shape switch
        {
            MappingShape mapping => [(mapping, Candidates(schema))],
            ListShape list => Mappings(list.Item, schema),
            MapShape map => Mappings(map.Value, schema),
            OneOfShape oneOf => oneOf.Choices.SelectMany(c => Mappings(c, schema)),
            _ => [],
        };
    }

    /// <summary>
    /// Values of <paramref name="shape"/> that together use every key and every alternative: the i-th example of a
    /// mapping takes the i-th (cycling) example of each key.
    /// </summary>
    private static List<JsonNode> Examples(ValueShape shape) => shape switch
    {
        TextShape => [JsonValue.Create("name")],
        BoolShape => [JsonValue.Create(true)],
        NumberShape number => [JsonValue.Create(Number(number))],
        EnumShape choice => [.. choice.Values().Select(v => (JsonNode)JsonValue.Create(v))],
        ListShape list => [.. Examples(list.Item).Select(item => (JsonNode)new JsonArray(item))],
        MapShape map => [.. Examples(map.Value).Select(value => (JsonNode)new JsonObject { ["tensor"] = value })],
        OneOfShape oneOf => [.. oneOf.Choices.SelectMany(Examples)],
        ExternalShape when ReferenceEquals(shape, RecipeKeys.Student.Shape) => [new JsonObject { ["architecture"] = "mlp" }],
        ExternalShape when ReferenceEquals(shape, RecipeKeys.Generation.Shape) => [new JsonObject { ["task_type"] = "math" }],
        ExternalShape => [new JsonArray("evaluate")],
        MappingShape mapping => Mapping(mapping),
        _ => throw new ArgumentException(shape.GetType().Name),
    };

    private static List<JsonNode> Mapping(MappingShape mapping)
    {
        var perKey = mapping.Keys.Select(k => (k.Name, Values: Examples(k.Shape))).ToList();
        var count = perKey.Max(k => k.Values.Count);
        return [.. Enumerable.Range(0, count).Select(i => (JsonNode)new JsonObject(perKey.Select(k => KeyValuePair.Create(k.Name, (JsonNode?)k.Values[i % k.Values.Count].DeepClone()))))];
    }

    private static double Number(NumberShape number)
    {
        var value = double.IsNaN(number.Min) ? 1 : number.Min + (number.MinExclusive ? 1 : 0);
        return double.IsNaN(number.Max) ? value : Math.Min(value, number.Max);
    }

    /// <summary>Every key path a document uses (list items and named-map entries add no name of their own).</summary>
    private static void Cover(JsonNode? node, string prefix, HashSet<string> covered)
    {
        switch (node)
        {
            case JsonObject mapping when prefix.EndsWith(".inputs.", StringComparison.Ordinal) && mapping.ContainsKey("tensor"):
                break;
            case JsonObject mapping:
                foreach (var (key, value) in mapping)
                {
                    covered.Add(prefix + key);
                    Cover(value, $"{prefix}{key}.", covered);
                }

                break;
            case JsonArray list:
                foreach (var item in list)
                {
                    Cover(item, prefix, covered);
                }

                break;
        }
    }
}
