using System.Reflection;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.Json;
using ModelCompression.Common;
using ModelCompression.Evaluation;
using ModelCompression.Pipeline;
using ModelCompression.Reports;
using ModelCompression.Stages;

namespace ModelCompression.Core.Tests.Reports;

public sealed class JsonReportTests
{
    private static readonly DateTimeOffset Created = new(2026, 11, 25, 15, 0, 0, TimeSpan.Zero);

    private static JsonNode Parse(PipelineResult result) =>
        JsonNode.Parse(ReportWriter.Render(JsonReport.Build(result, Created), "json"))!;

    [Fact]
    public void Top_level_keys_are_the_schema_v4_keys_and_null_is_written_not_omitted()
    {
        var json = Parse(ReportTestData.Run(outputModel: null));

        Assert.Equal(
            ["schema_version", "engine_version", "recipe", "task", "passed", "output_model", "created_utc", "class_names", "teacher", "stages", "gates", "cache"],
            json.AsObject().Select(p => p.Key));
        Assert.Equal(4, (int)json["schema_version"]!);
        Assert.Equal(EngineInfo.Version, (string?)json["engine_version"]);
        Assert.Equal("/work/recipes/fashion.compress.yaml", (string?)json["recipe"]);
        Assert.Equal("classification", (string?)json["task"]);
        Assert.False((bool)json["passed"]!);
        Assert.True(json.AsObject().ContainsKey("output_model"));
        Assert.Null(json["output_model"]);
        Assert.Equal("2026-11-25T15:00:00Z", (string?)json["created_utc"]);
        Assert.True(json.AsObject().ContainsKey("class_names"));
        Assert.Null(json["class_names"]);
    }

