using System.ClientModel;
using System.ClientModel.Primitives;
using System.Collections.Concurrent;
using System.Globalization;
using ModelCompression.Diagnostics;
using OpenAI;
using OpenAI.Chat;

namespace ModelCompression.Teachers;

/// <summary>Waits <paramref name="delay"/> before a retry (tests pass one that records the delay and does not wait).</summary>
/// <param name="delay">How long to wait.</param>
/// <param name="cancellationToken">Ends the wait early with an <see cref="OperationCanceledException"/>.</param>
/// <returns>A task that completes when the wait is over.</returns>
public delegate Task RetryWait(TimeSpan delay, CancellationToken cancellationToken);

/// <summary>What one request came to: a reply, or why there is none.</summary>
/// <param name="Reply">The reply; null when the request failed.</param>
/// <param name="Failure">Why it failed (http_NNN, timeout, connection, malformed_reply); null when it did not.</param>
internal readonly record struct EndpointOutcome(EndpointReply? Reply, string? Failure);

/// <summary>
/// Sends <see cref="EndpointRequest"/>s through the OpenAI .NET package's <see cref="ChatClient"/> (its pipeline,
/// transport, per-try network timeout and error handling) with three policies of ours plugged in:
/// <list type="bullet">
/// <item>the API key, read from the environment variable at every try and sent only in the configured header (an
/// <see cref="AuthenticationPolicy"/>; nothing else of ours ever holds it);</item>
/// <item>Azure's <c>api-version</c> query parameter, once per call;</item>
/// <item>the retry policy (<see cref="EndpointRetryPolicy"/>) in place of the package's, so nothing retries twice and every
/// attempt and retry is counted where it happens; a per-try check turns a 200 reply that is not a chat completion of the
/// asked number of choices into a retryable failure.</item>
/// </list>
/// The package's logging is off: a log could carry headers.
/// </summary>
internal sealed class EndpointClient
{
    private readonly ChatClient _client;
    private readonly EndpointTeacherOptions _options;

    public EndpointClient(EndpointTeacherOptions options, RetryWait wait, EndpointCounters counters)
    {
        _options = options;
        var clientOptions = new OpenAIClientOptions
        {
            // The package appends "/chat/completions"; a trailing slash would double it.
            Endpoint = new Uri(options.Endpoint!.TrimEnd('/')),
            RetryPolicy = new EndpointRetryPolicy(options, wait, counters),
            NetworkTimeout = TimeSpan.FromSeconds(options.TimeoutSeconds),
            ClientLoggingOptions = new ClientLoggingOptions { EnableLogging = false, EnableMessageLogging = false, EnableMessageContentLogging = false },
        };
        if (options.ApiVersion is { } version)
        {
            clientOptions.AddPolicy(new ApiVersionPolicy(version), PipelinePosition.PerCall);
        }

        // The constructor that takes an authentication policy is marked experimental (OPENAI001). It is the one way to read
        // the key at request time and to send it in Azure's api-key header; the package version is pinned centrally.
#pragma warning disable OPENAI001
        _client = new ChatClient(options.Model, new EnvironmentKeyPolicy(options.ApiKeyEnv, options.ApiKeyHeader), clientOptions);
#pragma warning restore OPENAI001
    }

