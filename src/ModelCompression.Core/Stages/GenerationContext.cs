using ModelCompression.Common;
using ModelCompression.Evaluation;
using ModelCompression.Generation;
using ModelCompression.Text;
using ModelCompression.Torch.Training;

namespace ModelCompression.Stages;

/// <summary>
/// What a stage of a task: generation run reads besides its input decoder: the conversations (gold answers, the
/// prompt pool), the student's tokenizer and chat template, the teacher decoder with its own template, the teacher's
/// answers once a generate stage has written them, and the run's reporter, cancellation and checkpoint folder.
/// </summary>
public sealed class GenerationContext
{
    /// <summary>The recipe file (messages point at it).</summary>
    public required string RecipePath { get; init; }

    /// <summary>The folder relative paths in the recipe are resolved against.</summary>
    public string RecipeDirectory => Path.GetDirectoryName(RecipePath)!;

    /// <summary>The recipe's generation section.</summary>
    public required GenerationSettings Settings { get; init; }

    /// <summary>The task type and its answer parser's options.</summary>
    public GenerativeTask Task => Settings.Task;

    /// <summary>The student's chat template over its tokenizer.</summary>
    public required ChatTemplate Template { get; init; }

    /// <summary>The training conversations that end on a gold answer.</summary>
    public required IReadOnlyList<ChatRecord> Train { get; init; }

    /// <summary>The recipe's validation conversations, when it has them.</summary>
    public IReadOnlyList<ChatRecord>? Validation { get; init; }

    /// <summary>Prompts without answers (the unlabelled file and training records that end on a user turn): what a teacher answers.</summary>
    public required IReadOnlyList<ChatRecord> Pool { get; init; }

    /// <summary>The hash of the data files and the generation settings that shape the token sequences.</summary>
    public required string DataHash { get; init; }

    /// <summary>The teacher, when the recipe has one.</summary>
    public GenerationTeacher? Teacher { get; init; }

    /// <summary>The teacher's answers (set by the pipeline after a generate stage ran or was taken from the cache); empty before.</summary>
    public IReadOnlyList<ChatRecord> TeacherAnswers { get; internal set; } = [];

    /// <summary>The hash of <see cref="TeacherAnswers"/> (what later stages' cache keys take); empty when there are none.</summary>
    public string TeacherAnswersHash { get; internal set; } = string.Empty;

    /// <summary>
    /// The endpoint teacher's tokens of each of <see cref="TeacherAnswers"/> (same order), when it shares the student's
    /// tokenizer and a generate stage kept them (<see cref="Teachers.EndpointAnswerTokens"/>); null otherwise.
    /// </summary>
    public IReadOnlyList<IReadOnlyList<Teachers.EndpointTurnTokens>>? TeacherAnswerTokens { get; internal set; }

    /// <summary>Threads for ONNX Runtime sessions (0: the run's budget).</summary>
    public int Threads { get; init; }

    /// <summary>Where the run's messages and progress go.</summary>
    public required IPipelineReporter Reporter { get; init; }

    /// <summary>Cancels the run.</summary>
    public CancellationToken CancellationToken { get; init; }

    /// <summary>The folder stage checkpoints go under.</summary>
    public required string CheckpointRoot { get; init; }

    /// <summary>The cache key of the stage running now (set by the runner), naming its checkpoint folder; null outside the runner.</summary>
    public string? StageKey { get; internal set; }

    /// <summary>The checkpoint folder of the stage <paramref name="kind"/> running now; null outside the runner.</summary>
    public string? CheckpointFolder(string kind) => StageKey is { } key ? Path.Combine(CheckpointRoot, $"{kind}-{key}") : null;

    /// <summary>Training progress lines for <paramref name="stage"/> (validation is perplexity).</summary>
    public IProgress<TrainingProgress> TrainingReporter(string stage) => new ReporterTrainingProgress(Reporter, stage, "perplexity");

    /// <summary>The teacher, or MC1003-like misuse as an exception (the plan lets no stage that needs one run without it).</summary>
    public GenerationTeacher RequireTeacher(string stage) =>
        Teacher ?? throw new InvalidOperationException($"Stage '{stage}' needs a teacher and the recipe has none (the recipe loader refuses this).");

    /// <summary>Adds what every generative stage's output depends on: the data, the tokenizer and the template.</summary>
    public void AddDataToKey(ContentHash key)
    {
        ArgumentNullException.ThrowIfNull(key);
        key.Add("data", DataHash).Add("tokenizer", TeacherTokenCache.Description(Template.Tokenizer));
    }
}

/// <summary>A decoder teacher of a generation run: an ONNX file, or an OpenAI-compatible endpoint that answers as text.</summary>
/// <param name="Path">The ONNX file; for an endpoint, its URL and model name (no file).</param>
/// <param name="Hash">The file's content hash; for an endpoint, a hash of its model name and the settings that change answers.</param>
/// <param name="Template">The chat template over the teacher's own tokenizer (the student's when the teacher has none of its own, or is an endpoint).</param>
/// <param name="SharesTokenizer">Whether the teacher's tokenizer is the student's: only then can token-level distillation apply (never for an endpoint).</param>
public sealed record GenerationTeacher(string Path, string Hash, ChatTemplate Template, bool SharesTokenizer)
{
    /// <summary>The endpoint that answers as the teacher, or null for an ONNX file.</summary>
    public Teachers.EndpointTeacherOptions? Endpoint { get; init; }

    /// <summary>The folder of the endpoint's answer cache (one file per request, kept across runs), or null for an ONNX file.</summary>
    public string? AnswerCache { get; init; }

    /// <summary>
    /// The max_new_tokens of the teacher's own generation.json, when it reads its own tokens and its folder has one;
    /// null otherwise (the recipe's then applies).
    /// </summary>
    public int? OwnAnswerTokens { get; init; }

    /// <summary>
    /// Tokens of a conversation an ONNX teacher is given (longer prompts keep their end): the recipe's max_length
    /// when the teacher reads the student's tokens; null, its own position table, when it reads its own tokens
    /// (max_length counts the student's, which may be characters where the teacher's are BPE tokens).
    /// </summary>
    public int? MaxLength(GenerationSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return SharesTokenizer ? settings.MaxLength : null;
    }

    /// <summary>
    /// Most new tokens of a teacher answer: the recipe's max_new_tokens when the teacher reads the student's tokens;
    /// its own folder's (generation.json) when it reads its own, since the recipe's counts the student's tokens.
    /// </summary>
    public int AnswerTokens(GenerationSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return SharesTokenizer ? settings.AnswerTokens : OwnAnswerTokens ?? settings.AnswerTokens;
    }
}

/// <summary>A stage of a task: generation run: reads a decoder (and the run's conversations), writes a decoder.</summary>
public interface IGenerativeStage
{
    /// <summary>The stage kind as written in recipes.</summary>
    string Kind { get; }

    /// <summary>Adds what the output depends on, beyond the input model's hash, to the cache key.</summary>
    void AddToKey(ContentHash key, GenerationContext context);

    /// <summary>Reads <paramref name="inputModel"/>, writes <paramref name="outputModel"/> (and files of its own beside it).</summary>
    StageResult Run(GenerationContext context, string inputModel, string outputModel);
}
