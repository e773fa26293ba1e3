using System.Diagnostics;
using System.Globalization;
using ModelCompression.Common;
using ModelCompression.Generation;
using ModelCompression.Text;

namespace ModelCompression.Stages;

/// <summary>
/// The teacher answers the prompts (synthetic data): each answer is parsed as the task says, answers the parser refuses,
/// empty, unfinished or repeated are counted and dropped (never guessed), and the kept ones are written beside the
/// stage's output as <see cref="AnswersFile"/> (JSONL in the chat fine-tuning format). The model passes through
/// unchanged; the stage's cache entry is the answers, so a later run replays them without running the teacher.
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
        IEnumerable<ChatRecord> pool = options.Prompts == GeneratePrompts.Train ? [] : context.Pool;
        IEnumerable<ChatRecord> train = options.Prompts == GeneratePrompts.Pool ? [] : context.Train.Select(r => r with { Messages = r.Prompt });
        return [.. pool.Concat(train)];
    }

    /// <inheritdoc />
    public void AddToKey(ContentHash key, GenerationContext context)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(context);
        var teacher = context.RequireTeacher(Kind);
        key.Add("answers", TeacherAnswers.Key(teacher.Hash, teacher.Template, Prompts(context), context.Task, options.AnswerOptions(context.Settings)));
    }

    /// <inheritdoc />
    public StageResult Run(GenerationContext context, string inputModel, string outputModel)
    {
        ArgumentNullException.ThrowIfNull(context);
        var clock = Stopwatch.StartNew();
        var teacher = context.RequireTeacher(Kind);
        var prompts = Prompts(context);
        var progress = new Progress(context, prompts.Count);
        var set = TeacherAnswers.Generate(teacher.Path, teacher.Template, prompts, context.Task, options.AnswerOptions(context.Settings), progress, context.Threads, context.CancellationToken);
        if (set.DroppedDiagnostic() is { } dropped)
        {
            if (dropped.Severity == Diagnostics.DiagnosticSeverity.Error)
            {
                throw new Diagnostics.CompressionException([dropped]);
            }

            context.Reporter.Report(dropped);
        }

        File.Copy(inputModel, outputModel, overwrite: true);
        TeacherAnswers.Write(set, Path.Combine(Path.GetDirectoryName(Path.GetFullPath(outputModel))!, AnswersFile));
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
            ["temperature"] = options.Temperature.ToString(invariant),
            ["top_k"] = options.TopK.ToString(invariant),
            ["top_p"] = options.TopP.ToString(invariant),
        };
        foreach (var (reason, count) in stats.Dropped)
        {
            details[$"dropped.{TeacherAnswers.ReasonName(reason)}"] = count.ToString(invariant);
        }

        var summary = $"the teacher answered {stats.Prompts} prompts ({stats.Generated} answers): {stats.Kept} kept, {stats.DroppedCount} dropped"
            + (stats.DroppedCount > 0 ? $" ({string.Join(", ", stats.Dropped.Where(d => d.Value > 0).Select(d => $"{d.Value} {TeacherAnswers.ReasonName(d.Key)}"))})" : "");
        return new StageResult(Kind, summary, details, null, clock.Elapsed.TotalSeconds);
    }

    /// <summary>Prompts answered so far as the reporter's progress of a long step (percent and ETA).</summary>
    private sealed class Progress(GenerationContext context, int total) : IProgress<(int Done, int Total)>
    {
        private readonly Stopwatch _clock = Stopwatch.StartNew();

        public void Report((int Done, int Total) value)
        {
            if (total == 0 || value.Total == 0)
            {
                return;
            }

            context.Reporter.Progress($"generate: the teacher answers {value.Total} prompts", value.Done / (double)value.Total, _clock.Elapsed);
        }
    }
}
