using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using ModelCompression.Common;
using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;
using ModelCompression.Text;

namespace ModelCompression.Teachers;

/// <summary>What reading a batch results file into the cache did.</summary>
/// <param name="Lines">Result lines read.</param>
/// <param name="Imported">Replies stored in the cache (each exactly the entry an online call would have stored).</param>
/// <param name="Errors">Lines not stored, by reason: http_NNN (the line's status), the line's error code, or malformed_reply.</param>
public sealed record EndpointBatchImport(int Lines, int Imported, IReadOnlyDictionary<string, int> Errors)
{
    /// <summary>Lines not stored, all reasons together.</summary>
    public int ErrorCount => Errors.Values.Sum();
}

/// <summary>
/// Batch API files, for scale-out without a home-made engine: the requests not yet cached, written as OpenAI/Azure batch
/// JSON Lines (what <c>vllm run-batch</c> reads too), and the batch's results file read back into the answer cache.
/// <para>
/// A requests line is <c>{"custom_id": KEY, "method": "POST", "url": "/v1/chat/completions", "body": {…}}</c>, where
/// KEY is the request's cache key and the body is byte for byte what an online call sends. A results line is
/// <c>{"id": …, "custom_id": KEY, "response": {"status_code": 200, "body": {chat.completion}}, "error": null}</c>.
/// Results carry no request, so importing reads the requests file beside them: each line's body must hash to its
/// custom_id (an edited requests file is refused, MC2094) and each result's custom_id must be one of them.
/// </para>
/// </summary>
public static class EndpointBatch
{
    /// <summary>The <c>url</c> of every requests line (OpenAI's and vLLM's; Azure OpenAI's global batch reads it too).</summary>
    public const string ChatCompletionsUrl = "/v1/chat/completions";

    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, Indented = false };

    /// <summary>
    /// Writes the requests <paramref name="prompts"/> need that <paramref name="cacheFolder"/> does not hold yet to
    /// <paramref name="path"/> (atomically), in the order of first use; returns how many.
    /// </summary>
    public static int WriteRequests(IReadOnlyList<ChatRecord> prompts, GenerativeTask task, EndpointTeacherOptions options, string cacheFolder, string path) =>
        WriteRequests(EndpointTeacher.Requests(prompts, task, options), cacheFolder, path);

    /// <summary>
    /// Writes those of <paramref name="requests"/> (distinct, in order) that <paramref name="cacheFolder"/> does not hold
    /// yet to <paramref name="path"/> (atomically); returns how many. A classifying teacher's requests come from
    /// <see cref="EndpointLabeler.Requests"/>.
    /// </summary>
    public static int WriteRequests(IReadOnlyList<EndpointRequest> requests, string cacheFolder, string path)
    {
        ArgumentNullException.ThrowIfNull(requests);
        ArgumentNullException.ThrowIfNull(cacheFolder);
        ArgumentNullException.ThrowIfNull(path);
        var cache = new EndpointAnswerCache(cacheFolder);
        var missing = requests.Where(r => cache.TryRead(r, out _) is null).ToList();
        using var stream = new MemoryStream();
        foreach (var request in missing)
        {
            using (var writer = new Utf8JsonWriter(stream, WriterOptions))
            {
                writer.WriteStartObject();
                writer.WriteString("custom_id", request.Key);
                writer.WriteString("method", "POST");
                writer.WriteString("url", ChatCompletionsUrl);
                writer.WritePropertyName("body");
                writer.WriteRawValue(request.Body, skipInputValidation: true);
                writer.WriteEndObject();
            }

            stream.WriteByte((byte)'\n');
        }

        AtomicFile.WriteAllText(path, Encoding.UTF8.GetString(stream.ToArray()));
        return missing.Count;
    }

    /// <summary>
    /// Reads a batch results file (<paramref name="resultsPath"/>) of the requests in <paramref name="requestsPath"/> into
    /// the cache in <paramref name="cacheFolder"/>: a 200 result whose body is a chat completion of the asked number of
    /// choices is stored as an online call would store it; other lines are counted by reason and not stored.
    /// </summary>
    /// <exception cref="CompressionException">MC2094 naming the file and line of a line that is not JSON of the batch format, a request whose body does not hash to its custom_id, or a result whose custom_id is not among the requests.</exception>
    public static EndpointBatchImport ImportResults(string resultsPath, string requestsPath, string cacheFolder)
    {
        ArgumentNullException.ThrowIfNull(resultsPath);
        ArgumentNullException.ThrowIfNull(requestsPath);
        ArgumentNullException.ThrowIfNull(cacheFolder);
        var requests = ReadRequests(requestsPath);
        var cache = new EndpointAnswerCache(cacheFolder);
        var errors = new SortedDictionary<string, int>(StringComparer.Ordinal);
        int lines = 0, imported = 0;
        foreach (var (line, number) in Lines(resultsPath))
        {
            lines++;
            using var document = Parse(line, resultsPath, number);
            var root = document.RootElement;
            var customId = String(root, "custom_id", resultsPath, number);
            if (!requests.TryGetValue(customId, out var request))
            {
                throw Invalid(resultsPath, number, $"custom_id \"{customId}\" is none of the requests in '{requestsPath}': the results belong to another requests file");
            }

            var reason = ErrorOf(root);
            if (reason is null)
            {
                try
                {
                    cache.Write(request, EndpointReply.Parse(root.GetProperty("response").GetProperty("body"), request.Choices));
                    imported++;
                    continue;
                }
                catch (FormatException)
                {
                    reason = "malformed_reply";
                }
            }

            errors[reason] = errors.GetValueOrDefault(reason) + 1;
        }

        return new EndpointBatchImport(lines, imported, errors);
    }

    /// <summary>Why a results line holds no reply (its error's code, or http_NNN), or null when it holds one.</summary>
    private static string? ErrorOf(JsonElement root)
    {
        if (root.TryGetProperty("error", out var error) && error.ValueKind != JsonValueKind.Null)
        {
            return error.ValueKind == JsonValueKind.Object && error.TryGetProperty("code", out var code) && code.ValueKind == JsonValueKind.String
                ? "error_" + code.GetString()
                : "error";
        }

        if (!root.TryGetProperty("response", out var response) || response.ValueKind != JsonValueKind.Object
            || !response.TryGetProperty("status_code", out var status) || status.ValueKind != JsonValueKind.Number || !status.TryGetInt32(out var code2))
        {
            return "malformed_reply";
        }

        return code2 == 200 && response.TryGetProperty("body", out _) ? null : "http_" + code2.ToString(CultureInfo.InvariantCulture);
    }

    private static Dictionary<string, EndpointRequest> ReadRequests(string path)
    {
        var requests = new Dictionary<string, EndpointRequest>(StringComparer.Ordinal);
        foreach (var (line, number) in Lines(path))
        {
            using var document = Parse(line, path, number);
            var root = document.RootElement;
            var customId = String(root, "custom_id", path, number);
            if (!root.TryGetProperty("body", out var body) || body.ValueKind != JsonValueKind.Object)
            {
                throw Invalid(path, number, "the line has no \"body\" object");
            }

            EndpointRequest request;
            try
            {
                request = EndpointRequest.FromBody(body.GetRawText());
            }
            catch (FormatException e)
            {
                throw Invalid(path, number, e.Message);
            }

            if (request.Key != customId)
            {
                throw Invalid(path, number, "the body does not hash to its custom_id: the line was edited, or it was not written by this tool");
            }

            requests[customId] = request;
        }

        return requests;
    }

    private static IEnumerable<(string Line, int Number)> Lines(string path)
    {
        if (!File.Exists(path))
        {
            throw Invalid(path, null, "does not exist");
        }

        var number = 0;
        foreach (var line in File.ReadLines(path))
        {
            number++;
            if (line.Trim().Length > 0)
            {
                yield return (line, number);
            }
        }
    }

    private static JsonDocument Parse(string line, string path, int number)
    {
        try
        {
            var document = JsonDocument.Parse(line);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                document.Dispose();
                throw Invalid(path, number, "the line is not a JSON object");
            }

            return document;
        }
        catch (JsonException e)
        {
            throw Invalid(path, number, $"the line is not valid JSON ({e.Message.Split(" Path:")[0].TrimEnd('.')})");
        }
    }

    private static string String(JsonElement root, string name, string path, int number) =>
        root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String
            ? value.GetString()!
            : throw Invalid(path, number, $"the line has no \"{name}\" string");

    private static CompressionException Invalid(string path, int? line, string why) =>
        CompressionException.Error(
            DiagnosticCodes.EndpointBatchFileInvalid,
            $"The batch file '{path}'{(line is null ? "" : string.Create(CultureInfo.InvariantCulture, $", line {line},"))} {why}.",
            path,
            line);
}
