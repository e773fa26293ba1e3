using System.Text.Json.Nodes;
using ModelCompression.Diagnostics;
using ModelCompression.Recipes;
using ModelCompression.Stages;

namespace ModelCompression.Core.Tests.Recipes;

/// <summary>The stage catalog is the one list of stages the loader, the schema and `dotnet compress options` read.</summary>
public sealed class StageCatalogTests : IDisposable
{
    private const string Head = "data: { format: idx, train: { inputs: f.gz, labels: f.gz }, test: { inputs: f.gz, labels: f.gz } }\nteacher: teacher.onnx\nstudent: { model: student.onnx }\n";

    private readonly TempDir _dir = new();

    public StageCatalogTests()
    {
        // The loader checks that named files exist; their contents do not matter here.
        foreach (var name in new[] { "f.gz", "teacher.onnx", "student.onnx" })
        {
            File.WriteAllBytes(_dir.File(name), [0]);
        }
    }

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void The_schema_and_the_options_listing_have_every_kind_of_the_catalog_in_its_order()
    {
        // The catalog's order is the order docs/recipe.schema.json (a golden file) and `dotnet compress options` list
        // the stages in; a new stage is one catalog line, not an edit here.
        Assert.Equal(StageCatalog.Kinds, RecipeSchema.Stages().Keys);
        var stageItems = JsonNode.Parse(RecipeSchema.JsonSchema())!["properties"]!["stages"]!["items"]!["oneOf"]!.AsArray();
        Assert.Equal(StageCatalog.Kinds, stageItems[0]!["enum"]!.AsArray().Select(k => k!.GetValue<string>()));
        Assert.Equal(StageCatalog.Kinds, stageItems.Skip(1).Select(i => Assert.Single(i!["properties"]!.AsObject()).Key));

        // `dotnet compress options` prints RecipeSchema.Markdown().
        var markdown = RecipeSchema.Markdown();
        var positions = StageCatalog.Kinds.Select(k => markdown.IndexOf($"### Stage `{k}`", StringComparison.Ordinal)).ToList();
        Assert.DoesNotContain(-1, positions);
        Assert.Equal(positions.Order(), positions);
        foreach (var descriptor in StageCatalog.All)
        {
            Assert.NotEmpty(RecipeSchema.Stages()[descriptor.Kind]);
            Assert.Equal(descriptor.OptionsType, RecipeLoader.StageOptionTypes[descriptor.Kind]);
        }
    }

    [Fact]
    public void The_loader_accepts_exactly_the_catalogs_kinds()
    {
        foreach (var descriptor in StageCatalog.All)
        {
            var recipe = RecipeLoader.Load(_dir.Write($"{descriptor.Kind}.compress.yaml", Head + $"stages:\n  - {descriptor.Kind}\n"));

            var stage = Assert.Single(recipe.Stages);
            Assert.Equal(descriptor.Kind, stage.Kind);
            Assert.IsType(descriptor.OptionsType, stage.Options);
            Assert.Same(descriptor, stage.Descriptor);
        }

        var e = Assert.Throws<CompressionException>(() => RecipeLoader.Load(_dir.Write("unknown.compress.yaml", Head + "stages:\n  - compress\n")));
        Assert.Equal($"Unknown stage 'compress'. Stages: {string.Join(", ", StageCatalog.Kinds)}.", Assert.Single(e.Diagnostics).Message);
    }

    [Fact]
    public void A_stage_that_needs_a_teacher_says_why_and_reads_it()
    {
        foreach (var descriptor in StageCatalog.All)
        {
            var options = Activator.CreateInstance(descriptor.OptionsType)!;
            Assert.Equal(descriptor.TeacherUse(options) is not null, descriptor.Reads(options).HasFlag(StageReads.Teacher));
        }

        Assert.Null(StageCatalog.Get("finetune").TeacherUse(new FinetuneOptions()));
        Assert.Contains("init_from_teacher", StageCatalog.Get("finetune").TeacherUse(new FinetuneOptions { InitFromTeacher = true }), StringComparison.Ordinal);
        Assert.Null(StageCatalog.Get("prune").TeacherUse(new PruneOptions { Alpha = 0.5, RecoveryTeacher = RecoveryTeacher.Dense }));
        Assert.True(StageCatalog.Get("prune").Reads(new PruneOptions { Alpha = 0.5, RecoveryTeacher = RecoveryTeacher.Dense }).HasFlag(StageReads.DenseModel));
    }

    [Fact]
    public void Each_option_key_keeps_its_line_and_an_option_the_recipe_does_not_give_points_at_the_stage()
    {
        var path = _dir.Write("lines.compress.yaml", Head + "stages:\n  - distill:\n      epochs: 2\n\n      alpha: 0.5\n  - quantize: { mode: dynamic, exclude_nodes: fc1 }\n  - evaluate\n");

        var stages = RecipeLoader.Load(path).Stages;

        Assert.Equal(new Dictionary<string, int> { ["epochs"] = 6, ["alpha"] = 8 }, stages[0].OptionLines);
        Assert.Equal((path, 5, 8, 5), (stages[0].Site.RecipePath, stages[0].Site.Line, stages[0].Site.LineOf("alpha"), stages[0].Site.LineOf("temperature")));
        Assert.Equal((9, 9), (stages[1].Site.Line, stages[1].Site.LineOf("exclude_nodes")));
        Assert.Empty(stages[2].OptionLines);
        var error = stages[0].Site.Error(DiagnosticCodes.RecipeInvalidValue, "about alpha", "alpha");
        Assert.Equal($"{path}(8): error MC1003: about alpha", error.ToString());
    }
}
