using System.Globalization;
using System.Text.Json;

namespace ModelCompression.Serving;

/// <summary>
/// What a running server has seen, as <c>GET /v1/compress/stats</c> returns it (that route itself is not counted).
/// Requests are counted when their response ends; bodies when they arrive.
/// </summary>
/// <param name="Requests">Requests answered, every route but the statistics.</param>
/// <param name="ByRoute">Requests per "METHOD /path" (unknown paths as they came).</param>
/// <param name="ByStatus">Requests per HTTP status sent (a dropped connection counts the status it started with).</param>
/// <param name="Faults">Injected faults per kind (<see cref="FaultRule.KindName"/>).</param>
/// <param name="Bodies">Generation requests per body hash (<see cref="RequestHash"/>): an entry over 1 is a body sent more than once.</param>
/// <param name="PromptTokens">Prompt tokens of answered generation requests.</param>
/// <param name="CompletionTokens">Generated tokens of answered generation requests.</param>
/// <param name="Batches">Generator calls.</param>
/// <param name="BatchedRequests">Requests per batch: how many batches ran that many requests together.</param>
/// <param name="BatchedSequences">Sequences (requests times <c>n</c>) per batch: how many batches ran that many.</param>
/// <param name="Rejected">Requests refused because the queue was full.</param>
public sealed record ServeStatistics(
    long Requests,
    IReadOnlyDictionary<string, long> ByRoute,
    IReadOnlyDictionary<int, long> ByStatus,
    IReadOnlyDictionary<string, long> Faults,
    IReadOnlyDictionary<string, long> Bodies,
    long PromptTokens,
    long CompletionTokens,
    long Batches,
    IReadOnlyDictionary<int, long> BatchedRequests,
    IReadOnlyDictionary<int, long> BatchedSequences,
    long Rejected)
{
    /// <summary>
    /// The JSON document of <c>GET /v1/compress/stats</c>:
    /// <c>{"requests", "by_route": {}, "by_status": {"200": n}, "faults": {"429": n}, "bodies": {"sha256": n},
    /// "tokens": {"prompt", "completion"}, "batches": {"count", "requests": {"size": n}, "sequences": {"size": n}},
    /// "rejected"}</c>, keys sorted.
    /// </summary>
    public byte[] ToJson()
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            writer.WriteStartObject();
            writer.WriteNumber("requests", Requests);
            Map(writer, "by_route", ByRoute.Select(p => (p.Key, p.Value)));
            Map(writer, "by_status", ByStatus.Select(p => (Key(p.Key), p.Value)));
            Map(writer, "faults", Faults.Select(p => (p.Key, p.Value)));
            Map(writer, "bodies", Bodies.Select(p => (p.Key, p.Value)));
            writer.WriteStartObject("tokens");
            writer.WriteNumber("prompt", PromptTokens);
            writer.WriteNumber("completion", CompletionTokens);
            writer.WriteEndObject();
            writer.WriteStartObject("batches");
            writer.WriteNumber("count", Batches);
            Map(writer, "requests", BatchedRequests.OrderBy(p => p.Key).Select(p => (Key(p.Key), p.Value)), sort: false);
            Map(writer, "sequences", BatchedSequences.OrderBy(p => p.Key).Select(p => (Key(p.Key), p.Value)), sort: false);
            writer.WriteEndObject();
            writer.WriteNumber("rejected", Rejected);
            writer.WriteEndObject();
        }

        return stream.ToArray();
    }

    private static string Key(int number) => number.ToString(CultureInfo.InvariantCulture);

    private static void Map(Utf8JsonWriter writer, string name, IEnumerable<(string Key, long Value)> entries, bool sort = true)
    {
        writer.WriteStartObject(name);
        foreach (var (key, value) in sort ? entries.OrderBy(e => e.Key, StringComparer.Ordinal) : entries)
        {
            writer.WriteNumber(key, value);
        }

        writer.WriteEndObject();
    }
}

/// <summary>The server's counters, thread-safe; <see cref="Snapshot"/> copies them.</summary>
internal sealed class ServerCounters
{
    private readonly object _gate = new();
    private readonly Dictionary<string, long> _byRoute = new(StringComparer.Ordinal);
    private readonly Dictionary<int, long> _byStatus = [];
    private readonly Dictionary<string, long> _faults = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _bodies = new(StringComparer.Ordinal);
    private readonly Dictionary<int, long> _batchedRequests = [];
    private readonly Dictionary<int, long> _batchedSequences = [];
    private long _requests;
    private long _generationRequests;
    private long _promptTokens;
    private long _completionTokens;
    private long _batches;
    private long _rejected;

    /// <summary>Counts a generation request's body on arrival: its ordinal among generation requests (from 1) and which attempt of this body it is (from 1).</summary>
    public (long Ordinal, long Attempt) Arrived(string bodyHash)
    {
        lock (_gate)
        {
            var attempt = _bodies[bodyHash] = _bodies.GetValueOrDefault(bodyHash) + 1;
            return (++_generationRequests, attempt);
        }
    }

    /// <summary>Counts an answered request.</summary>
    public void Answered(string route, int status, long promptTokens, long completionTokens)
    {
        lock (_gate)
        {
            _requests++;
            _byRoute[route] = _byRoute.GetValueOrDefault(route) + 1;
            _byStatus[status] = _byStatus.GetValueOrDefault(status) + 1;
            _promptTokens += promptTokens;
            _completionTokens += completionTokens;
        }
    }

    /// <summary>Counts a fault that fired.</summary>
    public void Fault(string kind)
    {
        lock (_gate)
        {
            _faults[kind] = _faults.GetValueOrDefault(kind) + 1;
        }
    }

    /// <summary>Counts a batch of <paramref name="requests"/> requests and <paramref name="sequences"/> sequences.</summary>
    public void Batch(int requests, int sequences)
    {
        lock (_gate)
        {
            _batches++;
            _batchedRequests[requests] = _batchedRequests.GetValueOrDefault(requests) + 1;
            _batchedSequences[sequences] = _batchedSequences.GetValueOrDefault(sequences) + 1;
        }
    }

    /// <summary>Counts a request refused for a full queue.</summary>
    public void Rejected()
    {
        lock (_gate)
        {
            _rejected++;
        }
    }

    /// <summary>A copy of the counters.</summary>
    public ServeStatistics Snapshot()
    {
        lock (_gate)
        {
            return new ServeStatistics(
                _requests,
                new Dictionary<string, long>(_byRoute, StringComparer.Ordinal),
                new Dictionary<int, long>(_byStatus),
                new Dictionary<string, long>(_faults, StringComparer.Ordinal),
                new Dictionary<string, long>(_bodies, StringComparer.Ordinal),
                _promptTokens,
                _completionTokens,
                _batches,
                new Dictionary<int, long>(_batchedRequests),
                new Dictionary<int, long>(_batchedSequences),
                _rejected);
        }
    }
}
