namespace ModelCompression.Diagnostics;

/// <summary>How bad a <see cref="Diagnostic"/> is.</summary>
public enum DiagnosticSeverity
{
    /// <summary>The work cannot go on (or a gate failed).</summary>
    Error,

    /// <summary>Worth a person's attention; the work goes on.</summary>
    Warning,
}

/// <summary>
/// One problem found by the engine: a code (MCxxxx), a message, and where it is (a file, and a line and
/// column where they apply). <see cref="ToString"/> gives MSBuild's canonical form, which ToolTask turns
/// into a real error or warning with file and line.
/// </summary>
/// <param name="Code">The diagnostic code, one of <see cref="DiagnosticCodes"/>.</param>
/// <param name="Severity">Error or warning.</param>
/// <param name="Message">What is wrong and, where it helps, what to do.</param>
/// <param name="File">The file the problem is in, when there is one.</param>
/// <param name="Line">1-based line in <paramref name="File"/>, when known.</param>
/// <param name="Column">1-based column in <paramref name="File"/>, when known.</param>
public sealed record Diagnostic(
    string Code,
    DiagnosticSeverity Severity,
    string Message,
    string? File = null,
    int? Line = null,
    int? Column = null)
{
    /// <summary>An error diagnostic.</summary>
    public static Diagnostic Error(string code, string message, string? file = null, int? line = null, int? column = null) =>
        new(code, DiagnosticSeverity.Error, message, file, line, column);

    /// <summary>A warning diagnostic.</summary>
    public static Diagnostic Warning(string code, string message, string? file = null, int? line = null, int? column = null) =>
        new(code, DiagnosticSeverity.Warning, message, file, line, column);

    /// <summary>
    /// MSBuild canonical form: <c>path(line,col): error MC2001: message</c>. Without a file the origin is
    /// "dotnet-compress", which MSBuild also accepts.
    /// </summary>
    public override string ToString()
    {
        var origin = File ?? "dotnet-compress";
        if (File is not null && Line is int line)
        {
            origin += Column is int column ? $"({line},{column})" : $"({line})";
        }

        var severity = Severity == DiagnosticSeverity.Error ? "error" : "warning";
        // MSBuild reads one line per diagnostic: keep the message on one line.
        var message = Message.Replace("\r", " ", StringComparison.Ordinal).Replace("\n", " ", StringComparison.Ordinal);
        return $"{origin}: {severity} {Code}: {message}";
    }
}
