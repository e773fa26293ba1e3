using System.Diagnostics;
using System.Globalization;
using ModelCompression.Common;
using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;
using ModelCompression.Onnx;
using ModelCompression.Text;

namespace ModelCompression.Generation;

/// <summary>
/// Sequence-level distillation data: a local ONNX teacher decoder answers every prompt of a pool. Each prompt
/// (<see cref="ChatRecord.Prompt"/>: a final assistant answer, if the record has one, is ignored) is rendered with
/// <see cref="ChatTemplate.RenderForGeneration"/>, answered in batches with the KV cache (<see cref="Generator"/>; the
/// longest prompts first, so that a batch's rows are of similar length and little is padded), decoded up to the
/// template's end marker and parsed with the task's parser, as <see cref="GenerationEvaluator"/> does. An answer is kept
/// as the prompt's messages plus one assistant message, at the source prompt's file and line; it is dropped and counted
/// (<see cref="TeacherAnswerDropReason"/>) when it did not end within the token budget, is empty, is refused by the
/// parser, or repeats an answer already kept for the prompt. Nothing is repaired or guessed.
/// <para>
/// On disk (<see cref="Write"/>) the kept answers are JSON Lines in OpenAI's chat fine-tuning format, one answer a line,
/// <c>{"messages": [...], "source": "file:line", "sample": k}</c>: <see cref="ChatReader"/> (which ignores the two extra
/// keys) reads the file as labelled chat data, so a user can inspect, edit or train on it. The counts and the dropped
/// answers go to a sibling JSON file (<see cref="StatsPath"/>), so that the answer file stays plain chat data.
/// </para>
/// </summary>
public static class TeacherAnswers
{
    /// <summary>The value of the stats file's <c>format</c> key.</summary>
    public const string StatsFormat = "teacher-answers v1";

    /// <summary>
    /// Answers <paramref name="prompts"/> with the teacher decoder at <paramref name="teacherModelPath"/> (opened on the
    /// CPU with <paramref name="threads"/>, 0 for the engine's budget); see <see cref="Generate(DecoderSession, ChatTemplate, IReadOnlyList{ChatRecord}, GenerativeTask, TeacherAnswerOptions, IProgress{ValueTuple{int, int}}?, CancellationToken)"/>.
    /// </summary>
    public static TeacherAnswerSet Generate(
        string teacherModelPath,
        ChatTemplate template,
        IReadOnlyList<ChatRecord> prompts,
        GenerativeTask task,
        TeacherAnswerOptions options,
        IProgress<(int Done, int Total)>? progress = null,
        int threads = 0,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(teacherModelPath);
        ArgumentNullException.ThrowIfNull(template);
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(task);
        ArgumentNullException.ThrowIfNull(options);
        // Bad options and task options fail before the model is loaded.
        ThrowIfInvalid(options);
        _ = task.CreateParser();
        using var teacher = DecoderSession.Open(teacherModelPath, threads);
        return Generate(teacher, template, prompts, task, options, progress, cancellationToken);
    }

