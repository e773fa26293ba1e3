using Microsoft.AspNetCore.Http;

namespace ModelCompression.Serving;

/// <summary>
/// Writes a generation response, whole or as server-sent events, and applies the faults that act on the way out:
/// <c>slow</c> holds the first byte back, <c>malformed</c> cuts the JSON (the whole body, or the stream's first event)
/// in half, <c>drop</c> aborts the connection part way (after the given bytes of the body, by default half of it; in a
/// stream, half way through the first event with content).
/// </summary>
internal sealed class ResponseOutput(HttpContext context, Outcome outcome, FaultRule? fault)
{
    private long _written;
    private long? _dropAt;
    private bool _malformed = fault?.Kind == FaultKind.Malformed;

    /// <summary>What the request came to.</summary>
    public Outcome Outcome => outcome;

    /// <summary>The fault that fired on the request, or null.</summary>
    public FaultRule? Fault => fault;

    /// <summary>Fires when the client has gone away.</summary>
    public CancellationToken Aborted => context.RequestAborted;

    /// <summary>Writes a whole JSON body with status 200.</summary>
    public async Task Whole(byte[] body)
    {
        await Delay().ConfigureAwait(false);
        if (_malformed)
        {
            body = body[..(body.Length / 2)];
        }

        var response = context.Response;
        response.StatusCode = 200;
        response.ContentType = "application/json";
        // A drop promises the whole length and sends less, as a connection cut mid-body does.
        response.ContentLength = body.Length;
        if (fault?.Kind == FaultKind.Drop)
        {
            _dropAt = Math.Min(body.Length - 1, fault.DropAfterBytes ?? (body.Length / 2));
        }

        await Write(body, flush: false).ConfigureAwait(false);
    }

    /// <summary>Starts a server-sent event stream with status 200.</summary>
    public async Task StartStream()
    {
        await Delay().ConfigureAwait(false);
        var response = context.Response;
        response.StatusCode = 200;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        if (fault is { Kind: FaultKind.Drop, DropAfterBytes: { } bytes })
        {
            _dropAt = bytes;
        }

        await response.StartAsync(context.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>Writes one event <c>data: JSON</c>; <paramref name="content"/> says whether it carries content or a finish (a default drop waits for one).</summary>
    public async Task Event(byte[] json, bool content = true)
    {
        if (_malformed)
        {
            json = json[..(json.Length / 2)];
            _malformed = false;
        }

        var line = new byte[json.Length + 8];
        "data: "u8.CopyTo(line);
        json.CopyTo(line, 6);
        line[^2] = (byte)'\n';
        line[^1] = (byte)'\n';
        if (content && fault?.Kind == FaultKind.Drop && _dropAt is null)
        {
            _dropAt = _written + (line.Length / 2);
        }

        await Write(line, flush: true).ConfigureAwait(false);
    }

    /// <summary>Writes bytes as they are (the stream's <c>data: [DONE]</c>).</summary>
    public Task Raw(byte[] bytes) => Write(bytes, flush: true);

    private async Task Write(byte[] bytes, bool flush)
    {
        var body = context.Response.Body;
        if (_dropAt is { } dropAt && _written + bytes.Length > dropAt)
        {
            await body.WriteAsync(bytes.AsMemory(0, (int)(dropAt - _written)), context.RequestAborted).ConfigureAwait(false);
            await body.FlushAsync(context.RequestAborted).ConfigureAwait(false);
            outcome.Dropped = true;
            context.Abort();
            throw new OperationCanceledException($"The connection was dropped by the injected fault '{fault}'.");
        }

        await body.WriteAsync(bytes, context.RequestAborted).ConfigureAwait(false);
        _written += bytes.Length;
        if (flush)
        {
            await body.FlushAsync(context.RequestAborted).ConfigureAwait(false);
        }
    }

    private Task Delay() => fault?.Kind == FaultKind.Slow ? Task.Delay(fault.Delay, context.RequestAborted) : Task.CompletedTask;
}
