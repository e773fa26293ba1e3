using System.Buffers.Binary;
using System.IO.Compression;
using ModelCompression.Diagnostics;

namespace ModelCompression.Data;

/// <summary>
/// Reads NumPy's .npz archives (a zip of .npy files, as <c>numpy.savez</c> and <c>savez_compressed</c> write
/// them). An entry stored uncompressed is memory-mapped in place; a deflated entry is decompressed into
/// memory. Array names are the entry names without ".npy".
/// </summary>
public static class NpzReader
{
    private const uint LocalHeaderSignature = 0x04034b50;
    private const uint CentralHeaderSignature = 0x02014b50;
    private const uint EndSignature = 0x06054b50;
    private const uint Zip64EndSignature = 0x06064b50;
    private const uint Zip64LocatorSignature = 0x07064b50;
    private const ushort Stored = 0;
    private const ushort Deflated = 8;

    /// <summary>One array of an archive.</summary>
    /// <param name="Name">The array's name (the entry name without ".npy").</param>
    /// <param name="Compressed">True when the entry is deflated (read into memory rather than mapped).</param>
    public sealed record NpzEntry(string Name, bool Compressed);

    /// <summary>The arrays in <paramref name="path"/>, in archive order.</summary>
    public static IReadOnlyList<NpzEntry> List(string path) =>
        [.. ReadDirectory(path).Select(e => new NpzEntry(e.ArrayName, e.Method == Deflated))];

    /// <summary>
    /// Opens the named arrays of <paramref name="path"/> as tensors (mapped when stored, in memory when
    /// deflated). MC2020 names the arrays the archive has when one is missing.
    /// </summary>
    public static IReadOnlyList<DataTensor> Open(string path, IReadOnlyList<string> arrays)
    {
        var entries = ReadDirectory(path);
        var tensors = new List<DataTensor>();
        foreach (var name in arrays)
        {
            var entry = Find(entries, name, path);
            var (header, store) = OpenEntry(path, entry);
            tensors.Add(new DataTensor(name, store, NpyReader.SampleShape(header), null));
        }

        return tensors;
    }

    /// <summary>Reads the array <paramref name="name"/> of <paramref name="path"/> as labels.</summary>
    public static long[] ReadLabels(string path, string name)
    {
        var entry = Find(ReadDirectory(path), name, path);
        var (header, store) = OpenEntry(path, entry);
        using (store)
        {
            return NpyReader.LabelsFrom(header, store, $"{path}:{entry.FileName}");
        }
    }

    /// <summary>Reads the float targets (regression) in the array <paramref name="name"/>: one finite number per sample.</summary>
    public static float[] ReadTargets(string path, string name)
    {
        var entry = Find(ReadDirectory(path), name, path);
        var (header, store) = OpenEntry(path, entry);
        using (store)
        {
            return NpyReader.TargetsFrom(header, store, $"{path}:{entry.FileName}");
        }
    }

    private static Entry Find(IReadOnlyList<Entry> entries, string name, string path) =>
        entries.FirstOrDefault(e => e.ArrayName == name)
        ?? throw CompressionException.Error(
            DiagnosticCodes.DataSchemaMismatch,
            $"NPZ archive '{path}' has no array '{name}'. It has: {string.Join(", ", entries.Select(e => e.ArrayName))}.",
            path);

