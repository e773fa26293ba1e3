using System.Buffers.Binary;
using System.Diagnostics;
using System.Numerics;
using System.Text;

namespace ModelCompression.Torch.Training;

/// <summary>
/// A TensorBoard event file of scalars, written here rather than through TorchSharp's SummaryWriter: that one
/// stamps its first event (the file version) with .NET ticks (about 6.4e17) and the rest with Unix seconds, so
/// TensorBoard's relative and wall-time axes began some 20 billion years before training. Every event here
/// carries Unix seconds.
/// </summary>
/// <remarks>
/// The file is a sequence of TFRecords (little-endian length, masked CRC-32C of the length, the record, masked
/// CRC-32C of the record), each an <c>Event</c> protobuf: wall_time (field 1, double), step (field 2, int64),
/// and either file_version (field 3, "brain.Event:2", the first record) or a summary (field 5) holding one
/// value with a tag (field 1) and a simple_value (field 2, float).
/// </remarks>
internal sealed class EventLog : IDisposable
{
    private const string FileVersion = "brain.Event:2";

    /// <summary>Added to a rotated CRC so a CRC of data that holds CRCs is not itself a likely CRC (TFRecord's mask).</summary>
    private const uint CrcMaskDelta = 0xa282ead8;

    /// <summary>How stale the file may get between epochs, so TensorBoard shows a long epoch's steps as they happen.</summary>
    private static readonly TimeSpan FlushInterval = TimeSpan.FromSeconds(2);

    /// <summary>Distinguishes files one process opens within the same second in the same folder.</summary>
    private static int s_opened;

    private readonly FileStream _file;
    private readonly MemoryStream _event = new();
    private readonly MemoryStream _nested = new();
    private long _lastFlush = Stopwatch.GetTimestamp();

    /// <summary>Creates a new event file in <paramref name="directory"/> (made if missing) and writes its file-version event.</summary>
    public EventLog(string directory)
    {
        Directory.CreateDirectory(directory);
        var name = $"events.out.tfevents.{DateTimeOffset.UtcNow.ToUnixTimeSeconds()}.{Environment.MachineName}.{Environment.ProcessId}.{Interlocked.Increment(ref s_opened)}";
        FilePath = Path.Combine(directory, name);
        _file = new FileStream(FilePath, FileMode.CreateNew, FileAccess.Write, FileShare.Read);
        BeginEvent(0);
        WriteBytesField(_event, 3, Encoding.UTF8.GetBytes(FileVersion));
        EndEvent();
        Flush();
    }

    /// <summary>The event file.</summary>
    public string FilePath { get; }

    /// <summary>Appends one scalar: <paramref name="tag"/> at <paramref name="step"/>, stamped now.</summary>
    public void Scalar(string tag, double value, long step)
    {
        _nested.SetLength(0);
        WriteBytesField(_nested, 1, Encoding.UTF8.GetBytes(tag));
        WriteTag(_nested, 2, WireType.Fixed32);
        Span<byte> bits = stackalloc byte[4];
        BinaryPrimitives.WriteSingleLittleEndian(bits, (float)value);
        _nested.Write(bits);

        // Summary { repeated Value value = 1 } holding the one value.
        var valueBytes = _nested.ToArray();
        _nested.SetLength(0);
        WriteBytesField(_nested, 1, valueBytes);

        BeginEvent(step);
        WriteBytesField(_event, 5, _nested.ToArray());
        EndEvent();
        if (Stopwatch.GetElapsedTime(_lastFlush) >= FlushInterval)
        {
            Flush();
        }
    }

    /// <summary>Makes everything written so far visible to TensorBoard.</summary>
    public void Flush()
    {
        _file.Flush();
        _lastFlush = Stopwatch.GetTimestamp();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _file.Dispose();
        _event.Dispose();
        _nested.Dispose();
    }

    /// <summary>CRC-32C (Castagnoli) of <paramref name="data"/>, as TFRecord checksums use it.</summary>
    internal static uint Crc32C(ReadOnlySpan<byte> data)
    {
        var crc = uint.MaxValue;
        foreach (var b in data)
        {
            crc = BitOperations.Crc32C(crc, b);
        }

        return ~crc;
    }

    /// <summary>TFRecord's masked CRC: rotated right by 15 bits, plus a constant.</summary>
    internal static uint MaskedCrc(ReadOnlySpan<byte> data)
    {
        var crc = Crc32C(data);
        return unchecked(((crc >> 15) | (crc << 17)) + CrcMaskDelta);
    }

    private void BeginEvent(long step)
    {
        _event.SetLength(0);
        WriteTag(_event, 1, WireType.Fixed64);
        Span<byte> bits = stackalloc byte[8];
        BinaryPrimitives.WriteDoubleLittleEndian(bits, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0);
        _event.Write(bits);
        WriteTag(_event, 2, WireType.Varint);
        WriteVarint(_event, unchecked((ulong)step));
    }

    /// <summary>Frames the event as one TFRecord and appends it to the file.</summary>
    private void EndEvent()
    {
        var record = _event.GetBuffer().AsSpan(0, (int)_event.Length);
        Span<byte> header = stackalloc byte[12];
        BinaryPrimitives.WriteUInt64LittleEndian(header, (ulong)record.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(header[8..], MaskedCrc(header[..8]));
        Span<byte> footer = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(footer, MaskedCrc(record));
        _file.Write(header);
        _file.Write(record);
        _file.Write(footer);
    }

    private static void WriteBytesField(Stream stream, int field, ReadOnlySpan<byte> bytes)
    {
        WriteTag(stream, field, WireType.LengthDelimited);
        WriteVarint(stream, (ulong)bytes.Length);
        stream.Write(bytes);
    }

    private static void WriteTag(Stream stream, int field, WireType type) => WriteVarint(stream, ((ulong)field << 3) | (ulong)type);

    private static void WriteVarint(Stream stream, ulong value)
    {
        while (value >= 0x80)
        {
            stream.WriteByte((byte)((value & 0x7F) | 0x80));
            value >>= 7;
        }

        stream.WriteByte((byte)value);
    }

    private enum WireType
    {
        Varint = 0,
        Fixed64 = 1,
        LengthDelimited = 2,
        Fixed32 = 5,
    }
}
