using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ModelCompression.Evaluation;
using ModelCompression.Pipeline;

namespace ModelCompression.Reports;

/// <summary>
/// Writes a run's reports next to the model: report.json (schema version 1: teacher, stages, gates) and
/// report.md (a compact table that reads well as a CI job summary).
/// </summary>
public static class ReportWriter
{
    /// <summary>The version of report.json's schema; bumped on any incompatible change.</summary>
    public const int SchemaVersion = 1;

    /// <summary>Writes the reports the recipe asks for; returns their paths.</summary>
    public static IReadOnlyList<string> Write(PipelineResult result, string outputDirectory)
    {
        var stem = Path.GetFileNameWithoutExtension(result.Recipe.Outputs.Model);
        var written = new List<string>();
        foreach (var format in result.Recipe.Outputs.Reports)
        {
            var path = Path.Combine(outputDirectory, $"{stem}.report.{format}");
            AtomicFile.WriteAllText(path, format == "json" ? Json(result) : Markdown(result));
            written.Add(path);
        }

        return written;
    }

    /// <summary>report.json's text.</summary>
    public static string Json(PipelineResult result)
    {
        var root = new JsonObject
        {
            ["schema_version"] = SchemaVersion,
            ["engine_version"] = CompressionPipeline.EngineVersion,
            ["recipe"] = result.Recipe.Path,
            ["passed"] = result.GatesPassed,
            ["output_model"] = result.OutputModel,
            ["teacher"] = Evaluation(result.Teacher),
            ["stages"] = new JsonArray([.. result.Stages.Select(s => (JsonNode)new JsonObject
            {
                ["stage"] = s.Result.Stage,
                ["summary"] = s.Result.Summary,
                ["cached"] = s.Cached,
                ["seconds"] = s.Result.Seconds,
                ["details"] = new JsonObject([.. s.Result.Details.Select(d => KeyValuePair.Create(d.Key, (JsonNode?)d.Value))]),
                ["epoch_losses"] = s.Result.EpochLosses is null ? null : new JsonArray([.. s.Result.EpochLosses.Select(l => (JsonNode)l)]),
                ["evaluation"] = Evaluation(s.Evaluation),
            })]),
            ["gates"] = new JsonArray([.. result.Gates.Select(g => (JsonNode)new JsonObject
            {
                ["gate"] = g.Text,
                ["line"] = g.Line,
                ["passed"] = g.Passed,
                ["value"] = g.Value,
                ["threshold"] = g.Threshold,
            })]),
        };
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>report.md's text.</summary>
    public static string Markdown(PipelineResult result)
    {
        var invariant = CultureInfo.InvariantCulture;
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"## Model compression: {Path.GetFileName(result.Recipe.Path)} — {(result.GatesPassed ? "passed" : "GATE FAILED")}");
        text.AppendLine();
        text.AppendLine("| model | accuracy | size (MB) | parameters | notes |");
        text.AppendLine("|---|---:|---:|---:|---|");
        Row(text, "teacher", result.Teacher, string.Empty);
        foreach (var stage in result.Stages)
        {
            Row(text, stage.Result.Stage, stage.Evaluation, (stage.Cached ? "(cached) " : string.Empty) + stage.Result.Summary);
        }

        if (result.Gates.Count > 0)
        {
            text.AppendLine();
            text.AppendLine("| gate | value | threshold | result |");
            text.AppendLine("|---|---:|---:|---|");
            foreach (var gate in result.Gates)
            {
                text.AppendLine(invariant, $"| `{gate.Text}` | {gate.Value.ToString("0.####", invariant)} | {gate.Threshold.ToString("0.####", invariant)} | {(gate.Passed ? "pass" : "**FAIL**")} |");
            }
        }

        return text.ToString();
    }

    private static void Row(StringBuilder text, string name, ModelEvaluation evaluation, string notes)
    {
        var invariant = CultureInfo.InvariantCulture;
        text.AppendLine(invariant, $"| {name} | {evaluation.Accuracy.ToString("P2", invariant)} | {evaluation.SizeMb.ToString("0.###", invariant)} | {evaluation.Parameters.ToString("N0", invariant)} | {notes} |");
    }

    private static JsonObject Evaluation(ModelEvaluation evaluation) => new()
    {
        ["accuracy"] = evaluation.Accuracy,
        ["size_bytes"] = evaluation.SizeBytes,
        ["size_mb"] = evaluation.SizeMb,
        ["parameters"] = evaluation.Parameters,
        ["samples"] = evaluation.Samples,
    };
}
