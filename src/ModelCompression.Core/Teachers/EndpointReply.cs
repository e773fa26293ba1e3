using System.Text.Json;

namespace ModelCompression.Teachers;

/// <summary>One alternative token at a position of an answer, with its log-probability.</summary>
/// <param name="Token">The token's text as the server gives it.</param>
/// <param name="Logprob">Its natural-log probability.</param>
/// <param name="Bytes">Its UTF-8 bytes when the server gives them (a token may be part of a character), else null.</param>
public sealed record TokenAlternative(string Token, double Logprob, IReadOnlyList<byte>? Bytes);

/// <summary>One token of an answer with its log-probability and the most likely alternatives at its position.</summary>
/// <param name="Token">The token's text.</param>
/// <param name="Logprob">Its natural-log probability.</param>
/// <param name="Bytes">Its UTF-8 bytes when the server gives them, else null.</param>
/// <param name="Top">The top_logprobs alternatives at this position, most likely first as the server lists them.</param>
public sealed record TokenLogprob(string Token, double Logprob, IReadOnlyList<byte>? Bytes, IReadOnlyList<TokenAlternative> Top);

/// <summary>One answer (choice) of a chat completion, as the server gave it.</summary>
/// <param name="Text">The raw message content (an empty string when the server gave none).</param>
/// <param name="FinishReason">The server's finish_reason (stop, length, content_filter, …), or null when it gave none.</param>
/// <param name="Reasoning">The <c>reasoning_content</c> that vLLM's reasoning parsers and Azure AI give reasoning models, or null.</param>
/// <param name="Logprobs">The answer's tokens with log-probabilities when they were asked for and given, else null.</param>
public sealed record EndpointChoice(string Text, string? FinishReason, string? Reasoning, IReadOnlyList<TokenLogprob>? Logprobs)
{
    /// <summary>
    /// Whether the server says the answer was cut rather than ended: <c>length</c> (max_tokens), <c>content_filter</c>,
    /// vLLM's <c>abort</c>. Other reasons (<c>stop</c>, TGI's <c>eos_token</c> and <c>stop_sequence</c>, none) mean it ended.
    /// </summary>
    public bool WasCut => FinishReason is "length" or "content_filter" or "abort";
}

/// <summary>
/// What a chat completion gave, in the form the answer cache keeps: the choices in index order and the token usage.
/// <see cref="Parse(string, int)"/> reads the server's <c>chat.completion</c> body leniently about what we do not use (ids, times,
/// fingerprints, Azure's content-filter results, vLLM's <c>stop_reason</c> and <c>prompt_logprobs</c>), strictly about
/// what we do: choices with a message, as many as were asked.
/// </summary>
/// <param name="Choices">The answers, by choice index.</param>
/// <param name="PromptTokens">usage.prompt_tokens (0 when the server gave no usage).</param>
/// <param name="CompletionTokens">usage.completion_tokens (0 when the server gave no usage).</param>
public sealed record EndpointReply(IReadOnlyList<EndpointChoice> Choices, long PromptTokens, long CompletionTokens)
{
    /// <summary>Prompt and completion tokens together.</summary>
    public long TotalTokens => PromptTokens + CompletionTokens;

