using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using ModelCompression.Text;

namespace ModelCompression.Serving;

/// <summary>One choice of an answer: its index, text, the tokens the client sees, and why it ended (null while streaming).</summary>
internal sealed record ChoiceResult(int Index, string Text, IReadOnlyList<AnswerToken> Tokens, string? FinishReason);

/// <summary>Token counts of an answer, as OpenAI's <c>usage</c>.</summary>
internal readonly record struct Usage(int PromptTokens, int CompletionTokens);

/// <summary>
/// The JSON the server writes, in OpenAI's shapes (docs/serve.md lists every field): chat completions and their stream
/// chunks, text completions and theirs, the model list and errors. Written field by field with Utf8JsonWriter, so
/// the shape is exactly what is written here, nothing a serializer adds.
/// </summary>
internal static class OpenAiJson
{
    // Relaxed escaping: the JSON goes to API clients, not into HTML, so text stays readable UTF-8 ("it's", "é").
    private static readonly JsonWriterOptions Compact = new() { Indented = false, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>The error body <c>{"error": {"message", "type", "param", "code"}}</c>.</summary>
    public static byte[] Error(ServeRequestException error) => Write(w =>
    {
        w.WriteStartObject("error");
        w.WriteString("message", error.Message);
        w.WriteString("type", error.Type);
        w.WriteString("param", error.Param);
        w.WriteString("code", error.Code);
        w.WriteEndObject();
    });

    /// <summary><c>GET /v1/models</c>, or one model of it when <paramref name="models"/> has one and <paramref name="list"/> is false.</summary>
    public static byte[] Models(IEnumerable<ServedModel> models, bool list = true)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, Compact))
        {
            if (list)
            {
                w.WriteStartObject();
                w.WriteString("object", "list");
                w.WriteStartArray("data");
            }

            foreach (var model in models)
            {
                w.WriteStartObject();
                w.WriteString("id", model.Id);
                w.WriteString("object", "model");
                w.WriteNumber("created", model.Created);
                w.WriteString("owned_by", "modelcompression");
                w.WriteNumber("max_model_len", model.Model.Config.ContextLength);
                w.WriteEndObject();
            }

            if (list)
            {
                w.WriteEndArray();
                w.WriteEndObject();
            }
        }

        return stream.ToArray();
    }

    /// <summary>A whole chat completion (<c>"object": "chat.completion"</c>).</summary>
    public static byte[] ChatCompletion(string id, long created, GenerationRequest request, IReadOnlyList<ChoiceResult> choices, Usage usage) => Write(w =>
    {
        Head(w, id, "chat.completion", created, request.Model.Id);
        w.WriteStartArray("choices");
        foreach (var choice in choices)
        {
            w.WriteStartObject();
            w.WriteNumber("index", choice.Index);
            w.WriteStartObject("message");
            w.WriteString("role", "assistant");
            w.WriteString("content", choice.Text);
            w.WriteEndObject();
            ChatLogprobs(w, request, choice.Tokens);
            w.WriteString("finish_reason", choice.FinishReason);
            w.WriteEndObject();
        }

        w.WriteEndArray();
        WriteUsage(w, usage);
    });

    /// <summary>
    /// One chunk of a streamed chat completion (<c>"object": "chat.completion.chunk"</c>) for one choice: the role on
    /// its first chunk, content and its tokens' log-probabilities, or the finish reason with an empty delta.
    /// </summary>
    public static byte[] ChatChunk(string id, long created, GenerationRequest request, int index, bool first, ChoiceResult? delta, string? finishReason) => Write(w =>
    {
        Head(w, id, "chat.completion.chunk", created, request.Model.Id);
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", index);
        w.WriteStartObject("delta");
        if (first)
        {
            w.WriteString("role", "assistant");
        }

        if (delta is not null || first)
        {
            w.WriteString("content", delta?.Text ?? string.Empty);
        }

        w.WriteEndObject();
        ChatLogprobs(w, request, delta?.Tokens ?? []);
        w.WriteString("finish_reason", finishReason);
        w.WriteEndObject();
        w.WriteEndArray();
        if (request.IncludeUsage)
        {
            w.WriteNull("usage");
        }
    });

    /// <summary>The last chunk of a stream with <c>include_usage</c>: no choices, the usage.</summary>
    public static byte[] UsageChunk(string id, long created, GenerationRequest request, Usage usage) => Write(w =>
    {
        Head(w, id, request.Kind == RequestKind.Chat ? "chat.completion.chunk" : "text_completion", created, request.Model.Id);
        w.WriteStartArray("choices");
        w.WriteEndArray();
        WriteUsage(w, usage);
    });

    /// <summary>A whole text completion (<c>"object": "text_completion"</c>), or, with <paramref name="usage"/> null, one stream chunk of it.</summary>
    public static byte[] TextCompletion(string id, long created, GenerationRequest request, IReadOnlyList<ChoiceResult> choices, Usage? usage) => Write(w =>
    {
        Head(w, id, "text_completion", created, request.Model.Id);
        w.WriteStartArray("choices");
        foreach (var choice in choices)
        {
            w.WriteStartObject();
            w.WriteString("text", choice.Text);
            w.WriteNumber("index", choice.Index);
            LegacyLogprobs(w, request, choice.Tokens);
            w.WriteString("finish_reason", choice.FinishReason);
            w.WriteEndObject();
        }

        w.WriteEndArray();
        if (usage is { } counted)
        {
            WriteUsage(w, counted);
        }
        else if (request.IncludeUsage)
        {
            w.WriteNull("usage");
        }
    });

    /// <summary>
    /// How a token is written in log-probabilities: its own text (special tokens by name) and UTF-8 bytes, or with
    /// vLLM's <c>return_tokens_as_token_ids</c> <c>token_id:N</c>. A byte token that is not a whole character on its
    /// own is written <c>bytes:\xNN</c> (as OpenAI writes partial characters); its bytes are exact. Other tokenizers'
    /// bytes are the UTF-8 of their text.
    /// </summary>
    public static (string Token, byte[] Bytes) TokenName(GenerationTokenizer tokenizer, int id, bool asIds)
    {
        var text = tokenizer.Decode([id], includeSpecials: true);
        byte[] bytes = RawByte(tokenizer, id) is { } raw ? [raw] : Encoding.UTF8.GetBytes(text);
        var token = asIds
            ? string.Create(CultureInfo.InvariantCulture, $"token_id:{id}")
            : text.Contains('\uFFFD', StringComparison.Ordinal) && RawByte(tokenizer, id) is { } partial ? string.Create(CultureInfo.InvariantCulture, $"bytes:\\x{partial:x2}") : text;
        return (token, bytes);
    }

    private static byte? RawByte(GenerationTokenizer tokenizer, int id)
    {
        if (tokenizer.Kind != GenerationTokenizerKind.Byte)
        {
            return null;
        }

        var inner = tokenizer.CompactVocabulary is { } compact ? id >= 2 && id - 2 < compact.TokenizerIds.Count ? compact.TokenizerIds[id - 2] : -1 : id;
        return inner is >= 0 and < 256 ? (byte)inner : null;
    }

    private static void Head(Utf8JsonWriter w, string id, string kind, long created, string model)
    {
        w.WriteString("id", id);
        w.WriteString("object", kind);
        w.WriteNumber("created", created);
        w.WriteString("model", model);
    }

    private static void WriteUsage(Utf8JsonWriter w, Usage usage)
    {
        w.WriteStartObject("usage");
        w.WriteNumber("prompt_tokens", usage.PromptTokens);
        w.WriteNumber("completion_tokens", usage.CompletionTokens);
        w.WriteNumber("total_tokens", usage.PromptTokens + usage.CompletionTokens);
        w.WriteEndObject();
    }

    /// <summary>Chat's <c>"logprobs": {"content": [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}]}</c>, or null when not asked for.</summary>
    private static void ChatLogprobs(Utf8JsonWriter w, GenerationRequest request, IReadOnlyList<AnswerToken> tokens)
    {
        if (!request.Logprobs)
        {
            w.WriteNull("logprobs");
            return;
        }

        var tokenizer = request.Model.Model.Tokenizer;
        w.WriteStartObject("logprobs");
        w.WriteStartArray("content");
        foreach (var token in tokens)
        {
            w.WriteStartObject();
            TokenFields(w, tokenizer, token.TokenId, token.Logprob, request.TokensAsIds);
            w.WriteStartArray("top_logprobs");
            foreach (var top in (token.Top ?? []).Take(request.TopLogprobs))
            {
                w.WriteStartObject();
                TokenFields(w, tokenizer, top.TokenId, top.Logprob, request.TokensAsIds);
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void TokenFields(Utf8JsonWriter w, GenerationTokenizer tokenizer, int id, float logprob, bool asIds)
    {
        var (token, bytes) = TokenName(tokenizer, id, asIds);
        w.WriteString("token", token);
        Logprob(w, "logprob", logprob);
        w.WriteStartArray("bytes");
        foreach (var b in bytes)
        {
            w.WriteNumberValue(b);
        }

        w.WriteEndArray();
    }

    /// <summary>The legacy completions' <c>"logprobs": {tokens, token_logprobs, top_logprobs: [{token: logprob}], text_offset}</c>, or null.</summary>
    private static void LegacyLogprobs(Utf8JsonWriter w, GenerationRequest request, IReadOnlyList<AnswerToken> tokens)
    {
        if (!request.Logprobs)
        {
            w.WriteNull("logprobs");
            return;
        }

        var tokenizer = request.Model.Model.Tokenizer;
        w.WriteStartObject("logprobs");
        w.WriteStartArray("tokens");
        tokens.ToList().ForEach(t => w.WriteStringValue(TokenName(tokenizer, t.TokenId, request.TokensAsIds).Token));
        w.WriteEndArray();
        w.WriteStartArray("token_logprobs");
        tokens.ToList().ForEach(t => LogprobValue(w, t.Logprob));
        w.WriteEndArray();
        w.WriteStartArray("top_logprobs");
        foreach (var token in tokens)
        {
            w.WriteStartObject();
            // A JSON object cannot hold one key twice: of tokens with the same text, the likelier one is written.
            var written = new HashSet<string>(StringComparer.Ordinal);
            foreach (var top in (token.Top ?? []).Take(request.TopLogprobs))
            {
                var name = TokenName(tokenizer, top.TokenId, request.TokensAsIds).Token;
                if (written.Add(name))
                {
                    Logprob(w, name, top.Logprob);
                }
            }

            w.WriteEndObject();
        }

        w.WriteEndArray();
        w.WriteStartArray("text_offset");
        tokens.ToList().ForEach(t => w.WriteNumberValue(t.Offset));
        w.WriteEndArray();
        w.WriteEndObject();
    }

    /// <summary>A log-probability; one that is not finite is written -9999, as OpenAI writes "very unlikely".</summary>
    private static void Logprob(Utf8JsonWriter w, string name, float logprob)
    {
        w.WritePropertyName(name);
        LogprobValue(w, logprob);
    }

    private static void LogprobValue(Utf8JsonWriter w, float logprob) => w.WriteNumberValue(float.IsFinite(logprob) ? logprob : -9999f);

    private static byte[] Write(Action<Utf8JsonWriter> body)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, Compact))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }

        return stream.ToArray();
    }
}
