using ModelCompression.Common;
using ModelCompression.Diagnostics;
using ModelCompression.Pipeline;
using ModelCompression.Recipes;
using ModelCompression.Runs;
using Xunit.Abstractions;

namespace ModelCompression.Core.Tests.Pipeline;

/// <summary>What the whole-run tests of recipes share: a recipe the loader refuses, a run in a test folder, an answer cache copied to another cache.</summary>
internal static class RecipeTestRuns
{
    /// <summary>Writes <paramref name="yaml"/> as a new recipe in <paramref name="dir"/>, asserts the loader refuses it, writes and returns the diagnostics.</summary>
    public static IReadOnlyList<Diagnostic> Refused(TempDir dir, string yaml, ITestOutputHelper output)
    {
        var path = dir.File($"bad-{Guid.NewGuid():N}.compress.yaml");
        File.WriteAllText(path, yaml);
        var error = Assert.Throws<CompressionException>(() => RecipeLoader.Load(path));
        output.WriteLine(string.Join("\n", error.Diagnostics.Select(d => $"{d.Line}: {d.Code} {d.Message}")));
        return error.Diagnostics;
    }

    /// <summary>Runs the recipe <paramref name="name"/> of <paramref name="dir"/> (written first unless <paramref name="yaml"/> is null) with the cache folder <paramref name="cache"/>, outputs in out/, one thread.</summary>
    public static PipelineResult Run(TempDir dir, string name, string? yaml, string cache, IPipelineReporter? reporter = null)
    {
        var path = dir.File(name);
        if (yaml is not null)
        {
            File.WriteAllText(path, yaml);
        }

        return CompressionRun.Run(RecipeLoader.Load(path), new PipelineOptions(dir.Dir(cache), dir.Dir("out"), reporter ?? new RecordingReporter()) { Threads = 1 });
    }

    /// <summary>Copies the endpoint answer cache of the cache folder <paramref name="from"/> into the cache folder <paramref name="to"/> (both in <paramref name="dir"/>): what a fleet machine replays offline.</summary>
    public static void CopyEndpointAnswers(TempDir dir, string from, string to) =>
        CopyFolder(Path.Join(dir.Dir(from), GenerationPipeline.EndpointAnswersFolder), Path.Join(dir.Dir(to), GenerationPipeline.EndpointAnswersFolder));

    private static void CopyFolder(string from, string to)
    {
        foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
        {
            var target = Path.Join(to, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
    }
}
