using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using ModelCompression.Common;
using ModelCompression.Diagnostics;

namespace ModelCompression.Teachers;

/// <summary>
/// The endpoint teacher's answers on disk: one file per request, written (atomically) as each reply arrives, so a killed
/// run loses at most the requests in flight and a new run sends only the requests without an entry.
/// <para>
/// An entry is <c>{folder}/{key[0..2]}/{key}.json</c>, where the key is <see cref="EndpointRequest.Key"/> (the SHA-256 of
/// the request body: model, messages, sampling settings; never the URL or the API key). It is one line of JSON:
/// <code>
/// {"format": "endpoint-answer v1", "sha256": "…", "entry": {"key": "…", "request": {the body as sent},
///  "reply": {"choices": [{"text": "…", "finish_reason": "stop", "reasoning_content": "…",
///            "logprobs": [{"token": "…", "logprob": -0.1, "bytes": [..], "top_logprobs": [{"token", "logprob", "bytes"}]}]}],
///            "usage": {"prompt_tokens": 12, "completion_tokens": 40}}}}
/// </code>
/// (<c>reasoning_content</c> and <c>logprobs</c> only when the server gave them). <c>sha256</c> is the hash of the
/// <c>entry</c> object's bytes. On read an entry must parse, match its hash, hold the key of its file name, and hold the
/// exact request asked for; anything else (a cut or edited file) is a miss with an MC2093 warning, and the request is sent
/// again and the entry replaced. A damaged entry is never a wrong answer.
/// </para>
/// </summary>
public sealed class EndpointAnswerCache
{
    /// <summary>The value of an entry's <c>format</c> key.</summary>
    public const string Format = "endpoint-answer v1";

    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, Indented = false };

    /// <summary>A cache in <paramref name="folder"/> (created when the first entry is written).</summary>
    public EndpointAnswerCache(string folder)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(folder);
        Folder = Path.GetFullPath(folder);
    }

    /// <summary>The cache's folder.</summary>
    public string Folder { get; }

    /// <summary>The file of the entry with <paramref name="key"/>.</summary>
    public string PathOf(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (key.Length != 64 || !key.All(char.IsAsciiHexDigitLower))
        {
            throw new ArgumentException("A cache key is 64 lowercase hex digits.", nameof(key));
        }

        return Path.Combine(Folder, key[..2], key + ".json");
    }

    /// <summary>
    /// The cached reply to <paramref name="request"/>, or null when there is none. A damaged entry is null too, with
    /// <paramref name="warning"/> (MC2093) saying what is wrong with which file; otherwise the warning is null.
    /// </summary>
    public EndpointReply? TryRead(EndpointRequest request, out Diagnostic? warning)
    {
        ArgumentNullException.ThrowIfNull(request);
        warning = null;
        var path = PathOf(request.Key);
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            warning = Damaged(path, $"cannot be read ({e.Message})");
            return null;
        }

        try
        {
            return Read(bytes, request);
        }
        catch (FormatException e)
        {
            warning = Damaged(path, e.Message);
            return null;
        }
    }

    /// <summary>Stores <paramref name="reply"/> as the answer to <paramref name="request"/> (atomically; an entry already there is replaced).</summary>
    public void Write(EndpointRequest request, EndpointReply reply)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(reply);
        var entry = EntryBytes(request, reply);
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, WriterOptions))
        {
            writer.WriteStartObject();
            writer.WriteString("format", Format);
            writer.WriteString("sha256", Convert.ToHexStringLower(SHA256.HashData(entry)));
            writer.WritePropertyName("entry");
            writer.WriteRawValue(entry, skipInputValidation: true);
            writer.WriteEndObject();
        }

        AtomicFile.WriteAllText(PathOf(request.Key), Encoding.UTF8.GetString(stream.ToArray()) + "\n");
    }

    private static byte[] EntryBytes(EndpointRequest request, EndpointReply reply)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, WriterOptions))
        {
            writer.WriteStartObject();
            writer.WriteString("key", request.Key);
            writer.WritePropertyName("request");
            writer.WriteRawValue(request.Body, skipInputValidation: true);
            writer.WritePropertyName("reply");
            reply.WriteTo(writer);
            writer.WriteEndObject();
        }

        return stream.ToArray();
    }

    private static EndpointReply Read(byte[] bytes, EndpointRequest request)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(bytes);
        }
        catch (JsonException e)
        {
            throw new FormatException($"is not valid JSON ({e.Message.Split(" Path:")[0].TrimEnd('.')}): it was cut or edited", e);
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("format", out var format) || format.ValueKind != JsonValueKind.String || format.GetString() != Format)
            {
                throw new FormatException($"is not an entry of format \"{Format}\"");
            }

            if (!root.TryGetProperty("entry", out var entry) || entry.ValueKind != JsonValueKind.Object
                || !root.TryGetProperty("sha256", out var hash) || hash.ValueKind != JsonValueKind.String)
            {
                throw new FormatException("lacks its \"entry\" or \"sha256\"");
            }

            // GetRawText is the entry's text as the file holds it: the bytes the hash was taken of.
            if (Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(entry.GetRawText()))) != hash.GetString())
            {
                throw new FormatException("does not match its sha256: it was edited or damaged");
            }

            if (!entry.TryGetProperty("key", out var key) || key.ValueKind != JsonValueKind.String || key.GetString() != request.Key
                || !entry.TryGetProperty("request", out var body) || body.GetRawText() != request.Body)
            {
                throw new FormatException("holds another request than the one its name says");
            }

            if (!entry.TryGetProperty("reply", out var reply))
            {
                throw new FormatException("has no reply");
            }

            var read = EndpointReply.ReadCached(reply);
            if (read.Choices.Count != request.Choices)
            {
                throw new FormatException($"holds {read.Choices.Count} answers where its request asks for {request.Choices}");
            }

            return read;
        }
    }

    private static Diagnostic Damaged(string path, string why) =>
        Diagnostic.Warning(
            DiagnosticCodes.EndpointCacheEntryInvalid,
            $"The endpoint answer cache entry '{path}' {why}; it is treated as missing and its request is sent again (offline: reported missing).",
            path);
}
