using System.Diagnostics;
using System.Globalization;
using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;
using ModelCompression.Generation;
using ModelCompression.Text;

namespace ModelCompression.Teachers;

/// <summary>
/// A teacher behind an OpenAI-compatible chat-completions endpoint answers the prompts of a pool, as
/// <see cref="TeacherAnswers"/> does with a local ONNX teacher, and gives the same <see cref="TeacherAnswerSet"/>.
/// <para>
/// Each prompt becomes one request per answer slot (<see cref="TeacherPrompts"/>; one for single-turn tasks, one per
/// assistant turn for conversations), identical requests are sent once, and every reply is written to the answer cache
/// (<see cref="EndpointAnswerCache"/>) as it arrives. Requests already cached are not sent: a killed run resumes with the
/// missing ones only, and <see cref="EndpointTeacherOptions.Offline"/> replays without any network. Up to
/// request_batch_size requests are in flight at once; the answers are assembled in prompt order whatever the order of
/// arrival, so the result depends only on the replies.
/// </para>
/// <para>
/// An answer is judged as the local teacher's are (cut by the token limit: unfinished; empty; refused by the task's
/// parser; a repeat of one already kept for the prompt), plus the endpoint's own reasons: no usable reply
/// (request_failed), not the chain-of-thought JSON (not_answer_json), not asked because the budget ran out (not_asked).
/// For a conversation a record is kept when every rewritten turn is; else it is dropped with its first failing turn's
/// reason. Kept answers are trimmed of surrounding white space; the raw text stays in the cache.
/// </para>
/// </summary>
public static class EndpointTeacher
{
    /// <summary>How many missing requests an offline error names.</summary>
    public const int MissingShown = 5;

    /// <summary>Synchronous <see cref="AnswerAsync(IReadOnlyList{ChatRecord}, GenerativeTask, EndpointTeacherOptions, string, IProgress{ValueTuple{int, int}}?, CancellationToken)"/>, for stages.</summary>
    public static EndpointTeacherResult Answer(
        IReadOnlyList<ChatRecord> prompts,
        GenerativeTask task,
        EndpointTeacherOptions options,
        string cacheFolder,
        IProgress<(int Done, int Total)>? progress = null,
        CancellationToken cancellationToken = default) =>
        AnswerAsync(prompts, task, options, cacheFolder, progress, cancellationToken).GetAwaiter().GetResult();

    /// <summary>
    /// Answers <paramref name="prompts"/> with the endpoint <paramref name="options"/> describe, caching in
    /// <paramref name="cacheFolder"/>. <paramref name="progress"/> hears (requests done, requests in all) at the start
    /// (cache hits are done) and after each request, for percent and ETA.
    /// </summary>
    /// <exception cref="CompressionException">
    /// MC2089 for options that do not go together; MC2088 for task options that make no parser; MC2091 offline when the
    /// cache lacks requests (their count and the first prompts' file and line); MC2090 when the key's variable is unset
    /// or the endpoint answers 401, 403 or 404; MC2092 when the usable share is below min_success_ratio (after every
    /// answer received is cached).
    /// </exception>
    /// <exception cref="OperationCanceledException">When <paramref name="cancellationToken"/> is cancelled; the answers received so far are cached.</exception>
    public static Task<EndpointTeacherResult> AnswerAsync(
        IReadOnlyList<ChatRecord> prompts,
        GenerativeTask task,
        EndpointTeacherOptions options,
        string cacheFolder,
        IProgress<(int Done, int Total)>? progress = null,
        CancellationToken cancellationToken = default) =>
        AnswerAsync(prompts, task, options, cacheFolder, (delay, token) => Task.Delay(delay, token), progress, cancellationToken);