    /// <summary>
    /// Sends <paramref name="request"/> and waits for its reply, with the retries the options allow.
    /// </summary>
    /// <exception cref="CompressionException">MC2090 when the key's variable is unset or the endpoint answers 401, 403 or 404 (every request would fail alike).</exception>
    /// <exception cref="OperationCanceledException">When <paramref name="cancellationToken"/> is cancelled.</exception>
    public async Task<EndpointOutcome> SendAsync(EndpointRequest request, CancellationToken cancellationToken)
    {
        var requestOptions = new RequestOptions { CancellationToken = cancellationToken, ErrorOptions = ClientErrorBehaviors.NoThrow };
        requestOptions.AddPolicy(new ReplyCheckPolicy(request.Choices), PipelinePosition.PerTry);
        ClientResult result;
        try
        {
            result = await _client.CompleteChatAsync(BinaryContent.Create(BinaryData.FromString(request.Body)), requestOptions).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            // The retry policy throws the tries' exceptions together (AggregateException) when there were several.
            cancellationToken.ThrowIfCancellationRequested();
            var last = Unwrap(e);
            if (last is CompressionException known)
            {
                throw known;
            }

            return EndpointRetryPolicy.CauseOf(last) is { } cause ? new EndpointOutcome(null, cause) : throw new InvalidOperationException("The endpoint request failed unexpectedly: " + last.Message, last);
        }

        var response = result.GetRawResponse();
        if (response.Status is 401 or 403 or 404)
        {
            var what = response.Status == 404
                ? "does not know the route or the model (404): check endpoint (requests go to {endpoint}/chat/completions) and model"
                : Invariant($"refused the key ({response.Status}): check the key in the variable api_key_env names, and api_key_header");
            throw CompressionException.Error(DiagnosticCodes.EndpointTeacherUnreachable, $"The endpoint teacher {what}. No request can succeed, so the run stops; the answers so far are cached.");
        }

        if (response.IsError)
        {
            return new EndpointOutcome(null, Invariant($"http_{response.Status}"));
        }

        // The per-try check parsed this already: it cannot fail here.
        return new EndpointOutcome(EndpointReply.Parse(response.Content.ToString(), request.Choices), null);
    }

    /// <summary>The key's variable must be set before anything is sent (and its name is all the message tells).</summary>
    public static void CheckKey(EndpointTeacherOptions options)
    {
        if (options.ApiKeyEnv is { } variable && string.IsNullOrEmpty(Environment.GetEnvironmentVariable(variable)))
        {
            throw CompressionException.Error(
                DiagnosticCodes.EndpointTeacherUnreachable,
                $"The environment variable {variable} (api_key_env) is not set, so the endpoint teacher cannot be called. Set it to the API key, or use offline: true to replay the answer cache.");
        }
    }

    private static Exception Unwrap(Exception e) => e switch
    {
        AggregateException { InnerExceptions.Count: > 0 } aggregate => Unwrap(aggregate.InnerExceptions[^1]),
        ClientResultException { Status: 0, InnerException: { } inner } => Unwrap(inner),
        _ => e,
    };

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    /// <summary>Puts the key from the environment variable into the request, at every try.</summary>
    private sealed class EnvironmentKeyPolicy(string? variable, string header) : AuthenticationPolicy
    {
        public override void Process(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex)
        {
            AddKey(message);
            ProcessNext(message, pipeline, currentIndex);
        }

        public override async ValueTask ProcessAsync(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex)
        {
            AddKey(message);
            await ProcessNextAsync(message, pipeline, currentIndex).ConfigureAwait(false);
        }

        private void AddKey(PipelineMessage message)
        {
            if (variable is null)
            {
                return;
            }

            var key = Environment.GetEnvironmentVariable(variable);
            if (string.IsNullOrEmpty(key))
            {
                throw CompressionException.Error(DiagnosticCodes.EndpointTeacherUnreachable, $"The environment variable {variable} (api_key_env) was unset while the endpoint teacher ran.");
            }

            message.Request.Headers.Set(header, string.Equals(header, "Authorization", StringComparison.OrdinalIgnoreCase) ? "Bearer " + key : key);
        }
    }

    /// <summary>Adds <c>api-version</c> to the query, once per call (it runs before the retry policy).</summary>
    private sealed class ApiVersionPolicy(string version) : PipelinePolicy
    {
        public override void Process(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex)
        {
            AddVersion(message);
            ProcessNext(message, pipeline, currentIndex);
        }

        public override async ValueTask ProcessAsync(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex)
        {
            AddVersion(message);
            await ProcessNextAsync(message, pipeline, currentIndex).ConfigureAwait(false);
        }

