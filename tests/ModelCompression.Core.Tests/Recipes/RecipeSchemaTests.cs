using ModelCompression.Architectures;
using ModelCompression.Recipes;

namespace ModelCompression.Core.Tests.Recipes;

public sealed class RecipeSchemaTests
{
    [Fact]
    public void Every_stage_and_architecture_option_is_described_with_its_default()
    {
        var stages = RecipeSchema.Stages();
        Assert.Equal(RecipeLoader.StageOptionTypes.Keys.Order(), stages.Keys.Order());
        Assert.Equal(ArchitectureRegistry.Names.Order(), RecipeSchema.Architectures().Keys.Order());

        var all = stages.Values.Concat(RecipeSchema.Architectures().Values).SelectMany(o => o).ToList();
        Assert.All(all, o => Assert.False(string.IsNullOrWhiteSpace(o.Description), o.Name));
        Assert.All(all, o => Assert.Matches("^[a-z][a-z0-9_]*$", o.Name));

        var distill = stages["distill"];
        Assert.Contains(distill, o => o is { Name: "epochs", Type: "whole number", Default: "10" });
        Assert.Contains(RecipeSchema.Architectures()["mlp"], o => o is { Name: "hidden", Default: "[64]" });
    }

    [Fact]
    public void Markdown_lists_every_option_key()
    {
        var markdown = RecipeSchema.Markdown();

        foreach (var option in RecipeSchema.Stages().Values.Concat(RecipeSchema.Architectures().Values).SelectMany(o => o))
        {
            Assert.Contains($"| `{option.Name}` |", markdown, StringComparison.Ordinal);
        }

        Assert.Contains("### Stage `quantize`", markdown, StringComparison.Ordinal);
        Assert.Contains("### Student architecture `transformer`", markdown, StringComparison.Ordinal);
    }
}