    /// <summary>
    /// <see cref="AnswerAsync(IReadOnlyList{ChatRecord}, GenerativeTask, EndpointTeacherOptions, string, IProgress{ValueTuple{int, int}}?, CancellationToken)"/>
    /// with the wait between retries given (tests record the delays instead of waiting them).
    /// </summary>
    public static async Task<EndpointTeacherResult> AnswerAsync(
        IReadOnlyList<ChatRecord> prompts,
        GenerativeTask task,
        EndpointTeacherOptions options,
        string cacheFolder,
        RetryWait wait,
        IProgress<(int Done, int Total)>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(task);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(cacheFolder);
        ArgumentNullException.ThrowIfNull(wait);
        ThrowIfInvalid(options);
        var parser = task.CreateParser();
        var clock = Stopwatch.StartNew();
        var plan = Plan(prompts, task, options);
        var requests = plan.SelectMany(p => p.Requests).DistinctBy(r => r.Key).ToList();

        var exchange = await EndpointExchange.RunAsync(
            requests, options, cacheFolder, wait, missing => MissingOffline(plan, missing, requests.Count, new EndpointAnswerCache(cacheFolder).Folder), progress, cancellationToken).ConfigureAwait(false);
        var replies = exchange.Replies;
        var (set, turns, judged) = Assemble(prompts, plan, replies, exchange.Failures, options, parser, clock);
        var usage = exchange.Usage(judged.Values.SelectMany(j => j).Select(j => j.Drop), clock.Elapsed.TotalSeconds);
        if (usage.BelowRatio(options.MinSuccessRatio) is { } tooFew)
        {
            throw tooFew;
        }

        return new EndpointTeacherResult(set, turns, usage, exchange.Warnings);
    }

    /// <summary>
    /// The probe of a teacher declared to share the student's tokenizer: the first request <paramref name="prompt"/> needs,
    /// from the answer cache or sent alone before the pool (and cached, so the pool does not send it again), and whether
    /// its answer's tokens are the student's. Null when they are, or when no reply can be had (offline without the entry,
    /// or the request failed: the pool's own counts then tell); else MC2078 with the first tokens that differ.
    /// </summary>
    public static CompressionException? Probe(ChatRecord prompt, GenerativeTask task, EndpointTeacherOptions options, string cacheFolder, EndpointTokenAlignment alignment, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(task);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(cacheFolder);
        ArgumentNullException.ThrowIfNull(alignment);
        ThrowIfInvalid(options);
        var request = Plan([prompt], task, options)[0].Requests[0];
        // Offline, a probe the cache lacks is skipped: the pool's replay then names every missing request (MC2091).
        var reply = options.Offline
            ? new EndpointAnswerCache(cacheFolder).TryRead(request, out _)
            : EndpointExchange.RunAsync([request], options, cacheFolder, (delay, token) => Task.Delay(delay, token), _ => throw new UnreachableException(), null, cancellationToken)
                .GetAwaiter().GetResult().Replies.GetValueOrDefault(request.Key);

        if (reply is not { Choices.Count: > 0 } || alignment.Mismatch(reply.Choices[0]) is not { } mismatch)
        {
            return null;
        }

        return CompressionException.Error(
            DiagnosticCodes.EndpointTokenizerMismatch,
            Invariant($"teacher.shares_tokenizer says the endpoint's model '{options.Model}' splits text as the student's tokenizer does, but on the probe request (the prompt at {prompt.Location}) {mismatch}. The pool was not asked. Remove shares_tokenizer and set distill alpha: 0 to learn from its answers alone, or give the student the teacher's tokenizer."),
            prompt.File,
            prompt.Line);
    }

