using ModelCompression.Common;
using ModelCompression.Data;
using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;
using ModelCompression.Tasks;
using ModelCompression.Teachers;

namespace ModelCompression.Pipeline;

/// <summary>
/// What a classification run needs of a teacher behind an endpoint (<see cref="EndpointLabeler"/>): the classes (the
/// data's class names), the soft targets of a split as logits, and the teacher's row on the test split. Every answer
/// goes through the answer cache (<c>endpoint-answers</c> in the cache folder, as for generation), and the logits and
/// the row are kept in the stage cache under the teacher's settings and the data's hash, so a rerun asks nothing and
/// reads no answer. Logits with a failed or unasked request are not kept: the next run asks those again.
/// </summary>
internal sealed class EndpointTeacherOutputs(EndpointTeacherOptions options, ArtifactCache cache, string dataHash, IPipelineReporter reporter)
{
    private const string LogitsFile = "logits.bin";
    private const string OutputsFile = "outputs.bin";

    /// <summary>
    /// min_success_ratio, part of the logits' and the row's keys (not the teacher's hash): a stricter ratio checks the
    /// answers again, from the answer cache, rather than reusing soft targets a laxer one let through.
    /// </summary>
    private string RatioText => options.MinSuccessRatio.ToString("R", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The answer cache: the same folder the generation pipeline's endpoint teacher uses.</summary>
    public string AnswerCache => Path.Combine(cache.Root, GenerationPipeline.EndpointAnswersFolder);

    /// <summary>
    /// The teacher's hash, part of every stage key: the settings every request shares (model, messages around the
    /// text, sampling), not the endpoint URL or key. The texts and class names are the data's, whose hash is in every key.
    /// </summary>
    public static string HashOf(EndpointTeacherOptions options) =>
        new ContentHash().Add("endpoint-labeler", EndpointLabeler.SettingsKey([], options)).Finish();

    /// <summary>The classes: the data's class names, which replies must name (MC2079 when the labels are numbers, MC2099 when names cannot be told apart).</summary>
    public static int CheckClasses(IReadOnlyList<string>? labelNames, string? dataFile)
    {
        if (labelNames is null)
        {
            throw CompressionException.Error(
                DiagnosticCodes.EndpointTeacherCannotClassify,
                "An endpoint teacher replies with a class name, and the data's labels are class numbers: give the labels as names in the data (\"label\": \"spam\"), or list the names by class number in data: classes: [...].",
                dataFile);
        }

        return EndpointLabeler.CheckClasses(labelNames, dataFile) is { } ambiguous ? throw ambiguous : labelNames.Count;
    }

    /// <summary>The teacher's logits on <paramref name="split"/>: the log of each text's target (see <see cref="EndpointLabeler"/>).</summary>
    public float[] Logits(Dataset split, string splitName, string teacherHash, CancellationToken cancellationToken)
    {
        var key = new ContentHash().Add("engine", EngineInfo.Version).Add("endpoint-teacher", teacherHash).Add("data", dataHash).Add("split", splitName)
            .Add("min_success_ratio", RatioText).Finish();
        if (cache.TryGet("teacher-logits", key) is { } entry)
        {
            return ReadFloats(Path.Combine(entry, LogitsFile));
        }

        var labels = Label(split, splitName, cancellationToken);
        if (labels.Usage.FailureCount == 0 && labels.Usage.NotAsked == 0)
        {
            cache.Put("teacher-logits", key, folder =>
            {
                WriteFloats(Path.Combine(folder, LogitsFile), labels.Logits);
                return new { samples = split.Count, classes = labels.Classes, endpoint = labels.Usage.Counts() };
            });
        }

        return labels.Logits;
    }

    /// <summary>
    /// The teacher's row on the test split and its outputs there (the logits every student's agreement and KL are
    /// measured against): the task's quality facts of its soft targets (their arg-max is the label it named whenever
    /// the label's first token leads its alternatives; a text without a usable reply is uniform, whose arg-max is the
    /// first class), a size of zero (the model is not here), and its usage (<see cref="ModelEvaluation.Endpoint"/>) with
    /// <c>label_accuracy</c>: the share of test texts whose named class is the label, an unusable reply counted wrong.
    /// </summary>
    public (ModelEvaluation Evaluation, float[] Outputs) Evaluate(IPredictionTask task, Func<Dataset> test, EvaluateOptions evaluateOptions, string teacherHash, CancellationToken cancellationToken)
    {
        var key = Evaluations.Key("teacher", teacherHash, dataHash, evaluateOptions).Add("endpoint", "labeler").Add("min_success_ratio", RatioText).Finish();
        if (cache.TryGet("evaluate", key) is not { } entry)
        {
            var split = test();
            var labels = Label(split, "test", cancellationToken);
            var named = Enumerable.Range(0, split.Count).Count(i => labels.Labels[i] == split.Labels![i]);
            var details = new Dictionary<string, string>(labels.Usage.Counts(), StringComparer.Ordinal)
            {
                ["label_accuracy"] = (named / (double)split.Count).ToString("0.####", System.Globalization.CultureInfo.InvariantCulture),
            };
            var evaluation = task.Quality("teacher", labels.Logits, labels.Classes, split, null) with { Endpoint = details };
            if (labels.Usage.FailureCount > 0 || labels.Usage.NotAsked > 0)
            {
                return (evaluation, labels.Logits);
            }

            entry = cache.Put("evaluate", key, folder =>
            {
                WriteFloats(Path.Combine(folder, OutputsFile), labels.Logits);
                return evaluation;
            });
        }

        return (ArtifactCache.ReadResult<ModelEvaluation>(entry), ReadFloats(Path.Combine(entry, OutputsFile)));
    }

    private EndpointLabels Label(Dataset split, string splitName, CancellationToken cancellationToken)
    {
        if (!split.HasRawTexts)
        {
            throw new InvalidOperationException($"The {splitName} split '{split.Source}' was read without its texts, which an endpoint teacher needs.");
        }

        var names = split.Description.LabelNames
            ?? throw new InvalidOperationException($"The {splitName} split '{split.Source}' has no class names.");
        var texts = TextsOf(split);

        reporter.Info($"The endpoint teacher ({options.Model}) labels {texts.Length} {(splitName == "train" ? "training" : splitName)} texts");
        var labels = EndpointLabeler.Label(texts, names, options, AnswerCache, new ReporterCountProgress(reporter, $"endpoint teacher: {{0}} {splitName} requests"), cancellationToken);
        foreach (var warning in labels.Warnings)
        {
            reporter.Report(warning);
        }

        reporter.Info($"Endpoint teacher, {splitName} split: {labels.Usage.Describe()}");
        return labels;
    }

    /// <summary>The raw texts of <paramref name="split"/> (read with its texts kept), in row order, with their file and line.</summary>
    internal static TextToLabel[] TextsOf(Dataset split)
    {
        var texts = new TextToLabel[split.Count];
        for (var row = 0; row < texts.Length; row++)
        {
            var (file, line, _) = split.InputLocation(row);
            texts[row] = new TextToLabel(split.RawText(row), file, line);
        }

        return texts;
    }

    private static float[] ReadFloats(string path) =>
        System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(path)).ToArray();

    private static void WriteFloats(string path, float[] values)
    {
        using var file = File.Create(path);
        file.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));
    }
}
