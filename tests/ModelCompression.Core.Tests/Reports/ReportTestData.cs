using System.Text.Json.Nodes;
using ModelCompression.Evaluation;
using ModelCompression.Gates;
using ModelCompression.Pipeline;
using ModelCompression.Recipes;
using ModelCompression.Stages;

namespace ModelCompression.Core.Tests.Reports;

/// <summary>
/// A realistic run for report tests: a Fashion-MNIST-like teacher, then distill (with a validation split
/// and a sweep), prune (trained without validation) and quantize (no training), and four gates of which
/// one fails.
/// </summary>
internal static class ReportTestData
{
    public const int Classes = 10;

    public const int Samples = 10_000;

    /// <summary>
    /// A recipe as the loader makes it (only its path and outputs matter to reports): loaded from a minimal
    /// file rather than constructed, so changes to the recipe records do not touch these tests.
    /// </summary>
    private static readonly Lazy<Recipe> Template = new(() =>
    {
        using var dir = new TempDir();
        foreach (var name in new[] { "images.idx", "labels.idx", "teacher.onnx" })
        {
            File.WriteAllBytes(dir.File(name), [0]);
        }

        return RecipeLoader.Load(dir.Write("template.compress.yaml", "data:\n  format: idx\n  train: { inputs: images.idx, labels: labels.idx }\n"
            + "  test: { inputs: images.idx, labels: labels.idx }\nteacher: teacher.onnx\nstudent: { architecture: mlp }\nstages:\n  - distill\n"));
    });

    public static Recipe Recipe(string path, params string[] reports) => Template.Value with
    {
        Path = path,
        Outputs = new OutputSpec("fashion.student.onnx", reports.Length == 0 ? ["json", "md", "html"] : reports),
    };

    /// <summary>
    /// The one place evaluations are made, so a change to <see cref="ModelEvaluation"/>'s constructor
    /// changes only this method.
    /// </summary>
    public static ModelEvaluation Evaluation(string name, double accuracy, long sizeBytes, long parameters) =>
        new(name, accuracy, sizeBytes, parameters, Samples);

    public static PipelineResult Run(string recipePath = "/work/recipes/fashion.compress.yaml", string? outputModel = null, params string[] reports)
    {
        var teacher = Evaluation("teacher", 0.9190, 407_080, 101_770);
        var distill = new StageReport(
            new StageResult(
                "distill",
                "distilled for 5 epochs (T=4, alpha=0.9)",
                new Dictionary<string, string> { ["train_samples"] = "54000", ["validation_samples"] = "6000" },
                [1.02, 0.61, 0.48, 0.42, 0.39],
                48.2,
                [0.812, 0.843, 0.858, 0.866, 0.871],
                [
                    new SweepTrial(1, 0.5, 2, 0.001, 0.858, false),
                    new SweepTrial(2, 0.9, 2, 0.001, 0.861, false),
                    new SweepTrial(3, 0.9, 4, 0.001, 0.871, true),
                    new SweepTrial(4, 0.9, 4, 0.003, 0.864, false),
                ]),
            Cached: false,
            Evaluation("distill", 0.8702, 204_250, 50_890));
        var prune = new StageReport(
            new StageResult("prune", "removed 50% of hidden neurons; 2 recovery epochs", new Dictionary<string, string> { ["sparsity"] = "0.5" }, [0.52, 0.45], 9.7),
            Cached: true,
            Evaluation("prune", 0.8655, 103_100, 25_450));
        var quantize = new StageReport(
            new StageResult("quantize", "dynamic int8: 2 weights", new Dictionary<string, string> { ["weights"] = "2" }, null, 0.4),
            Cached: false,
            Evaluation("quantize", 0.8612, 26_140, 25_450));
        GateResult[] gates =
        [
            new("accuracy >= 0.85", 17, 5, true, 0.8612, 0.85, "Gate 'accuracy >= 0.85' passed: accuracy is 0.8612, needs >= 0.85."),
            new("accuracy >= teacher.accuracy - 0.03", 18, 5, false, 0.8612, 0.889, "Gate 'accuracy >= teacher.accuracy - 0.03' failed: accuracy is 0.8612, needs >= 0.889."),
            new("size_mb <= 0.05", 19, 5, true, 0.02614, 0.05, "Gate 'size_mb <= 0.05' passed: size_mb is 0.0261, needs <= 0.05."),
            new("accuracy >= baseline.accuracy - 0.005 (significant)", 20, 5, true, 0.8612, 0.8598, "Gate 'accuracy >= baseline.accuracy - 0.005 (significant)' passed: not significantly worse (p = 0.21).", Significant: true, PValue: 0.21),
        ];
        return new PipelineResult(Recipe(recipePath, reports), teacher, [distill, prune, quantize], gates, outputModel, []);
    }

