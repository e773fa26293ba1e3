using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace ModelCompression.Data;

/// <summary>
/// Writes a float32 array as an NPY file (format 1.0: magic, little-endian header length, a Python dict literal
/// padded to a multiple of 64 bytes, then the values in C order), streamed: the values come in blocks, so an
/// array larger than memory can be written. <see cref="NpyReader.Open"/> and numpy read the result.
/// </summary>
public sealed class NpyWriter : IDisposable
{
    private readonly Stream _stream;
    private readonly long _expected;
    private long _written;

    /// <summary>Creates <paramref name="path"/> for a float32 array of <paramref name="shape"/> and writes its header.</summary>
    public NpyWriter(string path, long[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        _expected = shape.Aggregate(1L, (a, b) => a * b);
        _stream = File.Create(path);
        try
        {
            _stream.Write(Header(shape));
        }
        catch
        {
            _stream.Dispose();
            throw;
        }
    }

    /// <summary>Appends the next values, in C order.</summary>
    public void Write(ReadOnlySpan<float> values)
    {
        if (_written + values.Length > _expected)
        {
            throw new InvalidOperationException($"The array holds {_expected} values; {_written + values.Length} were written.");
        }

        // NPY's '<f4' is little-endian, as is every platform .NET runs this engine on.
        _stream.Write(MemoryMarshal.AsBytes(values));
        _written += values.Length;
    }

    /// <summary>Closes the file; every value the shape promises must have been written.</summary>
    public void Dispose()
    {
        _stream.Dispose();
        if (_written != _expected)
        {
            throw new InvalidOperationException($"The array holds {_expected} values but only {_written} were written.");
        }
    }

    /// <summary>
    /// Closes an unfinished file without the completeness check, for a writer given up on because of an earlier
    /// error (which the check would otherwise hide); the caller discards the file.
    /// </summary>
    public void Abandon() => _stream.Dispose();

    private static byte[] Header(long[] shape)
    {
        // A 1-D shape is written "(n,)": a tuple of one needs its comma in Python.
        var dims = shape.Length == 1
            ? $"({shape[0].ToString(CultureInfo.InvariantCulture)},)"
            : $"({string.Join(", ", shape.Select(d => d.ToString(CultureInfo.InvariantCulture)))})";
        var dict = $"{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}";
        const int Prefix = 10; // magic (6), version (2), header length (2)
        var padded = (Prefix + dict.Length + 1 + 63) / 64 * 64;
        var text = dict.PadRight(padded - Prefix - 1) + "\n";
        var header = new byte[padded];
        NpyReader.Magic.CopyTo(header, 0);
        header[6] = 1;
        header[7] = 0;
        header[8] = (byte)(text.Length & 0xFF);
        header[9] = (byte)(text.Length >> 8);
        Encoding.ASCII.GetBytes(text, header.AsSpan(Prefix));
        return header;
    }
}
