using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using ModelCompression.Diagnostics;

namespace ModelCompression.Data;

/// <summary>
/// Reads NumPy's .npy files (format versions 1.0, 2.0 and 3.0): the magic <c>\x93NUMPY</c>, a version, a
/// header length, a Python dict literal (<c>descr</c>, <c>fortran_order</c>, <c>shape</c>), then the values in
/// C order. Little-endian booleans, integers and floats of 1 to 8 bytes are read; Fortran order, big-endian
/// values and other dtypes are MC2023. The first axis is the sample axis.
/// </summary>
public static partial class NpyReader
{
    internal static readonly byte[] Magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary>An NPY array's layout.</summary>
    /// <param name="Type">How each value is stored.</param>
    /// <param name="Shape">All dimensions; the first is the sample count (empty for a 0-d array).</param>
    /// <param name="DataOffset">Where the values start, from the start of the NPY bytes.</param>
    /// <param name="Version">The format's major version.</param>
    public sealed record NpyHeader(StorageType Type, long[] Shape, long DataOffset, int Version)
    {
        /// <summary>The number of values.</summary>
        public long Elements => Shape.Aggregate(1L, (a, b) => a * b);

        /// <summary>The number of bytes the values take.</summary>
        public long DataBytes => Elements * StorageConversion.Size(Type);
    }

    /// <summary>Reads the header at the start of <paramref name="stream"/>; <paramref name="source"/> names it in errors.</summary>
    public static NpyHeader ReadHeader(Stream stream, string source)
    {
        ArgumentNullException.ThrowIfNull(stream);
        Span<byte> prefix = stackalloc byte[12];
        try
        {
            stream.ReadExactly(prefix[..8]);
            if (!prefix[..6].SequenceEqual(Magic))
            {
                throw Unreadable(source, "it does not start with the NPY magic \\x93NUMPY");
            }

            int version = prefix[6];
            int headerLength;
            int headerStart;
            if (version == 1)
            {
                stream.ReadExactly(prefix[8..10]);
                headerLength = BinaryPrimitives.ReadUInt16LittleEndian(prefix[8..]);
                headerStart = 10;
            }
            else if (version is 2 or 3)
            {
                stream.ReadExactly(prefix[8..12]);
                var length = BinaryPrimitives.ReadUInt32LittleEndian(prefix[8..]);
                if (length > 1 << 24)
                {
                    throw Unreadable(source, $"its header claims {length} bytes");
                }

                headerLength = (int)length;
                headerStart = 12;
            }
            else
            {
                throw Unsupported(source, $"NPY format version {version}.{prefix[7]} is not known (1.0, 2.0 and 3.0 are)");
            }

            var header = new byte[headerLength];
            stream.ReadExactly(header);
            // Versions 1 and 2 write the header in latin-1, version 3 in UTF-8; the keys and values we read are ASCII.
            var text = version == 3 ? Encoding.UTF8.GetString(header) : Encoding.Latin1.GetString(header);
            return Parse(text, headerStart + headerLength, version, source);
        }
        catch (EndOfStreamException)
        {
            throw Unreadable(source, "it ends inside the header");
        }
    }

    /// <summary>
    /// Opens <paramref name="path"/> as a tensor named <paramref name="name"/>, memory-mapped: values are read
    /// from the file as batches need them, never loaded whole.
    /// </summary>
    public static DataTensor Open(string path, string name)
    {
        var (header, store) = OpenStore(path);
        return new DataTensor(name, store, SampleShape(header), null);
    }

    /// <summary>
    /// Opens NPY files of the same number of rows as one data set (no labels), each file a tensor named as given,
    /// memory-mapped; disposing the set closes the files.
    /// </summary>
    public static Dataset OpenSet(IReadOnlyList<(string Name, string Path)> files, string source)
    {
        ArgumentNullException.ThrowIfNull(files);
        var tensors = new List<DataTensor>();
        var owned = new List<TensorStore>();
        try
        {
            foreach (var (name, path) in files)
            {
                var (header, store) = OpenStore(path);
                owned.Add(store);
                tensors.Add(new DataTensor(name, store, SampleShape(header), null));
            }

            return new Dataset(tensors, null, source, DataDescription.Empty, new DataOrigin(source, null), null, null, owned);
        }
        catch
        {
            owned.ForEach(s => s.Dispose());
            throw;
        }
    }

    /// <summary>Reads the labels in <paramref name="path"/>: integers (or integral floats) of shape [N] or [N, 1].</summary>
    public static long[] ReadLabels(string path)
    {
        var (header, store) = OpenStore(path);
        using (store)
        {
            return LabelsFrom(header, store, path);
        }
    }

