using System.Globalization;
using System.Text.RegularExpressions;
using ModelCompression.Common;
using ModelCompression.Evaluation;

namespace ModelCompression.Teachers;

/// <summary>
/// The recipe's <c>teacher: { endpoint: … }</c> mapping: a teacher behind an OpenAI-compatible chat-completions endpoint
/// (Azure AI, Azure OpenAI, vLLM, SGLang, Ollama, llama.cpp's server, <c>dotnet compress serve</c>). The sampling defaults
/// are those of Azure's distillation job (temperature 0.2, top_p 0.1, 128 new tokens, 1024 for summaries, 5 requests at
/// once, min_success_ratio 0.7).
/// <para>
/// <b>The endpoint URL</b> is the base URL the server's documentation gives to OpenAI clients, used as it is: requests go to
/// <c>{endpoint}/chat/completions</c>. So vLLM, SGLang, Ollama, llama.cpp and <c>serve</c> take <c>http://host:port/v1</c>,
/// OpenAI <c>https://api.openai.com/v1</c>, Azure OpenAI's v1 API <c>https://NAME.openai.azure.com/openai/v1</c>, and Azure
/// AI's model inference <c>https://NAME.services.ai.azure.com/models</c> with <see cref="ApiVersion"/> (it needs an
/// <c>api-version</c> query parameter) and usually <c>api_key_header: api-key</c>. Nothing is appended or guessed: a
/// server that serves chat completions at the root (Azure AI serverless <c>https://NAME.REGION.models.ai.azure.com</c>)
/// is given as it is.
/// </para>
/// <para>
/// <b>The key</b> is never in the recipe: <see cref="ApiKeyEnv"/> names the environment variable that holds it, read at
/// request time and sent only in the <see cref="ApiKeyHeader"/> header.
/// </para>
/// </summary>
public sealed record EndpointTeacherOptions
{
    /// <summary>The most alternatives per token OpenAI's API returns (top_logprobs).</summary>
    public const int MaxTopLogprobs = 20;

    // An environment variable name as POSIX shells accept it.
    private static readonly Regex VariableName = new("^[A-Za-z_][A-Za-z0-9_]*$", RegexOptions.CultureInvariant);

    // An HTTP header name (RFC 9110 token).
    private static readonly Regex HeaderName = new("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", RegexOptions.CultureInvariant);

    /// <summary>The base URL of the OpenAI-compatible API; requests go to <c>{endpoint}/chat/completions</c>.</summary>
    [Option("endpoint", "Base URL of the OpenAI-compatible API, as the server's docs give it to OpenAI clients (http://127.0.0.1:8000/v1 for vLLM, https://NAME.services.ai.azure.com/models for Azure AI with api_version); requests go to {endpoint}/chat/completions. No credentials in it: use api_key_env.")]
    public string? Endpoint { get; init; }

    /// <summary>The model (or Azure deployment) name sent with every request; part of every cache key.</summary>
    [Option("model", "The model name sent with every request (the served model's name, or the Azure deployment's); part of every answer's cache key.")]
    public string? Model { get; init; }

    /// <summary>The name of the environment variable holding the API key; null for a server without keys.</summary>
    [Option("api_key_env", "The NAME of the environment variable that holds the API key (never the key itself); leave it out for a local server without keys.")]
    public string? ApiKeyEnv { get; init; }

    /// <summary>The header the key is sent in: <c>Authorization</c> (as <c>Bearer KEY</c>) or another header name (the key alone).</summary>
    [Option("api_key_header", "The header the key goes in: Authorization (sent as 'Bearer KEY': OpenAI, vLLM, Azure AI serverless) or another header name, sent the key alone (api-key for Azure OpenAI and Azure AI services keys).")]
    public string ApiKeyHeader { get; init; } = "Authorization";

    /// <summary>The <c>api-version</c> query parameter Azure's APIs ask for; null for none.</summary>
    [Option("api_version", "The api-version query parameter added to every request (Azure AI model inference: 2024-05-01-preview); leave it out for other servers.")]
    public string? ApiVersion { get; init; }

