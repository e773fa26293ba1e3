using System.Globalization;
using System.Text.Json;
using ModelCompression.Diagnostics;
using ModelCompression.Generation;
using ModelCompression.Text;

namespace ModelCompression.Serving;

/// <summary>Which OpenAI route a generation request came to.</summary>
internal enum RequestKind
{
    /// <summary><c>POST /v1/chat/completions</c>.</summary>
    Chat,

    /// <summary><c>POST /v1/completions</c>.</summary>
    Completion,
}

/// <summary>A generation request, checked and turned into what the engine takes.</summary>
/// <param name="Kind">Its route.</param>
/// <param name="Model">The model it names.</param>
/// <param name="Prompts">The prompts' token ids (a chat request has one).</param>
/// <param name="Options">How to decode: the model's defaults with the request's fields over them.</param>
/// <param name="Stream">Whether to answer with server-sent events.</param>
/// <param name="IncludeUsage">Whether a stream ends with a usage chunk (<c>stream_options.include_usage</c>).</param>
/// <param name="Logprobs">Whether to return log-probabilities.</param>
/// <param name="TopLogprobs">How many of the most likely tokens to return per position.</param>
/// <param name="TokensAsIds">vLLM's <c>return_tokens_as_token_ids</c>: tokens in log-probabilities are written <c>token_id:N</c>.</param>
internal sealed record GenerationRequest(
    RequestKind Kind,
    ServedModel Model,
    IReadOnlyList<IReadOnlyList<int>> Prompts,
    GenerationOptions Options,
    bool Stream,
    bool IncludeUsage,
    bool Logprobs,
    int TopLogprobs,
    bool TokensAsIds)
{
    /// <summary>Most entries of <c>stop</c>.</summary>
    public const int MaxStops = 16;

    /// <summary>Most <c>top_logprobs</c> (OpenAI's limit for chat).</summary>
    public const int MaxTopLogprobs = 20;

    /// <summary>The prompt tokens usage counts.</summary>
    public int PromptTokens => Prompts.Sum(p => p.Count);

    /// <summary>
    /// Reads the request body <paramref name="root"/> for <paramref name="kind"/>: the model it names (404 MC2067 when
    /// <paramref name="find"/> knows none of that id) and every field the server understands, each checked (400 MC2066
    /// naming the field). Fields the server does not know are ignored, as OpenAI-compatible servers do; known fields
    /// asking for what the server cannot do (tools, a JSON response format, logit bias, echo, ...) are refused.
    /// </summary>
    public static GenerationRequest Parse(RequestKind kind, JsonElement root, Func<string, ServedModel?> find, ServeOptions options)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new ServeRequestException(400, DiagnosticCodes.ServeRequestUnreadable, "The request body must be a JSON object.");
        }

        var fields = new Fields(root);
        var modelId = fields.String("model") ?? throw ServeRequestException.Invalid("model", "'model' is required: the id of a served model (GET /v1/models lists them).");
        var served = find(modelId) ?? throw new ServeRequestException(404, DiagnosticCodes.ServeModelNotFound, $"The model '{modelId}' does not exist here; GET /v1/models lists the served models.", "model");
        var model = served.Model;
        RefuseUnsupported(kind, fields);

        var n = fields.Integer("n", 1, options.MaxChoices) ?? 1;
        var maxTokens = fields.Integer("max_completion_tokens", 1, model.Config.ContextLength) ?? fields.Integer("max_tokens", 1, model.Config.ContextLength);
        var temperature = fields.Number("temperature", 0, 2);
        var topK = fields.Integer("top_k", -1, int.MaxValue);
        var stops = Stops(fields);
        var defaults = model.Defaults;
        var options0 = defaults with
        {
            MaxNewTokens = maxTokens ?? defaults.MaxNewTokens,
            Temperature = temperature ?? defaults.Temperature,
            TopP = fields.Number("top_p", 0, 1, lowOpen: true) ?? defaults.TopP,
            TopK = topK is { } k ? Math.Max(0, k) : defaults.TopK,
            SamplesPerPrompt = n,
            StopStrings = [.. defaults.StopStrings.Concat(stops).Distinct(StringComparer.Ordinal)],
            FrequencyPenalty = fields.Number("frequency_penalty", -2, 2) ?? 0,
            PresencePenalty = fields.Number("presence_penalty", -2, 2) ?? 0,
            BatchSize = options.MaxBatch,
        };
        var tokenizer = model.Tokenizer;
        var seed = fields.Long("seed");
        var decoding = options0 with
        {
            // Without a seed a sampled request draws its own (OpenAI's behaviour); greedy decoding makes no draw.
            Seed = options0.IsGreedy ? 0 : seed ?? Random.Shared.NextInt64(),
            Decode = options0.StopStrings.Count > 0 ? ids => tokenizer.Decode(ids) : null,
        };

        bool logprobs;
        int top;
        IReadOnlyList<IReadOnlyList<int>> prompts;
        if (kind == RequestKind.Chat)
        {
            logprobs = fields.Bool("logprobs") ?? false;
            top = fields.Integer("top_logprobs", 0, MaxTopLogprobs) ?? 0;
            if (top > 0 && !logprobs)
            {
                throw ServeRequestException.Invalid("top_logprobs", "'top_logprobs' needs 'logprobs': true.");
            }

            if (!model.IsChat)
            {
                throw ServeRequestException.Invalid("model", $"The model '{modelId}' has no chat template: it continues plain text. Send its prompts to /v1/completions.");
            }

            prompts = [model.PromptIds(Messages(fields))];
        }
        else
        {
            var legacy = fields.Integer("logprobs", 0, MaxTopLogprobs);
            (logprobs, top) = (legacy is not null, legacy ?? 0);
            prompts = ReadPrompts(fields, served);
        }

        var stream = fields.Bool("stream") ?? false;
        var includeUsage = fields.Object("stream_options") is { } streamOptions && new Fields(streamOptions, "stream_options").Bool("include_usage") == true;
        return new GenerationRequest(kind, served, prompts, decoding with { TopLogprobs = top }, stream, includeUsage, logprobs, top, fields.Bool("return_tokens_as_token_ids") ?? false);
    }

    private static void RefuseUnsupported(RequestKind kind, Fields fields)
    {
        foreach (var name in new[] { "tools", "functions" })
        {
            if (fields.Get(name) is { ValueKind: JsonValueKind.Array } list && list.GetArrayLength() > 0)
            {
                throw ServeRequestException.Invalid(name, $"'{name}': the served models do not call tools.");
            }
        }

        if (fields.Get("tool_choice") is { } choice && !(choice.ValueKind == JsonValueKind.String && choice.GetString() is "none" or "auto"))
        {
            throw ServeRequestException.Invalid("tool_choice", "'tool_choice': the served models do not call tools.");
        }

        if (fields.Object("response_format") is { } format && new Fields(format, "response_format").String("type") is { } type && type != "text")
        {
            throw ServeRequestException.Invalid("response_format", $"'response_format' '{type}' is not supported: the server does not constrain answers to a format; ask for text.");
        }

        if (fields.Object("logit_bias") is { } bias && bias.EnumerateObject().Any())
        {
            throw ServeRequestException.Invalid("logit_bias", "'logit_bias' is not supported.");
        }

        if (kind == RequestKind.Completion)
        {
            if (fields.Bool("echo") == true)
            {
                throw ServeRequestException.Invalid("echo", "'echo' is not supported: the answer holds the completion only.");
            }

            if (fields.String("suffix") is { Length: > 0 })
            {
                throw ServeRequestException.Invalid("suffix", "'suffix' is not supported (the served decoders do not fill in the middle).");
            }

            if (fields.Integer("best_of", 1, int.MaxValue) is { } bestOf && bestOf != (fields.Integer("n", 1, int.MaxValue) ?? 1))
            {
                throw ServeRequestException.Invalid("best_of", "'best_of' other than 'n' is not supported.");
            }
        }
    }

    private static List<string> Stops(Fields fields)
    {
        var stop = fields.Get("stop");
        List<string> stops = stop?.ValueKind switch
        {
            null => [],
            JsonValueKind.String => [stop.Value.GetString()!],
            JsonValueKind.Array when stop.Value.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String) => [.. stop.Value.EnumerateArray().Select(e => e.GetString()!)],
            _ => throw ServeRequestException.Invalid("stop", "'stop' must be a string or an array of strings."),
        };
        if (stops.Count > MaxStops || stops.Any(s => s.Length == 0))
        {
            throw ServeRequestException.Invalid("stop", string.Create(CultureInfo.InvariantCulture, $"'stop' takes at most {MaxStops} non-empty strings."));
        }

        return stops;
    }

    private static List<ChatMessage> Messages(Fields fields)
    {
        if (fields.Get("messages") is not { ValueKind: JsonValueKind.Array } array || array.GetArrayLength() == 0)
        {
            throw ServeRequestException.Invalid("messages", "'messages' must be a non-empty array of {role, content} objects.");
        }

        var messages = new List<ChatMessage>();
        var index = 0;
        foreach (var item in array.EnumerateArray())
        {
            var at = string.Create(CultureInfo.InvariantCulture, $"messages[{index++}]");
            if (item.ValueKind != JsonValueKind.Object)
            {
                throw ServeRequestException.Invalid(at, $"'{at}' must be an object with 'role' and 'content'.");
            }

            var message = new Fields(item, at);
            var role = message.String("role") switch
            {
                "system" or "developer" => ChatRole.System,
                "user" => ChatRole.User,
                "assistant" => ChatRole.Assistant,
                null => throw ServeRequestException.Invalid($"{at}.role", $"'{at}.role' is required."),
                var other => throw ServeRequestException.Invalid($"{at}.role", $"'{at}.role' '{other}' is not supported: use system, developer, user or assistant."),
            };
            messages.Add(new ChatMessage(role, Content(message.Get("content"), $"{at}.content")));
        }

        return messages;
    }

    /// <summary>A message's content: a string, or an array of text parts (joined).</summary>
    private static string Content(JsonElement? content, string at)
    {
        switch (content?.ValueKind)
        {
            case JsonValueKind.String:
                return content.Value.GetString()!;
            case JsonValueKind.Array:
                var parts = new List<string>();
                foreach (var part in content.Value.EnumerateArray())
                {
                    if (part.ValueKind != JsonValueKind.Object || new Fields(part, at).String("type") != "text" || new Fields(part, at).String("text") is not { } text)
                    {
                        throw ServeRequestException.Invalid(at, $"'{at}' holds a part that is not {{\"type\": \"text\", \"text\": ...}}: the served models read text only.");
                    }

                    parts.Add(text);
                }

                return string.Concat(parts);
            default:
                throw ServeRequestException.Invalid(at, $"'{at}' must be a string or an array of text parts.");
        }
    }

    /// <summary>A completion's prompts: a string, an array of strings, an array of token ids, or an array of those.</summary>
    private static List<IReadOnlyList<int>> ReadPrompts(Fields fields, ServedModel served)
    {
        var model = served.Model;
        var prompt = fields.Get("prompt") ?? throw ServeRequestException.Invalid("prompt", "'prompt' is required: a string, an array of strings, or token ids.");
        List<IReadOnlyList<int>> prompts = prompt.ValueKind switch
        {
            JsonValueKind.String => [model.TextIds(prompt.GetString()!)],
            JsonValueKind.Array when prompt.GetArrayLength() > 0 && prompt.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String) => [.. prompt.EnumerateArray().Select(e => model.TextIds(e.GetString()!))],
            JsonValueKind.Array when prompt.GetArrayLength() > 0 && prompt.EnumerateArray().All(e => e.ValueKind == JsonValueKind.Number) => [TokenIds(prompt, "prompt", served)],
            JsonValueKind.Array when prompt.GetArrayLength() > 0 && prompt.EnumerateArray().All(e => e.ValueKind == JsonValueKind.Array) => [.. prompt.EnumerateArray().Select((e, i) => TokenIds(e, string.Create(CultureInfo.InvariantCulture, $"prompt[{i}]"), served))],
            _ => throw ServeRequestException.Invalid("prompt", "'prompt' must be a string, a non-empty array of strings, an array of token ids, or an array of those."),
        };
        if (prompts.FindIndex(p => p.Count == 0) is var empty and >= 0)
        {
            throw ServeRequestException.Invalid("prompt", string.Create(CultureInfo.InvariantCulture, $"prompt {empty} is empty: a decoder needs at least one token to continue."));
        }

        return prompts;
    }

    private static IReadOnlyList<int> TokenIds(JsonElement array, string at, ServedModel served)
    {
        var vocabulary = served.Model.Tokenizer.VocabularySize;
        var ids = new List<int>();
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt32(out var id) || id < 0 || id >= vocabulary)
            {
                throw ServeRequestException.Invalid(at, string.Create(CultureInfo.InvariantCulture, $"'{at}' holds {item.GetRawText()}, not a token id of '{served.Id}' (0 to {vocabulary - 1})."));
            }

            ids.Add(id);
        }

        var limit = served.Model.PromptLimit;
        return ids.Count > limit ? ids[^limit..] : ids;
    }

    /// <summary>Typed reads of a request object's fields; JSON null is the same as absent.</summary>
    private readonly struct Fields(JsonElement element, string? prefix = null)
    {
        public JsonElement? Get(string name) =>
            element.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null ? value : null;

        public string? String(string name) => Get(name) switch
        {
            null => null,
            { ValueKind: JsonValueKind.String } value => value.GetString(),
            _ => throw Wrong(name, "a string"),
        };

        public bool? Bool(string name) => Get(name) switch
        {
            null => null,
            { ValueKind: JsonValueKind.True } => true,
            { ValueKind: JsonValueKind.False } => false,
            _ => throw Wrong(name, "true or false"),
        };

        public JsonElement? Object(string name) => Get(name) switch
        {
            null => null,
            { ValueKind: JsonValueKind.Object } value => value,
            _ => throw Wrong(name, "an object"),
        };

        public double? Number(string name, double min, double max, bool lowOpen = false) => Get(name) switch
        {
            null => null,
            { ValueKind: JsonValueKind.Number } value when value.GetDouble() is var number && (lowOpen ? number > min : number >= min) && number <= max => number,
            _ => throw Wrong(name, string.Create(CultureInfo.InvariantCulture, $"a number {(lowOpen ? "above" : "from")} {min} {(lowOpen ? "up " : "")}to {max}")),
        };

        public int? Integer(string name, int min, int max) => Get(name) switch
        {
            null => null,
            { ValueKind: JsonValueKind.Number } value when value.TryGetInt32(out var number) && number >= min && number <= max => number,
            _ => throw Wrong(name, max == int.MaxValue ? string.Create(CultureInfo.InvariantCulture, $"a whole number of at least {min}") : string.Create(CultureInfo.InvariantCulture, $"a whole number from {min} to {max}")),
        };

        public long? Long(string name) => Get(name) switch
        {
            null => null,
            { ValueKind: JsonValueKind.Number } value when value.TryGetInt64(out var number) => number,
            _ => throw Wrong(name, "a whole number"),
        };

        private ServeRequestException Wrong(string name, string what)
        {
            var path = prefix is null ? name : $"{prefix}.{name}";
            var raw = element.GetProperty(name).GetRawText();
            return ServeRequestException.Invalid(path, $"'{path}' must be {what}, not {(raw.Length > 40 ? raw[..40] + "..." : raw)}.");
        }
    }
}
