using System.Text.Json.Nodes;
using ModelCompression.Architectures;
using ModelCompression.Diagnostics;
using ModelCompression.Generation;
using ModelCompression.Inference;
using ModelCompression.Onnx;
using ModelCompression.Text;
using GenAi = Microsoft.ML.OnnxRuntimeGenAI;

namespace ModelCompression.Core.Tests.Generation;

/// <summary>
/// A generative model folder written from the PyTorch fixture and from a built-in decoder: ONNX Runtime GenAI loads it
/// and generates the greedy tokens of the engine's generator; the app-side reader answers with the fixture's
/// continuations and honours generation.json; writing over a folder is all or nothing; models that cannot make a
/// folder are refused with a code.
/// </summary>
public sealed class GenerativeModelFolderTests
{
    private static readonly GenerationOptions Greedy = new() { MaxNewTokens = 40, StopTokenIds = [DecoderFixture.Eos] };

    [Fact]
    public void GenAI_generates_the_engines_greedy_tokens_from_a_folder_written_from_the_fixture()
    {
        using var dir = new TempDir();
        var folder = dir.File("student");
        GenerativeModelFolder.Write(folder, DecoderFixture.Cached, ByteTokenizer(), chatTemplate: null, Greedy);

        var cases = DecoderFixture.Greedy;
        var ours = OurTokens(folder, [.. cases.Select(c => c.Prompt)], Greedy.MaxNewTokens);
        var genai = GenAiTokens(folder, [.. cases.Select(c => c.Prompt)], Greedy.MaxNewTokens);

        for (var i = 0; i < cases.Count; i++)
        {
            var pytorch = cases[i].Eos ? cases[i].Tokens[..^1] : cases[i].Tokens;
            Assert.Equal(pytorch, ours[i]);
            Assert.Equal(ours[i], genai[i]);
        }

        // GenAI's own tokenizer (the folder's tokenizer.json) encodes and decodes as the engine's does.
        using (var model = new GenAi.Model(folder))
        using (var genaiTokenizer = new GenAi.Tokenizer(model))
        using (var ourModel = GenerativeModel.Open(folder))
        {
            for (var i = 0; i < cases.Count; i++)
            {
                var text = DecoderFixture.Text(cases[i].Prompt);
                using var encoded = genaiTokenizer.Encode(text);
                Assert.Equal(cases[i].Prompt, encoded[0].ToArray());
                Assert.Equal(ourModel.Answer(text), genaiTokenizer.Decode(genai[i]));
            }

            using var accented = genaiTokenizer.Encode("é\n\t€");
            Assert.Equal(DecoderFixture.Bytes("é\n\t€"), accented[0].ToArray());
        }

        Assert.False(GenAiTokenizerFiles.CanWrite(GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Character), ["abc"])));
        Assert.False(GenAiTokenizerFiles.CanWrite(GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Byte, Compact: true), ["abc"])));

        var config = JsonNode.Parse(File.ReadAllText(Path.Join(folder, GenAiConfig.FileName)))!;
        Assert.Equal(64, (int)config["model"]!["context_length"]!);
        Assert.Equal(64, (int)config["model"]!["decoder"]!["hidden_size"]!);
        Assert.Equal("past_key_values.%d.key", (string?)config["model"]!["decoder"]!["inputs"]!["past_key_names"]);
    }

    [Theory]
    [InlineData(PositionEncoding.Learned)]
    [InlineData(PositionEncoding.Rope)]
    public void GenAI_generates_the_engines_greedy_tokens_from_a_built_in_decoder_folder(PositionEncoding positions)
    {
        using var dir = new TempDir();
        var template = new ChatTemplateOptions();
        var tokenizer = GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Byte, Specials: template.Markers));
        var options = new DecoderOptions { VocabSize = tokenizer.VocabularySize, MaxLength = 48, Width = 16, Heads = 2, Layers = 2, FeedForward = 24, Positions = positions, Dropout = 0, Seed = 5 };
        var modelPath = dir.File("decoder.onnx");
        OnnxModelFile.Save(DecoderBuilder.Build(options, new ArchitectureInputs([0], 1)), modelPath);
        var folder = dir.File("student");
        var defaults = Greedy with { MaxNewTokens = 12, StopTokenIds = [tokenizer.EndOfTextId] };
        // A rotary model has no position table to read its context from.
        GenerativeModelFolder.Write(folder, modelPath, tokenizer, template, defaults, positions == PositionEncoding.Rope ? 48 : null);

        using var model = GenerativeModel.Open(folder);
        IReadOnlyList<ChatMessage>[] conversations =
        [
            [new(ChatRole.User, "Hi")],
            [new(ChatRole.System, "Be brief."), new(ChatRole.User, "What is 2 + 3?")],
        ];
        var prompts = conversations.Select(model.PromptIds).ToArray();
        var expected = new ChatTemplate(template, tokenizer).RenderForGeneration(conversations[1], 47).Ids;
        Assert.Equal(expected, prompts[1]);

        var ours = OurTokens(folder, prompts, defaults.MaxNewTokens);
        Assert.Equal(ours, GenAiTokens(folder, prompts, defaults.MaxNewTokens));
        Assert.Equal(tokenizer.Decode(ours[1]), model.Answer(conversations[1]));
        Assert.Equal(48, model.Config.ContextLength);

        // GenAI's tokenizer turns the rendered text into the same ids: the markers are its special tokens.
        using var genaiModel = new GenAi.Model(folder);
        using var genaiTokenizer = new GenAi.Tokenizer(genaiModel);
        using var encoded = genaiTokenizer.Encode(new ChatTemplate(template, tokenizer).RenderText(conversations[1], generationPrompt: true));
        Assert.Equal(prompts[1], encoded[0].ToArray());
    }

    [Theory]
    [InlineData(GenerationTokenizerKind.Gpt2, null)]
    [InlineData(GenerationTokenizerKind.Tiktoken, "r50k_base")]
    [InlineData(GenerationTokenizerKind.Tiktoken, "cl100k_base")]
    [InlineData(GenerationTokenizerKind.Tiktoken, "o200k_base")]
    public void GenAI_encodes_decodes_and_generates_as_the_engine_from_a_BPE_folder(GenerationTokenizerKind kind, string? encoding)
    {
        using var dir = new TempDir();
        var template = new ChatTemplateOptions();
        var tokenizer = GenerationTokenizer.Create(new GenerationTokenizerOptions(kind, encoding, Specials: template.Markers));
        Assert.True(GenAiTokenizerFiles.CanWrite(tokenizer));
        Assert.False(GenAiTokenizerFiles.CanWrite(GenerationTokenizer.Create(new GenerationTokenizerOptions(kind, encoding, Compact: true), ["abc"])));
        var options = new DecoderOptions { VocabSize = tokenizer.VocabularySize, MaxLength = 64, Width = 8, Heads = 2, Layers = 1, FeedForward = 16, Positions = PositionEncoding.Learned, Dropout = 0, Seed = 7 };
        var modelPath = dir.File("decoder.onnx");
        OnnxModelFile.Save(DecoderBuilder.Build(options, new ArchitectureInputs([0], 1)), modelPath);
        var folder = dir.File("student");
        var defaults = Greedy with { MaxNewTokens = 10, StopTokenIds = [tokenizer.EndOfTextId] };
        GenerativeModelFolder.Write(folder, modelPath, tokenizer, template, defaults);

        using var genaiModel = new GenAi.Model(folder);
        using var genaiTokenizer = new GenAi.Tokenizer(genaiModel);
        string[] texts =
        [
            "Hello, world! It's 2026 and we've 3.14159 reasons.",
            "  multiple   spaces\n\nnew lines\ttabs  ",
            "naïve café: €5, 😀 and 日本語のテキスト",
            "[ILUG] Re: apt-get update fails on sid; see <http://www.linux.ie/>",
            "def f(x):\n    return x ** 2  # antidisestablishmentarianism",
            "Line one.\r\n\r\n  Line two   \n\n\n\tindented\n",
            "DON'T STOP; she'S here. 'll 1234567 x1y22z333 ...!!! ??",
            "trailing spaces and a tab   \t",
        ];
        foreach (var text in texts)
        {
            using var encoded = genaiTokenizer.Encode(text);
            var ours = tokenizer.Encode(text);
            Assert.Equal(ours, encoded[0].ToArray());
            Assert.Equal(text, genaiTokenizer.Decode([.. ours]));
        }

        // A rendered chat prompt: the markers are its special tokens; and GenAI generates the engine's greedy tokens.
        IReadOnlyList<ChatMessage> conversation = [new(ChatRole.System, "Be brief."), new(ChatRole.User, "Write the subject line of this e-mail:\nHi all, the meeting moved to 3pm.")];
        var prompt = new ChatTemplate(template, tokenizer).RenderForGeneration(conversation, 54).Ids;
        using (var rendered = genaiTokenizer.Encode(new ChatTemplate(template, tokenizer).RenderText(conversation, generationPrompt: true)))
        {
            Assert.Equal(prompt, rendered[0].ToArray());
        }

        Assert.Equal(OurTokens(folder, [prompt], defaults.MaxNewTokens), GenAiTokens(folder, [prompt], defaults.MaxNewTokens));
    }

    [Fact]
    public void The_reader_answers_with_the_fixtures_continuation_and_honours_generation_json()
    {
        using var dir = new TempDir();
        var folder = dir.File("student");
        GenerativeModelFolder.Write(folder, DecoderFixture.Cached, ByteTokenizer(), chatTemplate: null, Greedy);

        using (var model = GenerativeModel.Open(folder))
        {
            Assert.False(model.IsChat);
            Assert.Equal(" jumps over the lazy dog.", model.Answer("The red fox"));
            Assert.Equal(["hijk", ", world!"], model.AnswerAll(["abcdefg", "Hello"]));
            Assert.Equal(" jumps over the ", model.Answer("The red fox", model.Defaults with { StopStrings = ["lazy"] }));
            Assert.Throws<InvalidOperationException>(() => model.Answer([new ChatMessage(ChatRole.User, "Hi")]));
        }

        // The folder's defaults are what an answer without options uses.
        GenerativeModelFolder.Write(folder, DecoderFixture.Cached, ByteTokenizer(), null, Greedy with { MaxNewTokens = 6, StopStrings = ["over"], Decode = ids => DecoderFixture.Text(ids) });
        using (var model = GenerativeModel.Open(folder))
        {
            Assert.Equal(6, model.Config.MaxNewTokens);
            Assert.Equal(" jumps", model.Answer("The red fox"));
            Assert.Equal(" jumps ", model.Answer("The red fox", model.Defaults with { MaxNewTokens = 40 }));
            Assert.Equal(" jumps over", model.Answer("The red fox", model.Defaults with { StopStrings = [], MaxNewTokens = 11 }));
        }
    }

    [Fact]
    public void Writing_over_a_folder_that_fails_before_the_commit_leaves_the_old_folder_whole()
    {
        using var dir = new TempDir();
        var folder = dir.File("student");
        GenerativeModelFolder.Write(folder, DecoderFixture.Cached, ByteTokenizer(), null, Greedy);
        var before = Snapshot(folder);

        var error = Assert.Throws<IOException>(() => GenerativeModelFolder.Write(folder, DecoderFixture.Cached, ByteTokenizer(), null, Greedy with { MaxNewTokens = 7 }, null, beforeCommit: temporary =>
        {
            // Everything of the new folder is written; the disk fills up before it takes the old one's place.
            Assert.Equal(7, GenerationConfig.Load(Path.Join(temporary, GenerationConfig.FileName)).MaxNewTokens);
            throw new IOException("disk full");
        }));

        Assert.Equal("disk full", error.Message);
        Assert.Equal(before, Snapshot(folder));
        Assert.Equal([folder], Directory.GetFileSystemEntries(dir.Path));

        GenerativeModelFolder.Write(folder, DecoderFixture.Cached, ByteTokenizer(), null, Greedy with { MaxNewTokens = 7 });
        Assert.Equal(7, GenerationConfig.Load(Path.Join(folder, GenerationConfig.FileName)).MaxNewTokens);
        Assert.Equal([folder], Directory.GetFileSystemEntries(dir.Path));
        Assert.Equal(before.Keys.Order(), Snapshot(folder).Keys.Order());
    }

    [Fact]
    public void Models_that_cannot_make_a_folder_are_refused_with_a_code()
    {
        using var dir = new TempDir();
        var classifier = Path.Join(Repo.Root, "tests", "fixtures", "pytorch", "mlp_opset13.onnx");

        var notDecoder = Assert.Throws<CompressionException>(() => GenerativeModelFolder.Write(dir.File("a"), classifier, ByteTokenizer(), null, Greedy));
        var noCache = Assert.Throws<CompressionException>(() => GenerativeModelFolder.Write(dir.File("b"), DecoderFixture.NoCache, ByteTokenizer(), null, Greedy));
        var wider = GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Byte, Specials: ["<|user|>"]));
        var mismatch = Assert.Throws<CompressionException>(() => GenerativeModelFolder.Write(dir.File("c"), DecoderFixture.Cached, wider, null, Greedy, contextLength: 65));

        Assert.Equal(DiagnosticCodes.DecoderNotInConvention, notDecoder.Code);
        Assert.Equal(DiagnosticCodes.GenerativeFolderInvalid, noCache.Code);
        Assert.Contains("no cache inputs", noCache.Message, StringComparison.Ordinal);
        Assert.Equal(DecoderFixture.NoCache, noCache.Diagnostics[0].File);
        Assert.Equal(2, mismatch.Diagnostics.Count);
        Assert.Contains(mismatch.Diagnostics, d => d.Message.Contains("257 token ids; the tokenizer has 258", StringComparison.Ordinal));
        Assert.Contains(mismatch.Diagnostics, d => d.Message.Contains("context length 65", StringComparison.Ordinal));
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public void Opening_a_folder_with_a_missing_or_mismatched_file_names_it()
    {
        using var dir = new TempDir();
        var folder = dir.File("student");
        GenerativeModelFolder.Write(folder, DecoderFixture.Cached, ByteTokenizer(), null, Greedy);
        var tokenizerPath = Path.Join(folder, GenerationTokenizer.DefaultFileName);
        File.Move(tokenizerPath, tokenizerPath + ".bak");

        var missing = Assert.Throws<CompressionException>(() => GenerativeModel.Open(folder));
        Assert.Equal(DiagnosticCodes.GenerativeFolderInvalid, missing.Code);
        Assert.Equal(tokenizerPath, missing.Diagnostics[0].File);

        GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Byte, Specials: ["<|user|>"])).Save(tokenizerPath);
        var mismatch = Assert.Throws<CompressionException>(() => GenerativeModel.Open(folder));
        Assert.Equal(DiagnosticCodes.GenerativeFolderInvalid, mismatch.Code);
        Assert.Contains("257 token ids; the tokenizer has 258", mismatch.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_chat_folder_stops_at_its_templates_end_marker_even_when_generation_json_does_not_list_it()
    {
        using var dir = new TempDir();
        var template = new ChatTemplateOptions();
        var tokenizer = GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Byte, Specials: template.Markers));
        var end = tokenizer.SpecialTokens["<|end|>"];
        var modelPath = dir.File("decoder.onnx");
        OnnxModelFile.Save(DecoderBuilder.Build(new DecoderOptions { VocabSize = tokenizer.VocabularySize, MaxLength = 32, Width = 16, Heads = 2, Layers = 1, FeedForward = 24, Dropout = 0, Seed = 5 }, new ArchitectureInputs([0], 1)), modelPath);
        var folder = dir.File("student");

        // Options that stop at the end of text only, as a recipe's generation section gives them.
        GenerativeModelFolder.Write(folder, modelPath, tokenizer, template, Greedy with { StopTokenIds = [tokenizer.EndOfTextId] });

        // Written: generation.json stops at the marker, and genai_config.json lists it beside the end of text.
        Assert.Contains(GenerationConfig.Load(Path.Join(folder, GenerationConfig.FileName)).StopTokenSequences, s => s.SequenceEqual([end]));
        using (var genai = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Join(folder, GenAiConfig.FileName))))
        {
            Assert.Equal([tokenizer.EndOfTextId, end], genai.RootElement.GetProperty("model").GetProperty("eos_token_id").EnumerateArray().Select(e => e.GetInt32()));
        }

        OnnxRuntimeEnvironment.EnsureTelemetryOff();
        using (new GenAi.Model(folder))
        {
            // GenAI takes the list.
        }

        // A folder written before generation.json listed it: the reader still stops there.
        var configPath = Path.Join(folder, GenerationConfig.FileName);
        var json = JsonNode.Parse(File.ReadAllText(configPath))!;
        json["stop_token_sequences"] = new JsonArray();
        File.WriteAllText(configPath, json.ToJsonString());
        using var model = GenerativeModel.Open(folder);
        Assert.Empty(model.Config.StopTokenSequences);
        Assert.Contains(end, model.Defaults.StopTokenIds);

        // A plain-text end marker is a stop string.
        var plain = new ChatTemplateOptions { Assistant = "A: {content} END\n", GenerationPrompt = "A: ", User = "Q: {content}\n", System = "S: {content}\n", Markers = [] };
        var bytes = ByteTokenizer();
        GenerativeModelFolder.Write(dir.File("plain"), DecoderFixture.Cached, bytes, plain, Greedy);
        using var plainModel = GenerativeModel.Open(dir.File("plain"));
        Assert.Contains(" END", plainModel.Defaults.StopStrings);
    }

    private static GenerationTokenizer ByteTokenizer() => GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Byte));

    /// <summary>The engine's greedy tokens (without the end of text, which GenAI does not return) for each prompt.</summary>
    private static List<int[]> OurTokens(string folder, IReadOnlyList<IReadOnlyList<int>> prompts, int maxNewTokens)
    {
        using var model = GenerativeModel.Open(folder);
        using var session = DecoderSession.Open(Path.Join(folder, GenerativeModelFolder.ModelFile));
        var options = model.Defaults with { MaxNewTokens = maxNewTokens, BatchSize = 3 };
        return [.. new Generator(session).Generate(prompts, options).Select(s => s.ContentTokens.ToArray())];
    }

    /// <summary>GenAI's greedy tokens for each prompt, from the folder alone (its genai_config.json).</summary>
    private static List<int[]> GenAiTokens(string folder, IReadOnlyList<IReadOnlyList<int>> prompts, int maxNewTokens)
    {
        OnnxRuntimeEnvironment.EnsureTelemetryOff();
        using var model = new GenAi.Model(folder);
        var result = new List<int[]>();
        foreach (var prompt in prompts)
        {
            using var options = new GenAi.GeneratorParams(model);
            options.SetSearchOption("max_length", prompt.Count + maxNewTokens);
            using var generator = new GenAi.Generator(model, options);
            generator.AppendTokens([.. prompt]);
            while (!generator.IsDone())
            {
                generator.GenerateNextToken();
            }

            result.Add([.. generator.GetSequence(0).ToArray().Skip(prompt.Count)]);
        }

        return result;
    }

    private static SortedDictionary<string, string> Snapshot(string folder) =>
        new(Directory.GetFiles(folder).ToDictionary(f => Path.GetFileName(f), f => Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(f)))), StringComparer.Ordinal);
}
