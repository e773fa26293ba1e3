using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using ModelCompression.Diagnostics;

namespace ModelCompression.Serving;

/// <summary>
/// <c>dotnet compress serve</c>: an OpenAI-compatible HTTP server for generative ONNX models, on ASP.NET Core's
/// Kestrel. Routes: <c>GET /v1/models</c>, <c>GET /v1/models/{id}</c>, <c>POST /v1/chat/completions</c>,
/// <c>POST /v1/completions</c> (both streamed as server-sent events with <c>"stream": true</c>), and
/// <c>GET /v1/compress/stats</c> (not an OpenAI route: <see cref="ServeStatistics"/>). docs/serve.md has the fields.
/// <code>
/// await using var server = await OpenAiServer.StartAsync(new ServeOptions { Models = [new("out/student")] });
/// var client = new ChatClient("student", new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = server.OpenAiEndpoint });
/// </code>
/// </summary>
public static class OpenAiServer
{
    /// <summary>
    /// Opens every model of <paramref name="options"/> and starts listening (port 0: a free port, see
    /// <see cref="RunningServer.BaseAddress"/>). A model that cannot be served, two models of one id, or an address that
    /// cannot be listened on is MC2068 (a model's own problems keep their codes, e.g. MC2064).
    /// </summary>
    public static async Task<RunningServer> StartAsync(ServeOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        Check(options);
        var address = ListenAddress(options.Host);
        var counters = new ServerCounters();
        var models = new List<ServedModel>();
        try
        {
            foreach (var source in options.Models)
            {
                models.Add(ServedModel.Load(source, options, counters));
            }

            if (models.GroupBy(m => m.Id, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1) is { } twice)
            {
                throw CompressionException.Error(DiagnosticCodes.ServeModelUnusable, $"Two served models are named '{twice.Key}': give each its own name (--model-name).");
            }

            var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
            builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel =>
            {
                kestrel.Listen(address, options.Port);
                kestrel.AddServerHeader = false;
                kestrel.Limits.MaxRequestBodySize = options.MaxRequestBodyBytes;
            });
            var app = builder.Build();
            var handler = new RequestHandler(options, models, counters);
            app.Run(handler.Handle);
            try
            {
                await app.StartAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (IOException e)
            {
                await app.DisposeAsync().ConfigureAwait(false);
                throw CompressionException.Error(DiagnosticCodes.ServeModelUnusable, $"Cannot listen on {options.Host}:{options.Port}: {e.Message}");
            }

            var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            if (!IPAddress.IsLoopback(address))
            {
                options.Log?.Invoke($"warning: listening on {bound}, which other machines can reach{(options.ApiKey is null ? " without an API key (--api-key-env)" : "")}.");
            }

            return new RunningServer(app, new Uri(bound.TrimEnd('/') + "/"), models, counters);
        }
        catch
        {
            models.ForEach(m => m.Dispose());
            throw;
        }
    }

    /// <summary><see cref="StartAsync"/>, waited for.</summary>
    public static RunningServer Start(ServeOptions options) => StartAsync(options).GetAwaiter().GetResult();

    private static void Check(ServeOptions options)
    {
        if (options.Models.Count == 0)
        {
            throw new ArgumentException("Give at least one model to serve.", nameof(options));
        }

        ArgumentOutOfRangeException.ThrowIfNegative(options.Port);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.Port, IPEndPoint.MaxPort);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxBatch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.ConcurrentBatches, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxQueuedRequests, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxChoices, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxRequestBodyBytes, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(options.Threads);
        if (options.BatchWait < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.BatchWait, "BatchWait must not be negative.");
        }

        if (options.ApiKey is { Length: 0 })
        {
            throw new ArgumentException("The API key is empty.", nameof(options));
        }
    }

    private static IPAddress ListenAddress(string host) =>
        host == "localhost" ? IPAddress.Loopback
        : IPAddress.TryParse(host, out var address) ? address
        : throw CompressionException.Error(DiagnosticCodes.ServeModelUnusable, $"Cannot listen on '{host}': give an IP address (127.0.0.1, ::1, 0.0.0.0) or localhost.");
}

/// <summary>A started server: where it listens, what it has counted, and how to stop it (which also closes its models).</summary>
public sealed class RunningServer : IAsyncDisposable, IDisposable
{
    private readonly WebApplication _app;
    private readonly IReadOnlyList<ServedModel> _models;
    private readonly ServerCounters _counters;
    private int _stopped;

    internal RunningServer(WebApplication app, Uri baseAddress, IReadOnlyList<ServedModel> models, ServerCounters counters)
    {
        _app = app;
        BaseAddress = baseAddress;
        _models = models;
        _counters = counters;
    }

    /// <summary>The server's root, e.g. <c>http://127.0.0.1:41234/</c>.</summary>
    public Uri BaseAddress { get; }

    /// <summary>The OpenAI base URL clients take (<c>…/v1</c>; the OpenAI .NET client's <c>Endpoint</c>).</summary>
    public Uri OpenAiEndpoint => new(BaseAddress, "v1");

    /// <summary>The served model ids.</summary>
    public IReadOnlyList<string> ModelIds => [.. _models.Select(m => m.Id)];

    /// <summary>What the server has counted so far (as <c>GET /v1/compress/stats</c>).</summary>
    public ServeStatistics Stats => _counters.Snapshot();

    /// <summary>Stops listening (requests in flight get a moment to finish), stops the batch workers and closes the models.</summary>
    public async Task StopAsync()
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 1)
        {
            return;
        }

        using (var grace = new CancellationTokenSource(TimeSpan.FromSeconds(5)))
        {
            // The models stop first: waiting requests fail fast with 503 instead of holding the shutdown.
            foreach (var model in _models)
            {
                model.Scheduler.Dispose();
            }

            await _app.StopAsync(grace.Token).ConfigureAwait(false);
        }

        await _app.DisposeAsync().ConfigureAwait(false);
        foreach (var model in _models)
        {
            model.Dispose();
        }
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync() => new(StopAsync());

    /// <inheritdoc />
    public void Dispose() => StopAsync().GetAwaiter().GetResult();
}
