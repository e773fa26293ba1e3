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

        var results = GateEvaluator.Evaluate(recipe.Gates, recipe.Baseline, final, teacher);

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
    public void Without_a_teacher_a_gate_on_the_teacher_fails_and_says_why()
    {
        // The loader rejects such a recipe; one built in code (or an old caller) still gets a failed gate, not a crash.
        var recipe = LoadWithGates("accuracy >= 0.5", "accuracy >= teacher.accuracy - 0.1") with { Teachers = [] };

        var results = GateEvaluator.Evaluate(recipe.Gates, recipe.Baseline, new ModelEvaluation("finetune", 0.9, 10, 10, 10), teacher: null);

        Assert.Equal([true, false], results.Select(r => r.Passed));
        Assert.Equal(11, results[1].Line);
        Assert.Contains("the recipe has none", results[1].Message, StringComparison.Ordinal);
    }

    [Fact]
    public void No_failures_when_every_gate_holds()
    {
        var recipe = LoadWithGates("accuracy >= 0.5", "accuracy >= teacher.accuracy - 0.1");
        var results = GateEvaluator.Evaluate(recipe.Gates, recipe.Baseline, new ModelEvaluation("s", 0.9, 10, 10, 10), new ModelEvaluation("t", 0.95, 10, 10, 10));

        Assert.All(results, r => Assert.True(r.Passed));
        Assert.Empty(GateEvaluator.Failures(recipe.Path, results));
    }

    /// <summary>An evaluation whose predictions are right exactly where <paramref name="right"/> says, on labels all 0.</summary>
    private static ModelEvaluation WithPredictions(string name, bool[] right) =>
        new ModelEvaluation(name, right.Count(r => r) / (double)right.Length, 1000, 10, right.Length)
        {
            Predictions = [.. right.Select(r => r ? 0 : 1)],
            AccuracyCi95 = [Statistics.BootstrapAccuracyInterval(right).Lower, Statistics.BootstrapAccuracyInterval(right).Upper],
        };

    [Fact]
    public void Relative_drops_latency_and_other_metrics_are_gates_too()
    {
        var recipe = LoadWithGates(
            "accuracy >= teacher.accuracy - 5%",   // 0.80 >= 0.85 * 0.95 = 0.8075: fails
            "accuracy >= teacher.accuracy - 10%",  // 0.80 >= 0.765: passes
            "latency_p95_ms <= 2",                 // 1.5: passes
            "macro_f1 >= 0.9");                     // not measured: fails, saying so
        var final = new ModelEvaluation("quantize", 0.80, 500_000, 50_000, 100)
        {
            Latency = new LatencyReport(1, new LatencyStats(1, 1.0, 1.5, 1.7, 100), new LatencyStats(64, 9, 10, 11, 20)),
        };
        var teacher = new ModelEvaluation("teacher", 0.85, 2_000_000, 400_000, 100);

        var results = GateEvaluator.Evaluate(recipe.Gates, recipe.Baseline, final, teacher);

        Assert.Equal([false, true, true, false], results.Select(r => r.Passed));
        Assert.Equal(0.85 * 0.95, results[0].Threshold, 1e-12);
        Assert.Equal(1.5, results[2].Value);
        Assert.Contains("macro_f1 was not measured", results[3].Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_baseline_skips_its_gates_with_a_clear_message_and_a_present_one_is_compared()
    {
        var recipe = LoadWithGates("accuracy >= baseline.accuracy - 0.01", "size_mb <= baseline.size_mb");
        var final = new ModelEvaluation("quantize", 0.80, 500_000, 50_000, 100);
        var teacher = new ModelEvaluation("teacher", 0.85, 2_000_000, 400_000, 100);

        var skipped = GateEvaluator.Evaluate(recipe.Gates, recipe.Baseline, final, teacher, baseline: null);
        Assert.All(skipped, r => Assert.True(r.Passed && r.Skipped));
        Assert.Contains("no baseline yet", skipped[0].Message, StringComparison.Ordinal);
        Assert.Equal(_dir.File("gates.baseline.json"), recipe.Baseline);

        var accepted = new BaselineFile(BaselineFile.CurrentSchemaVersion, DateTimeOffset.UtcNow, "data", new ModelEvaluation("quantize", 0.82, 400_000, 50_000, 100));
        accepted.Save(recipe.Baseline);
        var compared = GateEvaluator.Evaluate(recipe.Gates, recipe.Baseline, final, teacher, BaselineFile.Load(recipe.Baseline));
        Assert.Equal([false, false], compared.Select(r => r.Passed)); // 0.80 < 0.81; 0.5 MB > 0.4 MB
        Assert.Equal([0.81, 0.4], compared.Select(r => Math.Round(r.Threshold, 12)));
    }

    [Fact]
    public void Significance_passes_a_chance_drop_on_a_tiny_test_set_and_still_fails_a_real_regression()
    {
        var recipe = LoadWithGates("{ gate: accuracy >= baseline.accuracy, significant: true }", "accuracy >= baseline.accuracy");
        var labels = new long[40];
        var teacher = new ModelEvaluation("teacher", 0.9, 1, 1, 40);
        // Baseline right on 36 of 40; the new model loses 3 of those and wins 1 elsewhere: 34/40, p = 0.625.
        var before = Enumerable.Range(0, 40).Select(i => i < 36).ToArray();
        var after = Enumerable.Range(0, 40).Select(i => (i < 33) || i == 38).ToArray();
        var baseline = new BaselineFile(1, DateTimeOffset.UtcNow, "data", WithPredictions("quantize", before));

        var chance = GateEvaluator.Evaluate(recipe.Gates, recipe.Baseline, WithPredictions("quantize", after), teacher, baseline, labels, "data");

        Assert.True(chance[0].Passed, chance[0].Message);
        Assert.Equal(0.625, chance[0].PValue!.Value, 1e-9); // 2 * P(X <= 1), X ~ Binomial(4, 1/2) = 2 * 5/16
        Assert.Contains("not significantly worse", chance[0].Message, StringComparison.Ordinal);
        Assert.False(chance[1].Passed); // the same drop without significance fails: that is the flaky build avoided

        // A real regression: 16 of the 36 lost, none won: p = 2^-15.
        var regressed = Enumerable.Range(0, 40).Select(i => i < 20).ToArray();
        var real = GateEvaluator.Evaluate(recipe.Gates, recipe.Baseline, WithPredictions("quantize", regressed), teacher, baseline, labels, "data");
        Assert.False(real[0].Passed, real[0].Message);
        Assert.True(real[0].PValue < 0.001);

        // Other held-out data: no pairing; the bootstrap interval of the new model decides.
        var unpaired = GateEvaluator.Evaluate(recipe.Gates, recipe.Baseline, WithPredictions("quantize", after), teacher, baseline, labels, "other data");
        Assert.True(unpaired[0].Passed, unpaired[0].Message);
        Assert.Null(unpaired[0].PValue);
        Assert.Contains("95% interval", unpaired[0].Message, StringComparison.Ordinal);
        var unpairedReal = GateEvaluator.Evaluate(recipe.Gates, recipe.Baseline, WithPredictions("quantize", regressed), teacher, baseline, labels, "other data");
        Assert.False(unpairedReal[0].Passed, unpairedReal[0].Message);
    }

    [Fact]
    public void Significance_is_for_accuracy_floors_only()
    {
        var e = Assert.Throws<CompressionException>(() => LoadWithGates("{ gate: size_mb <= 1, significant: true }"));
        Assert.Equal((DiagnosticCodes.RecipeInvalidGate, 10), (e.Diagnostics[0].Code, e.Diagnostics[0].Line!.Value));
    }
}