    internal static (NpyHeader Header, TensorStore Store) OpenStore(string path)
    {
        NpyHeader header;
        long length;
        try
        {
            using var file = File.OpenRead(path);
            header = ReadHeader(file, path);
            length = file.Length;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw Unreadable(path, e.Message);
        }

        CheckLength(header, length, path);
        var (rows, rowElements) = Rows(header, path);
        try
        {
            return (header, MappedStore.Open(path, header.DataOffset, header.Type, rows, rowElements));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw Unreadable(path, e.Message);
        }
    }

    /// <summary>Checks that <paramref name="available"/> bytes hold the values the header promises.</summary>
    internal static void CheckLength(NpyHeader header, long available, string source)
    {
        if (available - header.DataOffset < header.DataBytes)
        {
            throw Unreadable(source, $"it is truncated: the header promises {header.Elements} values of {header.Type} ({header.DataBytes} bytes) but {Math.Max(0, available - header.DataOffset)} bytes follow it");
        }
    }

    /// <summary>Rows (the first axis) and values per row.</summary>
    internal static (int Rows, int RowElements) Rows(NpyHeader header, string source)
    {
        if (header.Shape.Length == 0)
        {
            throw CompressionException.Error(DiagnosticCodes.DataSchemaMismatch, $"Data '{source}' is a single value (shape ()); an array with a sample axis is needed.", source);
        }

        var rowElements = header.Shape.Skip(1).Aggregate(1L, (a, b) => a * b);
        if (header.Shape[0] > int.MaxValue || rowElements > int.MaxValue / 8 || rowElements == 0)
        {
            throw Unsupported(source, $"shape ({string.Join(", ", header.Shape)}) has {header.Shape[0]} samples of {rowElements} values; up to {int.MaxValue} samples of up to {int.MaxValue / 8} (and at least 1) values are supported");
        }

        return ((int)header.Shape[0], (int)rowElements);
    }

    internal static long[] SampleShape(NpyHeader header) => header.Shape.Length == 1 ? [1] : header.Shape[1..];

    /// <summary>Reads the float targets (regression) in <paramref name="path"/>: numbers of any numeric type, shape [N] or [N, 1], all finite.</summary>
    public static float[] ReadTargets(string path)
    {
        var (header, store) = OpenStore(path);
        using (store)
        {
            return TargetsFrom(header, store, path);
        }
    }

    internal static float[] TargetsFrom(NpyHeader header, TensorStore store, string source)
    {
        if (header.Shape.Length is not (1 or 2) || (header.Shape.Length == 2 && header.Shape[1] != 1))
        {
            throw CompressionException.Error(DiagnosticCodes.DataSchemaMismatch, $"Targets '{source}' have shape ({string.Join(", ", header.Shape)}); regression targets are one number per sample: shape (N,) or (N, 1).", source);
        }

        var targets = new float[store.Rows];
        var raw = new byte[store.RowBytes];
        var bad = new BadRows();
        for (var row = 0; row < targets.Length; row++)
        {
            store.ReadRows(row, 1, raw);
            StorageConversion.ToFloat(raw, header.Type, targets.AsSpan(row, 1));
            if (!float.IsFinite(targets[row]))
            {
                bad.Add(source, null, $"{source} row {row}", $"target {targets[row].ToString(CultureInfo.InvariantCulture)} is not a finite number");
            }
        }

        bad.ThrowIfAny(DiagnosticCodes.DataBadRows, $"Targets '{source}' hold NaN or infinite values");
        return targets;
    }

    internal static long[] LabelsFrom(NpyHeader header, TensorStore store, string source)
    {
        if (header.Shape.Length is not (1 or 2) || (header.Shape.Length == 2 && header.Shape[1] != 1))
        {
            throw CompressionException.Error(DiagnosticCodes.DataSchemaMismatch, $"Labels '{source}' have shape ({string.Join(", ", header.Shape)}); labels are one integer per sample: shape (N,) or (N, 1).", source);
        }

        var labels = new long[store.Rows];
        var raw = new byte[store.RowBytes];
        if (StorageConversion.IsFloatingPoint(header.Type))
        {
            var bad = new BadRows();
            Span<float> value = stackalloc float[1];
            for (var row = 0; row < labels.Length; row++)
            {
                store.ReadRows(row, 1, raw);
                StorageConversion.ToFloat(raw, header.Type, value);
                if (!float.IsFinite(value[0]) || value[0] != MathF.Round(value[0]))
                {
                    bad.Add(source, null, $"{source} row {row}", $"label {value[0].ToString(CultureInfo.InvariantCulture)} is not a whole number");
                }

                labels[row] = (long)value[0];
            }

            bad.ThrowIfAny(DiagnosticCodes.DataBadRows, $"Labels '{source}' are stored as {header.Type} and some are not class numbers");
            return labels;
        }

        Span<long> one = stackalloc long[1];
        for (var row = 0; row < labels.Length; row++)
        {
            store.ReadRows(row, 1, raw);
            StorageConversion.ToInt64(raw, header.Type, one);
            labels[row] = one[0];
        }

        return labels;
    }

