using System.Text.Json;
using Google.Protobuf;
using ModelCompression.Data;
using ModelCompression.Diagnostics;

namespace ModelCompression.Core.Tests.Data;

public sealed class TokenizedTextTests : IDisposable
{
    private const string SpamSplit = """
        file: spam.jsonl
        split: { test: 0.2, seed: 7 }
        text: { tokenizer: cl100k_base, max_length: 64, compact_vocabulary: true }
        """;

    private readonly TempDir _dir = new();

    public TokenizedTextTests() => File.Copy(Fixtures.Text("spam.jsonl"), _dir.File("spam.jsonl"));

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Wordpiece_adds_cls_and_sep_truncates_and_pads_with_pad()
    {
        File.Copy(Fixtures.Text("bert-vocab.txt"), _dir.File("vocab.txt"));
        _dir.Write("train.jsonl", """
            {"text": "Click HERE to win free money!", "label": "spam"}
            {"text": "you are unable", "label": "ham"}
            {"text": "the offer", "label": "spam"}
            {"text": "winning moneys zebra", "label": "spam"}
            """);

        using var data = DataRecipe.Load(_dir, "train: train.jsonl\ntest: train.jsonl\ntext: { tokenizer: { wordpiece: vocab.txt }, max_length: 6 }");

        // [CLS]=2 [SEP]=3 [PAD]=0 [UNK]=1; "winning" -> win ##ning, "moneys" -> money ##s.
        Assert.Equal(
            [2L, 11, 12, 18, 13, 3, 2, 23, 24, 16, 17, 3, 2, 5, 8, 3, 0, 0, 2, 13, 14, 7, 15, 3],
            DataRecipe.Longs(data.Train.Tensor("input_ids")!));
        Assert.Equal(
            [1L, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1],
            DataRecipe.Longs(data.Train.Tensor("attention_mask")!));
        Assert.Equal(["ham", "spam"], data.Description.LabelNames!);
        Assert.Equal(new TokenizerDescription("wordpiece", "vocab.txt", 6, 0, 25, null), data.Description.Tokenizer);
    }

    [Fact]
    public void Sentencepiece_models_encode_with_their_beginning_token_and_pad_id()
    {
        File.WriteAllBytes(_dir.File("tiny.model"), SentencePieceModel());
        _dir.Write("train.jsonl", "{\"text\": \"hello world\", \"label\": 1}\n{\"text\": \"hello xyz\", \"label\": 0}\n");

        using var data = DataRecipe.Load(_dir, "train: train.jsonl\ntest: train.jsonl\ntext: { tokenizer: { sentencepiece: tiny.model }, max_length: 5, mask: false }");

        // <s>=1 ▁hello=16 ▁world=21 ▁=4 <unk>=0, padded with <pad>=3; no mask tensor was asked for.
        Assert.Equal(["input_ids"], data.Train.Tensors.Select(t => t.Name));
        Assert.Equal([1L, 16, 21, 3, 3, 1, 16, 4, 0, 0], DataRecipe.Longs(data.Train.Tensors[0]));
        Assert.Equal([1L, 0], data.Train.Labels!);
        Assert.Null(data.Description.LabelNames);
    }

    [Fact]
    public void Spam_mails_tokenize_with_cl100k_into_a_compact_vocabulary_built_from_the_training_split()
    {
        using var data = DataRecipe.Load(_dir, SpamSplit);

        Assert.Equal((240, 60), (data.Train.Count, data.Test.Count));
        Assert.Equal(["ham", "spam"], data.Description.LabelNames!);
        var tokenizer = data.Description.Tokenizer!;
        var vocabulary = tokenizer.CompactVocabulary!;
        Assert.Equal(("tiktoken", "cl100k_base", 64, 0), (tokenizer.Kind, tokenizer.Source, tokenizer.MaxLength, tokenizer.PadId));
        Assert.Equal(vocabulary.Size, tokenizer.VocabularySize);
        Assert.InRange(vocabulary.Size, 500, 15_000); // far below cl100k's 100,277 ids

        var trainIds = DataRecipe.Longs(data.Train.Tensor("input_ids")!);
        var trainMask = DataRecipe.Longs(data.Train.Tensor("attention_mask")!);
        Assert.Equal([64L], data.Train.Tensor("input_ids")!.SampleShape);
        Assert.All(trainIds.Zip(trainMask), p => Assert.True(p.Second == 1 ? p.First >= 2 : p.First == 0, $"id {p.First} with mask {p.Second}"));
        Assert.All(trainIds, id => Assert.InRange(id, 0, vocabulary.Size - 1));
        Assert.Contains(trainMask.Chunk(64), row => row.Sum() == 64); // long mails are truncated
        Assert.Contains(trainMask.Chunk(64), row => row.Sum() < 64); // short ones padded

        // Held-out mails meet tokens the training text never had: they become 'unknown' (1), never a new id.
        var testIds = DataRecipe.Longs(data.Test.Tensor("input_ids")!);
        Assert.Contains(1L, testIds);
        Assert.All(testIds, id => Assert.InRange(id, 0, vocabulary.Size - 1));

        // The compact ids map back to exactly what cl100k makes of the mail's text.
        var cl100k = TextTokenizer.Create(new TokenizerSpec(TokenizerKind.Tiktoken, "cl100k_base"));
        foreach (var row in new[] { 0, 117, 239 })
        {
            var text = MailText(data.Train.Locate(row));
            var expected = cl100k.Encode(text, 64);
            var ids = trainIds.AsSpan(row * 64, expected.Count).ToArray();
            Assert.Equal(expected, ids.Select(id => vocabulary.TokenizerIds[(int)id - 2]));
            Assert.Equal(expected.Count, trainMask.AsSpan(row * 64, 64).ToArray().Sum());
        }
    }

