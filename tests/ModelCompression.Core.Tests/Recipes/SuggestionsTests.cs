using ModelCompression.Recipes;

namespace ModelCompression.Core.Tests.Recipes;

public sealed class SuggestionsTests
{
    [Theory]
    [InlineData("", "", 0)]
    [InlineData("abc", "", 3)]
    [InlineData("distil", "distill", 1)]
    [InlineData("doctr", "doctor", 1)]
    [InlineData("eopchs", "epochs", 1)] // a swap of neighbours is one edit
    [InlineData("kitten", "sitting", 3)]
    [InlineData("ca", "abc", 3)] // restricted: no edits inside a swapped pair
    public void Distance_counts_inserts_deletes_replacements_and_swaps(string a, string b, int distance)
    {
        Assert.Equal(distance, Suggestions.Distance(a, b));
        Assert.Equal(distance, Suggestions.Distance(b, a));
    }

    [Fact]
    public void Closest_allows_one_edit_per_three_characters_and_ignores_case()
    {
        string[] verbs = ["run", "doctor", "options", "baseline", "inspect", "schema"];
        Assert.Equal(["doctor"], Suggestions.Closest("doctr", verbs));
        Assert.Equal(["run"], Suggestions.Closest("rn", verbs));
        Assert.Equal(["schema"], Suggestions.Closest("SCHEMA", verbs));
        Assert.Equal(["baseline"], Suggestions.Closest("basleine", verbs));
        Assert.Empty(Suggestions.Closest("serv", verbs));
        Assert.Equal(["epochs"], Suggestions.Closest("epoch", ["epochs", "alpha", "seed"]));
        Assert.Empty(Suggestions.Closest("xyz", ["epochs", "alpha", "seed"]));
    }

    [Fact]
    public void Ties_are_all_suggested_in_the_given_order()
    {
        Assert.Equal(["cat", "bat"], Suggestions.Closest("hat", ["cat", "bat", "horse"]));
        Assert.Equal(": did you mean 'cat' or 'bat'?", Suggestions.Hint("hat", ["cat", "bat", "horse"], "Animals"));
        Assert.Equal(". Animals: cat, bat, horse.", Suggestions.Hint("zebra", ["cat", "bat", "horse"], "Animals"));
    }
}
