using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;
using ModelCompression.Generation;
using ModelCompression.Text;

namespace ModelCompression.Core.Tests.Generation;

/// <summary>
/// The PyTorch fixture as a teacher answering a pool. The template makes a prompt the fixture's own text plus one space
/// (the generation prompt), so the fixture's answers are PyTorch's greedy continuations after their first space
/// ("Ben has" + " " gives "6 plums.", from byte_decoder.expected.json), and an answer ends on end of text. Checked:
/// answers equal <see cref="Generator"/>'s decoded by hand, drops by reason (parser, unfinished, empty, duplicate),
/// seeded samples, the files' round trip and damage, option and prompt checks, cancellation, the cache key.
/// </summary>
public sealed class TeacherAnswersTests : IDisposable
{
    private const string Pool = "pool.jsonl";

    private static readonly ChatTemplateOptions Continue = new()
    {
        System = "{content}\n",
        User = "{content}",
        Assistant = " {content}<|endoftext|>",
        GenerationPrompt = " ",
        Markers = [],
    };

    private static readonly string[] Texts = ["Ben has", "1 2 3 4", "5 6", "The red fox"];

    private static readonly GenerationOptions Greedy = new() { MaxNewTokens = 40, BatchSize = 3 };

    private readonly TempDir _temp = new();

    public void Dispose() => _temp.Dispose();

    private static ChatTemplate Template(ChatTemplateOptions? options = null) => new(options ?? Continue, ChatTrainSupport.Bytes());

    private static List<ChatRecord> Prompts(IEnumerable<string> texts) =>
        [.. texts.Select((t, i) => new ChatRecord([new ChatMessage(ChatRole.User, t)], Pool, i + 1))];

    /// <summary>PyTorch's greedy continuation of <paramref name="prompt"/> after its first character (a space), without end of text.</summary>
    private static string PyTorchAnswer(string prompt)
    {
        var tokens = DecoderFixture.Greedy.Single(c => DecoderFixture.Text(c.Prompt) == prompt).Tokens;
        var text = DecoderFixture.Text(tokens);
        Assert.StartsWith(" ", text);
        return text[1..];
    }

    private static TeacherAnswerSet Answer(
        IReadOnlyList<ChatRecord> prompts,
        GenerativeTask task,
        TeacherAnswerOptions options,
        ChatTemplate? template = null,
        IProgress<(int Done, int Total)>? progress = null,
        CancellationToken cancellationToken = default) =>
        TeacherAnswers.Generate(DecoderFixture.Cached, template ?? Template(), prompts, task, options, progress, threads: 1, cancellationToken);

    [Fact]
    public void Greedy_answers_are_the_generators_tokens_decoded_and_the_records_keep_their_source()
    {
        var template = Template();
        // A labelled record's gold answer is ignored: the teacher answers its prompt.
        var prompts = Prompts(Texts);
        prompts[0] = prompts[0] with { Messages = [.. prompts[0].Messages, new ChatMessage(ChatRole.Assistant, "7 plums.")] };
        var progress = new Recorder();

        var set = Answer(prompts, new GenerativeTask(GenerativeTaskType.Conversation), new TeacherAnswerOptions { Sampling = Greedy }, template, progress);

        using var session = DecoderSession.Open(DecoderFixture.Cached, threads: 1);
        var byHand = new Generator(session).Generate(
            [.. prompts.Select(p => (IReadOnlyList<int>)template.RenderForGeneration(p.Prompt, 64).Ids)],
            new GenerationOptions { MaxNewTokens = 40, StopTokenIds = [DecoderFixture.Eos] });
        Assert.All(byHand, g => Assert.Equal(FinishReason.Eos, g.FinishReason));
        Assert.Equal(byHand.Select(g => template.Tokenizer.Decode(g.ContentTokens)), set.Answers.Select(a => a.Text));
        Assert.Equal(Texts.Select(PyTorchAnswer), set.Answers.Select(a => a.Text));
        Assert.Equal("6 plums.", set.Answers[0].Text);
        Assert.All(set.Answers.Zip(prompts), pair =>
        {
            var (answer, prompt) = pair;
            Assert.Equal((Pool, prompt.Line, 0), (answer.Record.File, answer.Record.Line, answer.Sample));
            Assert.Equal([.. prompt.Prompt, new ChatMessage(ChatRole.Assistant, answer.Text)], answer.Record.Messages);
        });
        Assert.Equal(set.Answers.Select(a => a.Record), set.Kept);
        var stats = set.Stats;
        Assert.Equal((4, 1, 4, 4, 0), (stats.Prompts, stats.SamplesPerPrompt, stats.Generated, stats.Kept, stats.DroppedCount));
        Assert.Equal(byHand.Sum(g => g.Tokens.Count), stats.GeneratedTokens);
        Assert.Equal([0, 4], stats.KeptPerPrompt);
        Assert.True(stats.Seconds > 0 && stats.TokensPerSecond > 0);
        Assert.Empty(set.Dropped);
        Assert.Null(set.DroppedDiagnostic());
        // Batches of 3 prompts: the start, then after each batch.
        Assert.Equal([(0, 4), (3, 4), (4, 4)], progress.Reports);
    }

