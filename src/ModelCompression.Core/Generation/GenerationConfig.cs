using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using ModelCompression.Common;
using ModelCompression.Diagnostics;
using ModelCompression.Text;

namespace ModelCompression.Generation;

/// <summary>
/// The decoding defaults a generative student was evaluated with, as its folder's <c>generation.json</c> holds them
/// (docs/generation-json.md describes the file): how many tokens, greedy or sampled, what stops an answer, the special
/// ids and the chat template. An app that opens the folder decodes as the evaluation did unless it says otherwise.
/// Runtime concerns (batch size, cache, samples per prompt, top logprobs) are not part of it: they change speed or
/// bookkeeping, not the answer.
/// </summary>
public sealed record GenerationConfig
{
    /// <summary>The file name in a model folder.</summary>
    public const string FileName = "generation.json";

    private const string Format = "modelcompression-generation";
    private const int Version = 1;

    private static readonly JsonSerializerOptions Written = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Most new tokens per answer.</summary>
    public int MaxNewTokens { get; init; } = 128;

    /// <summary>0 is greedy; see <see cref="GenerationOptions.Temperature"/>.</summary>
    public double Temperature { get; init; }

    /// <summary>0 keeps all; see <see cref="GenerationOptions.TopK"/>.</summary>
    public int TopK { get; init; }

    /// <summary>1 keeps all; see <see cref="GenerationOptions.TopP"/>.</summary>
    public double TopP { get; init; } = 1.0;

    /// <summary>The seed of sampling.</summary>
    public long Seed { get; init; }

    /// <summary>Texts that end an answer when its decoded text contains one (<see cref="GenerationOptions.StopStrings"/>).</summary>
    public IReadOnlyList<string> Stop { get; init; } = [];

    /// <summary>Token-id sequences that end an answer (<see cref="GenerationOptions.StopSequences"/>).</summary>
    public IReadOnlyList<IReadOnlyList<int>> StopTokenSequences { get; init; } = [];

    /// <summary>The end-of-text id: it ends an answer and is not part of it.</summary>
    public int EndOfTextId { get; init; }

    /// <summary>The id fed at padding positions.</summary>
    public int PadId { get; init; }

    /// <summary>Most tokens the model sees at once, prompt and answer together (its position table); longer prompts lose tokens from the left.</summary>
    public int ContextLength { get; init; }

    /// <summary>How messages become the prompt; null: the model continues plain text (a prompt is encoded as it is).</summary>
    public ChatTemplateOptions? ChatTemplate { get; init; }