    [Fact]
    public void The_same_recipe_gives_the_same_ids_and_vocabulary_and_writes_them_into_the_contract()
    {
        using var first = DataRecipe.Load(_dir, SpamSplit);
        using var second = DataRecipe.Load(_dir, SpamSplit);

        Assert.Equal(DataRecipe.Longs(first.Train.Tensors[0]), DataRecipe.Longs(second.Train.Tensors[0]));
        Assert.Equal(DataRecipe.Longs(first.Test.Tensors[0]), DataRecipe.Longs(second.Test.Tensors[0]));
        Assert.Equal(first.Description.Tokenizer!.CompactVocabulary!.TokenizerIds, second.Description.Tokenizer!.CompactVocabulary!.TokenizerIds);

        var path = _dir.File("student.data.json");
        first.Description.Write(path, first.Train);
        using var json = JsonDocument.Parse(File.ReadAllText(path));
        var tokenizer = json.RootElement.GetProperty("tokenizer");
        Assert.Equal("cl100k_base", tokenizer.GetProperty("source").GetString());
        Assert.Equal(first.Description.Tokenizer.CompactVocabulary.TokenizerIds, tokenizer.GetProperty("compact_vocabulary").GetProperty("tokenizer_ids").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal(["ham", "spam"], json.RootElement.GetProperty("label_names").EnumerateArray().Select(e => e.GetString()!));
        Assert.Equal(["input_ids", "attention_mask"], json.RootElement.GetProperty("tensors").EnumerateArray().Select(e => e.GetProperty("name").GetString()!));
    }

    [Fact]
    public void Without_a_compact_vocabulary_ids_are_the_tokenizers_and_padding_is_endoftext()
    {
        using var data = DataRecipe.Load(_dir, SpamSplit.Replace("compact_vocabulary: true", "compact_vocabulary: false", StringComparison.Ordinal));

        var tokenizer = data.Description.Tokenizer!;
        Assert.Null(tokenizer.CompactVocabulary);
        Assert.Equal((100_257, 100_277), (tokenizer.PadId, tokenizer.VocabularySize));
        var ids = DataRecipe.Longs(data.Train.Tensors[0]);
        var mask = DataRecipe.Longs(data.Train.Tensors[1]);
        Assert.All(ids.Zip(mask).Where(p => p.Second == 0), p => Assert.Equal(100_257, p.First));
        Assert.Contains(ids, id => id > 50_000); // real cl100k ids, not compact ones
    }

    [Fact]
    public void O200k_is_served_too_and_differs_from_cl100k()
    {
        var o200k = TextTokenizer.Create(new TokenizerSpec(TokenizerKind.Tiktoken, "o200k_base"));
        var cl100k = TextTokenizer.Create(new TokenizerSpec(TokenizerKind.Tiktoken, "cl100k_base"));

        Assert.Equal(200_019, o200k.VocabularySize);
        Assert.Equal(199_999, o200k.PadId);
        Assert.NotEqual(cl100k.Encode("Tokenization of unusual words", 16), o200k.Encode("Tokenization of unusual words", 16));
        Assert.Equal(3, o200k.Encode("hello world, hello world", 3).Count);
    }

    [Fact]
    public void Tokenizer_mistakes_are_reported_with_code_and_line()
    {
        _dir.Write("junk.model", "this is not a sentencepiece model");
        File.Copy(Fixtures.Text("bert-vocab.txt"), _dir.File("vocab.txt"));

        var unknown = Assert.Throws<CompressionException>(() => DataRecipe.Spec(_dir, "file: spam.jsonl\nsplit: { test: 0.2 }\ntext: { tokenizer: gpt5_base }"));
        var missing = Assert.Throws<CompressionException>(() => DataRecipe.Spec(_dir, "file: spam.jsonl\nsplit: { test: 0.2 }\ntext: { tokenizer: { wordpiece: nowhere.txt } }"));
        var shortBert = Assert.Throws<CompressionException>(() => DataRecipe.Spec(_dir, "file: spam.jsonl\nsplit: { test: 0.2 }\ntext: { tokenizer: { wordpiece: vocab.txt }, max_length: 2 }"));
        var noText = Assert.Throws<CompressionException>(() => DataRecipe.Spec(_dir, "file: spam.jsonl\nsplit: { test: 0.2 }"));
        var junk = Assert.Throws<CompressionException>(() => DataRecipe.Load(_dir, "file: spam.jsonl\nsplit: { test: 0.2 }\ntext: { tokenizer: { sentencepiece: junk.model } }"));

        Assert.Equal((DiagnosticCodes.RecipeInvalidValue, 4), (unknown.Code, unknown.Diagnostics[0].Line));
        Assert.Contains("gpt5_base", unknown.Message, StringComparison.Ordinal);
        Assert.Equal((DiagnosticCodes.RecipeFileNotFound, 4), (missing.Code, missing.Diagnostics[0].Line));
        Assert.Equal((DiagnosticCodes.RecipeInvalidValue, 4), (shortBert.Code, shortBert.Diagnostics[0].Line));
        Assert.Contains("max_length", shortBert.Message, StringComparison.Ordinal);
        Assert.Equal((DiagnosticCodes.RecipeMissingKey, 2), (noText.Code, noText.Diagnostics[0].Line)); // the data mapping starts on line 2
        Assert.Equal((DiagnosticCodes.TokenizerUnavailable, _dir.File("junk.model")), (junk.Code, junk.Diagnostics[0].File));
    }

    /// <summary>The text of the mail at "file:line".</summary>
    private static string MailText(string location)
    {
        var colon = location.LastIndexOf(':');
        var line = File.ReadLines(location[..colon]).ElementAt(int.Parse(location[(colon + 1)..], System.Globalization.CultureInfo.InvariantCulture) - 1);
        using var json = JsonDocument.Parse(line);
        return json.RootElement.GetProperty("text").GetString()!;
    }

    /// <summary>
    /// A tiny SentencePiece BPE model (sentencepiece_model.proto): pieces &lt;unk&gt; 0, &lt;s&gt; 1, &lt;/s&gt; 2,
    /// &lt;pad&gt; 3, ▁ 4, letters, then merges whose scores order them, ending in ▁hello 16 and ▁world 21.
    /// </summary>
    private static byte[] SentencePieceModel()
    {
        (string Piece, float Score, int Type)[] pieces =
        [
            ("<unk>", 0, 2), ("<s>", 0, 3), ("</s>", 0, 3), ("<pad>", 0, 3), ("\u2581", -1, 1), ("h", -2, 1), ("e", -2, 1), ("l", -2, 1),
            ("o", -2, 1), ("w", -2, 1), ("r", -2, 1), ("d", -2, 1), ("ll", -3, 1), ("he", -4, 1), ("hell", -5, 1), ("hello", -6, 1),
            ("\u2581hello", -7, 1), ("or", -8, 1), ("\u2581w", -9, 1), ("\u2581wor", -10, 1), ("\u2581worl", -11, 1), ("\u2581world", -12, 1),
        ];
        var model = new MemoryStream();
        var output = new CodedOutputStream(model);
        void Message(int field, Action<CodedOutputStream> write)
        {
            var inner = new MemoryStream();
            var innerOutput = new CodedOutputStream(inner);
            write(innerOutput);
            innerOutput.Flush();
            output.WriteTag(field, WireFormat.WireType.LengthDelimited);
            output.WriteBytes(ByteString.CopyFrom(inner.ToArray()));
        }

        void Varint(CodedOutputStream o, int field, int value)
        {
            o.WriteTag(field, WireFormat.WireType.Varint);
            o.WriteInt32(value);
        }

        foreach (var (piece, score, type) in pieces)
        {
            Message(1, o =>
            {
                o.WriteTag(1, WireFormat.WireType.LengthDelimited);
                o.WriteString(piece);
                o.WriteTag(2, WireFormat.WireType.Fixed32);
                o.WriteFloat(score);
                Varint(o, 3, type);
            });
        }

        // Trainer spec: BPE (2), vocabulary size, unk 0, bos 1, eos 2, pad 3.
        Message(2, o =>
        {
            Varint(o, 3, 2);
            Varint(o, 4, pieces.Length);
            Varint(o, 40, 0);
            Varint(o, 41, 1);
            Varint(o, 42, 2);
            Varint(o, 43, 3);
        });

        // Normalizer spec: identity, add a dummy prefix, collapse and escape whitespace.
        Message(3, o =>
        {
            o.WriteTag(1, WireFormat.WireType.LengthDelimited);
            o.WriteString("identity");
            Varint(o, 3, 1);
            Varint(o, 4, 1);
            Varint(o, 5, 1);
        });
        output.Flush();
        return model.ToArray();
    }
}
