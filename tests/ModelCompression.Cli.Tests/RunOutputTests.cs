using System.Text.Json;
using System.Text.Json.Nodes;

namespace ModelCompression.Cli.Tests;

/// <summary>
/// `run --json` writes one JSON document to stdout and everything else to stderr; `--quiet` writes diagnostics and
/// one result line per recipe.
/// </summary>
public sealed class RunOutputTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Json_of_a_broken_recipe_is_one_document_with_its_exit_code_and_diagnostics()
    {
        var broken = _dir.Write("broken.compress.yaml", "task: classification\nteacher: missing.onnx\nstudent: { architecture: mlp, hidden: [abc] }\n");

        var result = CompressCli.Run(_dir.Path, "run", broken, "--json");

        Assert.True(result.ExitCode == 1, result.ToString());
        using var document = JsonDocument.Parse(result.Stdout);
        var root = document.RootElement;
        Assert.Equal(broken, root.GetProperty("recipe").GetString());
        Assert.Equal(1, root.GetProperty("exit_code").GetInt32());
        Assert.Equal(JsonValueKind.Null, root.GetProperty("report").ValueKind);
        var diagnostics = root.GetProperty("diagnostics").EnumerateArray().ToList();
        Assert.Contains(diagnostics, d => d.GetProperty("code").GetString() == "MC1005" && d.GetProperty("line").GetInt32() == 2 && d.GetProperty("file").GetString() == broken);
        Assert.Contains(diagnostics, d => d.GetProperty("code").GetString() == "MC1003" && d.GetProperty("severity").GetString() == "error");
        // The same diagnostics, for people and for MSBuild, on stderr.
        Assert.Contains("broken.compress.yaml(2,", result.Stderr, StringComparison.Ordinal);
        Assert.Equal(diagnostics.Count, result.Stderr.Split('\n').Count(l => l.Contains(": error MC", StringComparison.Ordinal)));
    }

    [Fact]
    public void Json_of_a_recipe_list_has_every_recipe_in_order_and_the_worst_exit_code()
    {
        var broken = _dir.Write("broken.compress.yaml", "task: classification\nteacher: missing.onnx\n");
        var list = _dir.Write("recipes.rsp", $"{broken} --output {_dir.File("a")}\n{_dir.File("missing.compress.yaml")}\n");

        var result = CompressCli.Run(_dir.Path, "run", "--recipes", list, "--json");

        Assert.True(result.ExitCode == 1, result.ToString());
        using var document = JsonDocument.Parse(result.Stdout);
        Assert.Equal(1, document.RootElement.GetProperty("exit_code").GetInt32());
        var recipes = document.RootElement.GetProperty("recipes").EnumerateArray().ToList();
        Assert.Equal([broken, _dir.File("missing.compress.yaml")], recipes.Select(r => r.GetProperty("recipe").GetString()));
        Assert.All(recipes, r => Assert.Equal(1, r.GetProperty("exit_code").GetInt32()));
        Assert.Equal("MC1005", recipes[1].GetProperty("diagnostics")[0].GetProperty("code").GetString());
        // Every recipe is checked before any runs; what a person reads about it went to stderr.
        Assert.Contains("2 of 2 recipe(s) have errors: none was run.", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void A_usage_error_under_json_writes_nothing_to_stdout()
    {
        var result = CompressCli.Run(_dir.Path, "run", "x.yaml", "--json", "--colour");

        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.Equal(string.Empty, result.Stdout);
    }

    [Fact]
    public void Quiet_writes_only_the_diagnostics_of_a_broken_recipe()
    {
        var broken = _dir.Write("broken.compress.yaml", "task: classification\nteacher: missing.onnx\n");
        var list = _dir.Write("recipes.rsp", $"{broken}\n{broken}\n");

        var result = CompressCli.Run(_dir.Path, "run", "--recipes", list, "--quiet");

        Assert.True(result.ExitCode == 1, result.ToString());
        Assert.Equal(string.Empty, result.Stdout);
        // The diagnostics, and the check-first pass's one line saying that nothing ran.
        var lines = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("2 of 2 recipe(s) have errors: none was run.", lines[^1]);
        Assert.All(lines[..^1], l => Assert.Contains(": error MC", l, StringComparison.Ordinal));
    }

    [Fact]
    [Trait("Category", "Slow")]
    public void A_real_run_under_json_then_quiet_gives_the_report_on_stdout_and_one_result_line()
    {
        var sample = Path.Join(Repo.Root, "samples", "FashionMnist");
        // Trains one epoch on the small test slice: the point is where the output goes, not the model.
        var recipe = _dir.Write("gate.compress.yaml", $"""
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
        string[] where = ["--output", _dir.File("out"), "--cache", _dir.File("cache"), "--threads", "1"];

        var failed = CompressCli.Run(_dir.Path, ["run", recipe, "--json", .. where]);

        Assert.True(failed.ExitCode == 3, failed.ToString());
        using (var document = JsonDocument.Parse(failed.Stdout))
        {
            var root = document.RootElement;
            Assert.Equal(3, root.GetProperty("exit_code").GetInt32());
            var report = root.GetProperty("report");
            Assert.False(report.GetProperty("passed").GetBoolean());
            Assert.Equal(recipe, report.GetProperty("recipe").GetString());
            var accuracy = report.GetProperty("stages")[0].GetProperty("evaluation").GetProperty("accuracy").GetDouble();
            Assert.InRange(accuracy, 0, 0.999);
            var gate = report.GetProperty("gates")[0];
            Assert.Equal(accuracy, gate.GetProperty("value").GetDouble());
            Assert.Equal(("accuracy >= 0.999", 11, false), (gate.GetProperty("gate").GetString(), gate.GetProperty("line").GetInt32(), gate.GetProperty("passed").GetBoolean()));
            var diagnostic = Assert.Single(root.GetProperty("diagnostics").EnumerateArray());
            Assert.Equal(("MC3001", 11), (diagnostic.GetProperty("code").GetString(), diagnostic.GetProperty("line").GetInt32()));
            // The same tree as the report.json written beside the model.
            using var file = JsonDocument.Parse(File.ReadAllText(_dir.File("out/gate.student.report.json")));
            Assert.True(JsonNode.DeepEquals(JsonNode.Parse(file.RootElement.GetProperty("stages").GetRawText()), JsonNode.Parse(report.GetProperty("stages").GetRawText())));
        }

        // Progress and the result table went to stderr, training progress as plain lines (the output is not a terminal).
        Assert.Contains("distill:", failed.Stderr, StringComparison.Ordinal);
        Assert.Matches(@"(?m)^distill: epoch 1/1 +\d+ ?% loss \d+\.\d{4} lr [\d.]+e-?\d+ ETA \d\d:\d\d:\d\d", failed.Stderr);
        Assert.Contains("error MC3001", failed.Stderr, StringComparison.Ordinal);

        File.WriteAllText(recipe, File.ReadAllText(recipe).Replace("accuracy >= 0.999", "accuracy >= 0.01", StringComparison.Ordinal));
        var passed = CompressCli.Run(_dir.Path, ["run", recipe, "--quiet", .. where]);

        Assert.True(passed.ExitCode == 0, passed.ToString());
        Assert.Equal(string.Empty, passed.Stderr);
        var line = Assert.Single(passed.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Matches(@"^gate\.compress\.yaml: 1/1 gates passed; accuracy \d+\.\d\d%, [\d.]+ MB; wrote .*gate\.student\.onnx$", line);
        Assert.True(File.Exists(_dir.File("out/gate.student.onnx")));
    }

    [Fact]
    [Trait("Category", "Slow")]
    public void A_regression_run_shows_its_validation_rmse_and_headline_not_an_accuracy()
    {
        // The diabetes data (tests/fixtures/diabetes): progression a year on, a real number per patient.
        File.Copy(Path.Join(Repo.Root, "tests", "fixtures", "diabetes", "diabetes.csv"), _dir.File("diabetes.csv"));
        var recipe = _dir.Write("progression.compress.yaml", """
            task: regression
            data:
              format: csv
              file: diabetes.csv
              csv: { label: progression }
              split: { test: 0.2, seed: 3 }
              normalize: per_feature
            student: { architecture: mlp, hidden: [8] }
            stages:
              - finetune: { epochs: 2, batch_size: 16, learning_rate: 0.02, validation_fraction: 0.2 }
            gates:
              - rmse <= 1000
            """);
        string[] where = ["--output", _dir.File("out"), "--cache", _dir.File("cache"), "--threads", "1"];

        var run = CompressCli.Run(_dir.Path, ["run", recipe, .. where]);
        var quiet = CompressCli.Run(_dir.Path, ["run", recipe, "--quiet", .. where]);

        Assert.True(run.ExitCode == 0, run.ToString());
        var log = run.Stdout + run.Stderr;
        Assert.Matches(@"(?m)^finetune: epoch 2/2 .* val rmse \d+(\.\d+)? ETA", log);
        Assert.DoesNotContain("accuracy", log, StringComparison.Ordinal);
        Assert.Matches(@"^progression\.compress\.yaml: 1/1 gates passed; RMSE [\d.]+, MAE [\d.]+, [\d.]+ MB; wrote .*progression\.student\.onnx$", quiet.Stdout.Trim());
    }
}

/// <summary>The repository's files the tests read (the sample's data and teacher).</summary>
internal static class Repo
{
    public static string Root { get; } = Find();

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Join(dir.FullName, "samples", "FashionMnist", "fashion.compress.yaml")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"No repository root above {AppContext.BaseDirectory}.");
    }
}