    /// <summary>Fashion-MNIST's class names, as a recipe lists them in data.classes.</summary>
    public static readonly string[] FashionClasses = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    /// <summary>
    /// The run of <see cref="Run"/> with every evaluation's confusion matrix (<see cref="ConfusionMatrix"/>) and its
    /// per-class metrics as the engine derives them, and the data's class names (null: numeric labels).
    /// </summary>
    public static PipelineResult Measured(IReadOnlyList<string>? classNames)
    {
        static ModelEvaluation Measure(ModelEvaluation evaluation)
        {
            var matrix = ConfusionMatrix(evaluation.Accuracy);
            return evaluation with { ConfusionMatrix = matrix, PerClass = ClassificationMetrics.PerClass(matrix) };
        }

        var run = Run();
        return run with
        {
            Teacher = Measure(run.Teacher!),
            Stages = [.. run.Stages.Select(s => s with { Evaluation = Measure(s.Evaluation) })],
            ClassNames = classNames,
        };
    }

    /// <summary>
    /// Fills the schema-v2 evaluation keys that the run's evaluations do not hold (confusion matrix,
    /// per-class metrics, accuracy interval, latency) with values consistent with each model's accuracy,
    /// so the views can be tested on a complete report. Keys already present are kept.
    /// </summary>
    public static JsonObject WithMeasurements(JsonObject report)
    {
        var evaluations = new List<JsonObject> { report["teacher"]!.AsObject() };
        evaluations.AddRange(report["stages"]!.AsArray().Select(s => s!["evaluation"]!.AsObject()));
        foreach (var (evaluation, index) in evaluations.Select((e, i) => (e, i)))
        {
            var accuracy = (double)evaluation["accuracy"]!;
            var matrix = ConfusionMatrix(accuracy);
            SetIfMissing(evaluation, "accuracy_ci95", new JsonArray(Math.Round(accuracy - 0.0054, 4), Math.Round(accuracy + 0.0053, 4)));
            SetIfMissing(evaluation, "confusion_matrix", new JsonArray([.. matrix.Select(row => (JsonNode)new JsonArray([.. row.Select(c => (JsonNode)c)]))]));
            SetIfMissing(evaluation, "per_class", PerClass(matrix));
            var p50 = 0.21 / (index + 1);
            SetIfMissing(evaluation, "latency", new JsonObject
            {
                ["threads"] = 1,
                ["batch1"] = new JsonObject { ["batch_size"] = 1, ["p50_ms"] = p50, ["p95_ms"] = p50 * 1.4, ["p99_ms"] = p50 * 1.9, ["runs"] = 200 },
                ["batch"] = new JsonObject { ["batch_size"] = 64, ["p50_ms"] = p50 * 20, ["p95_ms"] = p50 * 24, ["p99_ms"] = p50 * 30, ["runs"] = 50 },
            });
        }

        return report;
    }

    /// <summary>
    /// A 10-class confusion matrix of <see cref="Samples"/> samples (1000 per class) whose diagonal holds
    /// exactly round(accuracy x samples); classes 0, 2, 4 and 6 are the hard ones, as in Fashion-MNIST.
    /// </summary>
    public static int[][] ConfusionMatrix(double accuracy)
    {
        double[] difficulty = [1.6, 0.3, 1.8, 1.0, 1.7, 0.5, 2.6, 0.6, 0.4, 0.5];
        var perClass = Samples / Classes;
        var errors = (int)Math.Round(Samples * (1 - accuracy));
        var classErrors = difficulty.Select(d => (int)Math.Floor(errors * d / difficulty.Sum())).ToArray();
        classErrors[6] += errors - classErrors.Sum();
        var matrix = new int[Classes][];
        for (var row = 0; row < Classes; row++)
        {
            matrix[row] = new int[Classes];
            matrix[row][row] = perClass - classErrors[row];
            var nearby = (int)Math.Round(classErrors[row] * 0.6);
            matrix[row][(row + 1) % Classes] += nearby;
            matrix[row][(row + 3) % Classes] += classErrors[row] - nearby;
        }

        return matrix;
    }

    private static JsonArray PerClass(int[][] matrix)
    {
        var rows = new JsonArray();
        for (var c = 0; c < Classes; c++)
        {
            var support = matrix[c].Sum();
            var predicted = matrix.Sum(r => r[c]);
            var precision = (double)matrix[c][c] / predicted;
            var recall = (double)matrix[c][c] / support;
            rows.Add(new JsonObject
            {
                ["class"] = c,
                ["precision"] = precision,
                ["recall"] = recall,
                ["f1"] = 2 * precision * recall / (precision + recall),
                ["support"] = support,
            });
        }

        return rows;
    }

    private static void SetIfMissing(JsonObject evaluation, string key, JsonNode value)
    {
        if (evaluation[key] is null)
        {
            evaluation[key] = value;
        }
    }
}
