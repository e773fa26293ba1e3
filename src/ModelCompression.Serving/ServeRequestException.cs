using ModelCompression.Diagnostics;

namespace ModelCompression.Serving;

/// <summary>
/// A request the server answers with an error in OpenAI's shape (<c>{"error": {"message", "type", "param", "code"}}</c>):
/// the HTTP status, OpenAI's error type, the request field at fault and the code (an MCxxxx diagnostic code for bad
/// input, OpenAI's own words for authentication and overload).
/// </summary>
internal sealed class ServeRequestException(int status, string code, string message, string? param = null, string type = "invalid_request_error")
    : Exception(message)
{
    /// <summary>The HTTP status.</summary>
    public int Status { get; } = status;

    /// <summary>The error code.</summary>
    public string Code { get; } = code;

    /// <summary>The request field at fault (dotted path, e.g. <c>messages[1].role</c>), or null.</summary>
    public string? Param { get; } = param;

    /// <summary>OpenAI's error type.</summary>
    public string Type { get; } = type;

    /// <summary>400 with MC2066 for <paramref name="param"/>.</summary>
    public static ServeRequestException Invalid(string param, string message) => new(400, DiagnosticCodes.ServeRequestInvalid, message, param);
}
