using System.Text.Json;
using ModelCompression.Common;
using ModelCompression.Evaluation;
using ModelCompression.Generation;
using ModelCompression.Text;

namespace ModelCompression.Pipeline;

/// <summary>
/// Evaluations of decoders on the test conversations, cached by model, data, generation settings and the teacher's
/// answers they are compared with: the task's quality metrics with bootstrap intervals and per-record scores,
/// perplexity, the parse-failure rate, agreement with the teacher, tokens per second at batch 1 and 8 with the cache,
/// size and parameters, and a few generations side by side.
/// </summary>
internal sealed class GenerationEvaluations(ArtifactCache cache, GenerationSettings settings, string dataHash, IReadOnlyList<ChatRecord> test, int threads, CancellationToken cancellationToken)
{
    /// <summary>Prompts and new tokens of the speed measurement: enough to fill a batch of 8 and reach a steady rate.</summary>
    private static readonly GenerationSpeedOptions Speed = new() { Prompts = 8, NewTokens = 32, BatchSize = 8, Runs = 2 };

    /// <summary>
    /// The evaluation of <paramref name="modelPath"/> (named <paramref name="name"/>) rendered with
    /// <paramref name="template"/>, its conversations cut to <paramref name="maxLength"/> tokens (null: the model's
    /// own position table, as for a teacher with its own tokenizer; never more than that table) and its answers to
    /// <paramref name="answerTokens"/>.
    /// </summary>
    public ModelEvaluation Of(string name, string modelPath, string modelHash, ChatTemplate template, int? maxLength, int answerTokens, IReadOnlyList<string>? teacherAnswers)
    {
        var key = new ContentHash().Add("engine", EngineInfo.Version).Add("name", name).Add("model", modelHash).Add("data", dataHash)
            .Add("settings", JsonSerializer.Serialize(settings))
            .Add("tokenizer", TeacherTokenCache.Description(template.Tokenizer))
            .Add("teacher", teacherAnswers is null ? "none" : JsonSerializer.Serialize(teacherAnswers))
            .Add("lengths", FormattableString.Invariant($"{maxLength?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "positions"} {answerTokens}"))
            .Finish();
        var entry = cache.TryGet("evaluate", key) ?? cache.Put("evaluate", key, _ => Measure(name, modelPath, template, teacherAnswers, maxLength, answerTokens));
        return ArtifactCache.ReadResult<ModelEvaluation>(entry);
    }

    /// <summary>
    /// The evaluation of an endpoint teacher: its answers to the test prompts (through its answer cache, so offline
    /// replays them) parsed and scored as a decoder's are; an answer it dropped (failed request, unfinished, refused
    /// by the parser) scores as that text or as empty. There is no model here to measure: no perplexity, speed, size
    /// or parameters (0), so 'teacher.' gates should name quality metrics.
    /// </summary>
    /// <remarks>
    /// The result is a stage-cache entry like any evaluation, keyed by <paramref name="teacherHash"/> (the test
    /// requests' hash): a machine that shares the stage cache (a CI fleet's remote cache) replays it without the
    /// endpoint and without the answer files.
    /// </remarks>
    public ModelEvaluation OfEndpoint(string name, string teacherHash, Teachers.EndpointTeacherOptions endpoint, string answerCache, IPipelineReporter reporter)
    {
        var key = new ContentHash().Add("engine", EngineInfo.Version).Add("name", name).Add("endpoint-teacher", teacherHash).Add("data", dataHash)
            .Add("settings", JsonSerializer.Serialize(settings))
            .Finish();
        var entry = cache.TryGet("evaluate", key) ?? cache.Put("evaluate", key, _ => MeasureEndpoint(name, endpoint, answerCache, reporter));
        return ArtifactCache.ReadResult<ModelEvaluation>(entry);
    }

