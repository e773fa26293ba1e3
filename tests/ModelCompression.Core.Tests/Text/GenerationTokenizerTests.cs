using System.Text;
using System.Text.Json;
using ModelCompression.Diagnostics;
using ModelCompression.Text;

namespace ModelCompression.Core.Tests.Text;

public sealed class GenerationTokenizerTests : IDisposable
{
    /// <summary>Ids of this text by js-tiktoken 1.0.21 (npm; OpenAI's ranks, independent of Microsoft.ML.Tokenizers): <c>getEncoding(name).encode(Fixed)</c>.</summary>
    internal const string Fixed = "Hello world! Distillation makes small models: 3.14 ünïcödé 日本語 😀";

    private static readonly string[] Markers = ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"];

    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    public static TheoryData<GenerationTokenizerKind, string?, int[]> LibraryIds => new()
    {
        // js-tiktoken 1.0.21, getEncoding("gpt2") and getEncoding("r50k_base") (the same ranks).
        { GenerationTokenizerKind.Gpt2, null, [15496, 995, 0, 4307, 40903, 1838, 1402, 4981, 25, 513, 13, 1415, 6184, 120, 77, 26884, 66, 9101, 67, 2634, 10545, 245, 98, 17312, 105, 45739, 252, 30325, 222] },
        { GenerationTokenizerKind.Tiktoken, "r50k_base", [15496, 995, 0, 4307, 40903, 1838, 1402, 4981, 25, 513, 13, 1415, 6184, 120, 77, 26884, 66, 9101, 67, 2634, 10545, 245, 98, 17312, 105, 45739, 252, 30325, 222] },
        // js-tiktoken 1.0.21, getEncoding("cl100k_base").
        { GenerationTokenizerKind.Tiktoken, "cl100k_base", [9906, 1917, 0, 28704, 67184, 3727, 2678, 4211, 25, 220, 18, 13, 975, 10709, 77, 38672, 66, 3029, 67, 978, 76502, 22656, 45918, 252, 91416] },
        // js-tiktoken 1.0.21, getEncoding("o200k_base").
        { GenerationTokenizerKind.Tiktoken, "o200k_base", [13225, 2375, 0, 35375, 98447, 4787, 3291, 7015, 25, 220, 18, 13, 1265, 86582, 191375, 43369, 377, 17428, 40909, 88038] },
    };

    [Theory]
    [MemberData(nameof(LibraryIds))]
    public void Gpt2_and_tiktoken_encode_as_OpenAIs_ranks_do_and_decode_back(GenerationTokenizerKind kind, string? encoding, int[] expected)
    {
        var tokenizer = GenerationTokenizer.Create(new GenerationTokenizerOptions(kind, encoding));

        Assert.Equal(expected, tokenizer.Encode(Fixed));
        Assert.Equal(Fixed, tokenizer.Decode(expected));
        Assert.Equal(tokenizer.EndOfTextId, tokenizer.SpecialTokens[GenerationTokenizer.EndOfText]);
        Assert.Equal(tokenizer.EndOfTextId, tokenizer.PadId);
    }

    public static TheoryData<GenerationTokenizerKind, string?, int[]> OrdinaryIds => new()
    {
        // js-tiktoken 1.0.21: getEncoding(name).encode(text, [], []), i.e. no special token allowed or disallowed (ordinary text).
        { GenerationTokenizerKind.Gpt2, null, [16706, 1279, 91, 437, 1659, 5239, 91, 29, 393, 1279, 91, 437, 91, 29, 0] },
        { GenerationTokenizerKind.Tiktoken, "cl100k_base", [37890, 83739, 8862, 728, 428, 91, 29, 477, 83739, 408, 91, 29, 0] },
        { GenerationTokenizerKind.Tiktoken, "o200k_base", [64494, 464, 91, 419, 1440, 919, 91, 29, 503, 464, 91, 419, 91, 29, 0] },
    };

    [Theory]
    [MemberData(nameof(OrdinaryIds))]
    public void Text_that_spells_a_special_token_is_encoded_as_ordinary_text(GenerationTokenizerKind kind, string? encoding, int[] expected)
    {
        const string text = "say <|endoftext|> or <|end|>!";
        var tokenizer = GenerationTokenizer.Create(new GenerationTokenizerOptions(kind, encoding, ["<|end|>"]));

        Assert.Equal(expected, tokenizer.Encode(text));
        Assert.Equal(text, tokenizer.Decode(expected));
    }

