namespace ModelCompression.Serving;

/// <summary>A model to serve: a generative model folder, or a bare decoder file with its tokenizer.</summary>
/// <param name="Path">
/// A generative model folder (model.onnx, tokenizer.compress.json, generation.json), or a decoder <c>.onnx</c> in the
/// PyTorch/Optimum convention (plain text continuation only).
/// </param>
public sealed record ServedModelSource(string Path)
{
    /// <summary>The model id requests name; null: the folder's name, or the decoder file's name without <c>.onnx</c>.</summary>
    public string? Name { get; init; }

    /// <summary>
    /// A bare decoder's tokenizer: <c>byte</c> (ids 0-255 the UTF-8 bytes, 256 end of text) or the path of a
    /// tokenizer.compress.json; null: the tokenizer.compress.json beside the decoder. Not used for a folder.
    /// </summary>
    public string? Tokenizer { get; init; }
}

/// <summary>
/// How <see cref="OpenAiServer.Start"/> serves. A class rather than a record on purpose: a record's generated
/// <c>ToString</c> would print <see cref="ApiKey"/>.
/// </summary>
public sealed class ServeOptions
{
    /// <summary>The models, at least one; their ids must differ.</summary>
    public IReadOnlyList<ServedModelSource> Models { get; init; } = [];

    /// <summary>The address to listen on: an IP address or <c>localhost</c>. Loopback by default; any other address is reachable from other machines, and the server says so in its log.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>The port; 0 takes a free one (read it back from <see cref="RunningServer.BaseAddress"/>).</summary>
    public int Port { get; init; }

    /// <summary>Most sequences (requests times their <c>n</c>) generated together in one batch.</summary>
    public int MaxBatch { get; init; } = 8;

    /// <summary>
    /// How long the first request of a batch waits for others to join before the batch starts (a full batch starts at
    /// once). 0: a batch starts as soon as a worker is free, and requests that arrive while it runs join the next.
    /// </summary>
    public TimeSpan BatchWait { get; init; }

    /// <summary>Batches that may run at once per model (each on its own thread, sharing one ONNX Runtime session).</summary>
    public int ConcurrentBatches { get; init; } = 1;

    /// <summary>Requests that may wait per model; more are refused with 503 and Retry-After.</summary>
    public int MaxQueuedRequests { get; init; } = 256;

    /// <summary>Most choices (<c>n</c>) one request may ask for.</summary>
    public int MaxChoices { get; init; } = 32;

    /// <summary>ONNX Runtime threads per model; 0 uses the engine's thread budget.</summary>
    public int Threads { get; init; }

    /// <summary>Largest request body in bytes; a larger one is refused with 413.</summary>
    public long MaxRequestBodyBytes { get; init; } = 4 << 20;

    /// <summary>
    /// When set, every request must carry <c>Authorization: Bearer KEY</c> (or Azure's <c>api-key: KEY</c>) or is refused
    /// with 401. The key is never logged, counted or echoed.
    /// </summary>
    public string? ApiKey { get; init; }

    /// <summary>Fault-injection rules (none by default); see <see cref="FaultRule"/>.</summary>
    public IReadOnlyList<FaultRule> Faults { get; init; } = [];

    /// <summary>Receives one plain line per request (method, path, status, model, tokens, milliseconds, fault) and warnings; never bodies or keys. Null: silent.</summary>
    public Action<string>? Log { get; init; }
}
