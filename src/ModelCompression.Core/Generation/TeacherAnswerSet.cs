using System.Globalization;
using ModelCompression.Diagnostics;
using ModelCompression.Text;

namespace ModelCompression.Generation;

/// <summary>
/// How a teacher is asked to answer the prompts of a pool (<see cref="TeacherAnswers"/>).
/// The default is one greedy answer per prompt with the task's new-token budget (128, 1024 for summaries). Azure's
/// distillation job asks its teacher with temperature 0.2 and top_p 0.1, which is nearly greedy; greedy is the default
/// here because its answers depend on nothing but the model and the prompt (no seed).
/// </summary>
public sealed record TeacherAnswerOptions
{
    /// <summary>
    /// Temperature, top_k, top_p, max_new_tokens, seed, batch size and extra stop tokens or strings; null: greedy with the
    /// task's <see cref="Evaluation.GenerativeTask.DefaultMaxNewTokens"/>, batches of 8. End of text and the template's
    /// end marker always stop an answer. Its own <see cref="GenerationOptions.SamplesPerPrompt"/> must stay 1: ask for
    /// several answers with <see cref="SamplesPerPrompt"/>.
    /// </summary>
    public GenerationOptions? Sampling { get; init; }

    /// <summary>Answers asked per prompt; more than one needs sampling (a temperature above 0 and top_k other than 1), or they would all be the same.</summary>
    public int SamplesPerPrompt { get; init; } = 1;

    /// <summary>
    /// The most tokens of a prompt and its answer together: a prompt that leaves no room is refused before anything is
    /// generated (MC2072), an answer that has not ended within it is dropped as unfinished. Null: the teacher's
    /// position table, or <see cref="GenerationEvaluator.DefaultMaxLength"/> when the model does not fix one.
    /// </summary>
    public int? MaxLength { get; init; }

    /// <summary>Whether identical answers to one prompt are all kept; by default the first is kept and the others are dropped and counted.</summary>
    public bool KeepDuplicates { get; init; }

    /// <summary>Prompts that leave no room for an answer are dropped and counted (prompt_too_long) instead of refusing the run (MC2072).</summary>
    public bool SkipLongPrompts { get; init; }

    /// <summary>
    /// Every problem with these options, in the recipe's words ('samples_per_prompt 3 with greedy decoding ...'); empty
    /// when they are usable. The recipe reports each at its key; <see cref="TeacherAnswers"/> refuses them with MC2073.
    /// </summary>
    public IReadOnlyList<string> Problems()
    {
        var problems = new List<string>();
        if (Sampling is { } sampling)
        {
            problems.AddRange(sampling.Problems());
            if (sampling.SamplesPerPrompt != 1)
            {
                problems.Add(Invariant($"the sampling options ask for {sampling.SamplesPerPrompt} samples per prompt; set samples_per_prompt on the teacher's answers instead, once"));
            }
        }

        if (SamplesPerPrompt < 1)
        {
            problems.Add(Invariant($"samples_per_prompt must be at least 1, got {SamplesPerPrompt}"));
        }
        else if (SamplesPerPrompt > 1 && (Sampling is null || Sampling.IsGreedy))
        {
            problems.Add(Invariant($"samples_per_prompt {SamplesPerPrompt} with greedy decoding (temperature 0 or top_k 1) gives {SamplesPerPrompt} identical answers; set a temperature above 0 or ask for 1 sample"));
        }

        if (MaxLength is < 2)
        {
            problems.Add(Invariant($"max_length must be at least 2 (a prompt token and an answer token), got {MaxLength}"));
        }

        return problems;
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}

/// <summary>Why a teacher's answer was dropped. Dropped answers are counted and reported, never repaired or guessed.</summary>
public enum TeacherAnswerDropReason
{
    /// <summary>It did not end (end marker or end of text) within max_new_tokens or max_length: a cut answer would teach the student to ramble.</summary>
    Unfinished,

    /// <summary>Nothing but whitespace.</summary>
    Empty,

    /// <summary>Math: the task's parser found no final number ('#### n' or the configured pattern).</summary>
    NoFinalNumber,

    /// <summary>NLI and other label tasks: not exactly one of the label words.</summary>
    NotALabel,

    /// <summary>The same text as an answer already kept for the same prompt (unless duplicates are kept).</summary>
    Duplicate,

    /// <summary>Endpoint teachers: no usable reply came (an HTTP error after the retries, a timeout, a dropped connection, a reply that is not a chat completion).</summary>
    RequestFailed,

    /// <summary>Endpoint teachers with chain of thought: the reply is not the JSON object <c>{"reason": ..., "answer": ...}</c> it was asked for.</summary>
    NotAnswerJson,

    /// <summary>Endpoint teachers: the request budget or token budget ran out before this prompt was asked.</summary>
    NotAsked,

    /// <summary>With skip_long_prompts: the prompt alone leaves no room for an answer in the maximum length, so it was not asked (never cut).</summary>
    PromptTooLong,
}

/// <summary>One kept answer: the prompt's messages and the teacher's answer as the final assistant message.</summary>
/// <param name="Record">The prompt's messages plus the answer; its file and line are the source prompt's.</param>
/// <param name="Sample">Which of the prompt's samples it is (0 to samples_per_prompt - 1).</param>
public sealed record TeacherAnswer(ChatRecord Record, int Sample)
{
    /// <summary>The teacher's answer text.</summary>
    public string Text => Record.Answer!;
}

/// <summary>A dropped answer, for the report.</summary>
/// <param name="File">The source prompt's file.</param>
/// <param name="Line">The source prompt's line.</param>
/// <param name="Sample">Which of the prompt's samples it was.</param>
/// <param name="Reason">Why it was dropped.</param>
/// <param name="Text">The start of the answer's text (at most <see cref="MaxTextLength"/> characters).</param>
public sealed record DroppedAnswer(string File, int Line, int Sample, TeacherAnswerDropReason Reason, string Text)
{
    /// <summary>How much of a dropped answer is kept for the report.</summary>
    public const int MaxTextLength = 200;

