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

    /// <summary>The evaluation of <paramref name="modelPath"/> (named <paramref name="name"/>) rendered with <paramref name="template"/>.</summary>
    public ModelEvaluation Of(string name, string modelPath, string modelHash, ChatTemplate template, IReadOnlyList<string>? teacherAnswers)
    {
        var key = new ContentHash().Add("engine", EngineInfo.Version).Add("name", name).Add("model", modelHash).Add("data", dataHash)
            .Add("settings", JsonSerializer.Serialize(settings))
            .Add("tokenizer", TeacherTokenCache.Description(template.Tokenizer))
            .Add("teacher", teacherAnswers is null ? "none" : JsonSerializer.Serialize(teacherAnswers))
            .Finish();
        var entry = cache.TryGet("evaluate", key) ?? cache.Put("evaluate", key, _ => Measure(name, modelPath, template, teacherAnswers));
        return ArtifactCache.ReadResult<ModelEvaluation>(entry);
    }

    private ModelEvaluation Measure(string name, string modelPath, ChatTemplate template, IReadOnlyList<string>? teacherAnswers)
    {
        var task = settings.Task;
        var options = new GenerationEvaluationOptions
        {
            Generation = new GenerationOptions { MaxNewTokens = settings.AnswerTokens, BatchSize = settings.BatchSize },
            MaxLength = settings.MaxLength,
            Samples = settings.Samples,
            Threads = threads,
        };
        var evaluation = GenerationEvaluator.Evaluate(modelPath, template, test, task, options, teacherAnswers, cancellationToken);
        var prompts = test.Take(Speed.Prompts).Select(r => (IReadOnlyList<int>)template.RenderForGeneration(r.Prompt, GenerationEvaluator.PromptLimit(template, settings.MaxLength, Speed.NewTokens)).Ids).ToList();
        var speed = GenerationSpeed.Measure(modelPath, prompts, Speed with { Threads = threads });
        var footprint = ModelFootprint.Measure(modelPath);

        var metrics = new Dictionary<string, double>(evaluation.Metrics, StringComparer.Ordinal);
        foreach (var (metric, value) in speed.Metrics)
        {
            metrics[metric] = value;
        }

        var perSample = evaluation.Scores.PerSample.ToDictionary(p => p.Key, p => p.Value.ToArray(), StringComparer.Ordinal);
        var ci95 = perSample.Where(p => p.Value.Length > 0).ToDictionary(
            p => p.Key,
            p => PairedBootstrap.Mean(p.Value) is var mean ? new[] { mean.Interval.Lower, mean.Interval.Upper } : [],
            StringComparer.Ordinal);
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