        private void AddVersion(PipelineMessage message)
        {
            var uri = message.Request.Uri!;
            var separator = uri.Query.Length > 0 ? "&" : "?";
            message.Request.Uri = new Uri(uri.AbsoluteUri + separator + "api-version=" + Uri.EscapeDataString(version));
        }
    }

    /// <summary>After each try: a 200 reply must be a chat completion with the asked number of choices, or the try failed.</summary>
    private sealed class ReplyCheckPolicy(int choices) : PipelinePolicy
    {
        public override void Process(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex)
        {
            ProcessNext(message, pipeline, currentIndex);
            Check(message);
        }

        public override async ValueTask ProcessAsync(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex)
        {
            await ProcessNextAsync(message, pipeline, currentIndex).ConfigureAwait(false);
            Check(message);
        }

        private void Check(PipelineMessage message)
        {
            if (message.Response is { IsError: false } response)
            {
                try
                {
                    // The transport has buffered the body by now (a dropped connection failed the try before this).
                    _ = EndpointReply.Parse(response.Content.ToString(), choices);
                }
                catch (FormatException e)
                {
                    throw new MalformedReplyException(e.Message, e);
                }
            }
        }
    }
}

/// <summary>A 200 reply that is not a chat completion of the asked number of choices (retried like a dropped connection).</summary>
internal sealed class MalformedReplyException(string message, Exception inner) : Exception(message, inner);

/// <summary>Thread-safe counts of what the client did, for <see cref="EndpointUsage"/>.</summary>
internal sealed class EndpointCounters
{
    private readonly ConcurrentDictionary<string, int> _retries = new(StringComparer.Ordinal);
    private int _attempts;

    /// <summary>HTTP attempts, retries included.</summary>
    public int Attempts => Volatile.Read(ref _attempts);

    /// <summary>Retries by cause.</summary>
    public IReadOnlyDictionary<string, int> Retries => new SortedDictionary<string, int>(_retries, StringComparer.Ordinal);

    public void Attempt() => Interlocked.Increment(ref _attempts);

    public void Retry(string cause) => _retries.AddOrUpdate(cause, 1, (_, count) => count + 1);
}

/// <summary>
/// The endpoint teacher's retry policy, plugged into the OpenAI package's pipeline in place of its own: retries timeouts,
/// dropped connections, malformed 200 replies and HTTP 408, 413, 429 and 5xx, up to max_retries times. The delay is the
/// server's when it gives one (<c>retry-after-ms</c>, <c>x-ms-retry-after-ms</c>, <c>Retry-After</c> in seconds or as
/// an HTTP date), else exponential backoff from retry_delay_seconds, doubled per retry, capped at retry_max_delay_seconds,
/// with jitter (a random half to all of it) so that concurrent requests do not retry in step.
/// </summary>
internal sealed class EndpointRetryPolicy : ClientRetryPolicy
{
    private readonly int _maxRetries;
    private readonly TimeSpan _baseDelay;
    private readonly TimeSpan _maxDelay;
    private readonly RetryWait _wait;
    private readonly EndpointCounters _counters;

    public EndpointRetryPolicy(EndpointTeacherOptions options, RetryWait wait, EndpointCounters counters)
        : base(options.MaxRetries)
    {
        _maxRetries = options.MaxRetries;
        _baseDelay = TimeSpan.FromSeconds(options.RetryDelaySeconds);
        _maxDelay = TimeSpan.FromSeconds(options.RetryMaxDelaySeconds);
        _wait = wait;
        _counters = counters;
    }

    /// <summary>The retry cause of an exception a try ended in (timeout, connection, malformed_reply), or null for one that is not retried.</summary>
    public static string? CauseOf(Exception exception) => exception switch
    {
        // The transport wraps a failure before any response (a connection reset while the headers were awaited, as
        // a server that drops the connection gives) in a ClientResultException without a status.
        ClientResultException { Status: 0, InnerException: { } inner } => CauseOf(inner),
        MalformedReplyException => "malformed_reply",
        OperationCanceledException or TimeoutException => "timeout",
        HttpRequestException or IOException or ObjectDisposedException => "connection",
        _ => null,
    };