    /// <summary>
    /// Answers <paramref name="prompts"/> with <paramref name="teacher"/> (not owned), rendering with
    /// <paramref name="template"/> and parsing as <paramref name="task"/> says. <paramref name="progress"/> hears
    /// (prompts answered, prompts in all) at the start and after every batch of prompts, for percent and ETA.
    /// </summary>
    /// <exception cref="CompressionException">
    /// MC2073 for options that do not go together (<see cref="TeacherAnswerOptions.Problems"/>); MC2088 for task options
    /// that make no parser; MC2085 when the template's tokenizer has more ids than the teacher's logits; MC2072 when a
    /// prompt leaves no room for an answer (see <see cref="RenderPrompts"/>); all before anything is generated.
    /// </exception>
    /// <exception cref="OperationCanceledException">When <paramref name="cancellationToken"/> is cancelled (checked at every generated token).</exception>
    public static TeacherAnswerSet Generate(
        DecoderSession teacher,
        ChatTemplate template,
        IReadOnlyList<ChatRecord> prompts,
        GenerativeTask task,
        TeacherAnswerOptions options,
        IProgress<(int Done, int Total)>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(teacher);
        ArgumentNullException.ThrowIfNull(template);
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(task);
        ArgumentNullException.ThrowIfNull(options);
        ThrowIfInvalid(options);
        var parser = task.CreateParser();
        var clock = Stopwatch.StartNew();
        var (ids, maxLength) = RenderPrompts(teacher.Signature, teacher.ModelPath, template, prompts, options.MaxLength, options.SkipLongPrompts);
        var generation = AnswerOptions(template, task, options);
        var samples = options.SamplesPerPrompt;

        // Longest first: batches of similar lengths pad little, and the slowest batches come while the ETA is young.
        var order = Enumerable.Range(0, prompts.Count).Where(i => ids[i].Length < maxLength).OrderByDescending(i => ids[i].Length).ToArray();
        var results = new GeneratedSequence[prompts.Count][];
        var generator = new Generator(teacher);
        progress?.Report((0, prompts.Count));
        for (var start = 0; start < order.Length; start += generation.BatchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var chunk = order.AsSpan(start, Math.Min(generation.BatchSize, order.Length - start)).ToArray();
            foreach (var sequence in generator.Generate([.. chunk.Select(i => (IReadOnlyList<int>)ids[i])], generation, cancellationToken))
            {
                (results[chunk[sequence.PromptIndex]] ??= new GeneratedSequence[samples])[sequence.SampleIndex] = sequence;
            }

            progress?.Report((start + chunk.Length, prompts.Count));
        }

        var endText = GenerationEvaluator.EndText(template);
        var kept = new List<TeacherAnswer>();
        var dropped = new List<DroppedAnswer>();
        var keptPerPrompt = new int[samples + 1];
        long generatedTokens = 0;
        for (var p = 0; p < prompts.Count; p++)
        {
            var record = prompts[p];
            var seen = new HashSet<string>(StringComparer.Ordinal);
            var keptHere = 0;
            if (results[p] is null)
            {
                // Skipped: no room for an answer (only with skip_long_prompts; RenderPrompts refused it otherwise).
                dropped.AddRange(Enumerable.Range(0, samples).Select(s => new DroppedAnswer(record.File, record.Line, s, TeacherAnswerDropReason.PromptTooLong, string.Empty)));
                keptPerPrompt[0]++;
                continue;
            }

            foreach (var sequence in results[p])
            {
                generatedTokens += sequence.Tokens.Count;
                var text = GenerationEvaluator.Answer(template.Tokenizer.Decode(sequence.ContentTokens), endText);
                var reason = Judge(sequence, ids[p].Length, maxLength, text, parser, options.KeepDuplicates, seen);
                if (reason is { } why)
                {
                    dropped.Add(new DroppedAnswer(record.File, record.Line, sequence.SampleIndex, why, Start(text)));
                }
                else
                {
                    kept.Add(new TeacherAnswer(new ChatRecord([.. record.Prompt, new ChatMessage(ChatRole.Assistant, text)], record.File, record.Line), sequence.SampleIndex));
                    keptHere++;
                }
            }

            keptPerPrompt[keptHere]++;
        }

        var byReason = Enum.GetValues<TeacherAnswerDropReason>().ToDictionary(r => r, r => dropped.Count(d => d.Reason == r));
        var stats = new TeacherAnswerStats(prompts.Count, samples, prompts.Count * samples, kept.Count, byReason, generatedTokens, clock.Elapsed.TotalSeconds, keptPerPrompt);
        return new TeacherAnswerSet(kept, stats, dropped);
    }

