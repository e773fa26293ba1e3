using ModelCompression.Architectures;
using ModelCompression.Generation;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Text;

namespace ModelCompression.Core.Tests.Generation;

/// <summary>
/// What the chat-training tests share. The template spells its turns as plain text ("Q: ", "A: ") and ends an answer
/// with the byte tokenizer's own end of text (256), so a byte tokenizer WITHOUT extra markers renders it in the 257 ids
/// of the PyTorch fixture's vocabulary: the fixture can be the teacher of a student with this tokenizer.
/// </summary>
internal static class ChatTrainSupport
{
    public static readonly ChatTemplateOptions Plain = new()
    {
        System = "S: {content}\n",
        User = "Q: {content}\n",
        Assistant = "A: {content}<|endoftext|>",
        GenerationPrompt = "A: ",
        Markers = [],
    };

    public static GenerationTokenizer Bytes() => GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Byte));

    public static ChatTemplate Template() => new(Plain, Bytes());

    public static ChatRecord Record(string question, string answer, int line, string file = "chat.jsonl") =>
        new([new ChatMessage(ChatRole.User, question), new ChatMessage(ChatRole.Assistant, answer)], file, line);

    /// <summary>
    /// The recipe's generation section for the reversal task's whole runs (an endpoint or served teacher answers with
    /// this template): plain-text turns, byte tokens, answers of at most 6 tokens.
    /// </summary>
    public const string ReversalGeneration = """
        generation:
          task_type: qa
          tokenizer: byte
          max_length: 24
          max_new_tokens: 6
          user_template: "Q: {content}\n"
          assistant_template: "A: {content}<|endoftext|>"
          generation_prompt: "A: "
          markers: []
          samples: 2
        """;

    /// <summary>
    /// The reversal task's files for whole runs, in <paramref name="dir"/>: train.jsonl (150 conversations), test.jsonl
    /// (36) and pool.jsonl (30 more prompts without answers).
    /// </summary>
    public static void WriteReversalSplits(TempDir dir)
    {
        var all = Reversals(216, seed: 2);
        WriteJsonl(dir.File("train.jsonl"), all.Take(150), withAnswer: true);
        WriteJsonl(dir.File("test.jsonl"), all.Skip(150).Take(36), withAnswer: true);
        WriteJsonl(dir.File("pool.jsonl"), all.Skip(186).Take(30), withAnswer: false);
    }

    /// <summary>Conversations in OpenAI's chat format, one a line; without their answers when <paramref name="withAnswer"/> is false.</summary>
    public static void WriteJsonl(string path, IEnumerable<ChatRecord> records, bool withAnswer) =>
        File.WriteAllLines(path, records.Select(r => System.Text.Json.JsonSerializer.Serialize(new
        {
            messages = (withAnswer ? r.Messages : r.Prompt).Select(m => new { role = m.Role.ToString().ToLowerInvariant(), content = m.Content }),
        })));

    /// <summary>"reverse this word": 3-letter words of a-f, in a seeded order.</summary>
    public static List<ChatRecord> Reversals(int count, int seed, int skip = 0)
    {
        const string Letters = "abcdef";
        var words = (from a in Letters from b in Letters from c in Letters select $"{a}{b}{c}").ToList();
        var random = new Random(seed);
        var shuffled = words.OrderBy(_ => random.Next()).ToList();
        return [.. shuffled.Skip(skip).Take(count).Select((w, i) => Record(w, new string([.. w.Reverse()]), i + 1))];
    }

    /// <summary>A tiny built-in decoder over the 257 byte ids, with its cache inputs.</summary>
    public static ModelProto TinyDecoder(int seed = 3, int width = 48, int layers = 2) =>
        DecoderBuilder.Build(
            new DecoderOptions { VocabSize = 257, MaxLength = 32, Width = width, Heads = 2, Layers = layers, FeedForward = 2 * width, Dropout = 0, Seed = seed },
            new ArchitectureInputs([0], 1));

    /// <summary>The generated answers of <paramref name="model"/> (greedy, stopping at end of text) to the prompts of <paramref name="records"/>.</summary>
    public static List<string> Answers(ModelProto model, IReadOnlyList<ChatRecord> records, TempDir temp, string name = "student.onnx")
    {
        var path = temp.File(name);
        OnnxModelFile.Save(model, path);
        using var session = DecoderSession.Open(path, threads: 1);
        var template = Template();
        var prompts = records.Select(r => (IReadOnlyList<int>)template.RenderForGeneration(r.Prompt, 24).Ids).ToList();
        var results = new Generator(session).Generate(prompts, new GenerationOptions { MaxNewTokens = 6, StopTokenIds = [template.Tokenizer.EndOfTextId], BatchSize = 16 });
        return [.. results.Select(r => template.Tokenizer.Decode(r.ContentTokens))];
    }
}