    [Fact]
    public void SentencePiece_keeps_specials_out_of_text_even_the_models_user_defined_pieces()
    {
        var tokenizer = GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.SentencePiece, ChatFixtures.File("spm.model"), ["<|end|>", "<|tool|>"]));

        // <|end|> is a user-defined piece of the model (7); <|tool|> was added here (120). Neither comes from text.
        // (SentencePiece itself, python3-sentencepiece 0.1.97, matches user-defined pieces in text: 'a <|end|> b' is
        // [9, 75, 7, 26] there; Microsoft.ML.Tokenizers 3.0 does not, and for content that is what we want.)
        Assert.Equal(120, tokenizer.SpecialTokens["<|tool|>"]);
        Assert.DoesNotContain(120, tokenizer.Encode("a <|tool|> b"));
        Assert.DoesNotContain(7, tokenizer.Encode("a <|end|> b"));
        Assert.Equal([9, 75], tokenizer.Encode("a <|end|> b").Take(2));
        Assert.Equal("<|tool|>", tokenizer.Decode([120], includeSpecials: true));
    }

    [Fact]
    public void Vocabulary_sizes_and_end_of_text_ids_are_the_encodings()
    {
        // GPT-2 and r50k_base: 50,000 merges + 256 bytes + <|endoftext|> = 50,257 ids.
        Assert.Equal((50_257, 50_256), Describe(GenerationTokenizerKind.Gpt2, null));
        Assert.Equal((50_257, 50_256), Describe(GenerationTokenizerKind.Tiktoken, "r50k_base"));
        Assert.Equal((100_277, 100_257), Describe(GenerationTokenizerKind.Tiktoken, "cl100k_base"));
        Assert.Equal((200_019, 199_999), Describe(GenerationTokenizerKind.Tiktoken, "o200k_base"));

        static (int, int) Describe(GenerationTokenizerKind kind, string? encoding)
        {
            var tokenizer = GenerationTokenizer.Create(new GenerationTokenizerOptions(kind, encoding));
            return (tokenizer.VocabularySize, tokenizer.EndOfTextId);
        }
    }

    [Fact]
    public void Chat_markers_become_special_ids_after_the_vocabulary()
    {
        var gpt2 = GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Gpt2, Specials: Markers));
        var cl100k = GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Tiktoken, "cl100k_base", Markers));

        Assert.Equal([50_257, 50_258, 50_259, 50_260], Markers.Select(m => gpt2.SpecialTokens[m]));
        Assert.Equal(50_261, gpt2.VocabularySize);
        Assert.Equal([100_277, 100_278, 100_279, 100_280], Markers.Select(m => cl100k.SpecialTokens[m]));
        Assert.Equal("<|user|>", gpt2.Decode([50_258], includeSpecials: true));
        Assert.Equal("", gpt2.Decode([50_258]));
        Assert.Equal(GenerationTokenizerKind.Gpt2.ToString(), gpt2.Kind.ToString());
    }

    [Fact]
    public void SentencePiece_encodes_as_SentencePiece_itself_does_and_keeps_marker_pieces()
    {
        using var expected = JsonDocument.Parse(File.ReadAllText(ChatFixtures.File("spm.expected.json")));
        var root = expected.RootElement;
        var tokenizer = GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.SentencePiece, ChatFixtures.File("spm.model"), Markers));

        var ids = root.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.Equal(ids, tokenizer.Encode(root.GetProperty("text").GetString()!));
        Assert.Equal(root.GetProperty("decoded").GetString(), tokenizer.Decode(ids));
        Assert.Equal(root.GetProperty("vocabulary_size").GetInt32(), tokenizer.VocabularySize);
        Assert.Equal(root.GetProperty("eos").GetInt32(), tokenizer.EndOfTextId);
        Assert.Equal(root.GetProperty("pad").GetInt32(), tokenizer.PadId);
        foreach (var marker in root.GetProperty("markers").EnumerateObject())
        {
            Assert.Equal(marker.Value.GetInt32(), tokenizer.SpecialTokens[marker.Name]);
        }
    }

    [Fact]
    public void Byte_vocabulary_is_utf8_bytes_then_end_of_text_then_markers()
    {
        var tokenizer = GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Byte, Specials: Markers));

        // é is C3 A9, 日 is E6 97 A5, 😀 is F0 9F 98 80 (UTF-8, RFC 3629).
        Assert.Equal([0x61, 0xC3, 0xA9, 0x20, 0xE6, 0x97, 0xA5, 0xF0, 0x9F, 0x98, 0x80], tokenizer.Encode("aé 日😀"));
        Assert.Equal("aé 日😀", tokenizer.Decode([0x61, 0xC3, 0xA9, 0x20, 0xE6, 0x97, 0xA5, 0xF0, 0x9F, 0x98, 0x80]));
        Assert.Equal((256, 256, 261), (tokenizer.EndOfTextId, tokenizer.PadId, tokenizer.VocabularySize));
        Assert.Equal([257, 258, 259, 260], Markers.Select(m => tokenizer.SpecialTokens[m]));

        // A marker's text inside content is text, never the marker: user text cannot fake a turn.
        Assert.Equal(Encoding.UTF8.GetBytes("<|end|>").Select(b => (int)b), tokenizer.Encode("<|end|>"));
        Assert.Equal("a<|end|>b", tokenizer.Decode([0x61, 260, 0x62], includeSpecials: true));
        Assert.Equal("ab", tokenizer.Decode([0x61, 260, 0x62]));

        // A cut character decodes as U+FFFD; the incremental decoder holds it back instead.
        Assert.Equal("a\uFFFD", tokenizer.Decode([0x61, 0xE6, 0x97]));
        Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.Decode([261]));
    }

    [Fact]
    public void Character_vocabulary_is_sorted_code_points_after_the_specials_with_an_unknown_id()
    {
        var tokenizer = GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Character, Specials: ["<|end|>"]), ["cab", "b😀a\n"]);

        // 0 <|endoftext|>, 1 <|unk|>, 2 <|end|>, then \n (10), a, b, c, 😀 (U+1F600, one id though two UTF-16 units).
        Assert.Equal(8, tokenizer.VocabularySize);
        Assert.Equal([4, 5, 6, 7, 3, 1], tokenizer.Encode("abc😀\nz"));
        Assert.Equal("abc😀\n\uFFFD", tokenizer.Decode([4, 5, 6, 7, 3, 1]));
        Assert.Equal("<|endoftext|>a<|unk|><|end|>", tokenizer.Decode([0, 4, 1, 2], includeSpecials: true));
        Assert.Equal((0, 0, 2), (tokenizer.EndOfTextId, tokenizer.PadId, tokenizer.SpecialTokens["<|end|>"]));
        Assert.Equal([4, 1, 1, 1, 1, 1, 1, 1], tokenizer.Encode("a<|end|>"));
    }

    [Fact]
    public void Compact_vocabulary_keeps_the_datas_ids_and_specials_and_decodes_through_the_map()
    {
        string[] texts = ["hello world", "hello there"];
        var full = GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Gpt2, Specials: ["<|end|>"]));
        var compact = GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Gpt2, Specials: ["<|end|>"], Compact: true), texts);

        // GPT-2 ids (js-tiktoken): hello 31373, " world" 995, " there" 612; <|endoftext|> 50256, <|end|> 50257.
        Assert.Equal([31373, 995], full.Encode("hello world"));
        Assert.Equal([612, 995, 31373, 50256, 50257], compact.CompactVocabulary!.TokenizerIds);
        Assert.Equal(7, compact.VocabularySize);
        Assert.Equal([4, 3, 2], compact.Encode("hello world there"));
        Assert.Equal((5, 0, 6), (compact.EndOfTextId, compact.PadId, compact.SpecialTokens["<|end|>"]));
        Assert.Equal("hello world there", compact.Decode([4, 3, 2]));

        // An id the data never had is 'unknown' (1) and decodes as U+FFFD.
        Assert.Equal([4, 1], compact.Encode("hello moon"));
        Assert.Equal("hello\uFFFD", compact.Decode([4, 1, 0]));
    }

    [Fact]
    public void Incremental_decoding_returns_whole_characters_that_join_to_the_full_decode()
    {
        var bytes = GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Byte));
        var decoder = bytes.StartDecoding();
        var pieces = bytes.Encode("aé日😀").Select(decoder.Push).ToList();

        // Bytes of é (2), 日 (3), 😀 (4): nothing until the last byte of each character.
        Assert.Equal(["a", "", "é", "", "", "日", "", "", "", "😀"], pieces);
        Assert.Equal("aé日😀", decoder.Text);

        // A cut character is held back until the text is over.
        var cut = bytes.StartDecoding();
        Assert.Equal("", cut.Push(0xE6));
        Assert.Equal("", cut.Push(0x97));
        Assert.Equal("\uFFFD", cut.Flush());

        // Byte-level BPE splits characters across tokens too: 日本語 is 4 GPT-2 tokens, 😀 two.
        var gpt2 = GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Gpt2));
        var streamed = gpt2.StartDecoding();
        var text = string.Concat(gpt2.Encode(Fixed).Select(streamed.Push)) + streamed.Flush();
        Assert.Equal(Fixed, text);
        Assert.DoesNotContain('\uFFFD', text);

        // SentencePiece drops the space of a text's first piece; streamed pieces keep the spaces between words.
        var sentencePiece = GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.SentencePiece, ChatFixtures.File("spm.model")));
        var spStream = sentencePiece.StartDecoding();
        var ids = sentencePiece.Encode("Hello world! The student model");
        Assert.Equal("Hello world! The student model", string.Concat(ids.Select(spStream.Push)) + spStream.Flush());
    }

    public static TheoryData<string> Kinds => new() { "byte", "character", "gpt2", "r50k_base", "cl100k_base", "o200k_base", "sentencepiece", "compact-gpt2", "compact-character", "compact-sentencepiece" };

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Every_kind_saves_as_json_and_loads_back_identically(string kind)
    {
        string[] texts = ["Hello world! The student model learns.", "日本語 ünïcödé 😀"];
        var compact = kind.StartsWith("compact-", StringComparison.Ordinal);
        var name = compact ? kind["compact-".Length..] : kind;
        var options = name switch
        {
            "byte" => new GenerationTokenizerOptions(GenerationTokenizerKind.Byte),
            "character" => new GenerationTokenizerOptions(GenerationTokenizerKind.Character),
            "gpt2" => new GenerationTokenizerOptions(GenerationTokenizerKind.Gpt2),
            "sentencepiece" => new GenerationTokenizerOptions(GenerationTokenizerKind.SentencePiece, ChatFixtures.File("spm.model")),
            _ => new GenerationTokenizerOptions(GenerationTokenizerKind.Tiktoken, name),
        };
        var tokenizer = GenerationTokenizer.Create(options with { Specials = Markers, Compact = compact }, texts);
        var model = _dir.Dir("model");
        var path = Path.Join(model, GenerationTokenizer.DefaultFileName);

        tokenizer.Save(path);
        var loaded = GenerationTokenizer.Load(path);

        Assert.Equal(tokenizer.Kind, loaded.Kind);
        Assert.Equal((tokenizer.VocabularySize, tokenizer.EndOfTextId, tokenizer.PadId), (loaded.VocabularySize, loaded.EndOfTextId, loaded.PadId));
        Assert.Equal(tokenizer.SpecialTokens.OrderBy(s => s.Value), loaded.SpecialTokens.OrderBy(s => s.Value));
        Assert.Equal(tokenizer.CompactVocabulary?.TokenizerIds, loaded.CompactVocabulary?.TokenizerIds);
        foreach (var text in texts.Append("unseen: xyzzy"))
        {
            Assert.Equal(tokenizer.Encode(text), loaded.Encode(text));
            Assert.Equal(tokenizer.Decode(tokenizer.Encode(text)), loaded.Decode(loaded.Encode(text)));
        }

        using var json = JsonDocument.Parse(File.ReadAllText(path));
        Assert.Equal(name == "r50k_base" || name.EndsWith("_base", StringComparison.Ordinal) ? "tiktoken" : name, json.RootElement.GetProperty("kind").GetString());
        if (name == "sentencepiece")
        {
            // The model travels with the description: loading from the model folder alone works.
            Assert.Equal("spm.model", json.RootElement.GetProperty("model").GetString());
            Assert.True(File.Exists(Path.Join(model, "spm.model")));
        }
    }

    [Fact]
    public void Bad_descriptions_and_sources_are_MC2024_naming_the_file()
    {
        var notJson = _dir.Write("a.json", "{ nope");
        var unknownKind = _dir.Write("b.json", """{ "format": "modelcompression-tokenizer", "version": 1, "kind": "wordpiece", "extra_specials": [], "specials": {} }""");
        var missingModel = _dir.Write("c.json", """{ "format": "modelcompression-tokenizer", "version": 1, "kind": "sentencepiece", "model": "gone.model", "extra_specials": [], "specials": {} }""");
        var bytes = GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Byte, Specials: ["<|end|>"]));
        var renumbered = _dir.File("d.json");
        bytes.Save(renumbered);
        File.WriteAllText(renumbered, File.ReadAllText(renumbered).Replace("\"<|end|>\": 257", "\"<|end|>\": 300", StringComparison.Ordinal));

        foreach (var path in new[] { notJson, unknownKind, renumbered })
        {
            var error = Assert.Throws<CompressionException>(() => GenerationTokenizer.Load(path));
            Assert.Equal((DiagnosticCodes.TokenizerUnavailable, path), (error.Code, error.Diagnostics[0].File));
        }

        var missing = Assert.Throws<CompressionException>(() => GenerationTokenizer.Load(missingModel));
        Assert.Equal(DiagnosticCodes.TokenizerUnavailable, missing.Code);
        Assert.Contains("gone.model", missing.Message, StringComparison.Ordinal);

        var encoding = Assert.Throws<CompressionException>(() => GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Tiktoken, "p50k_base")));
        Assert.Equal(DiagnosticCodes.TokenizerUnavailable, encoding.Code);
        Assert.Contains("r50k_base, cl100k_base, o200k_base", encoding.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Character)));
        Assert.Throws<ArgumentException>(() => GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Byte, Specials: ["<|endoftext|>"])));
    }
}

/// <summary>The committed chat fixtures (tests/fixtures/chat).</summary>
internal static class ChatFixtures
{
    public static string File(string name) => Path.Join(Repo.Root, "tests", "fixtures", "chat", name);
}
