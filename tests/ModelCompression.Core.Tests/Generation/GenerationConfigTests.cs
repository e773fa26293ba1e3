using ModelCompression.Diagnostics;
using ModelCompression.Generation;
using ModelCompression.Text;

namespace ModelCompression.Core.Tests.Generation;

/// <summary>generation.json: written and read back to the same options and template; bad files are MC2063 at the key's line.</summary>
public sealed class GenerationConfigTests
{
    private static readonly GenerationTokenizer Tokenizer =
        GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Byte, Specials: new ChatTemplateOptions().Markers));

    [Fact]
    public void Round_trip_gives_the_same_options_and_template()
    {
        using var dir = new TempDir();
        var template = new ChatTemplateOptions { System = "S: {content}\n", Markers = ["<|user|>", "<|assistant|>", "<|end|>", "<|system|>"] };
        var options = new GenerationOptions
        {
            MaxNewTokens = 17,
            Temperature = 0.2,
            TopK = 40,
            TopP = 0.1,
            Seed = 9,
            StopTokenIds = [Tokenizer.EndOfTextId, 260],
            StopSequences = [[10, 10]],
            StopStrings = ["\n\n", "<|é|>"],
            Decode = ids => Tokenizer.Decode(ids),
            PadTokenId = 3,
        };
        var path = dir.File(GenerationConfig.FileName);
        GenerationConfig.From(options, Tokenizer, template, contextLength: 96).Save(path);

        var config = GenerationConfig.Load(path);
        var back = config.ToOptions(Tokenizer);

        Assert.Equal((17, 0.2, 40, 0.1, 9L, 3), (back.MaxNewTokens, back.Temperature, back.TopK, back.TopP, back.Seed, back.PadTokenId!.Value));
        Assert.Equal([Tokenizer.EndOfTextId], back.StopTokenIds);
        // A stop token other than the end of text is kept as a one-token stop sequence.
        Assert.Equal([[10, 10], [260]], back.StopSequences.Select(s => s.ToArray()));
        Assert.Equal(["\n\n", "<|é|>"], back.StopStrings);
        Assert.Equal("hi", back.Decode!([104, 105]));
        Assert.Equal(96, config.ContextLength);
        Assert.Equal(Tokenizer.EndOfTextId, config.EndOfTextId);
        Assert.Equal(template with { Markers = [] }, config.ChatTemplate! with { Markers = [] });
        Assert.Equal(template.Markers, config.ChatTemplate!.Markers);
        Assert.Contains("\"<|é|>\"", File.ReadAllText(path), StringComparison.Ordinal);

        GenerationConfig.From(new GenerationOptions(), Tokenizer, chatTemplate: null, contextLength: 64).Save(path);
        var plain = GenerationConfig.Load(path);
        Assert.Null(plain.ChatTemplate);
        Assert.Equal(Tokenizer.PadId, plain.PadId);
        Assert.Null(plain.ToOptions(Tokenizer).Decode);
    }

    [Theory]
    [InlineData("\"top_p\": 1", "\"top_p\": 1.5", "top_p must be in (0, 1]")]
    [InlineData("\"max_new_tokens\": 128", "\"max_new_tokens\": \"many\"", "\"max_new_tokens\" must be an integer")]
    [InlineData("\"seed\": 0,", "\"seed\": 0, \"beams\": 4,", "unknown key \"beams\"")]
    [InlineData("\"context_length\": 64,", "", "\"context_length\" is missing")]
    [InlineData("\"user\": \"<|user|>\\n{content}<|end|>\\n\"", "\"user\": \"<|user|>\\n<|end|>\\n\"", "user template must hold {content} exactly once")]
    public void A_bad_value_is_MC2063_at_its_line(string good, string bad, string message)
    {
        using var dir = new TempDir();
        var path = dir.File(GenerationConfig.FileName);
        GenerationConfig.From(new GenerationOptions(), Tokenizer, new ChatTemplateOptions(), contextLength: 64).Save(path);
        var lines = File.ReadAllLines(path);
        var line = Array.FindIndex(lines, l => l.Contains(good, StringComparison.Ordinal));
        Assert.True(line >= 0, $"'{good}' is not in the written file");
        lines[line] = lines[line].Replace(good, bad, StringComparison.Ordinal);
        File.WriteAllLines(path, lines);
        var expectedLine = bad.Length == 0 ? 1 : (bad.Contains("\"user\"", StringComparison.Ordinal) ? Array.FindIndex(lines, l => l.Contains("chat_template", StringComparison.Ordinal)) : line) + 1;

        var error = Assert.Throws<CompressionException>(() => GenerationConfig.Load(path));

        Assert.Equal(DiagnosticCodes.GenerationConfigInvalid, error.Code);
        Assert.Equal(path, error.Diagnostics[0].File);
        Assert.Equal(expectedLine, error.Diagnostics[0].Line);
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Broken_json_is_MC2063_with_its_line()
    {
        using var dir = new TempDir();
        var path = dir.Write(GenerationConfig.FileName, "{\n  \"format\": \"modelcompression-generation\",\n  \"version\": 1\n  \"max_new_tokens\": 3\n}\n");

        var error = Assert.Throws<CompressionException>(() => GenerationConfig.Load(path));

        Assert.Equal(DiagnosticCodes.GenerationConfigInvalid, error.Code);
        Assert.Equal(4, error.Diagnostics[0].Line);
    }
}
