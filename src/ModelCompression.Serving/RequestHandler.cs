using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using ModelCompression.Diagnostics;
using ModelCompression.Generation;

namespace ModelCompression.Serving;

/// <summary>
/// Answers every HTTP request of the server: checks the API key, dispatches on method and path, counts and logs each
/// request, and turns failures into OpenAI's error shape. Generation requests are hashed and counted on arrival, may
/// meet an injected fault, are parsed, queued on their model's scheduler, and answered whole or streamed.
/// </summary>
internal sealed class RequestHandler(ServeOptions options, IReadOnlyList<ServedModel> models, ServerCounters counters)
{
    private const string StatsPath = "/v1/compress/stats";
    private static readonly byte[] Done = "data: [DONE]\n\n"u8.ToArray();
    private readonly byte[]? _keyHash = options.ApiKey is { } key ? SHA256.HashData(Encoding.UTF8.GetBytes(key)) : null;

    public async Task Handle(HttpContext context)
    {
        var started = Stopwatch.GetTimestamp();
        var request = context.Request;
        var path = request.Path.Value ?? "/";
        var outcome = new Outcome();
        try
        {
            Authorize(request);
            switch (request.Method, path)
            {
                case ("GET", StatsPath):
                    await WriteJson(context, 200, counters.Snapshot().ToJson()).ConfigureAwait(false);
                    return;
                case ("GET", "/v1/models"):
                    await WriteJson(context, 200, OpenAiJson.Models(models)).ConfigureAwait(false);
                    break;
                case ("GET", _) when path.StartsWith("/v1/models/", StringComparison.Ordinal):
                    var id = Uri.UnescapeDataString(path["/v1/models/".Length..]);
                    var model = Find(id) ?? throw new ServeRequestException(404, DiagnosticCodes.ServeModelNotFound, $"The model '{id}' does not exist here; GET /v1/models lists the served models.", "model");
                    await WriteJson(context, 200, OpenAiJson.Models([model], list: false)).ConfigureAwait(false);
                    break;
                case ("POST", "/v1/chat/completions"):
                    await Generate(context, RequestKind.Chat, outcome).ConfigureAwait(false);
                    break;
                case ("POST", "/v1/completions"):
                    await Generate(context, RequestKind.Completion, outcome).ConfigureAwait(false);
                    break;
                case (_, StatsPath or "/v1/models" or "/v1/chat/completions" or "/v1/completions"):
                    throw new ServeRequestException(405, "method_not_allowed", $"{request.Method} is not allowed on {path}.");
                default:
                    throw new ServeRequestException(404, "unknown_url", $"Unknown request URL: {request.Method} {path}.");
            }
        }
        catch (ServeRequestException e)
        {
            await Fail(context, e).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested || outcome.Dropped)
        {
            // The client went away, or a drop fault cut the connection: nothing more can be written.
        }
        catch (Exception e)
        {
            // A failure of the engine, not of the request: the message says what, without the request's content.
            await Fail(context, new ServeRequestException(500, DiagnosticCodes.Internal, $"Internal error ({e.GetType().Name}): {e.Message}", type: "server_error")).ConfigureAwait(false);
        }
        finally
        {
            if (path != StatsPath)
            {
                var route = $"{request.Method} {path}";
                counters.Answered(route, context.Response.StatusCode, outcome.PromptTokens, outcome.CompletionTokens);
                options.Log?.Invoke(string.Create(
                    CultureInfo.InvariantCulture,
                    $"{route} {context.Response.StatusCode} {outcome.Model ?? "-"} {outcome.PromptTokens}+{outcome.CompletionTokens} tokens {Stopwatch.GetElapsedTime(started).TotalMilliseconds:0} ms{(outcome.Fault is { } f ? $" fault {f.Text}" : "")}"));
            }
        }
    }

    private ServedModel? Find(string id) => models.FirstOrDefault(m => m.Id == id);