    [Fact]
    public void The_math_parser_drops_answers_without_a_final_number_and_counts_them()
    {
        var prompts = Prompts(Texts);
        var options = new TeacherAnswerOptions { Sampling = Greedy };

        // GSM8K's '#### n': the fixture never writes it, so nothing is kept, and that is an error to report.
        var none = Answer(prompts, new GenerativeTask(GenerativeTaskType.Math), options);
        Assert.Empty(none.Answers);
        Assert.Equal(4, none.Stats.Dropped[TeacherAnswerDropReason.NoFinalNumber]);
        Assert.Equal([4, 0], none.Stats.KeptPerPrompt);
        Assert.Equal(Texts.Select(PyTorchAnswer), none.Dropped.Select(d => d.Text));
        var error = none.DroppedDiagnostic()!;
        Assert.Equal((DiagnosticCodes.TeacherAnswersDropped, DiagnosticSeverity.Error, Pool, 1), (error.Code, error.Severity, error.File, error.Line));
        Assert.Contains("4 no_final_number", error.Message, StringComparison.Ordinal);

        // A pattern that finds "6" in "6 plums.": one kept, three dropped and named.
        var some = Answer(prompts, new GenerativeTask(GenerativeTaskType.Math, AnswerPattern: @"(\d+) plums"), options);
        Assert.Equal(["6 plums."], some.Answers.Select(a => a.Text));
        Assert.Equal([(2, TeacherAnswerDropReason.NoFinalNumber), (3, TeacherAnswerDropReason.NoFinalNumber), (4, TeacherAnswerDropReason.NoFinalNumber)], some.Dropped.Select(d => (d.Line, d.Reason)));
        Assert.Equal(3, some.Stats.DroppedCount);
        var warning = some.DroppedDiagnostic()!;
        Assert.Equal((DiagnosticSeverity.Warning, 2), (warning.Severity, warning.Line));
        Assert.Contains("3 of 4 teacher answers dropped", warning.Message, StringComparison.Ordinal);

        // NLI-style labels: an answer that is not exactly a label word is dropped.
        var labels = Answer(prompts, new GenerativeTask(GenerativeTaskType.Nli, LabelWords: ["6 plums", "5 6 7"]), options);
        Assert.Equal([1, 2], labels.Answers.Select(a => a.Record.Line));
        Assert.Equal(2, labels.Stats.Dropped[TeacherAnswerDropReason.NotALabel]);
    }