    /// <summary>
    /// The requests <paramref name="prompts"/> need, one per distinct request, in the order of first use: what a batch
    /// file holds and what the cache is keyed by. Checks the options (MC2089) and the task (MC2088).
    /// </summary>
    public static IReadOnlyList<EndpointRequest> Requests(IReadOnlyList<ChatRecord> prompts, GenerativeTask task, EndpointTeacherOptions options)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(task);
        ArgumentNullException.ThrowIfNull(options);
        ThrowIfInvalid(options);
        _ = task.CreateParser();
        return [.. Plan(prompts, task, options).SelectMany(p => p.Requests).DistinctBy(r => r.Key)];
    }

    /// <summary>
    /// Writes the kept answers of <paramref name="result"/> as chat fine-tuning JSON Lines (OpenAI's format, which Azure
    /// fine-tuning and TRL read) with their stats beside them: the same files the generate stage writes for a local
    /// teacher (<see cref="TeacherAnswers.Write"/>).
    /// </summary>
    public static void ExportDistilled(EndpointTeacherResult result, string path)
    {
        ArgumentNullException.ThrowIfNull(result);
        ArgumentNullException.ThrowIfNull(path);
        TeacherAnswers.Write(result.Answers, path);
    }

    /// <summary>Every problem of <see cref="EndpointTeacherOptions.Problems"/> as one MC2089 error.</summary>
    internal static void ThrowIfInvalid(EndpointTeacherOptions options)
    {
        var problems = options.Problems().ToList();
        if (problems.Count > 0)
        {
            throw CompressionException.Error(
                DiagnosticCodes.EndpointTeacherOptionsInvalid,
                "The endpoint teacher's options: " + string.Join(" ", problems.Select(p => $"{p.Key}: {p.Problem}")));
        }
    }

    /// <summary>Each prompt's answer slots and their requests, in prompt order.</summary>
    internal static IReadOnlyList<PromptPlan> Plan(IReadOnlyList<ChatRecord> prompts, GenerativeTask task, EndpointTeacherOptions options) =>
        [.. prompts.Select(record =>
        {
            var slots = TeacherPrompts.AnswerSlots(record, task);
            return new PromptPlan(record, slots, [.. slots.Select(slot => EndpointRequest.Create(TeacherPrompts.RequestMessages(record, slot, task, options), task, options))]);
        })];

    private static CompressionException MissingOffline(IReadOnlyList<PromptPlan> plan, IReadOnlyList<EndpointRequest> missing, int total, string folder)
    {
        var missingKeys = missing.Select(r => r.Key).ToHashSet(StringComparer.Ordinal);
        var shown = new List<string>();
        var firstFile = (string?)null;
        var firstLine = (int?)null;
        foreach (var prompt in plan)
        {
            for (var turn = 0; turn < prompt.Requests.Count && shown.Count < MissingShown; turn++)
            {
                var request = prompt.Requests[turn];
                if (missingKeys.Remove(request.Key))
                {
                    firstFile ??= prompt.Record.File;
                    firstLine ??= prompt.Record.Line;
                    var text = request.LastMessage();
                    var start = text.Length > 40 ? text[..40] + "..." : text;
                    shown.Add(Invariant($"{prompt.Record.Location}{(prompt.Requests.Count > 1 ? Invariant($" (turn {turn + 1})") : "")} \"{start.ReplaceLineEndings(" ")}\""));
                }
            }
        }

        return CompressionException.Error(
            DiagnosticCodes.EndpointAnswersMissingOffline,
            Invariant($"offline: true, and the answer cache '{folder}' lacks {missing.Count} of the {total} requests the prompts need; first: {string.Join("; ", shown)}. Run once online (or import a batch results file) to fill it, then replay offline."),
            firstFile,
            firstLine);
    }

    private static (TeacherAnswerSet Set, IReadOnlyList<IReadOnlyList<EndpointTurn>> Turns, IReadOnlyDictionary<string, Judged[]> Judged) Assemble(
        IReadOnlyList<ChatRecord> prompts,
        IReadOnlyList<PromptPlan> plan,
        IReadOnlyDictionary<string, EndpointReply> replies,
        IReadOnlyDictionary<string, string> failures,
        EndpointTeacherOptions options,
        IAnswerParser parser,
        Stopwatch clock)
    {
        var samples = options.SamplesPerPrompt;
        var judged = new Dictionary<string, Judged[]>(StringComparer.Ordinal);
        foreach (var request in plan.SelectMany(p => p.Requests))
        {
            if (!judged.ContainsKey(request.Key))
            {
                judged[request.Key] = replies.TryGetValue(request.Key, out var reply)
                    ? [.. reply.Choices.Select(choice => Judge(choice, options, parser))]
                    : [.. Enumerable.Repeat(new Judged(failures.ContainsKey(request.Key) ? TeacherAnswerDropReason.RequestFailed : TeacherAnswerDropReason.NotAsked, string.Empty, null), request.Choices)];
            }
        }

        var kept = new List<TeacherAnswer>();
        var keptTurns = new List<IReadOnlyList<EndpointTurn>>();
        var dropped = new List<DroppedAnswer>();
        var keptPerPrompt = new int[samples + 1];
        foreach (var prompt in plan)
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            var keptHere = 0;
            for (var sample = 0; sample < samples; sample++)
            {
                var answers = prompt.Requests.Select(r => judged[r.Key][sample]).ToList();
                var failed = answers.FirstOrDefault(a => a.Drop is not null);
                var finalText = answers[^1].Answer;
                var reason = failed?.Drop;
                if (reason is null && !seen.Add(string.Join("\u0001", answers.Select(a => a.Answer))) && !options.KeepDuplicates)
                {
                    reason = TeacherAnswerDropReason.Duplicate;
                }

                if (reason is { } why)
                {
                    dropped.Add(new DroppedAnswer(prompt.Record.File, prompt.Record.Line, sample, why, Start(failed?.Answer ?? finalText)));
                    continue;
                }

                kept.Add(new TeacherAnswer(Rewrite(prompt, answers), sample));
                keptTurns.Add([.. prompt.Requests.Select((r, turn) => Turn(r, replies[r.Key].Choices[sample], answers[turn], prompt.Slots[turn]))]);
                keptHere++;
            }

            keptPerPrompt[keptHere]++;
        }

        var byReason = Enum.GetValues<TeacherAnswerDropReason>().ToDictionary(r => r, r => dropped.Count(d => d.Reason == r));
        var completionTokens = plan.SelectMany(p => p.Requests).DistinctBy(r => r.Key).Sum(r => replies.TryGetValue(r.Key, out var reply) ? reply.CompletionTokens : 0);
        var stats = new TeacherAnswerStats(prompts.Count, samples, prompts.Count * samples, kept.Count, byReason, completionTokens, clock.Elapsed.TotalSeconds, keptPerPrompt);
        return (new TeacherAnswerSet(kept, stats, dropped), keptTurns, judged);
    }

    /// <summary>Why one choice is not usable (null when it is), and the answer text it gives.</summary>
    private static Judged Judge(EndpointChoice choice, EndpointTeacherOptions options, IAnswerParser parser)
    {
        if (choice.WasCut)
        {
            return new Judged(TeacherAnswerDropReason.Unfinished, choice.Text, null);
        }

        var answer = choice.Text;
        string? reason = null;
        if (options.ChainOfThought)
        {
            if (!ChainOfThought.TryParse(choice.Text, out var why, out var text))
            {
                return new Judged(TeacherAnswerDropReason.NotAnswerJson, choice.Text, null);
            }

            (reason, answer) = (why, text);
        }

        answer = answer.Trim();
        if (answer.Length == 0)
        {
            return new Judged(TeacherAnswerDropReason.Empty, answer, reason);
        }

        return parser.Parse(answer).Failure switch
        {
            AnswerParseFailure.NoFinalNumber => new Judged(TeacherAnswerDropReason.NoFinalNumber, answer, reason),
            AnswerParseFailure.NotALabel => new Judged(TeacherAnswerDropReason.NotALabel, answer, reason),
            AnswerParseFailure.Empty => new Judged(TeacherAnswerDropReason.Empty, answer, reason),
            _ => new Judged(null, answer, reason),
        };
    }

    /// <summary>The record with its answer slots filled by <paramref name="answers"/> (an appended slot adds a message).</summary>
    private static ChatRecord Rewrite(PromptPlan prompt, IReadOnlyList<Judged> answers)
    {
        var messages = prompt.Record.Messages.ToList();
        for (var turn = 0; turn < prompt.Slots.Count; turn++)
        {
            var message = new ChatMessage(ChatRole.Assistant, answers[turn].Answer);
            if (prompt.Slots[turn] == messages.Count)
            {
                messages.Add(message);
            }
            else
            {
                messages[prompt.Slots[turn]] = message;
            }
        }

        return new ChatRecord(messages, prompt.Record.File, prompt.Record.Line);
    }

    private static EndpointTurn Turn(EndpointRequest request, EndpointChoice choice, Judged judged, int message) =>
        new(request.Key, choice.Text, judged.CotReason, choice.Reasoning, choice.FinishReason, choice.Logprobs, message);

    /// <summary>At most <see cref="DroppedAnswer.MaxTextLength"/> characters, never half a surrogate pair.</summary>
    private static string Start(string text)
    {
        if (text.Length <= DroppedAnswer.MaxTextLength)
        {
            return text;
        }

        var cut = char.IsHighSurrogate(text[DroppedAnswer.MaxTextLength - 1]) ? DroppedAnswer.MaxTextLength - 1 : DroppedAnswer.MaxTextLength;
        return text[..cut];
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    /// <summary>One prompt's answer slots (<see cref="TeacherPrompts.AnswerSlots"/>) and the request of each.</summary>
    internal sealed record PromptPlan(ChatRecord Record, IReadOnlyList<int> Slots, IReadOnlyList<EndpointRequest> Requests);

    /// <summary>One choice judged: the drop reason (null: usable), the answer text, and the chain-of-thought reason.</summary>
    private sealed record Judged(TeacherAnswerDropReason? Drop, string Answer, string? CotReason);
}
