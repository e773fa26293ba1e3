using System.Text;
using ModelCompression.Core.Tests.Generation;
using ModelCompression.Core.Tests.Text;
using ModelCompression.Diagnostics;
using ModelCompression.Generation;
using ModelCompression.Teachers;
using ModelCompression.Text;
using ModelCompression.Torch.Training;
using TokenLogprob = ModelCompression.Teachers.TokenLogprob;

namespace ModelCompression.Core.Tests.Teachers;

/// <summary>
/// The parts of token-level distillation from an endpoint's top_logprobs: each tokenizer's token bytes, the probe's
/// verdict, an answer's alignment to the student's ids, a top-k row, the tokens file beside the answers, and the store a
/// distill stage trains on (answer positions from the teacher, every other trained position its label).
/// </summary>
public sealed class EndpointTokenAlignmentTests : IDisposable
{
    private static readonly GenerationTokenizer Byte = ChatTrainSupport.Bytes();

    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Token_bytes_spell_the_text_the_tokenizer_encodes()
    {
        var text = GenerationTokenizerTests.Fixed;
        var character = GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Character), [text]);
        var compact = GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Byte, Compact: true), [text]);
        foreach (var tokenizer in new[] { Byte, character, compact })
        {
            Assert.Equal(Encoding.UTF8.GetBytes(text), Spelled(tokenizer, text));
            Assert.Null(tokenizer.TokenBytes(tokenizer.EndOfTextId));
        }

        // Byte-level BPE: whole characters by their text; a token holding part of one cannot be told, so it has none.
        var ascii = "Hello world! Distillation makes small models: 3.14";
        foreach (var encoding in new[] { "cl100k_base", "o200k_base" })
        {
            var tiktoken = GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Tiktoken, encoding));
            Assert.Equal(Encoding.UTF8.GetBytes(ascii), Spelled(tiktoken, ascii));
            Assert.Null(tiktoken.TokenBytes(tiktoken.EndOfTextId));
        }

        var gpt2 = GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Gpt2));
        Assert.Contains(gpt2.Encode("😀"), id => gpt2.TokenBytes(id) is null);

        // SentencePiece: '▁' is a space (decoding one piece alone would drop it).
        var sentencePiece = GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.SentencePiece, ChatFixtures.File("spm.model")));
        var spelled = Encoding.UTF8.GetString(Spelled(sentencePiece, "Hello world"));
        Assert.Equal("Hello world", spelled.TrimStart(' '));
        Assert.Contains(' ', spelled);
    }

    [Fact]
    public void The_probe_passes_tokens_that_are_the_students_and_names_the_first_that_are_not()
    {
        var alignment = new EndpointTokenAlignment(Byte);

        Assert.Null(alignment.Mismatch(Choice("cba", Tokens("c", "b", "a"))));
        Assert.Null(alignment.Mismatch(Choice("", [])));
        var merged = alignment.Mismatch(Choice("xcba", Tokens("x", "cb", "a")));
        Assert.Contains("from token 2", merged, StringComparison.Ordinal);
        Assert.Contains("[cb|a]", merged, StringComparison.Ordinal);
        Assert.Contains("[c|b|a]", merged, StringComparison.Ordinal);
        Assert.Contains("no log-probabilities", alignment.Mismatch(Choice("cba", null)), StringComparison.Ordinal);
    }

    [Fact]
    public void An_answer_aligns_on_token_boundaries_as_the_student_encodes_it()
    {
        var alignment = new EndpointTokenAlignment(Byte);

        // Trimmed of the reply's white space: the tokens of the kept text.
        var padded = Tokens(" ", "c", "b", "a", "\n");
        var answer = alignment.Align(padded, "cba");
        Assert.NotNull(answer);
        Assert.Equal([(int)'c', 'b', 'a'], answer.Ids);
        Assert.Same(padded[1], answer.Tokens[0]);
        Assert.Same(padded[3], answer.Tokens[2]);

        // A chain-of-thought reply: the answer inside the JSON.
        Assert.Equal([(int)'4', '2'], alignment.Align(Tokens([.. "{\"reason\": \"x\", \"answer\": \"42\"}".Select(c => c.ToString())]), "42")!.Ids);

        // Not on a boundary, split otherwise than the student would, or not there at all.
        Assert.Null(alignment.Align(Tokens(" c", "b", "a"), "cba"));
        Assert.Null(alignment.Align(Tokens("cb", "a"), "cba"));
        Assert.Null(alignment.Align(Tokens("c", "b"), "cba"));
    }

    [Fact]
    public void A_row_holds_the_chosen_token_and_the_alternatives_the_student_has()
    {
        var token = new TokenLogprob("a", -0.1, [(byte)'a'], [Alternative("a", -0.1), Alternative("b", -2.5), Alternative("é", -2.9), Alternative("c", -3), Alternative(GenerationTokenizer.EndOfText, -3.5)]);
        var (ids, values) = (new int[6], new float[6]);

        var unmapped = new EndpointTokenAlignment(Byte).FillRow(token, 'a', ids, values);

        // The byte tokenizer has no single token for é's two bytes: left out and counted. The end of text is its special id.
        Assert.Equal(1, unmapped);
        Assert.Equal([(int)'a', 'b', 'c', 256, 'a', 'a'], ids);
        Assert.Equal([-0.1f, -2.5f, -3f, -3.5f, float.NegativeInfinity, float.NegativeInfinity], values);

        // A character tokenizer that has é maps it by its bytes.
        var characters = GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Character), ["abcé"]);
        var a = characters.Encode("a")[0];
        Assert.Equal(0, new EndpointTokenAlignment(characters).FillRow(token, a, ids, values));
        Assert.Equal([a, characters.Encode("b")[0], characters.Encode("é")[0], characters.Encode("c")[0], characters.EndOfTextId, a], ids);
    }

    [Fact]
    public void The_tokens_file_reads_back_for_its_answer_file_only()
    {
        var answers = _dir.File("teacher-answers.jsonl");
        File.WriteAllText(answers, "{\"messages\": []}\n");
        var turns = new List<IReadOnlyList<EndpointTurn>> { new[] { new EndpointTurn("k", " cba", null, null, "stop", Tokens(" c", "b", "a"), 1) } };
        var path = _dir.File(EndpointAnswerTokens.FileName);

        EndpointAnswerTokens.Write(path, answers, turns);

        var read = EndpointAnswerTokens.Read(path, answers, 1).Single().Single();
        Assert.Equal(1, read.Message);
        Assert.Equal([" c", "b", "a"], read.Tokens.Select(t => t.Token));
        Assert.Equal(turns[0][0].Logprobs![1].Top.Select(t => (t.Token, t.Logprob)), read.Tokens[1].Top.Select(t => (t.Token, t.Logprob)));
        File.AppendAllText(answers, "{\"messages\": []}\n");
        var error = Assert.Throws<CompressionException>(() => EndpointAnswerTokens.Read(path, answers, 2));
        Assert.Equal(DiagnosticCodes.TeacherAnswersFileInvalid, error.Diagnostics[0].Code);
        Assert.Equal((path, 1), (error.Diagnostics[0].File, error.Diagnostics[0].Line));
    }

    [Fact]
    public void The_store_has_the_teachers_distributions_at_aligned_answer_tokens_and_the_labels_elsewhere()
    {
        var template = ChatTrainSupport.Template();
        var gold = ChatTrainSupport.Record("abc", "cba", 1);
        var aligned = ChatTrainSupport.Record("def", "fed", 1, "pool.jsonl");
        var split = ChatTrainSupport.Record("abd", "dba", 2, "pool.jsonl");
        var answers = new[] { aligned, split };
        var train = ChatTrainingSet.Render([gold], template).Concat(ChatTrainingSet.Render(answers, template, origin: "teacher"));
        var tokens = new IReadOnlyList<EndpointTurnTokens>[]
        {
            [new EndpointTurnTokens(1, Tokens("f", "e", "d"))],
            [new EndpointTurnTokens(1, Tokens("db", "a"))], // not the student's split: its row learns its labels
        };
        var path = _dir.File("teacher.tokens");

        var coverage = EndpointTeacherTokens.Write(train, answers, tokens, new EndpointTokenAlignment(Byte), path, k: 3);

        // Each row trains "xyz" and the end of text: 4 positions, 3 of them the aligned answer's.
        Assert.Equal(new EndpointTokenCoverage(2, 1, 12, 3, 0), coverage);
        using var store = TeacherTokenStore.Open(path);
        Assert.Equal((3, TeacherTokenForm.TopK, 3, 257), (store.Count, store.Form, store.K, store.Vocabulary));
        var rows = Enumerable.Range(0, 3).Select(row => Read(store, row)).ToList();
        Assert.Equal([Label('c'), Label('b'), Label('a'), Label(256)], rows[0]);
        Assert.Equal([Teacher('f', 'g', 'h'), Teacher('e', 'f', 'g'), Teacher('d', 'e', 'f'), Label(256)], rows[1]);
        Assert.Equal([Label('d'), Label('b'), Label('a'), Label(256)], rows[2]);
    }

    private static byte[] Spelled(GenerationTokenizer tokenizer, string text) =>
        [.. tokenizer.Encode(text).SelectMany(id => tokenizer.TokenBytes(id) ?? throw new InvalidOperationException($"id {id} has no bytes"))];

    private static EndpointChoice Choice(string text, IReadOnlyList<TokenLogprob>? tokens) => new(text, "stop", null, tokens);

    /// <summary>Tokens with made-up log-probabilities: -0.5, then two alternatives, the next two byte values.</summary>
    private static List<TokenLogprob> Tokens(params string[] texts) =>
        [.. texts.Select(t => new TokenLogprob(t, -0.5, Encoding.UTF8.GetBytes(t), [Alternative(t, -0.5), Alternative(Next(t, 1), -1.5), Alternative(Next(t, 2), -2.5)]))];

    private static string Next(string text, int by) => ((char)(text[0] + by)).ToString();

    private static TokenAlternative Alternative(string text, double logprob) => new(text, logprob, Encoding.UTF8.GetBytes(text));

    private static string Label(int id) => $"{id}:0 {id}:-inf {id}:-inf";

    private static string Teacher(int chosen, int second, int third) => $"{chosen}:-0.5 {second}:-1.5 {third}:-2.5";

    /// <summary>Each stored position as "id:logprob ..." (fp16's lowest as -inf).</summary>
    private static List<string> Read(TeacherTokenStore store, int row)
    {
        var count = store.TokensOf(row);
        var (values, ids) = (new Half[count * store.K], new int[count * store.K]);
        store.Read(row, values, ids);
        return [.. Enumerable.Range(0, count).Select(t => string.Join(" ", Enumerable.Range(0, store.K).Select(i =>
            $"{ids[(t * store.K) + i]}:{(values[(t * store.K) + i] == Half.MinValue ? "-inf" : ((float)values[(t * store.K) + i]).ToString(System.Globalization.CultureInfo.InvariantCulture))}")))];
    }
}