    private ModelEvaluation MeasureEndpoint(string name, Teachers.EndpointTeacherOptions endpoint, string answerCache, IPipelineReporter reporter)
    {
        var task = settings.Task;
        var prompts = test.Select(r => r with { Messages = r.Prompt }).ToList();
        var answered = Teachers.EndpointTeacher.Answer(prompts, task, endpoint, answerCache, new ReporterCountProgress(reporter, $"{name}: the endpoint answers {{0}} test requests"), cancellationToken);
        foreach (var warning in answered.Warnings)
        {
            reporter.Report(warning);
        }

        var byRecord = new Dictionary<(string File, int Line), string>();
        foreach (var kept in answered.Answers.Answers.Where(a => a.Sample == 0))
        {
            byRecord[(kept.Record.File, kept.Record.Line)] = kept.Record.Answer ?? string.Empty;
        }

        foreach (var dropped in answered.Answers.Dropped.Where(d => d.Sample == 0))
        {
            byRecord.TryAdd((dropped.File, dropped.Line), dropped.Text);
        }

        var predictions = test.Select(r => byRecord.GetValueOrDefault((r.File, r.Line), string.Empty)).ToList();
        var scores = GenerationScoring.Score(task, predictions, [.. test.Select(r => r.Answer!)]);
        var perSample = scores.PerSample.ToDictionary(p => p.Key, p => p.Value.ToArray(), StringComparer.Ordinal);
        var facts = new GenerationFacts(
            GenerativeTask.Name(task.Type),
            new Dictionary<string, double>(scores.Metrics, StringComparer.Ordinal),
            Ci95(perSample),
            perSample,
            scores.ParseFailuresByReason.ToDictionary(p => p.Key.ToString().ToLowerInvariant(), p => p.Value, StringComparer.Ordinal),
            answered.Answers.Dropped.Count(d => d.Reason == TeacherAnswerDropReason.Unfinished),
            answered.Usage.CompletionTokens,
            0,
            [.. Enumerable.Range(0, Math.Min(settings.Samples, test.Count)).Select(i => new GenerationSampleRow(
                test[i].Location, test[i].Prompt[^1].Content, test[i].Answer!, null, predictions[i], scores.Failures[i] == AnswerParseFailure.None ? null : scores.Failures[i].ToString().ToLowerInvariant()))],
            predictions);
        reporter.Info($"{name}: the endpoint {answered.Usage.Describe()}");
        return new ModelEvaluation(name, double.NaN, 0, 0, test.Count)
        {
            Generation = facts,
            Predictions = scores.Correct is { } correct ? [.. correct.Select(c => c ? 1 : 0)] : null,
        };
    }

    private static Dictionary<string, double[]> Ci95(Dictionary<string, double[]> perSample) => perSample.Where(p => p.Value.Length > 0).ToDictionary(
        p => p.Key,
        p => PairedBootstrap.Mean(p.Value) is var mean ? new[] { mean.Interval.Lower, mean.Interval.Upper } : [],
        StringComparer.Ordinal);

    /// <summary>
    /// The built-in student before any stage trained it (a generate stage comes first): its size and parameters only.
    /// Its answers would be noise that runs to max_new_tokens on every test prompt, the dearest evaluation there is,
    /// to report a 0% row; the stages after it are evaluated as usual.
    /// </summary>
    public static ModelEvaluation Untrained(string name, string modelPath)
    {
        var footprint = ModelFootprint.Measure(modelPath);
        return new ModelEvaluation(name, double.NaN, footprint.SizeBytes, footprint.Parameters, 0) { NonzeroParameters = footprint.NonZeroParameters };
    }

    private ModelEvaluation Measure(string name, string modelPath, ChatTemplate template, IReadOnlyList<string>? teacherAnswers, int? maxLength, int answerTokens)
    {
        var task = settings.Task;
        var options = new GenerationEvaluationOptions
        {
            Generation = new GenerationOptions { MaxNewTokens = answerTokens, BatchSize = settings.BatchSize },
            MaxLength = maxLength,
            Samples = settings.Samples,
            Threads = threads,
        };
        var evaluation = GenerationEvaluator.Evaluate(modelPath, template, test, task, options, teacherAnswers, cancellationToken);
        var prompts = test.Take(Speed.Prompts).Select(r => (IReadOnlyList<int>)template.RenderForGeneration(r.Prompt, GenerationEvaluator.PromptLimit(template, evaluation.MaxLength, Speed.NewTokens)).Ids).ToList();
        var speed = GenerationSpeed.Measure(modelPath, prompts, Speed with { Threads = threads });
        var footprint = ModelFootprint.Measure(modelPath);

        var metrics = new Dictionary<string, double>(evaluation.Metrics, StringComparer.Ordinal);
        foreach (var (metric, value) in speed.Metrics)
        {
            metrics[metric] = value;
        }

        var perSample = evaluation.Scores.PerSample.ToDictionary(p => p.Key, p => p.Value.ToArray(), StringComparer.Ordinal);
        var ci95 = Ci95(perSample);
        var samples = evaluation.Samples.Select(s => new GenerationSampleRow(
            s.Location, s.Prompt, s.Gold, s.Teacher, s.Prediction, s.Failure == AnswerParseFailure.None ? null : s.Failure.ToString().ToLowerInvariant())).ToList();
        var facts = new GenerationFacts(
            GenerativeTask.Name(task.Type),
            metrics,
            ci95,
            perSample,
            evaluation.Scores.ParseFailuresByReason.ToDictionary(p => p.Key.ToString().ToLowerInvariant(), p => p.Value, StringComparer.Ordinal),
            evaluation.Unfinished,
            evaluation.GeneratedTokens,
            evaluation.PerplexityTokens,
            samples,
            evaluation.Predictions);
        return new ModelEvaluation(name, double.NaN, footprint.SizeBytes, footprint.Parameters, test.Count)
        {
            Generation = facts,
            NonzeroParameters = footprint.NonZeroParameters,
            // McNemar against a baseline pairs the records' right/wrong (1/0) against all-ones labels.
            Predictions = evaluation.Scores.Correct is { } correct ? [.. correct.Select(c => c ? 1 : 0)] : null,
        };
    }
}
