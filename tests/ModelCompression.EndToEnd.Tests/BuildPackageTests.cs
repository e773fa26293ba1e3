using System.Security.Cryptography;
using Microsoft.ML.OnnxRuntime;

namespace ModelCompression.EndToEnd.Tests;

/// <summary>
/// A project with &lt;CompressModel&gt; built by the real `dotnet build` against the packed package: the student
/// appears, a second build does not start the engine, and a broken gate fails the build without replacing
/// the last good model.
/// </summary>
public sealed class BuildPackageTests(PackedPackageFixture package) : IClassFixture<PackedPackageFixture>
{
    private const string StudentFile = "fashion.student.onnx";

    [Fact]
    public void Build_writes_the_student_and_a_second_build_skips_the_engine()
    {
        var project = CreateProject("incremental", gate: "accuracy >= 0.5");

        var first = Build(project);
        Assert.True(first.ExitCode == 0, first.ToString());
        Assert.Contains("distill:", first.Output, StringComparison.Ordinal);
        var student = Path.Combine(project, "bin", "Debug", "net10.0", StudentFile);
        Assert.True(File.Exists(student), $"{student} missing after build:\n{first}");
        Assert.True(File.Exists(Path.Combine(project, "bin", "Debug", "net10.0", "fashion.student.report.json")));
        Assert.True(File.Exists(Path.Combine(project, "bin", "Debug", "net10.0", "fashion.student.data.json")));
        AssertRunsInOnnxRuntime(student);

        var second = Build(project);
        Assert.True(second.ExitCode == 0, second.ToString());
        Assert.Contains("Skipping target \"_CompressModels\" because all output files are up-to-date", second.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("distill:", second.Output, StringComparison.Ordinal);
        Assert.True(File.Exists(student));

        // A changed input starts the engine again; every stage comes from the cache.
        File.AppendAllText(Path.Combine(project, "recipe.yaml"), "# touched\n");
        var third = Build(project);
        Assert.True(third.ExitCode == 0, third.ToString());
        Assert.Contains("distill: up to date (cached)", third.Output, StringComparison.Ordinal);
        Assert.Contains("quantize: up to date (cached)", third.Output, StringComparison.Ordinal);
    }

    [Fact]
    public void Impossible_gate_fails_the_build_naming_the_recipe_line_and_keeps_the_last_good_model()
    {
        var project = CreateProject("gate", gate: "accuracy >= 0.5");
        var good = Build(project);
        Assert.True(good.ExitCode == 0, good.ToString());
        var student = Path.Combine(project, "bin", "Debug", "net10.0", StudentFile);
        var produced = Path.Combine(project, "obj", "Debug", "net10.0", "compress", "recipe", StudentFile);
        var goodHash = Hash(produced);

        var recipe = Path.Combine(project, "recipe.yaml");
        File.WriteAllText(recipe, File.ReadAllText(recipe).Replace("accuracy >= 0.5", "accuracy >= 0.999", StringComparison.Ordinal));
        var gateLine = Array.FindIndex(File.ReadAllLines(recipe), l => l.Contains("0.999", StringComparison.Ordinal)) + 1;

        var bad = Build(project);
        Assert.NotEqual(0, bad.ExitCode);
        Assert.Contains($"recipe.yaml({gateLine},", bad.Output, StringComparison.Ordinal);
        Assert.Contains("error MC3001", bad.Output, StringComparison.Ordinal);
        Assert.Contains("accuracy >= 0.999", bad.Output, StringComparison.Ordinal);
        Assert.Equal(goodHash, Hash(produced));
        Assert.Equal(goodHash, Hash(student));
    }

    private string CreateProject(string name, string gate)
    {
        var project = Path.Combine(package.Root, name);
        Directory.CreateDirectory(project);
        var sample = Path.Combine(package.RepoRoot, "samples", "FashionMnist");
        File.WriteAllText(Path.Combine(project, "App.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <TargetFramework>net10.0</TargetFramework>
                <CompressModelCacheDirectory>{package.SharedCache}/</CompressModelCacheDirectory>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="ModelCompression.Build" Version="{package.Version}" />
                <CompressModel Include="recipe.yaml" />
              </ItemGroup>
            </Project>
            """);
        File.WriteAllText(Path.Combine(project, "Directory.Build.props"), "<Project />");
        File.WriteAllText(Path.Combine(project, "Directory.Build.targets"), "<Project />");
        File.WriteAllText(Path.Combine(project, "Directory.Packages.props"), "<Project />");
        File.WriteAllText(Path.Combine(project, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="local" value="{package.Feed}" />
                <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
              </packageSources>
              <fallbackPackageFolders>
                <add key="machine" value="{PackedPackageFixture.MachinePackages}" />
              </fallbackPackageFolders>
            </configuration>
            """);
        File.WriteAllText(Path.Combine(project, "recipe.yaml"), $"""
            task: classification
            data:
              format: idx
              train: {"{"} inputs: {sample}/data/train-images-idx3-ubyte.gz, labels: {sample}/data/train-labels-idx1-ubyte.gz {"}"}
              test:  {"{"} inputs: {sample}/data/t10k-images-idx3-ubyte.gz,  labels: {sample}/data/t10k-labels-idx1-ubyte.gz {"}"}
              scale: 0.00392156862745098
            teacher: {sample}/teacher/teacher.onnx
            student: {"{"} architecture: mlp, hidden: [32] {"}"}
            stages:
              - distill:  {"{"} epochs: 1, temperature: 4, alpha: 0.5, batch_size: 128 {"}"}
              - quantize: {"{"} mode: dynamic {"}"}
            gates:
              - {gate}
            outputs: {"{"} model: {StudentFile} {"}"}

            """);
        return project;
    }

    private DotnetCli.Result Build(string project) => DotnetCli.Run(
        project,
        new Dictionary<string, string> { ["NUGET_PACKAGES"] = package.Packages },
        "build", "-v:n", "--disable-build-servers", "-nologo");

    private static void AssertRunsInOnnxRuntime(string modelPath)
    {
        using var session = new InferenceSession(modelPath);
        // The built-in student takes the data's own sample shape ([batch, 28, 28] here): feed one sample of it.
        long[] shape = [.. session.InputMetadata.Values.First().Dimensions.Select(d => d < 0 ? 1L : d)];
        var input = new float[shape.Aggregate(1L, (a, b) => a * b)];
        using var value = OrtValue.CreateTensorValueFromMemory(input, shape);
        using var results = session.Run(new RunOptions(), [session.InputMetadata.Keys.First()], [value], [session.OutputMetadata.Keys.First()]);
        Assert.Equal(10, results[0].GetTensorDataAsSpan<float>().Length);
    }

    private static string Hash(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));
}