    /// <summary>Sampling temperature.</summary>
    [Option("temperature", "Sampling temperature (Azure's distillation default 0.2; 0 is greedy on most servers).", Min = 0, Max = 2)]
    public double Temperature { get; init; } = 0.2;

    /// <summary>Nucleus sampling.</summary>
    [Option("top_p", "Nucleus sampling: sample from the most likely tokens whose probabilities reach top_p (Azure's distillation default 0.1).", Min = 0, MinExclusive = true, Max = 1)]
    public double TopP { get; init; } = 0.1;

    /// <summary>Tokens an answer may have; 0 for the task's default.</summary>
    [Option("max_tokens", "Tokens an answer may have (0: the task's default, 128, or 1024 for summarization, 16 for a class name in task: classification); an answer cut there is dropped as unfinished. Sent as max_tokens, which every OpenAI-compatible server reads.", Min = 0, Max = 1000000)]
    public int MaxTokens { get; init; }

    /// <summary>Stop sequences.</summary>
    [Option("stop", "Sequences that end an answer (the server's own end of text always does).")]
    public string[] Stop { get; init; } = [];

    /// <summary>Frequency penalty.</summary>
    [Option("frequency_penalty", "Penalty on tokens by how often they already appear in the answer (-2 to 2; 0 sends none).", Min = -2, Max = 2)]
    public double FrequencyPenalty { get; init; }

    /// <summary>Presence penalty.</summary>
    [Option("presence_penalty", "Penalty on tokens that already appear in the answer (-2 to 2; 0 sends none).", Min = -2, Max = 2)]
    public double PresencePenalty { get; init; }

    /// <summary>The sampling seed; -1 sends none.</summary>
    [Option("seed", "Sampling seed sent with every request, for servers that honour it (-1: none).", Min = -1, Max = int.MaxValue)]
    public int Seed { get; init; } = -1;

    /// <summary>Alternatives per answer token to keep, with their log-probabilities; 0 for none.</summary>
    [Option("top_logprobs", "Alternatives per answer token whose log-probabilities are asked for and kept with every answer (0: none; at most 20), for token-level distillation.", Min = 0, Max = MaxTopLogprobs)]
    public int TopLogprobs { get; init; }

    /// <summary>
    /// Declares that the endpoint's model splits text into the student's tokens, so its top_logprobs can teach the student
    /// token by token (distill alpha above 0). Checked on a probe request before the pool is asked.
    /// </summary>
    [Option("shares_tokenizer", "Declare that the endpoint's model splits text into the same tokens as the student's tokenizer (a Qwen teacher for a Qwen student, an o200k_base model for a tiktoken o200k_base student), so distill alpha above 0 learns its top_logprobs token by token. The first request is a probe: its answer's tokens must be the student's, or the run stops before the pool is asked (MC2078).")]
    public bool SharesTokenizer { get; init; }

    /// <summary>Answers per prompt, asked as <c>n</c> in one request.</summary>
    [Option("samples_per_prompt", "Answers per prompt, asked in one request as n (more than one needs a temperature above 0).", Min = 1, Max = 128)]
    public int SamplesPerPrompt { get; init; } = 1;

    /// <summary>Whether identical answers to one prompt are all kept.</summary>
    [Option("keep_duplicates", "Keep identical answers to one prompt (by default the first is kept and the others are dropped and counted).")]
    public bool KeepDuplicates { get; init; }

    /// <summary>Requests in flight at once.</summary>
    [Option("request_batch_size", "Requests in flight at once (Azure's distillation default 5); answers come back in prompt order whatever the order they arrive in.", Min = 1, Max = 1024)]
    public int RequestBatchSize { get; init; } = 5;

    /// <summary>The share of answers that must be usable, or the run fails.</summary>
    [Option("min_success_ratio", "The share of the teacher's answers that must come back usable (a reply, finished, parsed); below it the run fails with the counts (Azure's default 0.7). Prompts the budget left unasked do not count.", Min = 0, Max = 1)]
    public double MinSuccessRatio { get; init; } = 0.7;