    private static NpyHeader Parse(string text, long dataOffset, int version, string source)
    {
        var descr = DescrPattern().Match(text);
        var fortran = FortranPattern().Match(text);
        var shape = ShapePattern().Match(text);
        if (!descr.Success || !fortran.Success || !shape.Success)
        {
            if (StructuredPattern().IsMatch(text))
            {
                throw Unsupported(source, "it holds a structured (record) dtype; plain numeric arrays are supported");
            }

            throw Unreadable(source, $"its header is not a dict with 'descr', 'fortran_order' and 'shape': {text.Trim()}");
        }

        if (fortran.Groups[1].Value == "True")
        {
            throw Unsupported(source, "it is stored in Fortran (column-major) order; save it in C order (numpy.ascontiguousarray) first");
        }

        var type = ParseDescr(descr.Groups[1].Value, source);
        var dims = shape.Groups[1].Value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var parsed = new long[dims.Length];
        for (var i = 0; i < dims.Length; i++)
        {
            var dim = dims[i].TrimEnd('L');
            if (!long.TryParse(dim, NumberStyles.None, CultureInfo.InvariantCulture, out parsed[i]))
            {
                throw Unreadable(source, $"shape ({shape.Groups[1].Value}) is not a tuple of sizes");
            }
        }

        return new NpyHeader(type, parsed, dataOffset, version);
    }

    private static StorageType ParseDescr(string descr, string source)
    {
        if (descr.Length < 3)
        {
            throw Unsupported(source, $"dtype '{descr}' is not a plain numeric type");
        }

        var order = descr[0];
        var kind = descr[1..];
        StorageType? type = kind switch
        {
            "b1" => StorageType.Bool,
            "u1" => StorageType.UInt8,
            "i1" => StorageType.Int8,
            "i2" => StorageType.Int16,
            "u2" => StorageType.UInt16,
            "i4" => StorageType.Int32,
            "u4" => StorageType.UInt32,
            "i8" => StorageType.Int64,
            "u8" => StorageType.UInt64,
            "f2" => StorageType.Float16,
            "f4" => StorageType.Float32,
            "f8" => StorageType.Float64,
            _ => null,
        };
        if (type is null)
        {
            throw Unsupported(source, $"dtype '{descr}' is not supported (booleans, integers and floats of 1 to 8 bytes are)");
        }

        if (order == '>' && StorageConversion.Size(type.Value) > 1)
        {
            throw Unsupported(source, $"dtype '{descr}' is big-endian; save it little-endian (array.astype('<{kind}'))");
        }

        if (order is not ('<' or '|' or '=' or '>'))
        {
            throw Unsupported(source, $"dtype '{descr}' has an unknown byte order '{order}'");
        }

        return type.Value;
    }

    internal static CompressionException Unreadable(string source, string why) =>
        CompressionException.Error(DiagnosticCodes.DataUnreadable, $"Cannot read NPY data '{source}': {why}.", FileOf(source));

    internal static CompressionException Unsupported(string source, string why) =>
        CompressionException.Error(DiagnosticCodes.DataUnsupportedLayout, $"NPY data '{source}' cannot be used: {why}.", FileOf(source));

    /// <summary>The file part of "archive.npz:entry.npy".</summary>
    private static string FileOf(string source)
    {
        var entry = source.IndexOf(".npz:", StringComparison.OrdinalIgnoreCase);
        return entry < 0 ? source : source[..(entry + 4)];
    }

    [GeneratedRegex(@"['""]descr['""]\s*:\s*['""]([^'""]*)['""]")]
    private static partial Regex DescrPattern();

    [GeneratedRegex(@"['""]fortran_order['""]\s*:\s*(True|False)")]
    private static partial Regex FortranPattern();

    [GeneratedRegex(@"['""]shape['""]\s*:\s*\(([^)]*)\)")]
    private static partial Regex ShapePattern();

    [GeneratedRegex(@"['""]descr['""]\s*:\s*\[")]
    private static partial Regex StructuredPattern();
}
