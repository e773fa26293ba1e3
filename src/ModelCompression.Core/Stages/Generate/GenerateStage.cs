using System.Diagnostics;
using System.Globalization;
using ModelCompression.Common;
using ModelCompression.Generation;
using ModelCompression.Teachers;
using ModelCompression.Text;

namespace ModelCompression.Stages;

/// <summary>
/// The teacher answers the prompts (synthetic data): each answer is parsed as the task says, answers the parser refuses,
/// empty, unfinished or repeated are counted and dropped (never guessed), and the kept ones are written beside the
/// stage's output as <see cref="AnswersFile"/> (JSONL in the chat fine-tuning format). The model passes through
/// unchanged; the stage's cache entry is the answers, so a later run replays them without running the teacher. An
/// endpoint teacher that shares the student's tokenizer is probed first (<see cref="EndpointTeacher.Probe"/>), and the
/// tokens of its kept answers go beside them (<see cref="EndpointAnswerTokens"/>) for token-level distillation.
/// </summary>
/// <param name="options">The stage's options.</param>
public sealed class GenerateStage(GenerateOptions options) : IGenerativeStage
{
    /// <summary>The file the kept answers are written to, beside the stage's output model.</summary>
    public const string AnswersFile = "teacher-answers.jsonl";

    /// <inheritdoc />
    public string Kind => "generate";

    /// <summary>The prompts the options select from <paramref name="context"/>.</summary>
    public IReadOnlyList<ChatRecord> Prompts(GenerationContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return options.SelectPrompts(context.Pool, context.Train);
    }

    /// <inheritdoc />
    public void AddToKey(ContentHash key, GenerationContext context)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(context);
        var teacher = context.RequireTeacher(Kind);
        if (teacher.Endpoint is { } endpoint)
        {
            // The requests themselves (model, messages, every setting that changes an answer): never the URL or the key.
            key.Add("endpoint-requests", string.Join('\n', EndpointTeacher.Requests(Prompts(context), context.Task, endpoint).Select(r => r.Key)));
            // What decides which answers are kept beyond the requests themselves (retries and timeouts do not).
            key.Add("endpoint-keeping", FormattableString.Invariant($"{endpoint.BudgetRequests} {endpoint.BudgetTokens} {endpoint.MinSuccessRatio} {endpoint.KeepDuplicates}"));
            if (endpoint.SharesTokenizer)
            {
                // The tokens are kept for this student's tokenizer, which the probe checks: another one probes again.
                key.Add("endpoint-tokens", TeacherTokenCache.Description(context.Template.Tokenizer));
            }

            return;
        }

        key.Add("answers", TeacherAnswers.Key(teacher.Hash, teacher.Template, Prompts(context), context.Task, options.AnswerOptions(context.Settings, teacher)));
    }

    /// <inheritdoc />
    public StageResult Run(GenerationContext context, string inputModel, string outputModel)
    {
        ArgumentNullException.ThrowIfNull(context);
        var clock = Stopwatch.StartNew();
        var teacher = context.RequireTeacher(Kind);
        var prompts = Prompts(context);
        var progress = new ReporterCountProgress(context.Reporter, "generate: the teacher answers {0} " + (teacher.Endpoint is null ? "prompts" : "requests"));
        EndpointUsage? usage = null;
        EndpointTeacherResult? answered = null;
        TeacherAnswerSet set;
        if (teacher.Endpoint is { } endpoint)
        {
            if (endpoint.SharesTokenizer && prompts.Count > 0
                && EndpointTeacher.Probe(prompts[0], context.Task, endpoint, teacher.AnswerCache!, new EndpointTokenAlignment(context.Template.Tokenizer), context.CancellationToken) is { } mismatch)
            {
                throw mismatch;
            }

            answered = EndpointTeacher.Answer(prompts, context.Task, endpoint, teacher.AnswerCache!, progress, context.CancellationToken);
            foreach (var warning in answered.Warnings)
            {
                context.Reporter.Report(warning);
            }

            (set, usage) = (answered.Answers, answered.Usage);
            context.Reporter.Info($"generate: the endpoint {usage.Describe()}");
        }
        else
        {
            set = TeacherAnswers.Generate(teacher.Path, teacher.Template, prompts, context.Task, options.AnswerOptions(context.Settings, teacher), progress, context.Threads, context.CancellationToken);
        }

        if (set.DroppedDiagnostic() is { } dropped)
        {
            if (dropped.Severity == Diagnostics.DiagnosticSeverity.Error)
            {
                throw new Diagnostics.CompressionException([dropped]);
            }

            context.Reporter.Report(dropped);
        }

        File.Copy(inputModel, outputModel, overwrite: true);
        var answersFile = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(outputModel))!, AnswersFile);
        TeacherAnswers.Write(set, answersFile);
        if (answered is not null && teacher.Endpoint is { SharesTokenizer: true })
        {
            // The tokens the answers were written in, for a token-level distill after this stage.
            EndpointAnswerTokens.Write(Path.Combine(Path.GetDirectoryName(answersFile)!, EndpointAnswerTokens.FileName), answersFile, answered.Turns);
        }

        var invariant = CultureInfo.InvariantCulture;
        var stats = set.Stats;
        var details = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["prompts"] = stats.Prompts.ToString(invariant),
            ["samples_per_prompt"] = stats.SamplesPerPrompt.ToString(invariant),
            ["generated"] = stats.Generated.ToString(invariant),
            ["kept"] = stats.Kept.ToString(invariant),
            ["dropped"] = stats.DroppedCount.ToString(invariant),
            ["prompts_without_answer"] = stats.PromptsWithoutAnswer.ToString(invariant),
            ["generated_tokens"] = stats.GeneratedTokens.ToString(invariant),
            ["teacher_tokens_per_second"] = stats.TokensPerSecond.ToString("0.#", invariant),
            ["temperature"] = (teacher.Endpoint?.Temperature ?? options.Temperature).ToString(invariant),
            ["top_k"] = teacher.Endpoint is null ? options.TopK.ToString(invariant) : "n/a",
            ["top_p"] = (teacher.Endpoint?.TopP ?? options.TopP).ToString(invariant),
        };
        foreach (var (reason, count) in stats.Dropped)
        {
            details[$"dropped.{TeacherAnswers.ReasonName(reason)}"] = count.ToString(invariant);
        }

        if (usage is not null)
        {
            AddUsage(details, usage);
        }

        var summary = $"the teacher answered {stats.Prompts} prompts ({stats.Generated} answers): {stats.Kept} kept, {stats.DroppedCount} dropped"
            + (stats.DroppedCount > 0 ? $" ({string.Join(", ", stats.Dropped.Where(d => d.Value > 0).Select(d => $"{d.Value} {TeacherAnswers.ReasonName(d.Key)}"))})" : "");
        return new StageResult(Kind, summary, details, null, clock.Elapsed.TotalSeconds);
    }

    /// <summary>What the endpoint cost and how it went: requests, cache hits, retries and failures by cause, tokens, unusable answers by reason.</summary>
    private static void AddUsage(Dictionary<string, string> details, EndpointUsage usage)
    {
        foreach (var (key, value) in usage.Counts("endpoint."))
        {
            details[key] = value;
        }
    }
}