    /// <summary>Seconds one attempt may take before it is abandoned and retried.</summary>
    [Option("timeout_seconds", "Seconds one attempt may take (sending, the server's work, reading the reply) before it is abandoned and retried.", Min = 0, MinExclusive = true, Max = 3600)]
    public double TimeoutSeconds { get; init; } = 120;

    /// <summary>Retries of one request after its first attempt.</summary>
    [Option("max_retries", "Retries of one request after its first attempt, on timeouts, dropped connections and HTTP 408, 413, 429 and 5xx.", Min = 0, Max = 100)]
    public int MaxRetries { get; init; } = 5;

    /// <summary>The first retry's base delay; each retry doubles it, with jitter, up to <see cref="RetryMaxDelaySeconds"/>.</summary>
    [Option("retry_delay_seconds", "The first retry's delay; each further retry doubles it (with random jitter of up to half), up to retry_max_delay_seconds. A server's Retry-After, retry-after-ms or x-ms-retry-after-ms wins when it gives one.", Min = 0, Max = 600)]
    public double RetryDelaySeconds { get; init; } = 1;

    /// <summary>The longest backoff delay (a server's own Retry-After is honoured whatever it is).</summary>
    [Option("retry_max_delay_seconds", "The longest backoff delay between retries (a server's own Retry-After is honoured as it is).", Min = 0, Max = 3600)]
    public double RetryMaxDelaySeconds { get; init; } = 60;

    /// <summary>The most requests the pool may cost; 0 for no limit.</summary>
    [Option("budget_requests", "The most requests the pool's answers may cost, cached ones included (0: no limit); at the budget no request is sent, the answers so far are kept and the rest are counted as not asked.", Min = 0, Max = int.MaxValue)]
    public int BudgetRequests { get; init; }

    /// <summary>The most tokens (prompt and completion) the pool may cost; 0 for no limit.</summary>
    [Option("budget_tokens", "The most tokens (prompt and completion, from the replies' usage, cached ones included) the pool's answers may cost (0: no limit); requests in flight when it is reached still finish.", Min = 0, Max = 1e15)]
    public double BudgetTokens { get; init; }

    /// <summary>Replay the answer cache only; never call the endpoint.</summary>
    [Option("offline", "Replay the answer cache only and never call the endpoint (what CI uses); a missing answer fails the run with the list of missing requests.")]
    public bool Offline { get; init; }

    /// <summary>A system message for prompts that have none.</summary>
    [Option("system_prompt", "A system message sent first with every prompt that has none of its own.")]
    public string? SystemPrompt { get; init; }

    /// <summary>Ask for reasoning first and the answer as JSON; the answer field is kept.</summary>
    [Option("chain_of_thought", "Ask the teacher to reason in at most reasoning_words words and reply with JSON {\"reason\": ..., \"answer\": ...}; the answer is kept, the reason stays in the cache; a reply that is not that JSON is dropped and counted.")]
    public bool ChainOfThought { get; init; }

    /// <summary>The most words of reasoning asked for with chain of thought.</summary>
    [Option("reasoning_words", "With chain_of_thought: the most words of reasoning the teacher is asked for.", Min = 1, Max = 10000)]
    public int ReasoningWords { get; init; } = 100;

    /// <summary>The user message's template ({content} is the prompt); null for the task's default.</summary>
    [Option("prompt_template", "How the prompt's last user message is put to the teacher; {content} is the message (default: the task's template, see TeacherPrompts). In task: classification, {content} is the text and {labels} the class names, comma-separated (default: 'Classify the text as exactly one of: {labels}. Reply with the label only.' and the text).")]
    public string? PromptTemplate { get; init; }

    /// <summary>The new tokens an answer to <paramref name="task"/> may have: <see cref="MaxTokens"/>, or the task's default.</summary>
    public int AnswerTokens(GenerativeTask task)
    {
        ArgumentNullException.ThrowIfNull(task);
        return MaxTokens > 0 ? MaxTokens : task.DefaultMaxNewTokens;
    }