    private static (NpyReader.NpyHeader Header, TensorStore Store) OpenEntry(string path, Entry entry)
    {
        var source = $"{path}:{entry.FileName}";
        try
        {
            if (entry.Method == Stored)
            {
                using var file = File.OpenRead(path);
                var dataStart = LocalDataStart(file, entry, path);
                file.Position = dataStart;
                var header = NpyReader.ReadHeader(file, source);
                NpyReader.CheckLength(header, entry.CompressedSize, source);
                var (rows, rowElements) = NpyReader.Rows(header, source);
                return (header, MappedStore.Open(path, dataStart + header.DataOffset, header.Type, rows, rowElements));
            }

            if (entry.Method == Deflated)
            {
                using var archive = ZipFile.OpenRead(path);
                var zipEntry = archive.GetEntry(entry.FileName) ?? throw Unreadable(path, $"entry '{entry.FileName}' is listed but cannot be opened");
                using var stream = zipEntry.Open();
                var header = NpyReader.ReadHeader(stream, source);
                var (rows, rowElements) = NpyReader.Rows(header, source);
                var bytes = new byte[header.DataBytes];
                try
                {
                    stream.ReadExactly(bytes);
                }
                catch (EndOfStreamException)
                {
                    throw NpyReader.Unreadable(source, $"it is truncated: the header promises {header.Elements} values of {header.Type}");
                }

                return (header, ArrayStore.Create(bytes, header.Type, rowElements));
            }
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            throw Unreadable(path, $"entry '{entry.FileName}': {e.Message}");
        }

        throw CompressionException.Error(
            DiagnosticCodes.DataUnsupportedLayout,
            $"NPZ archive '{path}': entry '{entry.FileName}' uses zip compression method {entry.Method}; stored (numpy.savez) and deflated (numpy.savez_compressed) entries are supported.",
            path);
    }

    /// <summary>Where an entry's data starts: after its local header, whose name and extra field lengths may differ from the central directory's.</summary>
    private static long LocalDataStart(FileStream file, Entry entry, string path)
    {
        Span<byte> local = stackalloc byte[30];
        file.Position = entry.LocalHeaderOffset;
        file.ReadExactly(local);
        if (BinaryPrimitives.ReadUInt32LittleEndian(local) != LocalHeaderSignature)
        {
            throw Unreadable(path, $"entry '{entry.FileName}' has no local header at offset {entry.LocalHeaderOffset}");
        }

        return entry.LocalHeaderOffset + 30 + BinaryPrimitives.ReadUInt16LittleEndian(local[26..]) + BinaryPrimitives.ReadUInt16LittleEndian(local[28..]);
    }

    private sealed record Entry(string FileName, ushort Method, long CompressedSize, long LocalHeaderOffset)
    {
        public string ArrayName => FileName.EndsWith(".npy", StringComparison.Ordinal) ? FileName[..^4] : FileName;
    }

    /// <summary>Reads the zip central directory (zip64 included): names, methods, sizes and offsets.</summary>
    private static List<Entry> ReadDirectory(string path)
    {
        try
        {
            using var file = File.OpenRead(path);
            var (directoryOffset, directorySize, count) = FindDirectory(file, path);
            if (directorySize > int.MaxValue || directoryOffset + directorySize > file.Length)
            {
                throw Unreadable(path, "its central directory lies outside the file");
            }

            var directory = new byte[directorySize];
            file.Position = directoryOffset;
            file.ReadExactly(directory);
            var entries = new List<Entry>();
            var at = 0;
            for (var i = 0; i < count; i++)
            {
                if (at + 46 > directory.Length || BinaryPrimitives.ReadUInt32LittleEndian(directory.AsSpan(at)) != CentralHeaderSignature)
                {
                    throw Unreadable(path, $"central directory entry {i} is damaged");
                }

                var record = directory.AsSpan(at);
                var flags = BinaryPrimitives.ReadUInt16LittleEndian(record[8..]);
                var method = BinaryPrimitives.ReadUInt16LittleEndian(record[10..]);
                long compressed = BinaryPrimitives.ReadUInt32LittleEndian(record[20..]);
                long uncompressed = BinaryPrimitives.ReadUInt32LittleEndian(record[24..]);
                var nameLength = BinaryPrimitives.ReadUInt16LittleEndian(record[28..]);
                var extraLength = BinaryPrimitives.ReadUInt16LittleEndian(record[30..]);
                var commentLength = BinaryPrimitives.ReadUInt16LittleEndian(record[32..]);
                long offset = BinaryPrimitives.ReadUInt32LittleEndian(record[42..]);
                if (46 + nameLength + extraLength > record.Length)
                {
                    throw Unreadable(path, $"central directory entry {i} is damaged");
                }

                var name = System.Text.Encoding.UTF8.GetString(record.Slice(46, nameLength));
                ReadZip64Extra(record.Slice(46 + nameLength, extraLength), ref uncompressed, ref compressed, ref offset);
                if ((flags & 1) != 0)
                {
                    throw CompressionException.Error(DiagnosticCodes.DataUnsupportedLayout, $"NPZ archive '{path}': entry '{name}' is encrypted.", path);
                }

                if (!name.EndsWith('/'))
                {
                    entries.Add(new Entry(name, method, compressed, offset));
                }

                at += 46 + nameLength + extraLength + commentLength;
            }

            return entries;
        }
        catch (EndOfStreamException)
        {
            throw Unreadable(path, "it is truncated");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw Unreadable(path, e.Message);
        }
    }