    [Fact]
    public void Answers_that_do_not_end_within_the_budget_are_dropped_as_unfinished()
    {
        var prompts = Prompts(Texts);
        var task = new GenerativeTask(GenerativeTaskType.Conversation);

        // "5 6 7" and its end of text are exactly 6 tokens: it ends on the last one allowed; the others do not.
        var six = Answer(prompts, task, new TeacherAnswerOptions { Sampling = Greedy with { MaxNewTokens = 6 } });
        Assert.Equal(["5 6 7"], six.Answers.Select(a => a.Text));
        Assert.Equal(3, six.Stats.Dropped[TeacherAnswerDropReason.Unfinished]);
        Assert.Contains("raise max_new_tokens", six.DroppedDiagnostic()!.Message, StringComparison.Ordinal);

        // max_length holds prompt and answer: "1 2 3 4 " (8 tokens) + 6 does not fit 13.
        var short13 = Answer(prompts, task, new TeacherAnswerOptions { Sampling = Greedy, MaxLength = 13 });
        Assert.Empty(short13.Answers);
        Assert.Equal(4, short13.Stats.Dropped[TeacherAnswerDropReason.Unfinished]);
        var fits14 = Answer(prompts, task, new TeacherAnswerOptions { Sampling = Greedy, MaxLength = 14 });
        Assert.Equal(["5 6 7"], fits14.Answers.Select(a => a.Text));
    }

    [Fact]
    public void An_answer_that_ends_at_once_is_dropped_as_empty()
    {
        // With "." as the generation prompt, the fixture's own sentences are complete: it answers end of text.
        var template = Template(Continue with { Assistant = ".{content}<|endoftext|>", GenerationPrompt = "." });
        var prompts = Prompts(["The red fox jumps over the lazy dog"]);

        var set = Answer(prompts, new GenerativeTask(GenerativeTaskType.Conversation), new TeacherAnswerOptions { Sampling = Greedy }, template);

        Assert.Empty(set.Answers);
        Assert.Equal((1, TeacherAnswerDropReason.Empty, ""), (set.Dropped.Single().Line, set.Dropped[0].Reason, set.Dropped[0].Text));
        Assert.Equal((1, 1), (set.Stats.Dropped[TeacherAnswerDropReason.Empty], set.Stats.DroppedCount));
        Assert.Equal(DiagnosticSeverity.Error, set.DroppedDiagnostic()!.Severity);
    }

    [Fact]
    public void Several_samples_per_prompt_are_seeded_and_reproducible()
    {
        var template = Template();
        var prompts = Prompts(Texts);
        var sampling = Greedy with { Temperature = 1.5, Seed = 11, MaxNewTokens = 16 };
        var options = new TeacherAnswerOptions { Sampling = sampling, SamplesPerPrompt = 3, KeepDuplicates = true };
        var task = new GenerativeTask(GenerativeTaskType.Conversation);

        var first = Answer(prompts, task, options);
        var again = Answer(prompts, task, options);
        var otherSeed = Answer(prompts, task, options with { Sampling = sampling with { Seed = 12 } });

        Assert.Equal(12, first.Stats.Generated);
        // Every sample is what the generator gives with the same seed: kept when it ended, unfinished when not.
        using var session = DecoderSession.Open(DecoderFixture.Cached, threads: 1);
        var byHand = new Generator(session).Generate(
            [.. prompts.Select(p => (IReadOnlyList<int>)template.RenderForGeneration(p.Prompt, 64).Ids)],
            sampling with { SamplesPerPrompt = 3, StopTokenIds = [DecoderFixture.Eos] });
        Assert.Equal(12, byHand.Count);
        var ended = byHand.Where(g => g.FinishReason == FinishReason.Eos && template.Tokenizer.Decode(g.ContentTokens).Trim().Length > 0).ToList();
        Assert.Equal(ended.Select(g => (g.PromptIndex + 1, g.SampleIndex, template.Tokenizer.Decode(g.ContentTokens))), first.Answers.Select(a => (a.Record.Line, a.Sample, a.Text)));
        Assert.Equal(byHand.Count(g => g.FinishReason == FinishReason.Length), first.Stats.Dropped[TeacherAnswerDropReason.Unfinished]);
        Assert.True(first.Answers.Count > 0, "some sampled answer ends");
        // Samples of one prompt differ (temperature 1.5), the same seed repeats them all, another seed does not.
        Assert.Contains(byHand.GroupBy(g => g.PromptIndex), g => g.Select(s => string.Join(",", s.Tokens)).Distinct().Count() > 1);
        Assert.Equal(All(first), All(again));
        Assert.NotEqual(All(first), All(otherSeed));

        static List<(int, int, string)> All(TeacherAnswerSet set) =>
            [.. set.Answers.Select(a => (a.Record.Line, a.Sample, a.Text)).Concat(set.Dropped.Select(d => (d.Line, d.Sample, d.Text))).Order()];
    }