    [Fact]
    public void Paths_and_versions_are_written_as_they_are()
    {
        var text = ReportWriter.Render(JsonReport.Build(ReportTestData.Run("/work/modèles/a+b <c>.compress.yaml"), Created), "json");

        Assert.Contains("\"recipe\": \"/work/modèles/a+b <c>.compress.yaml\"", text, StringComparison.Ordinal);
        Assert.Contains($"\"engine_version\": \"{EngineInfo.Version}\"", text, StringComparison.Ordinal);
        Assert.DoesNotContain("\\u", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Stages_carry_losses_validation_accuracies_and_the_sweep()
    {
        var result = ReportTestData.Run();
        var stages = Parse(result)["stages"]!.AsArray();

        Assert.Equal(["distill", "prune", "quantize"], stages.Select(s => (string?)s!["stage"]));
        foreach (var stage in stages)
        {
            Assert.Equal(
                ["stage", "summary", "cached", "cache", "seconds", "details", "epoch_losses", "validation_accuracies", "sweep", "evaluation", "baseline", "baseline_details", "gain_from_distillation"],
                stage!.AsObject().Select(p => p.Key));
        }

        var distill = stages[0]!;
        Assert.Equal([1.02, 0.61, 0.48, 0.42, 0.39], distill["epoch_losses"]!.AsArray().Select(v => (double)v!));
        Assert.Equal([0.812, 0.843, 0.858, 0.866, 0.871], distill["validation_accuracies"]!.AsArray().Select(v => (double)v!));
        Assert.Equal("54000", (string?)distill["details"]!["train_samples"]);
        Assert.Equal(48.2, (double)distill["seconds"]!);
        var sweep = distill["sweep"]!.AsArray();
        Assert.Equal(4, sweep.Count);
        Assert.Equal(["trial", "alpha", "temperature", "learning_rate", "validation_accuracy", "best"], sweep[2]!.AsObject().Select(p => p.Key));
        Assert.Equal(3, (int)sweep[2]!["trial"]!);
        Assert.Equal(4, (double)sweep[2]!["temperature"]!);
        Assert.Equal(0.001, (double)sweep[2]!["learning_rate"]!);
        Assert.Equal([false, false, true, false], sweep.Select(t => (bool)t!["best"]!));

        var prune = stages[1]!;
        Assert.True((bool)prune["cached"]!);
        Assert.Null(prune["validation_accuracies"]);
        Assert.Null(prune["sweep"]);
        var quantize = stages[2]!;
        Assert.Null(quantize["epoch_losses"]);
    }

    [Fact]
    public void Gates_carry_column_message_and_significance()
    {
        var result = ReportTestData.Run();
        var gates = Parse(result)["gates"]!.AsArray();

        Assert.Equal(result.Gates.Count, gates.Count);
        foreach (var gate in gates)
        {
            Assert.Equal(
                ["gate", "line", "column", "passed", "value", "threshold", "message", "significant", "p_value", "skipped"],
                gate!.AsObject().Select(p => p.Key));
        }

        Assert.Equal([17, 18, 19, 20], gates.Select(g => (int)g!["line"]!));
        Assert.Equal([true, false, true, true], gates.Select(g => (bool)g!["passed"]!));
        Assert.Equal(0.889, (double)gates[1]!["threshold"]!);
        Assert.Equal(result.Gates[1].Message, (string?)gates[1]!["message"]);
        Assert.False((bool)gates[0]!["significant"]!);
        Assert.Null(gates[0]!["p_value"]);
        Assert.True((bool)gates[3]!["significant"]!);
        Assert.Equal(0.21, (double)gates[3]!["p_value"]!);
    }

    [Fact]
    public void Evaluations_hold_every_ModelEvaluation_property_in_snake_case_except_predictions()
    {
        var result = ReportTestData.Run();
        var json = Parse(result);
        var expectedKeys = typeof(ModelEvaluation).GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.GetCustomAttribute<JsonIgnoreAttribute>() is null)
            .Select(p => p.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name ?? JsonNamingPolicy.SnakeCaseLower.ConvertName(p.Name))
            .Where(k => k is not ("predictions" or "metrics"))
            .Order(StringComparer.Ordinal);

        var evaluations = json["stages"]!.AsArray().Select(s => s!["evaluation"]!).Prepend(json["teacher"]!).ToList();
        Assert.Equal(4, evaluations.Count);
        foreach (var evaluation in evaluations)
        {
            Assert.Equal(expectedKeys, evaluation.AsObject().Select(p => p.Key).Order(StringComparer.Ordinal));
            Assert.False(evaluation.AsObject().ContainsKey("predictions"));
        }

        Assert.Equal("teacher", (string?)json["teacher"]!["name"]);
        Assert.Equal(0.9190, (double)json["teacher"]!["accuracy"]!);
        Assert.Equal(407_080, (long)json["teacher"]!["size_bytes"]!);
        Assert.Equal(0.40708, (double)json["teacher"]!["size_mb"]!, 1e-12);
        Assert.Equal(101_770, (long)json["teacher"]!["parameters"]!);
        Assert.Equal(ReportTestData.Samples, (int)json["teacher"]!["samples"]!);
        Assert.Equal(0.8612, (double)evaluations[3]!["accuracy"]!);
    }

    [Fact]
    public void A_metric_that_is_not_a_number_is_written_as_null()
    {
        var result = ReportTestData.Run();
        var broken = result with
        {
            Gates = [result.Gates[0] with { Value = double.NaN, Threshold = double.PositiveInfinity }],
            Stages = [result.Stages[0] with { Result = result.Stages[0].Result with { EpochLosses = [0.5, double.NaN] } }],
            Teacher = result.Teacher! with { Accuracy = double.NaN },
        };

        var json = Parse(broken);

        Assert.Null(json["gates"]![0]!["value"]);
        Assert.Null(json["gates"]![0]!["threshold"]);
        Assert.Equal([0.5, null], json["stages"]![0]!["epoch_losses"]!.AsArray().Select(v => (double?)v));
        Assert.True(json["teacher"]!.AsObject().ContainsKey("accuracy"));
        Assert.Null(json["teacher"]!["accuracy"]);
    }

    [Fact]
    public void A_StageResult_cached_before_validation_and_sweep_existed_still_reads()
    {
        // Cache entries written by the previous engine lack the new optional members.
        const string Old = """{ "Stage": "distill", "Summary": "s", "Details": {}, "EpochLosses": [0.5], "Seconds": 1.5 }""";

        var result = JsonSerializer.Deserialize<StageResult>(Old)!;

        Assert.Equal([0.5], result.EpochLosses!);
        Assert.Null(result.ValidationAccuracies);
        Assert.Null(result.Sweep);
    }
}