    /// <summary>The retry cause of an HTTP status (its number) for 408, 413, 429 and 5xx, else null.</summary>
    public static string? CauseOf(int status) =>
        status is 408 or 413 or 429 or >= 500 and <= 599 ? status.ToString(CultureInfo.InvariantCulture) : null;

    /// <summary>The delay a reply asks for before the next try, or null when it asks for none.</summary>
    public static TimeSpan? ServerDelay(PipelineResponse response, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(response);
        foreach (var name in (string[])["retry-after-ms", "x-ms-retry-after-ms"])
        {
            if (response.Headers.TryGetValue(name, out var ms) && double.TryParse(ms, NumberStyles.Float, CultureInfo.InvariantCulture, out var milliseconds) && milliseconds >= 0)
            {
                return TimeSpan.FromMilliseconds(milliseconds);
            }
        }

        if (response.Headers.TryGetValue("Retry-After", out var retryAfter) && retryAfter is not null)
        {
            if (int.TryParse(retryAfter, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds))
            {
                return TimeSpan.FromSeconds(seconds);
            }

            if (DateTimeOffset.TryParseExact(retryAfter.Trim(), "r", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var when))
            {
                return when > now ? when - now : TimeSpan.Zero;
            }
        }

        return null;
    }

    /// <summary>The backoff before retry number <paramref name="retry"/> (from 1) with jitter <paramref name="jitter"/> in [0, 1).</summary>
    public TimeSpan Backoff(int retry, double jitter)
    {
        var full = Math.Min(_maxDelay.TotalSeconds, _baseDelay.TotalSeconds * Math.Pow(2, retry - 1));
        return TimeSpan.FromSeconds(full * (0.5 + (0.5 * jitter)));
    }

    protected override void OnSendingRequest(PipelineMessage message) => CountAttempt(message);

    protected override ValueTask OnSendingRequestAsync(PipelineMessage message)
    {
        CountAttempt(message);
        return default;
    }

    protected override bool ShouldRetry(PipelineMessage message, Exception? exception)
    {
        var tries = TriesOf(message);
        if (tries.Attempts - 1 >= _maxRetries || message.CancellationToken.IsCancellationRequested)
        {
            return false;
        }

        string? cause;
        TimeSpan? serverDelay = null;
        if (exception is not null)
        {
            cause = CauseOf(exception);
        }
        else
        {
            cause = CauseOf(message.Response!.Status);
            serverDelay = ServerDelay(message.Response, DateTimeOffset.UtcNow);
        }

        if (cause is null)
        {
            return false;
        }

        _counters.Retry(cause);
        // After an exception the message may still hold an earlier try's response: keep this try's own delay for GetNextDelay.
        tries.ServerDelay = serverDelay;
        return true;
    }

    protected override TimeSpan GetNextDelay(PipelineMessage message, int tryCount)
    {
        var tries = TriesOf(message);
        return tries.ServerDelay ?? Backoff(tries.Attempts, Random.Shared.NextDouble());
    }

    protected override Task WaitAsync(TimeSpan time, CancellationToken cancellationToken) => _wait(time, cancellationToken);

    protected override void Wait(TimeSpan time, CancellationToken cancellationToken) => _wait(time, cancellationToken).GetAwaiter().GetResult();

    private static Tries TriesOf(PipelineMessage message)
    {
        if (message.TryGetProperty(typeof(Tries), out var value) && value is Tries tries)
        {
            return tries;
        }

        tries = new Tries();
        message.SetProperty(typeof(Tries), tries);
        return tries;
    }

    private void CountAttempt(PipelineMessage message)
    {
        TriesOf(message).Attempts++;
        _counters.Attempt();
    }

    /// <summary>One message's tries (the package keeps its own count internal) and the delay its last reply asked for.</summary>
    private sealed class Tries
    {
        public int Attempts { get; set; }

        public TimeSpan? ServerDelay { get; set; }
    }
}