    [Fact]
    public void Identical_answers_to_one_prompt_are_kept_once_and_counted()
    {
        var prompts = Prompts(Texts);
        // top_p 0.01 keeps only the most likely token: sampling that always draws the greedy answer.
        var options = new TeacherAnswerOptions { Sampling = Greedy with { Temperature = 1, TopP = 0.01, Seed = 5 }, SamplesPerPrompt = 3 };
        var task = new GenerativeTask(GenerativeTaskType.Conversation);

        var once = Answer(prompts, task, options);
        var all = Answer(prompts, task, options with { KeepDuplicates = true });

        Assert.Equal(Texts.Select(PyTorchAnswer), once.Answers.Select(a => a.Text));
        Assert.All(once.Answers, a => Assert.Equal(0, a.Sample));
        Assert.Equal(8, once.Stats.Dropped[TeacherAnswerDropReason.Duplicate]);
        Assert.Equal([0, 4, 0, 0], once.Stats.KeptPerPrompt);
        Assert.Equal([(1, 1), (1, 2)], once.Dropped.Take(2).Select(d => (d.Line, d.Sample)));
        Assert.Equal(12, all.Answers.Count);
        Assert.Equal([0, 0, 0, 4], all.Stats.KeptPerPrompt);
        Assert.Equal(Texts.SelectMany(t => Enumerable.Repeat(PyTorchAnswer(t), 3)), all.Answers.Select(a => a.Text));
    }

    [Fact]
    public void Written_answers_read_back_equal_and_are_chat_data()
    {
        var set = Answer(Prompts(Texts), new GenerativeTask(GenerativeTaskType.Math, AnswerPattern: @"(\d+)"), new TeacherAnswerOptions { Sampling = Greedy });
        // A hand-made set too: a system turn, an earlier answer with weight 0, quotes and non-ASCII text, a Windows path.
        var windows = @"C:\data\pool, one.jsonl";
        var record = new ChatRecord(
            [new(ChatRole.System, "Be \"brief\"."), new(ChatRole.User, "Grüße"), new(ChatRole.Assistant, "hallo", Trained: false), new(ChatRole.User, "<b>again</b> & 🙂"), new(ChatRole.Assistant, "ok\nline two")],
            windows,
            7);
        var made = new TeacherAnswerSet(
            [new TeacherAnswer(record, 1)],
            new TeacherAnswerStats(2, 2, 4, 1, Enum.GetValues<TeacherAnswerDropReason>().ToDictionary(r => r, r => r == TeacherAnswerDropReason.Duplicate ? 3 : 0), 57, 0.125, [1, 1, 0]),
            [new DroppedAnswer(windows, 7, 0, TeacherAnswerDropReason.Duplicate, "ok"), new DroppedAnswer("b.jsonl", 1, 0, TeacherAnswerDropReason.Duplicate, "x"), new DroppedAnswer("b.jsonl", 1, 1, TeacherAnswerDropReason.Duplicate, "")]);

        foreach (var (original, name) in new[] { (set, "answers.jsonl"), (made, "made.jsonl") })
        {
            var path = _temp.File(name);
            TeacherAnswers.Write(original, path);
            var read = TeacherAnswers.Read(path);

            Assert.True(File.Exists(TeacherAnswers.StatsPath(path)));
            Assert.Equal(original.Answers.Select(a => (a.Record.File, a.Record.Line, a.Sample)), read.Answers.Select(a => (a.Record.File, a.Record.Line, a.Sample)));
            Assert.Equal(original.Answers.Select(a => a.Record.Messages), read.Answers.Select(a => a.Record.Messages));
            Assert.Equal(original.Dropped, read.Dropped);
            Assert.Equal(original.Stats with { Dropped = read.Stats.Dropped, KeptPerPrompt = read.Stats.KeptPerPrompt }, read.Stats);
            Assert.Equal(original.Stats.Dropped.OrderBy(d => d.Key), read.Stats.Dropped.OrderBy(d => d.Key));
            Assert.Equal(original.Stats.KeptPerPrompt, read.Stats.KeptPerPrompt);
            // The answer file is plain chat data: the chat reader takes it as labelled records.
            var chat = ChatReader.Read(path);
            Assert.Equal(original.Answers.Select(a => a.Record.Messages), chat.Labelled.Select(r => r.Messages));
        }
    }

