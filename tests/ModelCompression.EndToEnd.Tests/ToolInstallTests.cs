namespace ModelCompression.EndToEnd.Tests;

/// <summary>
/// `dotnet tool install` of the packed CLI, then the installed `dotnet-compress` run as a user would: doctor, inspect,
/// usage errors, recipe errors and a broken gate each give their exit code and diagnostics.
/// </summary>
public sealed class ToolInstallTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), $"mc-tool-{Guid.NewGuid():N}");
    private readonly string _toolPath;
    private readonly string _repoRoot;

    public ToolInstallTests()
    {
        _repoRoot = RepoRoot.Find();
        var feed = Path.Combine(_root, "feed");
        _toolPath = Path.Combine(_root, "tools");
        var version = $"1.0.0-e2e.{DateTime.UtcNow:yyyyMMddHHmmss}";
        var pack = DotnetCli.Pack(_repoRoot, "ModelCompression.Cli", feed, version);
        Assert.True(pack.ExitCode == 0, pack.ToString());
        var install = DotnetCli.Run(_root, null, "tool", "install", "ModelCompression.Cli", "--version", version, "--tool-path", _toolPath, "--add-source", feed);
        Assert.True(install.ExitCode == 0, install.ToString());
    }

    [Fact]
    public void Installed_tool_runs_doctor_reports_errors_and_fails_on_a_broken_gate()
    {
        var doctor = Tool("doctor");
        Assert.True(doctor.ExitCode == 0, doctor.ToString());
        Assert.Contains("libtorch", doctor.Output, StringComparison.Ordinal);
        Assert.Contains("ONNX Runtime", doctor.Output, StringComparison.Ordinal);
        Assert.Contains("threads ", doctor.Output, StringComparison.Ordinal);

        var usage = Tool("run");
        Assert.Equal(2, usage.ExitCode);
        foreach (var threads in new[] { "x", "-1", "5000" })
        {
            // A usage error naming the option, not a crash, whatever the value.
            var badThreads = Tool("run", "any.yaml", "--threads", threads);
            Assert.True(badThreads.ExitCode == 2, badThreads.ToString());
            Assert.Contains("MC1010: --threads must be a whole number", badThreads.Output, StringComparison.Ordinal);
        }

        // What a user reads to choose hint tensors and exclusions: the values inside the teacher with their shapes.
        var inspect = Tool("inspect", Path.Combine(_repoRoot, "samples", "FashionMnist", "teacher", "teacher.onnx"));
        Assert.True(inspect.ExitCode == 0, inspect.ToString());
        Assert.Contains("| `/classifier/classifier.2/Relu_output_0` | Relu | /classifier/classifier.2/Relu | float32 | [2, 128] |", inspect.Output, StringComparison.Ordinal);

        var broken = Path.Combine(_root, "broken.yaml");
        File.WriteAllText(broken, "task: classification\nteacher: missing.onnx\nstudent: { architecture: mlp, hidden: [abc] }\n");
        var recipeErrors = Tool("run", broken);
        Assert.Equal(1, recipeErrors.ExitCode);
        Assert.Contains("broken.yaml(2,", recipeErrors.Output, StringComparison.Ordinal);
        Assert.Contains("error MC1005", recipeErrors.Output, StringComparison.Ordinal);
        Assert.Contains("error MC1003", recipeErrors.Output, StringComparison.Ordinal);

        // Several recipes in one process (what the MSBuild task does): a bad line is a usage error at its line,
        // and a recipe that fails does not hide the next one's problems.
        var list = Path.Combine(_root, "recipes.rsp");
        File.WriteAllText(list, $"# one recipe per line\n{broken} --output {_root}/a\n\n{broken} --colour red\n");
        var badList = Tool("run", "--recipes", list);
        Assert.True(badList.ExitCode == 2, badList.ToString());
        Assert.Contains("recipes.rsp(4): error MC1010", badList.Output, StringComparison.Ordinal);
        Assert.Contains("--colour", badList.Output, StringComparison.Ordinal);
        var both = Tool("run", broken, "--recipes", list);
        Assert.True(both.ExitCode == 2, both.ToString());
        File.WriteAllText(list, $"{broken} --output {_root}/a\n{Path.Combine(_root, "missing.yaml")}\n");
        var listed = Tool("run", "--recipes", list);
        Assert.True(listed.ExitCode == 1, listed.ToString());
        Assert.Contains("broken.yaml(2,", listed.Output, StringComparison.Ordinal);
        Assert.Contains("missing.yaml: error MC1005", listed.Output, StringComparison.Ordinal);
        Assert.Contains("2 of 2 recipe(s) have errors: none was run.", listed.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("Recipe 1/2:", listed.Output, StringComparison.Ordinal);

        var sample = Path.Combine(_repoRoot, "samples", "FashionMnist");
        // Trains on the small test slice only to keep this quick: the point is the exit code and the diagnostic.
        var recipe = Path.Combine(_root, "gate.yaml");
        File.WriteAllText(recipe, $"""
            data:
              format: idx
              train: {"{"} inputs: {sample}/data/t10k-images-idx3-ubyte.gz, labels: {sample}/data/t10k-labels-idx1-ubyte.gz {"}"}
              test:  {"{"} inputs: {sample}/data/t10k-images-idx3-ubyte.gz, labels: {sample}/data/t10k-labels-idx1-ubyte.gz {"}"}
              scale: 0.00392156862745098
            teacher: {sample}/teacher/teacher.onnx
            student: {"{"} architecture: mlp, hidden: [16] {"}"}
            stages:
              - distill: {"{"} epochs: 1 {"}"}
            gates:
              - accuracy >= 0.999
            """);
        var gateLine = Array.FindIndex(File.ReadAllLines(recipe), l => l.Contains("0.999", StringComparison.Ordinal)) + 1;

        // Every recipe is checked before any runs: this good recipe, listed first, does not run (hiding the broken
        // one's errors behind its training) while another recipe has errors.
        File.WriteAllText(list, $"{recipe} --output {_root}/out --cache {_root}/cache\n{broken}\n");
        var checkedFirst = Tool("run", "--recipes", list);
        Assert.True(checkedFirst.ExitCode == 1, checkedFirst.ToString());
        Assert.Contains("broken.yaml(2,", checkedFirst.Output, StringComparison.Ordinal);
        Assert.Contains("1 of 2 recipe(s) have errors: none was run.", checkedFirst.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("distill: running", checkedFirst.Output, StringComparison.Ordinal);

        var gate = Tool("run", recipe, "--output", Path.Combine(_root, "out"), "--cache", Path.Combine(_root, "cache"));
        Assert.True(gate.ExitCode == 3, gate.ToString());
        Assert.Contains($"gate.yaml({gateLine},", gate.Output, StringComparison.Ordinal);
        Assert.Contains("error MC3001", gate.Output, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(_root, "out", "gate.student.onnx")));

        // Accept this run's model as the baseline (from the cache), then gate the next run on it.
        var accept = Tool("baseline", "accept", recipe, "--output", Path.Combine(_root, "out"), "--cache", Path.Combine(_root, "cache"));
        Assert.True(accept.ExitCode == 0, accept.ToString());
        Assert.True(File.Exists(Path.Combine(_root, "gate.baseline.json")), accept.ToString());
        File.WriteAllText(recipe, File.ReadAllText(recipe).Replace("accuracy >= 0.999", "accuracy >= baseline.accuracy", StringComparison.Ordinal));
        var gated = Tool("run", recipe, "--output", Path.Combine(_root, "out"), "--cache", Path.Combine(_root, "cache"));
        Assert.True(gated.ExitCode == 0, gated.ToString());
        Assert.True(File.Exists(Path.Combine(_root, "out", "gate.student.onnx")));
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
            // Left for the OS to clean.
        }
    }

    private DotnetCli.Result Tool(params string[] arguments) =>
        DotnetCli.RunProgram(Path.Combine(_toolPath, "dotnet-compress"), _root, arguments);
}
