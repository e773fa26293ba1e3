using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace ModelCompression.Serving;

/// <summary>
/// The identity of a request body in the server's statistics (<see cref="ServeStatistics.Bodies"/>) and for
/// <c>first:K</c> fault rules: the SHA-256, in lowercase hex, of the body's canonical JSON: object keys sorted by
/// ordinal (UTF-16) order at every depth, no whitespace, strings re-escaped by System.Text.Json's relaxed encoder
/// (only what JSON requires), numbers as written. Two bodies that differ only in key order or spacing are one request;
/// a body that is not JSON is hashed as its raw bytes.
/// </summary>
public static class RequestHash
{
    private static readonly JsonWriterOptions Canonical = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, Indented = false };

    /// <summary>The hash of a request body.</summary>
    public static string Of(ReadOnlySpan<byte> body)
    {
        try
        {
            using var document = JsonDocument.Parse(body.ToArray());
            return Of(document.RootElement);
        }
        catch (JsonException)
        {
            return Convert.ToHexStringLower(SHA256.HashData(body));
        }
    }

    /// <summary>The hash of a request body given as text (UTF-8).</summary>
    public static string Of(string body)
    {
        ArgumentNullException.ThrowIfNull(body);
        return Of(Encoding.UTF8.GetBytes(body));
    }

    /// <summary>The hash of a parsed request.</summary>
    public static string Of(JsonElement request) => Convert.ToHexStringLower(SHA256.HashData(CanonicalJson(request)));

    /// <summary>The canonical form of <paramref name="element"/> that <see cref="Of(JsonElement)"/> hashes.</summary>
    public static byte[] CanonicalJson(JsonElement element)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, Canonical))
        {
            Write(writer, element);
        }

        return stream.ToArray();
    }

    private static void Write(Utf8JsonWriter writer, JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                writer.WriteStartObject();
                foreach (var property in element.EnumerateObject().OrderBy(p => p.Name, StringComparer.Ordinal))
                {
                    writer.WritePropertyName(property.Name);
                    Write(writer, property.Value);
                }

                writer.WriteEndObject();
                break;
            case JsonValueKind.Array:
                writer.WriteStartArray();
                foreach (var item in element.EnumerateArray())
                {
                    Write(writer, item);
                }

                writer.WriteEndArray();
                break;
            case JsonValueKind.String:
                writer.WriteStringValue(element.GetString());
                break;
            default:
                // Numbers, true, false and null as written: 1.0 and 1 stay two requests, as their bytes differ.
                writer.WriteRawValue(element.GetRawText(), skipInputValidation: true);
                break;
        }
    }
}