    /// <summary>
    /// What is wrong with the options, each with the key it is about (empty when nothing): a missing or non-http(s)
    /// endpoint or one with credentials in it, a missing model, a variable or header name that cannot be one, several
    /// samples with greedy sampling, an empty stop sequence, a prompt template without <c>{content}</c>, reasoning words
    /// without chain of thought, a budget with offline replay, a shared tokenizer without top_logprobs. Ranges of single values are the binder's to check.
    /// </summary>
    public IEnumerable<(string Key, string Problem)> Problems()
    {
        if (string.IsNullOrWhiteSpace(Endpoint))
        {
            yield return ("endpoint", "endpoint is missing: give the server's OpenAI base URL, e.g. http://127.0.0.1:8000/v1.");
        }
        else if (!Uri.TryCreate(Endpoint, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            yield return ("endpoint", "endpoint must be an absolute http:// or https:// URL, e.g. http://127.0.0.1:8000/v1.");
        }
        else if (uri.UserInfo.Length > 0)
        {
            // Never echo the URL: its user info may be a secret.
            yield return ("endpoint", "endpoint holds credentials (user:password@); remove them and put the key in the environment variable api_key_env names.");
        }
        else if (uri.Query.Length > 0 || uri.Fragment.Length > 0)
        {
            yield return ("endpoint", "endpoint must not have a query or fragment; give Azure's api-version as api_version.");
        }

        if (string.IsNullOrWhiteSpace(Model))
        {
            yield return ("model", "model is missing: the served model's name (or the Azure deployment's) is sent with every request and keys the answer cache.");
        }

        if (ApiKeyEnv is not null && !VariableName.IsMatch(ApiKeyEnv))
        {
            yield return ("api_key_env", "api_key_env must be the NAME of an environment variable (letters, digits, '_'), not the key itself.");
        }

        if (!HeaderName.IsMatch(ApiKeyHeader))
        {
            yield return ("api_key_header", Invariant($"api_key_header '{ApiKeyHeader}' is not an HTTP header name (Authorization or api-key)."));
        }

        if (ApiVersion is { } version && (version.Length == 0 || version.Any(c => char.IsWhiteSpace(c) || c is '&' or '#' or '?')))
        {
            yield return ("api_version", "api_version must be a version like 2024-05-01-preview, without spaces or URL punctuation.");
        }

        if (SamplesPerPrompt > 1 && Temperature == 0)
        {
            yield return ("samples_per_prompt", Invariant($"samples_per_prompt {SamplesPerPrompt} with temperature 0 gives {SamplesPerPrompt} identical answers; set a temperature above 0 or ask for 1 sample."));
        }

        if (Stop.Any(s => s.Length == 0))
        {
            yield return ("stop", "stop holds an empty sequence, which would end every answer at once.");
        }

        if (PromptTemplate is { } template && !template.Contains(TeacherPrompts.ContentPlaceholder, StringComparison.Ordinal))
        {
            yield return ("prompt_template", $"prompt_template must contain {TeacherPrompts.ContentPlaceholder}, where the prompt goes.");
        }

        if (!ChainOfThought && ReasoningWords != new EndpointTeacherOptions().ReasoningWords)
        {
            yield return ("reasoning_words", "reasoning_words applies with chain_of_thought: true only.");
        }

        if (SharesTokenizer && TopLogprobs == 0)
        {
            yield return ("shares_tokenizer", "shares_tokenizer lets the student learn the teacher's token distributions, which come as top_logprobs: set top_logprobs (1 to 20; 5 is usual).");
        }

        if (Offline && (BudgetRequests > 0 || BudgetTokens > 0))
        {
            yield return (BudgetRequests > 0 ? "budget_requests" : "budget_tokens", "a budget limits requests sent, and offline replay sends none; remove the budget or offline.");
        }

        if (RetryMaxDelaySeconds < RetryDelaySeconds)
        {
            yield return ("retry_max_delay_seconds", Invariant($"retry_max_delay_seconds {RetryMaxDelaySeconds} is below retry_delay_seconds {RetryDelaySeconds}."));
        }
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