    /// <summary>
    /// Whether the teacher at <paramref name="teacherModelPath"/> can answer <paramref name="prompts"/> as
    /// <paramref name="template"/> renders them, read from its graph alone (no ONNX Runtime session, no weights): the
    /// options are checked (MC2073), the tokenizer against the teacher's logits (MC2085) and every prompt against the
    /// position table (MC2072). Returns the maximum length answers are held to. For a recipe's plan phase.
    /// </summary>
    public static int Check(string teacherModelPath, ChatTemplate template, IReadOnlyList<ChatRecord> prompts, TeacherAnswerOptions options)
    {
        ArgumentNullException.ThrowIfNull(teacherModelPath);
        ArgumentNullException.ThrowIfNull(template);
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(options);
        ThrowIfInvalid(options);
        var model = OnnxModelFile.LoadChecked(teacherModelPath, new OnnxLoadOptions { LoadExternalData = false });
        return RenderPrompts(DecoderSignature.Read(model, teacherModelPath), teacherModelPath, template, prompts, options.MaxLength, options.SkipLongPrompts).MaxLength;
    }

    /// <summary>
    /// Renders every prompt whole (never cut: a teacher that does not see the whole question cannot answer it) and
    /// checks it leaves room for at least one answer token in the maximum length: <paramref name="maxLength"/>, or the
    /// teacher's position table, or <see cref="GenerationEvaluator.DefaultMaxLength"/>. MC2072 names the longest prompt
    /// (file and line) and how many do not fit, or a <paramref name="maxLength"/> beyond the position table; MC2085 when
    /// the template's tokenizer has more ids than the teacher's logits (its ids would mean other tokens to the teacher).
    /// </summary>
    public static (IReadOnlyList<int[]> Ids, int MaxLength) RenderPrompts(DecoderSignature teacher, string teacherModelPath, ChatTemplate template, IReadOnlyList<ChatRecord> prompts, int? maxLength = null, bool skipLong = false)
    {
        ArgumentNullException.ThrowIfNull(teacher);
        ArgumentNullException.ThrowIfNull(teacherModelPath);
        ArgumentNullException.ThrowIfNull(template);
        ArgumentNullException.ThrowIfNull(prompts);
        var tokenizer = template.Tokenizer;
        if (teacher.Vocabulary is { } vocabulary && tokenizer.VocabularySize > vocabulary)
        {
            throw CompressionException.Error(
                DiagnosticCodes.DecoderVocabularyMismatch,
                Invariant($"The {tokenizer.Kind} tokenizer has {tokenizer.VocabularySize} ids; the teacher '{teacherModelPath}' has logits for {vocabulary}. Give the teacher's answers with the tokenizer it was trained with."),
                teacherModelPath);
        }

        if (maxLength is { } asked && teacher.MaxPositions is { } table && asked > table)
        {
            throw CompressionException.Error(
                DiagnosticCodes.TeacherPromptTooLong,
                Invariant($"max_length {asked} is more than the teacher '{teacherModelPath}' has positions ({table}); leave max_length out or make it at most {table}."),
                teacherModelPath);
        }

        var limit = maxLength ?? teacher.MaxPositions ?? GenerationEvaluator.DefaultMaxLength;
        var ids = new int[prompts.Count][];
        for (var i = 0; i < prompts.Count; i++)
        {
            var messages = prompts[i].Prompt;
            if (messages.Count == 0)
            {
                throw new ArgumentException($"The prompt at {prompts[i].Location} has no message to answer.", nameof(prompts));
            }

            ids[i] = template.RenderForGeneration(messages, int.MaxValue).Ids;
        }

        var tooLong = Enumerable.Range(0, ids.Length).Where(i => ids[i].Length >= limit).ToList();
        if (tooLong.Count > 0 && !skipLong)
        {
            var longest = tooLong.MaxBy(i => ids[i].Length);
            var record = prompts[longest];
            var what = maxLength is null ? $"the teacher's {limit} positions" : $"max_length {limit}";
            throw CompressionException.Error(
                DiagnosticCodes.TeacherPromptTooLong,
                Invariant($"{tooLong.Count} of {prompts.Count} prompts leave no room for an answer in {what} ('{teacherModelPath}'); the longest, {record.Location}, renders to {ids[longest].Length} tokens. Shorten or remove these prompts from the pool{(maxLength is null ? "" : ", or raise max_length")}, or set skip_long_prompts: true on the generate stage to drop and count them."),
                record.File,
                record.Line);
        }

        return (ids, limit);
    }

