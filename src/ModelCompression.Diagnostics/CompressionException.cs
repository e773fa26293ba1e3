namespace ModelCompression.Diagnostics;

/// <summary>
/// Thrown when the engine cannot go on. Carries one or more <see cref="Diagnostic"/>s so that every problem
/// found before the failure is reported together.
/// </summary>
public sealed class CompressionException : Exception
{
    /// <summary>Creates an exception for one diagnostic.</summary>
    public CompressionException(Diagnostic diagnostic, Exception? inner = null)
        : this([diagnostic], inner)
    {
    }

    /// <summary>Creates an exception for several diagnostics (at least one).</summary>
    public CompressionException(IReadOnlyList<Diagnostic> diagnostics, Exception? inner = null)
        : base(string.Join(Environment.NewLine, diagnostics), inner)
    {
        if (diagnostics.Count == 0)
        {
            throw new ArgumentException("At least one diagnostic is needed.", nameof(diagnostics));
        }

        Diagnostics = diagnostics;
    }

    /// <summary>The problems, in the order they were found.</summary>
    public IReadOnlyList<Diagnostic> Diagnostics { get; }

    /// <summary>The code of the first diagnostic.</summary>
    public string Code => Diagnostics[0].Code;

    /// <summary>Shorthand: throw for one error.</summary>
    public static CompressionException Error(string code, string message, string? file = null, int? line = null, int? column = null) =>
        new(Diagnostic.Error(code, message, file, line, column));
}