    /// <summary>
    /// Reads a server's chat-completion body (OpenAI's shape, which vLLM, SGLang, Ollama, llama.cpp and Azure give).
    /// Message content may be a string, null (read as empty) or an array of text parts (joined).
    /// </summary>
    /// <param name="body">The body's text.</param>
    /// <param name="choices">How many answers the request asked for (n): a reply with another number is refused.</param>
    /// <exception cref="FormatException">The body is not JSON, or not a chat completion with that many choices.</exception>
    public static EndpointReply Parse(string body, int choices)
    {
        ArgumentNullException.ThrowIfNull(body);
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body);
        }
        catch (JsonException e)
        {
            throw new FormatException($"the reply is not valid JSON ({e.Message.Split(" Path:")[0].TrimEnd('.')})", e);
        }

        using (document)
        {
            return Parse(document.RootElement, choices);
        }
    }

    /// <summary>Reads a chat-completion body already parsed (a batch results line's <c>response.body</c>); see <see cref="Parse(string, int)"/>.</summary>
    public static EndpointReply Parse(JsonElement root, int choices)
    {
        try
        {
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("choices", out var array) || array.ValueKind != JsonValueKind.Array)
            {
                throw new FormatException("the reply has no \"choices\" array");
            }

            var read = array.EnumerateArray().Select((choice, position) => ReadChoice(choice, position)).OrderBy(c => c.Index).ToList();
            if (read.Count != choices || read.Select(c => c.Index).Distinct().Count() != read.Count)
            {
                throw new FormatException($"the reply has {read.Count} choices (distinct indices {read.Select(c => c.Index).Distinct().Count()}); {choices} were asked for");
            }

            long prompt = 0, completion = 0;
            if (root.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object)
            {
                prompt = Tokens(usage, "prompt_tokens");
                completion = Tokens(usage, "completion_tokens");
            }

            return new EndpointReply([.. read.Select(c => c.Choice)], prompt, completion);
        }
        catch (Exception e) when (e is InvalidOperationException or KeyNotFoundException)
        {
            // JsonElement's getters throw these on a missing property or a value of another kind than the one asked for.
            throw new FormatException("the reply has a missing value or one of the wrong kind: " + e.Message, e);
        }
    }

    /// <summary>Writes the reply in the cache's form (see <see cref="EndpointAnswerCache"/>).</summary>
    public void WriteTo(Utf8JsonWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteStartObject();
        writer.WriteStartArray("choices");
        foreach (var choice in Choices)
        {
            writer.WriteStartObject();
            writer.WriteString("text", choice.Text);
            WriteOptional(writer, "finish_reason", choice.FinishReason);
            WriteOptional(writer, "reasoning_content", choice.Reasoning);
            if (choice.Logprobs is { } logprobs)
            {
                WriteLogprobs(writer, "logprobs", logprobs);
            }

            writer.WriteEndObject();
        }

        writer.WriteEndArray();
        writer.WriteStartObject("usage");
        writer.WriteNumber("prompt_tokens", PromptTokens);
        writer.WriteNumber("completion_tokens", CompletionTokens);
        writer.WriteEndObject();
        writer.WriteEndObject();
    }

    /// <summary>Reads what <see cref="WriteTo"/> wrote.</summary>
    /// <exception cref="FormatException">It is not in that form.</exception>
    public static EndpointReply ReadCached(JsonElement element)
    {
        try
        {
            var choices = element.GetProperty("choices").EnumerateArray().Select(choice => new EndpointChoice(
                choice.GetProperty("text").GetString()!,
                OptionalString(choice, "finish_reason"),
                OptionalString(choice, "reasoning_content"),
                choice.TryGetProperty("logprobs", out var logprobs) ? ReadLogprobs(logprobs, "top_logprobs") : null)).ToList();
            var usage = element.GetProperty("usage");
            return new EndpointReply(choices, usage.GetProperty("prompt_tokens").GetInt64(), usage.GetProperty("completion_tokens").GetInt64());
        }
        catch (Exception e) when (e is KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new FormatException("the cached reply is not in the cache's form: " + e.Message, e);
        }
    }

    private static (int Index, EndpointChoice Choice) ReadChoice(JsonElement choice, int position)
    {
        if (choice.ValueKind != JsonValueKind.Object || !choice.TryGetProperty("message", out var message) || message.ValueKind != JsonValueKind.Object)
        {
            throw new FormatException("a choice has no \"message\" object");
        }

        var index = choice.TryGetProperty("index", out var i) && i.ValueKind == JsonValueKind.Number ? i.GetInt32() : position;
        var text = message.TryGetProperty("content", out var content) ? content.ValueKind switch
        {
            JsonValueKind.String => content.GetString()!,
            JsonValueKind.Null => string.Empty,
            JsonValueKind.Array => string.Concat(content.EnumerateArray().Select(part =>
                part.ValueKind == JsonValueKind.Object && part.TryGetProperty("text", out var partText) && partText.ValueKind == JsonValueKind.String ? partText.GetString() : string.Empty)),
            _ => throw new FormatException("a choice's message content is neither text, null nor a list of parts"),
        } : string.Empty;
        var logprobs = choice.TryGetProperty("logprobs", out var l) && l.ValueKind == JsonValueKind.Object && l.TryGetProperty("content", out var tokens) && tokens.ValueKind == JsonValueKind.Array
            ? ReadLogprobs(tokens, "top_logprobs")
            : null;
        return (index, new EndpointChoice(text, OptionalString(choice, "finish_reason"), OptionalString(message, "reasoning_content"), logprobs));
    }

    /// <summary>Writes <paramref name="tokens"/> as the array <paramref name="name"/> of the cache's form: <c>[{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}]</c>.</summary>
    internal static void WriteLogprobs(Utf8JsonWriter writer, string name, IReadOnlyList<TokenLogprob> tokens)
    {
        writer.WriteStartArray(name);
        foreach (var token in tokens)
        {
            writer.WriteStartObject();
            WriteToken(writer, token.Token, token.Logprob, token.Bytes);
            writer.WriteStartArray("top_logprobs");
            foreach (var alternative in token.Top)
            {
                writer.WriteStartObject();
                WriteToken(writer, alternative.Token, alternative.Logprob, alternative.Bytes);
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
    }

    /// <summary>Reads an array <see cref="WriteLogprobs"/> wrote (or a chat completion's <c>logprobs.content</c>).</summary>
    internal static List<TokenLogprob> ReadLogprobs(JsonElement tokens) => ReadLogprobs(tokens, "top_logprobs");

    private static List<TokenLogprob> ReadLogprobs(JsonElement tokens, string alternativesName) =>
        [.. tokens.EnumerateArray().Select(token => new TokenLogprob(
            token.GetProperty("token").GetString()!,
            token.GetProperty("logprob").GetDouble(),
            ReadBytes(token),
            token.TryGetProperty(alternativesName, out var top) && top.ValueKind == JsonValueKind.Array
                ? [.. top.EnumerateArray().Select(a => new TokenAlternative(a.GetProperty("token").GetString()!, a.GetProperty("logprob").GetDouble(), ReadBytes(a)))]
                : []))];

    private static byte[]? ReadBytes(JsonElement token) =>
        token.TryGetProperty("bytes", out var bytes) && bytes.ValueKind == JsonValueKind.Array ? [.. bytes.EnumerateArray().Select(b => b.GetByte())] : null;

    private static long Tokens(JsonElement usage, string name) =>
        usage.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var count) && count >= 0 ? count : 0;

    private static string? OptionalString(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static void WriteOptional(Utf8JsonWriter writer, string name, string? value)
    {
        if (value is not null)
        {
            writer.WriteString(name, value);
        }
    }

    private static void WriteToken(Utf8JsonWriter writer, string token, double logprob, IReadOnlyList<byte>? bytes)
    {
        writer.WriteString("token", token);
        writer.WriteNumber("logprob", logprob);
        if (bytes is not null)
        {
            writer.WriteStartArray("bytes");
            foreach (var b in bytes)
            {
                writer.WriteNumberValue(b);
            }

            writer.WriteEndArray();
        }
    }
}