    /// <summary>
    /// The options the teacher generates with: <see cref="TeacherAnswerOptions.Sampling"/> (or greedy with the task's
    /// new-token budget) and <see cref="TeacherAnswerOptions.SamplesPerPrompt"/>, stopping at end of text and the
    /// template's end marker (<see cref="GenerationEvaluator.AnswerOptions"/>).
    /// </summary>
    public static GenerationOptions AnswerOptions(ChatTemplate template, GenerativeTask task, TeacherAnswerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return GenerationEvaluator.AnswerOptions(template, task, options.Sampling) with { SamplesPerPrompt = options.SamplesPerPrompt };
    }

    /// <summary>
    /// The cache key of a teacher's answers: a <see cref="ContentHash"/> over the teacher model's hash, the prompts
    /// (locations and messages), the tokenizer (<see cref="TeacherTokenCache.Description"/>), the chat template, the
    /// task and its parser options, and every option that changes which answers come out and which are kept (not the
    /// batch size, the cache switch or the thread count, which change only how fast). The seed counts only when sampling.
    /// </summary>
    public static string Key(string teacherModelHash, ChatTemplate template, IReadOnlyList<ChatRecord> prompts, GenerativeTask task, TeacherAnswerOptions options)
    {
        ArgumentNullException.ThrowIfNull(teacherModelHash);
        ArgumentNullException.ThrowIfNull(template);
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(task);
        ArgumentNullException.ThrowIfNull(options);
        var generation = AnswerOptions(template, task, options);
        var hash = new ContentHash()
            .Add("kind", StatsFormat)
            .Add("teacher", teacherModelHash)
            .Add("tokenizer", TeacherTokenCache.Description(template.Tokenizer))
            .Add("template", string.Join("\u0001", [template.Options.System, template.Options.User, template.Options.Assistant, template.Options.GenerationPrompt, .. template.Options.Markers]))
            .Add("task", string.Join("\u0001", [GenerativeTask.Name(task.Type), task.AnswerPattern ?? "", .. task.LabelWords ?? []]))
            .Add("max_new_tokens", Invariant($"{generation.MaxNewTokens}"))
            .Add("sampling", generation.IsGreedy ? "greedy" : Invariant($"{generation.Temperature:R} {generation.TopK} {generation.TopP:R} {generation.Seed}"))
            .Add("samples", Invariant($"{options.SamplesPerPrompt}"))
            .Add("stop_tokens", string.Join(",", generation.StopTokenIds))
            .Add("stop_sequences", string.Join(";", generation.StopSequences.Select(s => string.Join(",", s))))
            .Add("stop_strings", string.Join("\u0001", generation.StopStrings))
            .Add("max_length", options.MaxLength is { } length ? Invariant($"{length}") : "model")
            .Add("keep_duplicates", (options.KeepDuplicates ? "yes" : "no") + (options.SkipLongPrompts ? ", skip long prompts" : ""))
            .Add("prompts", Invariant($"{prompts.Count}"));
        foreach (var record in prompts)
        {
            hash.Add("at", record.Location);
            foreach (var message in record.Prompt)
            {
                hash.Add(message.Trained ? TeacherAnswerFile.RoleName(message.Role) : "assistant weight 0", message.Content);
            }
        }

        return hash.Finish();
    }

    /// <summary>The stats file beside an answer file: <c>answers.jsonl</c> gives <c>answers.stats.json</c>.</summary>
    public static string StatsPath(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        return Path.ChangeExtension(path, ".stats.json");
    }