    /// <summary>With an API key set: <c>Authorization: Bearer KEY</c> or <c>api-key: KEY</c>, compared in constant time; else 401.</summary>
    private void Authorize(HttpRequest request)
    {
        if (_keyHash is null)
        {
            return;
        }

        var authorization = request.Headers.Authorization.ToString();
        var given = authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? authorization["Bearer ".Length..].Trim() : request.Headers["api-key"].ToString();
        if (!CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(given)), _keyHash))
        {
            throw new ServeRequestException(401, "invalid_api_key", "Missing or incorrect API key: send 'Authorization: Bearer <key>' with the key the server was started with.");
        }
    }

    private async Task Generate(HttpContext context, RequestKind kind, Outcome outcome)
    {
        var body = await ReadBody(context.Request).ConfigureAwait(false);
        var (ordinal, attempt) = counters.Arrived(RequestHash.Of(body));
        if (options.Faults.FirstOrDefault(r => r.Matches(ordinal, attempt)) is { } fault)
        {
            outcome.Fault = fault;
            counters.Fault(fault.KindName);
            switch (fault.Kind)
            {
                case FaultKind.RateLimited:
                    context.Response.Headers.RetryAfter = fault.RetryAfterSeconds.ToString(CultureInfo.InvariantCulture);
                    throw new ServeRequestException(429, "rate_limit_exceeded", $"Rate limit reached (injected fault '{fault}'); retry after {fault.RetryAfterSeconds} s.", type: "requests");
                case FaultKind.ServerError:
                    throw new ServeRequestException(500, "server_error", $"The server had an error while processing the request (injected fault '{fault}').", type: "server_error");
            }
        }

        GenerationRequest parsed;
        try
        {
            using var document = JsonDocument.Parse(body);
            parsed = GenerationRequest.Parse(kind, document.RootElement, Find, options);
        }
        catch (JsonException e)
        {
            throw new ServeRequestException(400, DiagnosticCodes.ServeRequestUnreadable, $"The request body is not JSON: {e.Message}");
        }

        outcome.Model = parsed.Model.Id;
        outcome.PromptTokens = parsed.PromptTokens;
        // The handler's own token: the scheduler may outlive this request, and Kestrel reuses RequestAborted's source.
        var gone = new CancellationTokenSource();
        using var link = context.RequestAborted.Register(gone.Cancel);
        try
        {
            var job = new GenerationJob(parsed.Prompts, parsed.Options, gone.Token);
            parsed.Model.Scheduler.Submit(job);
            var output = new ResponseOutput(context, outcome, outcome.Fault);
            if (parsed.Stream)
            {
                await Stream(parsed, job, output).ConfigureAwait(false);
            }
            else
            {
                await Whole(parsed, job, output).ConfigureAwait(false);
            }
        }
        finally
        {
            gone.Cancel();
        }
    }

    private async Task<byte[]> ReadBody(HttpRequest request)
    {
        if (request.ContentLength > options.MaxRequestBodyBytes)
        {
            throw TooLarge();
        }

        try
        {
            using var buffer = new MemoryStream();
            await request.Body.CopyToAsync(buffer, request.HttpContext.RequestAborted).ConfigureAwait(false);
            return buffer.Length > options.MaxRequestBodyBytes ? throw TooLarge() : buffer.ToArray();
        }
        catch (BadHttpRequestException e) when (e.StatusCode == 413)
        {
            throw TooLarge();
        }
    }

    private ServeRequestException TooLarge() =>
        new(413, DiagnosticCodes.ServeRequestUnreadable, string.Create(CultureInfo.InvariantCulture, $"The request body is larger than the {options.MaxRequestBodyBytes} bytes the server takes."));

    private static async Task Whole(GenerationRequest request, GenerationJob job, ResponseOutput output)
    {
        var sequences = await job.Result.ConfigureAwait(false);
        var choices = sequences.Select(s => Choice(request, s, new ChoiceStream(request.Model.Model.Tokenizer, request.Options).Finish(s))).ToList();
        if (output.Fault?.Kind is FaultKind.Unparsable or FaultKind.Empty)
        {
            choices = [.. choices.Select(c => c with { Text = Replacement(output.Fault), Tokens = [] })];
        }

        var usage = new Usage(request.PromptTokens, sequences.Sum(s => s.Tokens.Count));
        output.Outcome.CompletionTokens = usage.CompletionTokens;
        var body = request.Kind == RequestKind.Chat
            ? OpenAiJson.ChatCompletion(Id(request), Now, request, choices, usage)
            : OpenAiJson.TextCompletion(Id(request), Now, request, choices, usage);
        await output.Whole(body).ConfigureAwait(false);
    }

    private static async Task Stream(GenerationRequest request, GenerationJob job, ResponseOutput output)
    {
        var id = Id(request);
        var created = Now;
        var tokenizer = request.Model.Model.Tokenizer;
        var n = request.Options.SamplesPerPrompt;
        var streams = new ChoiceStream[request.Prompts.Count * n];
        var replaced = output.Fault?.Kind is FaultKind.Unparsable or FaultKind.Empty;
        await output.StartStream().ConfigureAwait(false);
        if (request.Kind == RequestKind.Chat)
        {
            for (var i = 0; i < streams.Length; i++)
            {
                await output.Event(OpenAiJson.ChatChunk(id, created, request, i, first: true, null, null), content: false).ConfigureAwait(false);
            }
        }

        var completion = 0;
        try
        {
            await foreach (var token in job.Tokens.ReadAllAsync(output.Aborted).ConfigureAwait(false))
            {
                var index = (token.PromptIndex * n) + token.SampleIndex;
                var stream = streams[index] ??= new ChoiceStream(tokenizer, request.Options);
                if (token.Finished is not { } finished)
                {
                    var released = stream.Push(token);
                    if (released.Count > 0 && !replaced)
                    {
                        await output.Event(Chunk(request, id, created, new ChoiceResult(index, string.Concat(released.Select(t => t.Text)), released, null))).ConfigureAwait(false);
                    }

                    continue;
                }

                completion += finished.Tokens.Count;
                var (rest, _) = stream.Finish(finished);
                var last = replaced ? new ChoiceResult(index, Replacement(output.Fault!), [], null) : new ChoiceResult(index, string.Concat(rest.Select(t => t.Text)), rest, null);
                if (last.Text.Length > 0 || last.Tokens.Count > 0)
                {
                    await output.Event(Chunk(request, id, created, last)).ConfigureAwait(false);
                }

                await output.Event(Chunk(request, id, created, new ChoiceResult(index, string.Empty, [], FinishReason(finished.FinishReason)), finish: true)).ConfigureAwait(false);
            }

            // Failures of the batch surface here.
            await job.Result.ConfigureAwait(false);
        }
        catch (ServeRequestException e)
        {
            await output.Event(OpenAiJson.Error(e)).ConfigureAwait(false);
            return;
        }

        output.Outcome.CompletionTokens = completion;
        if (request.IncludeUsage)
        {
            await output.Event(OpenAiJson.UsageChunk(id, created, request, new Usage(request.PromptTokens, completion))).ConfigureAwait(false);
        }

        await output.Raw(Done).ConfigureAwait(false);
    }

    private static byte[] Chunk(GenerationRequest request, string id, long created, ChoiceResult choice, bool finish = false) =>
        request.Kind == RequestKind.Chat
            ? OpenAiJson.ChatChunk(id, created, request, choice.Index, first: false, finish ? null : choice, choice.FinishReason)
            : OpenAiJson.TextCompletion(id, created, request, [choice], usage: null);

    private static ChoiceResult Choice(GenerationRequest request, GeneratedSequence sequence, (IReadOnlyList<AnswerToken> Tokens, string Answer) answer) =>
        new((sequence.PromptIndex * request.Options.SamplesPerPrompt) + sequence.SampleIndex, answer.Answer, answer.Tokens, FinishReason(sequence.FinishReason));

    private static string FinishReason(Generation.FinishReason reason) => reason == Generation.FinishReason.Length ? "length" : "stop";

    private static string Replacement(FaultRule fault) => fault.Kind == FaultKind.Empty ? string.Empty : fault.ReplacementText;

    private static string Id(GenerationRequest request) => (request.Kind == RequestKind.Chat ? "chatcmpl-" : "cmpl-") + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));

    private static long Now => DateTimeOffset.UtcNow.ToUnixTimeSeconds();

    private static async Task WriteJson(HttpContext context, int status, byte[] body)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        context.Response.ContentLength = body.Length;
        await context.Response.Body.WriteAsync(body, context.RequestAborted).ConfigureAwait(false);
    }

    private static async Task Fail(HttpContext context, ServeRequestException error)
    {
        if (context.Response.HasStarted)
        {
            // Headers are gone (a stream): the error goes out as one more event, which OpenAI clients raise.
            await context.Response.Body.WriteAsync(Encoding.UTF8.GetBytes($"data: {Encoding.UTF8.GetString(OpenAiJson.Error(error))}\n\n"), context.RequestAborted).ConfigureAwait(false);
            return;
        }

        if (error.Status == 401)
        {
            context.Response.Headers.WWWAuthenticate = "Bearer";
        }
        else if (error.Status == 503)
        {
            // A full queue drains in about a batch's time.
            context.Response.Headers.RetryAfter = "1";
        }

        await WriteJson(context, error.Status, OpenAiJson.Error(error)).ConfigureAwait(false);
    }
}

/// <summary>What a request came to, for the statistics and the log line.</summary>
internal sealed class Outcome
{
    public string? Model { get; set; }

    public int PromptTokens { get; set; }

    public int CompletionTokens { get; set; }

    public FaultRule? Fault { get; set; }

    /// <summary>Whether a drop fault aborted the connection.</summary>
    public bool Dropped { get; set; }
}
