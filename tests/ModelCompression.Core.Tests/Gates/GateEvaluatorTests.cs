using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;
using ModelCompression.Gates;
using ModelCompression.Recipes;

namespace ModelCompression.Core.Tests.Gates;

public sealed class GateEvaluatorTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private Recipe LoadWithGates(params string[] gates)
    {
        foreach (var name in new[] { "a.gz", "b.gz", "teacher.onnx" })
        {
            File.WriteAllBytes(_dir.File(name), [0]);
        }

        var text = "data:\n  format: idx\n  train: { inputs: a.gz, labels: b.gz }\n  test: { inputs: a.gz, labels: b.gz }\n"
            + "teacher: teacher.onnx\nstudent: { architecture: mlp }\nstages:\n  - distill\ngates:\n"
            + string.Concat(gates.Select(g => $"  - {g}\n"));
        return RecipeLoader.Load(_dir.Write("gates.compress.yaml", text));
    }

    [Fact]
    public void Every_gate_is_evaluated_and_failures_name_their_recipe_line()
    {
        // Gates start on line 10 of the recipe above.
        var recipe = LoadWithGates(
            "accuracy >= 0.95",                      // line 10: fails (0.80)
            "accuracy >= teacher.accuracy - 0.05",   // line 11: passes (0.80 >= 0.80)
            "size_mb <= 0.001",                      // line 12: fails (0.5 MB)
            "parameters <= 100000");                 // line 13: passes
        var final = new ModelEvaluation("quantize", 0.80, 500_000, 50_000, 100);
        var teacher = new ModelEvaluation("teacher", 0.85, 2_000_000, 400_000, 100);

        var results = GateEvaluator.Evaluate(recipe, final, teacher);

        Assert.Equal([false, true, false, true], results.Select(r => r.Passed));
        Assert.Equal([10, 11, 12, 13], results.Select(r => r.Line));
        Assert.Equal([0.80, 0.80, 0.5, 50_000], results.Select(r => r.Value));
        Assert.Equal(0.80, results[1].Threshold, 1e-12);
        Assert.Equal(0.95, results[0].Threshold);
        Assert.Contains("accuracy is 0.8, needs >= 0.95", results[0].Message, StringComparison.Ordinal);

        var failures = GateEvaluator.Failures(recipe.Path, results);
        Assert.Equal(2, failures.Count);
        Assert.All(failures, f =>
        {
            Assert.Equal(DiagnosticCodes.GateFailed, f.Code);
            Assert.Equal(DiagnosticSeverity.Error, f.Severity);
            Assert.Equal(recipe.Path, f.File);
            Assert.Equal(5, f.Column);
        });
        Assert.Equal([10, 12], failures.Select(f => f.Line));
        Assert.StartsWith($"{recipe.Path}(12,5): error MC3001: Gate 'size_mb <= 0.001' failed", failures[1].ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void No_failures_when_every_gate_holds()
    {
        var recipe = LoadWithGates("accuracy >= 0.5", "accuracy >= teacher.accuracy - 0.1");
        var results = GateEvaluator.Evaluate(recipe, new ModelEvaluation("s", 0.9, 10, 10, 10), new ModelEvaluation("t", 0.95, 10, 10, 10));

        Assert.All(results, r => Assert.True(r.Passed));
        Assert.Empty(GateEvaluator.Failures(recipe.Path, results));
    }
}
