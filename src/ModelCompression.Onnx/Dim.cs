namespace ModelCompression.Onnx;

/// <summary>
/// One dimension of a value's shape: a fixed size (<c>20</c>), a symbolic name (<c>"batch"</c>) or unknown.
/// Converts implicitly from integers and strings, so shapes read as <c>["batch", 784]</c>.
/// </summary>
public readonly record struct Dim
{
    private Dim(long? value, string? param)
    {
        Value = value;
        Param = param;
    }

    /// <summary>The fixed size, when the dimension has one.</summary>
    public long? Value { get; }

    /// <summary>The symbolic name, when the dimension has one.</summary>
    public string? Param { get; }

    /// <summary>A dimension of unknown size and no name.</summary>
    public static Dim Unknown => default;

    /// <summary>A fixed size.</summary>
    public static implicit operator Dim(long value) => FromValue(value);

    /// <summary>A symbolic name.</summary>
    public static implicit operator Dim(string param) => FromParam(param);

    /// <summary>A fixed size (non-negative).</summary>
    public static Dim FromValue(long value)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(value);
        return new Dim(value, null);
    }

    /// <summary>A symbolic name (not empty).</summary>
    public static Dim FromParam(string param)
    {
        ArgumentException.ThrowIfNullOrEmpty(param);
        return new Dim(null, param);
    }

    /// <inheritdoc />
    public override string ToString() => Value?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? Param ?? "?";
}
