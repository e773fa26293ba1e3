using ModelCompression.Pipeline;
using ModelCompression.Recipes;

namespace ModelCompression.Core.Tests.Pipeline;

/// <summary>
/// The data hash carries no engine version and is stored in committed baseline files, whose '(significant)' gates
/// pair only with the same hash: it must never change by accident.
/// </summary>
public sealed class DataHashingTests
{
    /// <summary>The sample recipe's data hash as commit c90bf7c computed it (its hash memo of a run of the sample).</summary>
    private const string SampleDataHash = "382d898d87c99fd7227c05f9a9bdd19e";

    [Fact]
    public void The_sample_recipes_data_hash_is_the_one_committed_baselines_were_made_with()
    {
        var recipe = RecipeLoader.Load(Repo.SampleRecipe);

        Assert.Equal(SampleDataHash, DataHashing.HashData(recipe.Data));
    }

    [Fact]
    public void The_remembered_data_hash_is_the_same_hash()
    {
        using var dir = new TempDir();
        var recipe = RecipeLoader.Load(Repo.SampleRecipe);

        Assert.Equal(SampleDataHash, DataHashing.HashData(recipe.Data, HashMemo.Load(dir.Dir("cache"))));
    }
}