    /// <summary>"file:line" of the source prompt.</summary>
    public string Location => $"{File}:{Line.ToString(CultureInfo.InvariantCulture)}";
}

/// <summary>What answering the pool gave.</summary>
/// <param name="Prompts">Prompts asked.</param>
/// <param name="SamplesPerPrompt">Answers asked per prompt.</param>
/// <param name="Generated">Answers generated (prompts times samples).</param>
/// <param name="Kept">Answers kept.</param>
/// <param name="Dropped">Answers dropped, by reason (every reason present, 0 when none).</param>
/// <param name="GeneratedTokens">Tokens the teacher generated, stop tokens included, kept or not.</param>
/// <param name="Seconds">Wall time of rendering, generating and parsing.</param>
/// <param name="KeptPerPrompt">Element k: how many prompts kept exactly k answers (samples_per_prompt + 1 elements).</param>
public sealed record TeacherAnswerStats(
    int Prompts,
    int SamplesPerPrompt,
    int Generated,
    int Kept,
    IReadOnlyDictionary<TeacherAnswerDropReason, int> Dropped,
    long GeneratedTokens,
    double Seconds,
    IReadOnlyList<int> KeptPerPrompt)
{
    /// <summary>Answers dropped, all reasons together.</summary>
    public int DroppedCount => Dropped.Values.Sum();

    /// <summary>Prompts left without any kept answer.</summary>
    public int PromptsWithoutAnswer => KeptPerPrompt.Count > 0 ? KeptPerPrompt[0] : 0;

    /// <summary>Kept answers per prompt, on average.</summary>
    public double KeptPerPromptMean => Prompts == 0 ? 0 : Kept / (double)Prompts;

    /// <summary>Generated tokens per second of wall time (0 when no time was measured).</summary>
    public double TokensPerSecond => Seconds > 0 ? GeneratedTokens / Seconds : 0;
}

/// <summary>The teacher's answers to a pool: those kept, what it took, and those dropped.</summary>
/// <param name="Answers">The kept answers, in prompt order, a prompt's samples in sample order.</param>
/// <param name="Stats">Counts and timing.</param>
/// <param name="Dropped">The dropped answers, in prompt order, a prompt's samples in sample order.</param>
public sealed record TeacherAnswerSet(IReadOnlyList<TeacherAnswer> Answers, TeacherAnswerStats Stats, IReadOnlyList<DroppedAnswer> Dropped)
{
    /// <summary>The kept answers as chat records (the prompt's messages plus the answer, at the source prompt's file and line): training data.</summary>
    public IReadOnlyList<ChatRecord> Kept => [.. Answers.Select(a => a.Record)];

    /// <summary>
    /// MC2074 for the report: an error when prompts were asked and no answer was kept (there is nothing to train on), a
    /// warning when some were dropped, null when none was. It gives the counts by reason, what to change for the most
    /// common ones, and the first dropped answer's location and text.
    /// </summary>
    public Diagnostic? DroppedDiagnostic()
    {
        if (Dropped.Count == 0)
        {
            return null;
        }

        var reasons = string.Join(", ", Stats.Dropped.Where(d => d.Value > 0).Select(d => $"{d.Value.ToString(CultureInfo.InvariantCulture)} {TeacherAnswers.ReasonName(d.Key)}"));
        var hints = string.Concat(Stats.Dropped.Where(d => d.Value > 0).Select(d => Hint(d.Key)));
        var first = Dropped[0];
        var shown = first.Text.Length > 60 ? first.Text[..60] + "..." : first.Text;
        var counts = Invariant($"{Stats.DroppedCount} of {Stats.Generated} teacher answers dropped ({reasons}); first: {first.Location} sample {first.Sample}, {TeacherAnswers.ReasonName(first.Reason)}: \"{shown}\".");
        return Answers.Count == 0 && Stats.Prompts > 0
            ? Diagnostic.Error(DiagnosticCodes.TeacherAnswersDropped, "No teacher answer was kept, so there is nothing to distill: " + counts + hints, first.File, first.Line)
            : Diagnostic.Warning(DiagnosticCodes.TeacherAnswersDropped, counts + hints, first.File, first.Line);
    }

    private static string Hint(TeacherAnswerDropReason reason) => reason switch
    {
        TeacherAnswerDropReason.Unfinished => " Unfinished answers: raise max_new_tokens (or max_length).",
        TeacherAnswerDropReason.NoFinalNumber => " No final number: the teacher does not end on '#### n' (or the task's answer_pattern).",
        TeacherAnswerDropReason.NotALabel => " Not a label: the teacher answers other words than the task's labels.",
        TeacherAnswerDropReason.Duplicate => " Duplicates: raise the temperature or keep duplicates.",
        TeacherAnswerDropReason.RequestFailed => " Failed requests: the endpoint gave no usable reply after its retries (see the endpoint's failure counts).",
        TeacherAnswerDropReason.NotAnswerJson => " Not answer JSON: with chain_of_thought the teacher must reply {\"reason\": ..., \"answer\": ...}.",
        TeacherAnswerDropReason.NotAsked => " Not asked: the budget ran out; raise budget_requests or budget_tokens, or run again to go on.",
        TeacherAnswerDropReason.PromptTooLong => " Not asked: the prompt alone fills max_length (skip_long_prompts); shorten these prompts to have them answered.",
        _ => "",
    };

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
