using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using ModelCompression.Evaluation;
using ModelCompression.Text;

namespace ModelCompression.Teachers;

/// <summary>
/// One chat-completions request: its JSON body exactly as it is sent (online, and in a batch file) and its cache key.
/// <para>
/// The body is written by us, in one fixed order, with only what changes the answer: <c>model</c>, <c>messages</c>
/// (role and content), <c>temperature</c>, <c>top_p</c>, <c>max_tokens</c>, and when set <c>stop</c>,
/// <c>frequency_penalty</c>, <c>presence_penalty</c>, <c>seed</c>, <c>n</c>, <c>logprobs</c> with <c>top_logprobs</c>.
/// The key is the SHA-256 of the body's UTF-8 bytes, so it covers the model name, the exact messages and every sampling
/// setting, and never the endpoint URL or the API key, which are not in the body: the same request to the same model
/// behind another URL replays from the cache.
/// </para>
/// <para>
/// Why not the OpenAI package's typed request: it sends <c>max_completion_tokens</c>, which Azure AI model inference
/// and older vLLM and Ollama do not read (<c>max_tokens</c> is what they all read); it has no <c>n</c>; and a batch file
/// needs the body without sending it. The package still sends it (<see cref="EndpointClient"/>).
/// </para>
/// </summary>
public sealed record EndpointRequest
{
    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, Indented = false };

    private EndpointRequest(string body, int choices)
    {
        Body = body;
        Choices = choices;
        Key = KeyOf(body);
    }

    /// <summary>The JSON body, as sent.</summary>
    public string Body { get; }

    /// <summary>The cache key: SHA-256 of <see cref="Body"/>'s UTF-8 bytes, 64 lowercase hex digits.</summary>
    public string Key { get; }

    /// <summary>Answers the request asks for (<c>n</c>).</summary>
    public int Choices { get; }

    /// <summary>The request that asks <paramref name="options"/>' model to answer <paramref name="messages"/> as <paramref name="task"/> needs.</summary>
    public static EndpointRequest Create(IReadOnlyList<ChatMessage> messages, GenerativeTask task, EndpointTeacherOptions options)
    {
        ArgumentNullException.ThrowIfNull(task);
        ArgumentNullException.ThrowIfNull(options);
        return Create(messages, options, options.AnswerTokens(task));
    }

    /// <summary>The request that asks <paramref name="options"/>' model to answer <paramref name="messages"/> in at most <paramref name="maxTokens"/> tokens.</summary>
    public static EndpointRequest Create(IReadOnlyList<ChatMessage> messages, EndpointTeacherOptions options, int maxTokens)
    {
        ArgumentNullException.ThrowIfNull(messages);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTokens, 1);
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, WriterOptions))
        {
            writer.WriteStartObject();
            writer.WriteString("model", options.Model);
            writer.WriteStartArray("messages");
            foreach (var message in messages)
            {
                writer.WriteStartObject();
                writer.WriteString("role", message.Role.ToString().ToLowerInvariant());
                writer.WriteString("content", message.Content);
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteNumber("temperature", options.Temperature);
            writer.WriteNumber("top_p", options.TopP);
            writer.WriteNumber("max_tokens", maxTokens);
            if (options.Stop.Length > 0)
            {
                writer.WriteStartArray("stop");
                foreach (var stop in options.Stop)
                {
                    writer.WriteStringValue(stop);
                }

                writer.WriteEndArray();
            }

            if (options.FrequencyPenalty != 0)
            {
                writer.WriteNumber("frequency_penalty", options.FrequencyPenalty);
            }

            if (options.PresencePenalty != 0)
            {
                writer.WriteNumber("presence_penalty", options.PresencePenalty);
            }

            if (options.Seed >= 0)
            {
                writer.WriteNumber("seed", options.Seed);
            }

            if (options.SamplesPerPrompt > 1)
            {
                writer.WriteNumber("n", options.SamplesPerPrompt);
            }

            if (options.TopLogprobs > 0)
            {
                writer.WriteBoolean("logprobs", true);
                writer.WriteNumber("top_logprobs", options.TopLogprobs);
            }

            writer.WriteEndObject();
        }

        return new EndpointRequest(Encoding.UTF8.GetString(stream.ToArray()), options.SamplesPerPrompt);
    }

    /// <summary>
    /// A request from a body read back (a cache entry's, a batch requests file's): a JSON object with a <c>messages</c>
    /// array; <c>n</c> (default 1) says how many answers it asks for.
    /// </summary>
    /// <exception cref="FormatException">The body is not such an object.</exception>
    public static EndpointRequest FromBody(string body)
    {
        ArgumentNullException.ThrowIfNull(body);
        try
        {
            using var document = JsonDocument.Parse(body);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("messages", out var messages) || messages.ValueKind != JsonValueKind.Array)
            {
                throw new FormatException("the request body is not a JSON object with a \"messages\" array");
            }

            var choices = 1;
            if (root.TryGetProperty("n", out var n) && (n.ValueKind != JsonValueKind.Number || !n.TryGetInt32(out choices) || choices < 1))
            {
                throw new FormatException("the request body's \"n\" is not a count of at least 1");
            }

            return new EndpointRequest(body, choices);
        }
        catch (JsonException e)
        {
            throw new FormatException($"the request body is not valid JSON ({e.Message.Split(" Path:")[0].TrimEnd('.')})", e);
        }
    }

    /// <summary>SHA-256 of <paramref name="body"/>'s UTF-8 bytes as 64 lowercase hex digits.</summary>
    public static string KeyOf(string body)
    {
        ArgumentNullException.ThrowIfNull(body);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(body)));
    }

    /// <summary>The text of the request's last message (for diagnostics that show what is missing).</summary>
    public string LastMessage()
    {
        using var document = JsonDocument.Parse(Body);
        var messages = document.RootElement.GetProperty("messages");
        var count = messages.GetArrayLength();
        return count == 0 || !messages[count - 1].TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.String
            ? string.Empty
            : content.GetString()!;
    }

    /// <inheritdoc />
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"request {Key[..12]} ({Choices} answer(s))");
}
