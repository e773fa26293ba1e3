using System.Text.RegularExpressions;
using ModelCompression.Recipes;

namespace ModelCompression.Core.Tests.Recipes;

/// <summary>Every recipe in docs/cookbook.md loads: the options it shows exist and fit together.</summary>
public sealed partial class CookbookTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    public static TheoryData<int> Recipes() => [.. Enumerable.Range(0, Blocks().Count)];

    [Fact]
    public void The_cookbook_has_its_recipes() => Assert.Equal(12, Blocks().Count);

    [Theory]
    [MemberData(nameof(Recipes))]
    public void Each_recipe_loads(int index)
    {
        // Paths into the repository become absolute; the files the page only names (NPY of a user's own, a teacher an
        // earlier recipe writes) are made empty here, as loading checks that they exist and running is not the point.
        var text = RepoPath().Replace(Blocks()[index], $"{Repo.Root}/$1/");
        foreach (Match file in NamedFile().Matches(text))
        {
            Directory.CreateDirectory(Path.GetDirectoryName(_dir.File(file.Value))!);
            File.WriteAllBytes(_dir.File(file.Value), []);
        }

        var recipe = RecipeLoader.Load(_dir.Write($"recipe{index}.compress.yaml", text));

        Assert.NotEmpty(recipe.Stages);
    }

    internal static List<string> Blocks() =>
        [.. YamlBlock().Matches(File.ReadAllText(Path.Join(Repo.Root, "docs", "cookbook.md"))).Select(m => m.Groups[1].Value)];

    [GeneratedRegex(@"```yaml\n(.*?)```", RegexOptions.Singleline)]
    private static partial Regex YamlBlock();

    [GeneratedRegex(@"(?<=[\s{:,])(samples|tests)/")]
    private static partial Regex RepoPath();

    [GeneratedRegex(@"(?<=[\s:]|^)(?!/)[\w-]+(/[\w-]+)?\.(npy|onnx)\b", RegexOptions.Multiline)]
    private static partial Regex NamedFile();
}