    /// <summary>
    /// Writes <paramref name="set"/>: the kept answers to <paramref name="path"/> (JSON Lines in the OpenAI chat format,
    /// plus <c>source</c> and <c>sample</c>), the counts, the dropped answers and the answer file's hash to
    /// <see cref="StatsPath"/>. Each file is written atomically, the stats first, so an answer file is never there without
    /// stats; the hash tells when the two do not belong together.
    /// </summary>
    public static void Write(TeacherAnswerSet set, string path) => TeacherAnswerFile.Write(set, path);

    /// <summary>
    /// Reads what <see cref="Write"/> wrote. MC2071 names the file and line of the first damage: a missing or unreadable
    /// file, a line that is not JSON or lacks a field (messages ending on a non-empty assistant answer, source "file:line",
    /// sample), a stats file that is not what <see cref="Write"/> writes, an answer file with another number of answers
    /// than its stats count (a file cut at a line end, named at the line after its last), or one whose bytes are not
    /// those its stats were written with (no line). Delete both files to generate the answers again.
    /// </summary>
    public static TeacherAnswerSet Read(string path) => TeacherAnswerFile.Read(path);

    /// <summary>
    /// The stats file's name of a drop reason: unfinished, empty, no_final_number, not_a_label, duplicate, and for endpoint
    /// teachers request_failed, not_answer_json, not_asked, and prompt_too_long (skip_long_prompts).
    /// </summary>
    public static string ReasonName(TeacherAnswerDropReason reason) => reason switch
    {
        TeacherAnswerDropReason.Unfinished => "unfinished",
        TeacherAnswerDropReason.Empty => "empty",
        TeacherAnswerDropReason.NoFinalNumber => "no_final_number",
        TeacherAnswerDropReason.NotALabel => "not_a_label",
        TeacherAnswerDropReason.RequestFailed => "request_failed",
        TeacherAnswerDropReason.NotAnswerJson => "not_answer_json",
        TeacherAnswerDropReason.NotAsked => "not_asked",
        TeacherAnswerDropReason.PromptTooLong => "prompt_too_long",
        _ => "duplicate",
    };

    private static void ThrowIfInvalid(TeacherAnswerOptions options)
    {
        if (options.Problems() is { Count: > 0 } problems)
        {
            throw CompressionException.Error(DiagnosticCodes.TeacherAnswerOptionsInvalid, "The teacher-answer options: " + string.Join("; ", problems) + ".");
        }
    }

    /// <summary>Why an answer is dropped, or null to keep it (recording its text in <paramref name="seen"/>).</summary>
    private static TeacherAnswerDropReason? Judge(GeneratedSequence sequence, int promptLength, int maxLength, string text, IAnswerParser parser, bool keepDuplicates, HashSet<string> seen)
    {
        // An answer that ended past max_length would have been cut there: it did not end within the budget either.
        if (sequence.FinishReason == FinishReason.Length || promptLength + sequence.Tokens.Count > maxLength)
        {
            return TeacherAnswerDropReason.Unfinished;
        }

        if (text.Trim().Length == 0)
        {
            return TeacherAnswerDropReason.Empty;
        }

        switch (parser.Parse(text).Failure)
        {
            case AnswerParseFailure.NoFinalNumber:
                return TeacherAnswerDropReason.NoFinalNumber;
            case AnswerParseFailure.NotALabel:
                return TeacherAnswerDropReason.NotALabel;
            case AnswerParseFailure.Empty:
                return TeacherAnswerDropReason.Empty;
        }

        return seen.Add(text) || keepDuplicates ? null : TeacherAnswerDropReason.Duplicate;
    }

    /// <summary>At most <see cref="DroppedAnswer.MaxTextLength"/> characters of <paramref name="text"/>, never half a surrogate pair.</summary>
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
}
