using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ModelCompression.Reports;

/// <summary>
/// Tolerant reads of a report.json tree for the views rendered from it: a key that is absent, null or of
/// another type reads as null, so a report from an older engine (or without some measurement) still renders.
/// </summary>
internal static class ReportJson
{
    /// <summary>The report's task (report.json's "task"; classification for a report written before schema version 3).</summary>
    public static Tasks.ITask Task(JsonNode report)
    {
        var task = Tasks.TaskCatalog.TryGet(Text(report, "task") ?? Tasks.TaskCatalog.DefaultName, out var known) ? known : Tasks.ClassificationTask.Instance;
        // A generation report's headline is its task type's: read it from the first evaluation that says it.
        return task is Tasks.GenerationTask
            && Objects(report, "stages").Select(s => Text(Object(Object(s, "evaluation"), "generation"), "task_type")).FirstOrDefault(t => t is not null) is { } type
            && Evaluation.GenerativeTask.Parse(type) is { } parsed
                ? Tasks.GenerationTask.For(new Evaluation.GenerativeTask(parsed))
                : task;
    }

    public static double? Number(JsonNode? node, string key) => AsNumber(node?[key]);

    /// <summary>An evaluation's metric: its own key, or a generative model's (under generation.metrics).</summary>
    public static double? Metric(JsonNode? evaluation, string name) =>
        Number(evaluation, name) ?? Number(Object(Object(evaluation, "generation"), "metrics"), name);

    public static double? AsNumber(JsonNode? value) =>
        value is JsonValue number && number.GetValueKind() == JsonValueKind.Number
            ? double.Parse(number.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture)
            : null;

    public static string? Text(JsonNode? node, string key) =>
        node?[key] is JsonValue value && value.GetValueKind() == JsonValueKind.String ? value.GetValue<string>() : null;

    public static bool? Flag(JsonNode? node, string key) =>
        node?[key] is JsonValue value && value.GetValueKind() is JsonValueKind.True or JsonValueKind.False ? value.GetValue<bool>() : null;

    public static JsonObject? Object(JsonNode? node, string key) => node?[key] as JsonObject;

    public static IReadOnlyList<JsonObject> Objects(JsonNode? node, string key) =>
        node?[key] is JsonArray array ? [.. array.OfType<JsonObject>()] : [];

    /// <summary>A list of numbers; null when absent or when any entry is not a number.</summary>
    public static IReadOnlyList<double>? Numbers(JsonNode? node, string key) => AsNumbers(node?[key]);

    public static IReadOnlyList<double>? AsNumbers(JsonNode? value)
    {
        if (value is not JsonArray array)
        {
            return null;
        }

        var values = new List<double>(array.Count);
        foreach (var item in array)
        {
            if (AsNumber(item) is not { } number)
            {
                return null;
            }

            values.Add(number);
        }

        return values;
    }

    /// <summary>A square matrix of counts (confusion matrix); null when absent or not square.</summary>
    public static IReadOnlyList<IReadOnlyList<double>>? SquareMatrix(JsonNode? node, string key)
    {
        if (node?[key] is not JsonArray rows || rows.Count == 0)
        {
            return null;
        }

        var matrix = new List<IReadOnlyList<double>>(rows.Count);
        foreach (var item in rows)
        {
            var row = AsNumbers(item);
            if (row is null || row.Count != rows.Count)
            {
                return null;
            }

            matrix.Add(row);
        }

        return matrix;
    }

    /// <summary>
    /// report.json's class names when they name exactly <paramref name="classes"/> classes; null when the data had
    /// none (plain numeric labels) or the list does not fit, so views show class numbers instead.
    /// </summary>
    public static IReadOnlyList<string>? ClassNames(JsonNode report, int classes)
    {
        if (report["class_names"] is not JsonArray array || array.Count != classes)
        {
            return null;
        }

        var names = new List<string>(classes);
        foreach (var item in array)
        {
            if (item is not JsonValue value || value.GetValueKind() != JsonValueKind.String)
            {
                return null;
            }

            names.Add(value.GetValue<string>());
        }

        return names;
    }

    /// <summary>Class <paramref name="index"/>'s name, or its number when there are no names.</summary>
    public static string ClassLabel(IReadOnlyList<string>? names, int index) =>
        names is not null && index >= 0 && index < names.Count ? names[index] : index.ToString(CultureInfo.InvariantCulture);

    /// <summary>Whether the run had a teacher: report.json's 'teacher' is null when the recipe named none.</summary>
    public static bool HasTeacher(JsonNode report) => Object(report, "teacher") is not null;

    /// <summary>The teacher (when there is one) and every stage's output, in pipeline order.</summary>
    public static IReadOnlyList<ReportModel> Models(JsonNode report)
    {
        var models = new List<ReportModel>();
        if (Object(report, "teacher") is { } teacher)
        {
            models.Add(new ReportModel("teacher", teacher, null));
        }

        foreach (var stage in Objects(report, "stages"))
        {
            if (Object(stage, "evaluation") is { } evaluation)
            {
                models.Add(new ReportModel(Text(stage, "stage") ?? Text(evaluation, "name") ?? "stage", evaluation, stage));
            }
        }

        return models;
    }

    /// <summary>The model the gates judged: the last stage's output (the teacher when there is no stage).</summary>
    public static ReportModel? FinalModel(JsonNode report) => Models(report) is { Count: > 0 } models ? models[^1] : null;
}

/// <summary>A model of the report: the teacher or a stage's output.</summary>
/// <param name="Name">"teacher" or the stage kind.</param>
/// <param name="Evaluation">Its evaluation object.</param>
/// <param name="Stage">The stage object that produced it; null for the teacher.</param>
internal sealed record ReportModel(string Name, JsonObject Evaluation, JsonObject? Stage);