    [Fact]
    public void A_cut_or_garbled_answer_file_is_MC2071_with_its_line()
    {
        var set = Answer(Prompts(Texts), new GenerativeTask(GenerativeTaskType.Conversation), new TeacherAnswerOptions { Sampling = Greedy });
        var path = _temp.File("answers.jsonl");
        TeacherAnswers.Write(set, path);
        var lines = File.ReadAllLines(path);
        Assert.Equal(4, lines.Length);

        // Cut in the middle of the last line.
        File.WriteAllText(path, string.Join("\n", lines[..3]) + "\n" + lines[3][..(lines[3].Length / 2)]);
        AssertDamaged(path, 4, "not valid JSON");
        // Cut at a line end: the stats count one more.
        File.WriteAllText(path, string.Join("\n", lines[..3]) + "\n");
        AssertDamaged(path, 4, "holds 3 answers");
        // A line with its source garbled, one without its answer.
        File.WriteAllLines(path, [lines[0], lines[1].Replace($"\"{Pool}:2\"", "\"nowhere\"", StringComparison.Ordinal), lines[2], lines[3]]);
        AssertDamaged(path, 2, "\"source\"");
        File.WriteAllLines(path, [lines[0], lines[1], lines[2].Replace("\"assistant\"", "\"user\"", StringComparison.Ordinal), lines[3]]);
        AssertDamaged(path, 3, "assistant answer");
        // A valid line edited by hand: the stats' hash no longer matches.
        File.WriteAllLines(path, [lines[0], lines[1], lines[2], lines[3].Replace("dog", "cat", StringComparison.Ordinal)]);
        AssertDamaged(path, null, "another hash");
        // The stats: garbled JSON names its line, a missing file names itself.
        File.WriteAllLines(path, lines);
        Assert.Equal(4, TeacherAnswers.Read(path).Answers.Count);
        var stats = TeacherAnswers.StatsPath(path);
        var statsLines = File.ReadAllLines(stats);
        File.WriteAllLines(stats, [.. statsLines.Take(3), "  \"generated\" 4,", .. statsLines.Skip(4)]);
        var garbled = Assert.Throws<CompressionException>(() => TeacherAnswers.Read(path));
        Assert.Equal((DiagnosticCodes.TeacherAnswersFileInvalid, stats, 4), (garbled.Code, garbled.Diagnostics[0].File, garbled.Diagnostics[0].Line));
        File.Delete(stats);
        Assert.Equal(stats, Assert.Throws<CompressionException>(() => TeacherAnswers.Read(path)).Diagnostics[0].File);

        static void AssertDamaged(string path, int? line, string says)
        {
            var error = Assert.Throws<CompressionException>(() => TeacherAnswers.Read(path));
            Assert.Equal((DiagnosticCodes.TeacherAnswersFileInvalid, path, line), (error.Code, error.Diagnostics[0].File, error.Diagnostics[0].Line));
            Assert.Contains(says, error.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Options_that_do_not_go_together_are_MC2073_before_the_model_is_opened()
    {
        var missing = _temp.File("no-such-teacher.onnx");
        var prompts = Prompts(Texts);
        var task = new GenerativeTask(GenerativeTaskType.Math);
        (TeacherAnswerOptions Options, string Says)[] cases =
        [
            (new TeacherAnswerOptions { SamplesPerPrompt = 3 }, "greedy"),
            (new TeacherAnswerOptions { Sampling = Greedy with { TopK = 1, Temperature = 0.7 }, SamplesPerPrompt = 2 }, "greedy"),
            (new TeacherAnswerOptions { Sampling = Greedy with { Temperature = 0.7, SamplesPerPrompt = 2 } }, "set samples_per_prompt"),
            (new TeacherAnswerOptions { SamplesPerPrompt = 0 }, "at least 1"),
            (new TeacherAnswerOptions { MaxLength = 1 }, "max_length"),
            (new TeacherAnswerOptions { Sampling = Greedy with { TopP = 1.5 } }, "top_p"),
        ];

        foreach (var (options, says) in cases)
        {
            Assert.NotEmpty(options.Problems());
            var error = Assert.Throws<CompressionException>(() => TeacherAnswers.Generate(missing, Template(), prompts, task, options));
            Assert.Equal(DiagnosticCodes.TeacherAnswerOptionsInvalid, error.Code);
            Assert.Contains(says, error.Message, StringComparison.Ordinal);
        }

        Assert.Empty(new TeacherAnswerOptions().Problems());
        Assert.Empty(new TeacherAnswerOptions { Sampling = Greedy with { Temperature = 0.2, TopP = 0.1 }, SamplesPerPrompt = 4 }.Problems());
    }

    [Fact]
    public void Prompts_that_leave_no_room_for_an_answer_are_MC2072_naming_the_longest()
    {
        var prompts = Prompts(["Ben has", new string('a', 70), "5 6", new string('b', 90)]);
        var task = new GenerativeTask(GenerativeTaskType.Conversation);
        var options = new TeacherAnswerOptions { Sampling = Greedy };

        // From the graph alone (the recipe's plan phase) and when generating: the fixture has 64 positions.
        var planned = Assert.Throws<CompressionException>(() => TeacherAnswers.Check(DecoderFixture.Cached, Template(), prompts, options));
        var generating = Assert.Throws<CompressionException>(() => Answer(prompts, task, options));
        foreach (var error in new[] { planned, generating })
        {
            Assert.Equal((DiagnosticCodes.TeacherPromptTooLong, Pool, 4), (error.Code, error.Diagnostics[0].File, error.Diagnostics[0].Line));
            Assert.Contains("2 of 4 prompts", error.Message, StringComparison.Ordinal);
            Assert.Contains("91 tokens", error.Message, StringComparison.Ordinal);
        }

        // skip_long_prompts: the two are not asked (never cut) and are counted; the others are answered as alone.
        var skipped = Answer(prompts, task, options with { SkipLongPrompts = true });
        Assert.Equal([2, 4], skipped.Dropped.Where(d => d.Reason == TeacherAnswerDropReason.PromptTooLong).Select(d => d.Line));
        Assert.Equal(2, skipped.Stats.Dropped[TeacherAnswerDropReason.PromptTooLong]);
        Assert.Equal(Answer(Prompts(["Ben has", "5 6"]), task, options).Answers.Select(a => a.Text), skipped.Answers.Select(a => a.Text));
        Assert.Equal(64, TeacherAnswers.Check(DecoderFixture.Cached, Template(), prompts, options with { SkipLongPrompts = true }));

        Assert.Equal(64, TeacherAnswers.Check(DecoderFixture.Cached, Template(), Prompts(Texts), options));
        // max_length: beyond the position table, and too short for a prompt ("Ben has " is 8 tokens).
        Assert.Contains("more than the teacher", Assert.Throws<CompressionException>(() => TeacherAnswers.Check(DecoderFixture.Cached, Template(), Prompts(Texts), options with { MaxLength = 65 })).Message, StringComparison.Ordinal);
        var tight = Assert.Throws<CompressionException>(() => TeacherAnswers.Check(DecoderFixture.Cached, Template(), Prompts(Texts), options with { MaxLength = 12 }));
        Assert.Equal((DiagnosticCodes.TeacherPromptTooLong, 4), (tight.Code, tight.Diagnostics[0].Line));
        Assert.Contains("max_length 12", tight.Message, StringComparison.Ordinal);
        // A tokenizer with more ids than the teacher's 257 logits.
        var wider = new ChatTemplate(Continue, GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Byte, Specials: ["<|end|>"])));
        Assert.Equal(DiagnosticCodes.DecoderVocabularyMismatch, Assert.Throws<CompressionException>(() => TeacherAnswers.Check(DecoderFixture.Cached, wider, Prompts(Texts), options)).Code);
    }

    [Fact]
    public void Cancellation_stops_between_and_within_batches()
    {
        var prompts = Prompts(Texts);
        var task = new GenerativeTask(GenerativeTaskType.Conversation);
        using var source = new CancellationTokenSource();
        var progress = new Recorder(report => { if (report.Done >= 1) { source.Cancel(); } });

        Assert.ThrowsAny<OperationCanceledException>(() => Answer(prompts, task, new TeacherAnswerOptions { Sampling = Greedy with { BatchSize = 1 } }, progress: progress, cancellationToken: source.Token));

        Assert.Equal([(0, 4), (1, 4)], progress.Reports);
        Assert.ThrowsAny<OperationCanceledException>(() => Answer(prompts, task, new TeacherAnswerOptions { Sampling = Greedy }, cancellationToken: source.Token));
    }

    [Fact]
    public void The_cache_key_follows_what_changes_the_answers()
    {
        var template = Template();
        var prompts = Prompts(Texts);
        var task = new GenerativeTask(GenerativeTaskType.Math);
        var greedy = new TeacherAnswerOptions { Sampling = Greedy };
        var sampled = new TeacherAnswerOptions { Sampling = Greedy with { Temperature = 0.7, Seed = 1 }, SamplesPerPrompt = 2 };
        string Key(TeacherAnswerOptions options, IReadOnlyList<ChatRecord>? records = null, GenerativeTask? t = null, string teacher = "teacher-1") =>
            TeacherAnswers.Key(teacher, template, records ?? prompts, t ?? task, options);

        var key = Key(greedy);

        Assert.Equal(key, Key(greedy));
        // Only speed: batch size, cache. Greedy answers do not depend on the seed.
        Assert.Equal(key, Key(greedy with { Sampling = Greedy with { BatchSize = 7, UseCache = false, Seed = 99 } }));
        string[] others =
        [
            Key(greedy, teacher: "teacher-2"),
            Key(greedy, [.. prompts.Take(3)]),
            Key(greedy, [.. prompts.Select(p => p with { Line = p.Line + 1 })]),
            Key(greedy, t: new GenerativeTask(GenerativeTaskType.Math, AnswerPattern: @"(\d+)")),
            Key(greedy with { Sampling = Greedy with { MaxNewTokens = 41 } }),
            Key(greedy with { MaxLength = 60 }),
            Key(greedy with { KeepDuplicates = true }),
            Key(sampled),
            Key(sampled with { Sampling = sampled.Sampling! with { Seed = 2 } }),
            TeacherAnswers.Key("teacher-1", Template(Continue with { System = "{content}\n\n" }), prompts, task, greedy),
        ];
        Assert.Equal(others.Length + 1, others.Append(key).Distinct().Count());
    }

    /// <summary>A synchronous progress sink (Progress&lt;T&gt; posts to the thread pool, too late to assert on).</summary>
    private sealed class Recorder(Action<(int Done, int Total)>? then = null) : IProgress<(int Done, int Total)>
    {
        public List<(int Done, int Total)> Reports { get; } = [];

        public void Report((int Done, int Total) value)
        {
            Reports.Add(value);
            then?.Invoke(value);
        }
    }
}