    private static (long Offset, long Size, long Count) FindDirectory(FileStream file, string path)
    {
        // The end record is 22 bytes plus a comment of up to 65535 bytes, at the very end of the file.
        var tailLength = (int)Math.Min(file.Length, 22 + 65535);
        var tail = new byte[tailLength];
        file.Position = file.Length - tailLength;
        file.ReadExactly(tail);
        var end = -1;
        for (var i = tailLength - 22; i >= 0; i--)
        {
            if (BinaryPrimitives.ReadUInt32LittleEndian(tail.AsSpan(i)) == EndSignature)
            {
                end = i;
                break;
            }
        }

        if (end < 0)
        {
            throw Unreadable(path, "it is not a zip archive (no end of central directory record)");
        }

        long count = BinaryPrimitives.ReadUInt16LittleEndian(tail.AsSpan(end + 10));
        long size = BinaryPrimitives.ReadUInt32LittleEndian(tail.AsSpan(end + 12));
        long offset = BinaryPrimitives.ReadUInt32LittleEndian(tail.AsSpan(end + 16));
        if (count != 0xFFFF && size != 0xFFFFFFFF && offset != 0xFFFFFFFF)
        {
            return (offset, size, count);
        }

        // Zip64: a locator just before the end record points at the zip64 end record.
        var locator = end - 20;
        if (locator < 0 || BinaryPrimitives.ReadUInt32LittleEndian(tail.AsSpan(locator)) != Zip64LocatorSignature)
        {
            throw Unreadable(path, "its zip64 end of central directory locator is missing");
        }

        var zip64End = (long)BinaryPrimitives.ReadUInt64LittleEndian(tail.AsSpan(locator + 8));
        Span<byte> record = stackalloc byte[56];
        file.Position = zip64End;
        file.ReadExactly(record);
        if (BinaryPrimitives.ReadUInt32LittleEndian(record) != Zip64EndSignature)
        {
            throw Unreadable(path, "its zip64 end of central directory record is damaged");
        }

        return ((long)BinaryPrimitives.ReadUInt64LittleEndian(record[48..]), (long)BinaryPrimitives.ReadUInt64LittleEndian(record[40..]), (long)BinaryPrimitives.ReadUInt64LittleEndian(record[32..]));
    }

    /// <summary>Zip64 extra field (id 1): 8-byte values for whichever of the 32-bit fields were saturated, in this order.</summary>
    private static void ReadZip64Extra(ReadOnlySpan<byte> extra, ref long uncompressed, ref long compressed, ref long offset)
    {
        while (extra.Length >= 4)
        {
            var id = BinaryPrimitives.ReadUInt16LittleEndian(extra);
            var size = BinaryPrimitives.ReadUInt16LittleEndian(extra[2..]);
            var data = extra.Slice(4, Math.Min(size, extra.Length - 4));
            if (id == 1)
            {
                var at = 0;
                if (uncompressed == 0xFFFFFFFF && at + 8 <= data.Length)
                {
                    uncompressed = (long)BinaryPrimitives.ReadUInt64LittleEndian(data[at..]);
                    at += 8;
                }

                if (compressed == 0xFFFFFFFF && at + 8 <= data.Length)
                {
                    compressed = (long)BinaryPrimitives.ReadUInt64LittleEndian(data[at..]);
                    at += 8;
                }

                if (offset == 0xFFFFFFFF && at + 8 <= data.Length)
                {
                    offset = (long)BinaryPrimitives.ReadUInt64LittleEndian(data[at..]);
                }
            }

            extra = extra[Math.Min(extra.Length, 4 + size)..];
        }
    }

    private static CompressionException Unreadable(string path, string why) =>
        CompressionException.Error(DiagnosticCodes.DataUnreadable, $"Cannot read NPZ archive '{path}': {why}.", path);
}
