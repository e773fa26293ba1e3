using ModelCompression.Common;
using ModelCompression.Generation;
using ModelCompression.Text;

namespace ModelCompression.Stages;

/// <summary>Which prompts the teacher answers.</summary>
public enum GeneratePrompts
{
    /// <summary>The prompt pool (the unlabelled file, and training conversations that end on a user turn) and the training prompts.</summary>
    All,

    /// <summary>The prompt pool only.</summary>
    Pool,

    /// <summary>The training conversations' prompts only (the teacher answers next to the gold answers).</summary>
    Train,
}

/// <summary>Options of the generate stage: how the teacher is asked (Azure's distillation exposes the same settings).</summary>
public sealed record GenerateOptions
{
    /// <summary>Which prompts the teacher answers.</summary>
    [Option("prompts", "all (the prompt pool and the training prompts), pool (prompts without answers: the unlabelled file and training conversations that end on a user turn) or train (the training prompts, answered beside their gold answers).")]
    public GeneratePrompts Prompts { get; init; } = GeneratePrompts.All;

    /// <summary>Sampling temperature; 0 is greedy.</summary>
    [Option("temperature", "Sampling temperature of the teacher; 0 is greedy (Azure's distillation uses 0.2 with top_p 0.1 for a remote teacher).", Min = 0, Max = 10)]
    public double Temperature { get; init; }

    /// <summary>Top-k sampling; 0 for none.</summary>
    [Option("top_k", "Sample from the k most likely tokens only; 0 for no limit.", Min = 0, Max = 1000000)]
    public int TopK { get; init; }

    /// <summary>Nucleus sampling.</summary>
    [Option("top_p", "Sample from the smallest set of tokens whose probability reaches top_p (1: all).", Min = 0, MinExclusive = true, Max = 1)]
    public double TopP { get; init; } = 1;

    /// <summary>Answers per prompt.</summary>
    [Option("samples_per_prompt", "Answers asked per prompt (more than one needs temperature above 0); identical answers to one prompt are kept once.", Min = 1, Max = 64)]
    public int SamplesPerPrompt { get; init; } = 1;

    /// <summary>Tokens an answer may have; 0 for the generation section's.</summary>
    [Option("max_new_tokens", "Tokens a teacher answer may have (0: the generation section's max_new_tokens); an answer that has not ended by then is dropped as unfinished.", Min = 0, Max = 65536)]
    public int MaxNewTokens { get; init; }

    /// <summary>The sampling seed.</summary>
    [Option("seed", "Seed of the sampling (the same seed, teacher and prompts give the same answers).", Min = 0)]
    public int Seed { get; init; }

    /// <summary>Drop and count prompts that leave no room for an answer instead of refusing the run.</summary>
    [Option("skip_long_prompts", "A prompt that alone fills max_length (or the teacher's positions) is never cut (a teacher that does not see the whole question cannot answer it): the run stops with MC2072 naming it, or with this option the prompt is not asked and is counted as dropped (prompt_too_long).")]
    public bool SkipLongPrompts { get; init; }

    /// <summary>The teacher-answer options these stage options and the generation section make.</summary>
    /// <summary>The prompts <see cref="Prompts"/> selects: the pool's, then the training conversations' prompts (their gold answers left out).</summary>
    internal IReadOnlyList<ChatRecord> SelectPrompts(IReadOnlyList<ChatRecord> pool, IReadOnlyList<ChatRecord> train)
    {
        IEnumerable<ChatRecord> fromPool = Prompts == GeneratePrompts.Train ? [] : pool;
        IEnumerable<ChatRecord> fromTrain = Prompts == GeneratePrompts.Pool ? [] : train.Select(r => r with { Messages = r.Prompt });
        return [.. fromPool.Concat(fromTrain)];
    }

    internal TeacherAnswerOptions AnswerOptions(GenerationSettings settings, GenerationTeacher teacher) => new()
    {
        Sampling = new Generation.GenerationOptions
        {
            Temperature = Temperature,
            TopK = TopK,
            TopP = TopP,
            Seed = Seed,
            MaxNewTokens = MaxNewTokens > 0 ? MaxNewTokens : teacher.AnswerTokens(settings),
            BatchSize = settings.BatchSize,
        },
        SamplesPerPrompt = SamplesPerPrompt,
        MaxLength = teacher.MaxLength(settings),
        SkipLongPrompts = SkipLongPrompts,
    };
}
