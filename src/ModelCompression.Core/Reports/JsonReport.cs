using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.Json;
using ModelCompression.Common;
using ModelCompression.Evaluation;
using ModelCompression.Gates;
using ModelCompression.Pipeline;

namespace ModelCompression.Reports;

/// <summary>
/// Builds report.json (schema in docs/report-schema.md) as a JSON tree. The markdown and HTML reports are
/// rendered from this tree, so every report of a run shows the same numbers.
/// </summary>
public static class JsonReport
{
    /// <summary>The version of report.json's schema; bumped on any incompatible change.</summary>
    public const int SchemaVersion = 4;

    /// <summary>
    /// Keys of a serialized <see cref="ModelEvaluation"/> that report.json leaves out: the per-sample
    /// predictions (kept for baselines and significance tests, too large for a report) and the metric
    /// dictionary (the same numbers again under gate names).
    /// </summary>
    private static readonly string[] OmittedEvaluationKeys = ["predictions", "metrics"];

    /// <summary>
    /// How evaluations, sweeps and other records become JSON: snake_case names, so a property added to
    /// <see cref="ModelEvaluation"/> appears in the report without a change here; null written, never omitted.
    /// </summary>
    private static readonly JsonSerializerOptions RecordOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        Converters = { new FiniteDoubleConverter() },
    };

    /// <summary>
    /// How report.json is written to disk: indented, and with paths and versions written as they are
    /// ("1.0.0+abc", "modèles/") rather than as \u escapes; the file is never embedded in HTML unencoded.
    /// </summary>
    internal static JsonSerializerOptions FileOptions { get; } = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>report.json's tree for <paramref name="result"/>, stamped with <paramref name="createdUtc"/>.</summary>
    public static JsonObject Build(PipelineResult result, DateTimeOffset createdUtc)
    {
        ArgumentNullException.ThrowIfNull(result);
        var names = result.ClassNames;
        return new()
        {
            ["schema_version"] = SchemaVersion,
            ["engine_version"] = EngineInfo.Version,
            ["recipe"] = result.Recipe.Path,
            ["task"] = result.Recipe.Task,
            ["passed"] = result.GatesPassed,
            ["output_model"] = result.OutputModel,
            ["created_utc"] = createdUtc.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture),
            ["class_names"] = names is null ? null : new JsonArray([.. names.Select(n => (JsonNode)n)]),
            ["teacher"] = result.Teacher is null ? null : Evaluation(result.Teacher, names),
            ["stages"] = new JsonArray([.. result.Stages.Select(s => Stage(s, names))]),
            ["gates"] = new JsonArray([.. result.Gates.Select(Gate)]),
            ["cache"] = result.Cache is null ? null : Cache(result.Cache),
        };
    }

    /// <summary>The run's cache use: the folder, the remote cache and its mode, and the counts and bytes by kind of entry.</summary>
    private static JsonObject Cache(CacheSummary cache) => new()
    {
        ["folder"] = cache.Folder,
        ["remote"] = cache.Remote,
        ["mode"] = RemoteCacheOptions.ModeName(cache.Mode),
        ["remote_available"] = cache.RemoteAvailable,
        ["total"] = CacheCounts(cache.Total),
        ["kinds"] = new JsonArray([.. cache.Kinds.Select(k => (JsonNode)CacheCounts(k))]),
    };

    private static JsonObject CacheCounts(CacheKindStatistics counts) => new()
    {
        ["kind"] = counts.Kind,
        ["local_hits"] = counts.LocalHits,
        ["remote_hits"] = counts.RemoteHits,
        ["built"] = counts.Built,
        ["damaged"] = counts.Damaged,
        ["bytes_down"] = counts.BytesDown,
        ["bytes_up"] = counts.BytesUp,
    };

    /// <summary>How the report names a cache source.</summary>
    internal static string SourceName(CacheSource source) => source switch
    {
        CacheSource.Local => "local",
        CacheSource.Remote => "remote",
        _ => "built",
    };

    /// <summary>
    /// One evaluation as report.json holds it: every property of <paramref name="evaluation"/>, snake_case, minus
    /// predictions; each per-class entry also gets its class's <c>name</c> from <paramref name="classNames"/> (null without names).
    /// </summary>
    public static JsonObject Evaluation(ModelEvaluation evaluation, IReadOnlyList<string>? classNames = null)
    {
        var node = JsonSerializer.SerializeToNode(evaluation, RecordOptions)!.AsObject();
        foreach (var key in OmittedEvaluationKeys)
        {
            node.Remove(key);
        }

        // A generative model's per-record scores and answers are kept for baselines, not for reading.
        (node["generation"] as JsonObject)?.Remove("per_sample");
        (node["generation"] as JsonObject)?.Remove("answers");

        foreach (var entry in (node["per_class"] as JsonArray)?.OfType<JsonObject>() ?? [])
        {
            var index = (int)entry["class"]!;
            entry["name"] = classNames is not null && index >= 0 && index < classNames.Count ? classNames[index] : null;
        }

        return node;
    }

    private static JsonNode Stage(StageReport stage, IReadOnlyList<string>? names) => new JsonObject
    {
        ["stage"] = stage.Result.Stage,
        ["summary"] = stage.Result.Summary,
        ["cached"] = stage.Cached,
        ["cache"] = stage.Cache is not { } use ? null : new JsonObject
        {
            ["source"] = SourceName(use.Source),
            ["bytes_down"] = use.BytesDown,
            ["bytes_up"] = use.BytesUp,
        },
        ["seconds"] = Number(stage.Result.Seconds),
        ["details"] = new JsonObject([.. stage.Result.Details.Select(d => KeyValuePair.Create(d.Key, (JsonNode?)d.Value))]),
        ["epoch_losses"] = Numbers(stage.Result.EpochLosses),
        ["validation_accuracies"] = Numbers(stage.Result.ValidationAccuracies),
        ["sweep"] = stage.Result.Sweep is null ? null : JsonSerializer.SerializeToNode(stage.Result.Sweep, RecordOptions),
        ["evaluation"] = Evaluation(stage.Evaluation, names),
        ["baseline"] = stage.Baseline is null ? null : Evaluation(stage.Baseline, names),
        ["baseline_details"] = stage.BaselineResult is null ? null : new JsonObject([.. stage.BaselineResult.Details.Select(d => KeyValuePair.Create(d.Key, (JsonNode?)d.Value))]),
        ["gain_from_distillation"] = stage.GainFromDistillation is { } gain ? Number(gain) : null,
    };

    private static JsonNode Gate(GateResult gate) => new JsonObject
    {
        ["gate"] = gate.Text,
        ["line"] = gate.Line,
        ["column"] = gate.Column,
        ["passed"] = gate.Passed,
        ["value"] = Number(gate.Value),
        ["threshold"] = Number(gate.Threshold),
        ["message"] = gate.Message,
        ["significant"] = gate.Significant,
        ["p_value"] = gate.PValue is { } p ? Number(p) : null,
        ["skipped"] = gate.Skipped,
    };

    private static JsonArray? Numbers(IReadOnlyList<double>? values) =>
        values is null ? null : new JsonArray([.. values.Select(Number)]);

    /// <summary>JSON has no NaN or infinity: a non-finite number is an absent fact, written as null.</summary>
    private static JsonNode? Number(double value) => double.IsFinite(value) ? value : null;

    /// <summary>Writes NaN and infinities as null, so an undefined metric (e.g. ECE of no samples) never breaks the report.</summary>
    private sealed class FiniteDoubleConverter : JsonConverter<double>
    {
        public override double Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.GetDouble();

        public override void Write(Utf8JsonWriter writer, double value, JsonSerializerOptions options)
        {
            if (double.IsFinite(value))
            {
                writer.WriteNumberValue(value);
            }
            else
            {
                writer.WriteNullValue();
            }
        }
    }
}