    /// <summary>
    /// The config for <paramref name="options"/> with the special ids of <paramref name="tokenizer"/>. A stop token id
    /// other than the end of text is kept as a one-token stop sequence (same effect: the answer ends on it).
    /// </summary>
    public static GenerationConfig From(GenerationOptions options, GenerationTokenizer tokenizer, ChatTemplateOptions? chatTemplate, int contextLength)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(tokenizer);
        return new GenerationConfig
        {
            MaxNewTokens = options.MaxNewTokens,
            Temperature = options.Temperature,
            TopK = options.TopK,
            TopP = options.TopP,
            Seed = options.Seed,
            Stop = [.. options.StopStrings],
            StopTokenSequences = [.. options.StopSequences, .. options.StopTokenIds.Where(t => t != tokenizer.EndOfTextId).Select(t => (IReadOnlyList<int>)[t])],
            EndOfTextId = tokenizer.EndOfTextId,
            PadId = options.PadTokenId ?? tokenizer.PadId,
            ContextLength = contextLength,
            ChatTemplate = chatTemplate,
        };
    }

    /// <summary>
    /// The <see cref="GenerationOptions"/> these defaults mean, with <paramref name="tokenizer"/> decoding for the stop
    /// texts; runtime settings (batch size, cache) keep their defaults.
    /// </summary>
    public GenerationOptions ToOptions(GenerationTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        return Options(ids => tokenizer.Decode(ids)) with { TokenLimit = tokenizer.VocabularySize };
    }

    private GenerationOptions Options(Func<IReadOnlyList<int>, string> decode) =>
        new()
        {
            MaxNewTokens = MaxNewTokens,
            Temperature = Temperature,
            TopK = TopK,
            TopP = TopP,
            Seed = Seed,
            StopTokenIds = [EndOfTextId],
            StopSequences = StopTokenSequences,
            StopStrings = Stop,
            Decode = Stop.Count > 0 ? decode : null,
            PadTokenId = PadId,
        };

    /// <summary>Every problem with the values, in the file's own key names; empty when usable.</summary>
    public IReadOnlyList<string> Problems()
    {
        var problems = new List<string>([.. Options(_ => string.Empty).Problems()]);
        if (EndOfTextId < 0 || PadId < 0)
        {
            problems.Add("end_of_text_id and pad_id must be 0 or more");
        }

        if (ContextLength < 2)
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"context_length must be at least 2, got {ContextLength}"));
        }

        if (StopTokenSequences.Any(s => s.Any(t => t < 0)))
        {
            problems.Add("stop_token_sequences hold a negative id");
        }

        problems.AddRange(ChatTemplate?.Problems() ?? []);
        return problems;
    }

    /// <summary>Writes the file atomically (a reader sees the old file or the new one).</summary>
    public void Save(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (Problems() is { Count: > 0 } problems)
        {
            throw new ArgumentException("Generation config: " + string.Join("; ", problems) + ".", nameof(path));
        }

        var json = new JsonObject
        {
            ["format"] = Format,
            ["version"] = Version,
            ["max_new_tokens"] = MaxNewTokens,
            ["temperature"] = Temperature,
            ["top_k"] = TopK,
            ["top_p"] = TopP,
            ["seed"] = Seed,
            ["stop"] = new JsonArray([.. Stop.Select(s => (JsonNode)s)]),
            ["stop_token_sequences"] = new JsonArray([.. StopTokenSequences.Select(s => (JsonNode)new JsonArray([.. s.Select(t => (JsonNode)t)]))]),
            ["end_of_text_id"] = EndOfTextId,
            ["pad_id"] = PadId,
            ["context_length"] = ContextLength,
            ["chat_template"] = ChatTemplate is null ? null : new JsonObject
            {
                ["system"] = ChatTemplate.System,
                ["user"] = ChatTemplate.User,
                ["assistant"] = ChatTemplate.Assistant,
                ["generation_prompt"] = ChatTemplate.GenerationPrompt,
                ["markers"] = new JsonArray([.. ChatTemplate.Markers.Select(m => (JsonNode)m)]),
            },
        };
        AtomicFile.WriteAllText(path, json.ToJsonString(Written) + "\n");
    }

    /// <summary>
    /// Reads a file <see cref="Save"/> wrote. Anything wrong is MC2063 with the file and the line of the key it
    /// concerns: unreadable JSON, another format or version, a key it does not know, a value of the wrong type, a
    /// value out of range.
    /// </summary>
    public static GenerationConfig Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw Invalid(path, null, $"it cannot be read: {e.Message}");
        }

        JsonObject json;
        Dictionary<string, int> lines;
        try
        {
            json = JsonNode.Parse(bytes) as JsonObject ?? throw Invalid(path, 1, "it is not a JSON object");
            lines = KeyLines(bytes);
        }
        catch (JsonException e)
        {
            throw Invalid(path, e.LineNumber is { } line ? (int)line + 1 : null, $"it is not valid JSON: {e.Message}");
        }

        var reader = new KeyReader(json, lines, path);
        if (reader.String("format") != Format || reader.Int("version") != Version)
        {
            throw Invalid(path, lines.GetValueOrDefault("format", 1), $"expected \"format\": \"{Format}\" and \"version\": {Version}");
        }

        var known = new HashSet<string>(["format", "version", "max_new_tokens", "temperature", "top_k", "top_p", "seed", "stop", "stop_token_sequences", "end_of_text_id", "pad_id", "context_length", "chat_template"], StringComparer.Ordinal);
        if (json.Select(p => p.Key).FirstOrDefault(k => !known.Contains(k)) is { } unknown)
        {
            throw Invalid(path, lines.GetValueOrDefault(unknown), $"unknown key \"{unknown}\"");
        }

        var config = new GenerationConfig
        {
            MaxNewTokens = reader.Int("max_new_tokens"),
            Temperature = reader.Double("temperature"),
            TopK = reader.Int("top_k"),
            TopP = reader.Double("top_p"),
            Seed = reader.Long("seed"),
            Stop = reader.Strings("stop", json["stop"]),
            StopTokenSequences = reader.IdSequences("stop_token_sequences"),
            EndOfTextId = reader.Int("end_of_text_id"),
            PadId = reader.Int("pad_id"),
            ContextLength = reader.Int("context_length"),
            ChatTemplate = reader.Template("chat_template"),
        };
        if (config.Problems() is { Count: > 0 } problems)
        {
            throw Invalid(path, lines.GetValueOrDefault(KeyOf(problems[0])), string.Join("; ", problems));
        }

        return config;
    }

    internal static CompressionException Invalid(string path, int? line, string why) =>
        new([Diagnostic.Error(DiagnosticCodes.GenerationConfigInvalid, $"Generation config '{path}': {why}.", path, line)]);

    /// <summary>The key a problem message starts with (they name their key first), for its line.</summary>
    private static string KeyOf(string problem)
    {
        var key = problem.Split(' ')[0];
        return key switch
        {
            "a" => problem.Contains("stop sequence", StringComparison.Ordinal) ? "stop_token_sequences" : "stop",
            "stop" => "stop",
            "The" or "Markers" => "chat_template",
            _ => key,
        };
    }

    /// <summary>The line (from 1) of each top-level key: System.Text.Json's nodes do not keep where they were.</summary>
    private static Dictionary<string, int> KeyLines(byte[] bytes)
    {
        var lines = new Dictionary<string, int>(StringComparer.Ordinal);
        var reader = new Utf8JsonReader(bytes, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip });
        var (line, counted) = (1, 0);
        while (reader.Read())
        {
            if (reader.TokenType == JsonTokenType.PropertyName && reader.CurrentDepth == 1)
            {
                var at = (int)reader.TokenStartIndex;
                line += bytes.AsSpan(counted, at - counted).Count((byte)'\n');
                counted = at;
                lines.TryAdd(reader.GetString()!, line);
            }
        }

        return lines;
    }

    /// <summary>Reads typed values of the top-level keys; a missing key or a wrong type is MC2063 at its line.</summary>
    private sealed class KeyReader(JsonObject json, Dictionary<string, int> lines, string path)
    {
        public string? String(string key) => Value<string>(key, "a string");

        public int Int(string key) => Value<int>(key, "an integer");

        public long Long(string key) => Value<long>(key, "an integer");

        public double Double(string key) => Value<double>(key, "a number");

        public IReadOnlyList<string> Strings(string key, JsonNode? node) =>
            node is JsonArray array && array.All(n => n is JsonValue v && v.TryGetValue<string>(out _))
                ? [.. array.Select(n => n!.GetValue<string>())]
                : throw Wrong(key, "an array of strings");

        public IReadOnlyList<IReadOnlyList<int>> IdSequences(string key) =>
            json[key] is JsonArray outer && outer.All(s => s is JsonArray inner && inner.All(n => n is JsonValue v && v.TryGetValue<int>(out _)))
                ? [.. outer.Select(s => (IReadOnlyList<int>)[.. s!.AsArray().Select(n => n!.GetValue<int>())])]
                : throw Wrong(key, "an array of arrays of token ids");

        public ChatTemplateOptions? Template(string key)
        {
            if (!json.ContainsKey(key))
            {
                throw Wrong(key, "an object or null");
            }

            if (json[key] is null)
            {
                return null;
            }

            if (json[key] is not JsonObject template || template.Count != 5
                || new[] { "system", "user", "assistant", "generation_prompt" }.Any(k => template[k] is not JsonValue v || !v.TryGetValue<string>(out _)))
            {
                throw Wrong(key, "an object of \"system\", \"user\", \"assistant\", \"generation_prompt\" (strings) and \"markers\" (an array of strings)");
            }

            return new ChatTemplateOptions
            {
                System = template["system"]!.GetValue<string>(),
                User = template["user"]!.GetValue<string>(),
                Assistant = template["assistant"]!.GetValue<string>(),
                GenerationPrompt = template["generation_prompt"]!.GetValue<string>(),
                Markers = Strings(key, template["markers"]),
            };
        }

        private T Value<T>(string key, string what) =>
            json[key] is JsonValue value && value.TryGetValue<T>(out var result) ? result : throw Wrong(key, what);

        private CompressionException Wrong(string key, string what) =>
            Invalid(path, lines.TryGetValue(key, out var line) ? line : 1, json.ContainsKey(key) ? $"\"{key}\" must be {what}" : $"\"{key}\" is missing");
    }
}
