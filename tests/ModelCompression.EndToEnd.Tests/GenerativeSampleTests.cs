using System.Globalization;
using System.Text.RegularExpressions;

namespace ModelCompression.EndToEnd.Tests;

/// <summary>
/// samples/GenerativeMath as a user runs it, against the packed package: `dotnet build` distils the committed teacher into
/// an int8 student and gates it, and the app answers the 200 test problems with the published folder through ONNX
/// Runtime GenAI. The app must measure what the build measured: the folder (its tokenizer, chat template, end marker
/// and genai_config.json) is the model the build evaluated.
/// </summary>
public sealed partial class GenerativeSampleTests(PackedPackageFixture package) : IClassFixture<PackedPackageFixture>
{
    [Fact]
    public void The_apps_exact_match_through_GenAI_is_the_builds()
    {
        var sample = CopySample();
        var environment = new Dictionary<string, string> { ["NUGET_PACKAGES"] = package.Packages, ["ORT_DISABLE_TELEMETRY"] = "1" };

        var build = DotnetCli.Run(sample, environment, "build", "-v:n", "--disable-build-servers", "-nologo", "-p:CompressModelThreads=2");

        Assert.True(build.ExitCode == 0, build.ToString());
        var built = BuildExactMatch().Match(build.Output);
        Assert.True(built.Success, build.ToString());
        var run = DotnetCli.Run(sample, environment, "run", "--no-build");
        Assert.True(run.ExitCode == 0, run.ToString());
        var app = AppExactMatch().Match(run.Output);
        Assert.True(app.Success, run.ToString());
        var (buildPercent, appPercent) = (Percent(built), Percent(app));
        Assert.True(appPercent > 50, run.ToString());
        Assert.Equal(buildPercent, appPercent, precision: 1);
    }

    private static double Percent(Match match) => double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);

    /// <summary>The sample's project, recipe, teacher, data and app in a folder of the run, with the packed package's version and feed.</summary>
    private string CopySample()
    {
        var from = Path.Combine(package.RepoRoot, "samples", "GenerativeMath");
        var to = Path.Combine(package.Root, "generative-math");
        foreach (var file in new[] { "Program.cs", "math.compress.yaml", "teacher/model.onnx", "teacher/tokenizer.compress.json", "data/train.jsonl", "data/validation.jsonl", "data/test.jsonl", "data/pool.jsonl" })
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(to, file))!);
            File.Copy(Path.Combine(from, file), Path.Combine(to, file));
        }

        var project = File.ReadAllText(Path.Combine(from, "GenerativeMath.csproj"))
            .Replace("Include=\"ModelCompression.Build\" Version=\"1.0.0\"", $"Include=\"ModelCompression.Build\" Version=\"{package.Version}\"", StringComparison.Ordinal);
        Assert.Contains(package.Version, project, StringComparison.Ordinal);
        File.WriteAllText(Path.Combine(to, "GenerativeMath.csproj"), project);
        package.WriteRestoreFiles(to);
        return to;
    }

    [GeneratedRegex(@"Summary: math\.compress\.yaml: gates passed \(\d+/\d+\), exact_match ([0-9.]+) %")]
    private static partial Regex BuildExactMatch();

    [GeneratedRegex(@"Student exact match on 200 test problems: ([0-9.]+)%")]
    private static partial Regex AppExactMatch();
}
