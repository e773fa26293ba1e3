using System.Buffers.Binary;
using System.Text;

namespace ModelCompression.Torch.Tests.Training;

/// <summary>One event of a TensorBoard event file: the file-version event, or one scalar.</summary>
internal sealed record TensorBoardEvent(double WallTime, long Step, string? FileVersion, string? Tag, float? Value);

/// <summary>
/// Reads a TensorBoard event file as TensorBoard does, written from the formats' specifications and independent
/// of the engine's writer: TFRecord framing (u64 length, masked CRC-32C of the length, the record, masked CRC-32C
/// of the record, little-endian) around Event protobufs (wall_time = 1 double, step = 2 int64,
/// file_version = 3 string, summary = 5; Summary.value = 1; Value.tag = 1 string, Value.simple_value = 2 float).
/// A checksum that does not match fails the read.
/// </summary>
internal static class TensorBoardEvents
{
    public static IReadOnlyList<TensorBoardEvent> Read(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var events = new List<TensorBoardEvent>();
        var at = 0;
        while (at < bytes.Length)
        {
            var length = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(at, 8)));
            Check(bytes.AsSpan(at, 8), BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 8, 4)), $"length of the record at byte {at}");
            var record = bytes.AsSpan(at + 12, length);
            Check(record, BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 12 + length, 4)), $"record at byte {at}");
            events.Add(ParseEvent(record));
            at += 12 + length + 4;
        }

        return events;
    }

    /// <summary>CRC-32C, bit by bit with the reflected Castagnoli polynomial: slow, and obviously the definition.</summary>
    public static uint Crc32C(ReadOnlySpan<byte> data)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in data)
        {
            crc ^= b;
            for (var bit = 0; bit < 8; bit++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
            }
        }

        return ~crc;
    }

    private static void Check(ReadOnlySpan<byte> data, uint masked, string what)
    {
        var crc = Crc32C(data);
        var expected = unchecked(((crc >> 15) | (crc << 17)) + 0xa282ead8u);
        Assert.True(expected == masked, $"Checksum of the {what}: {masked:x8}, expected {expected:x8}.");
    }

    private static TensorBoardEvent ParseEvent(ReadOnlySpan<byte> record)
    {
        double wallTime = 0;
        long step = 0;
        string? fileVersion = null, tag = null;
        float? value = null;
        var at = 0;
        while (at < record.Length)
        {
            var (field, wire) = Key(record, ref at);
            switch (field, wire)
            {
                case (1, 1):
                    wallTime = BinaryPrimitives.ReadDoubleLittleEndian(record.Slice(at, 8));
                    at += 8;
                    break;
                case (2, 0):
                    step = (long)Varint(record, ref at);
                    break;
                case (3, 2):
                    fileVersion = Encoding.UTF8.GetString(Delimited(record, ref at));
                    break;
                case (5, 2):
                    (tag, value) = ParseSummary(Delimited(record, ref at));
                    break;
                default:
                    Skip(record, ref at, wire);
                    break;
            }
        }

        return new TensorBoardEvent(wallTime, step, fileVersion, tag, value);
    }

    private static (string? Tag, float? Value) ParseSummary(ReadOnlySpan<byte> summary)
    {
        string? tag = null;
        float? value = null;
        var at = 0;
        var values = 0;
        while (at < summary.Length)
        {
            var (field, wire) = Key(summary, ref at);
            if (field != 1 || wire != 2)
            {
                Skip(summary, ref at, wire);
                continue;
            }

            values++;
            var entry = Delimited(summary, ref at);
            var inner = 0;
            while (inner < entry.Length)
            {
                var (f, w) = Key(entry, ref inner);
                switch (f, w)
                {
                    case (1, 2):
                        tag = Encoding.UTF8.GetString(Delimited(entry, ref inner));
                        break;
                    case (2, 5):
                        value = BinaryPrimitives.ReadSingleLittleEndian(entry.Slice(inner, 4));
                        inner += 4;
                        break;
                    default:
                        Skip(entry, ref inner, w);
                        break;
                }
            }
        }

        Assert.Equal(1, values);
        return (tag, value);
    }

    private static (int Field, int Wire) Key(ReadOnlySpan<byte> data, ref int at)
    {
        var key = Varint(data, ref at);
        return ((int)(key >> 3), (int)(key & 7));
    }

    private static ulong Varint(ReadOnlySpan<byte> data, ref int at)
    {
        ulong value = 0;
        for (var shift = 0; ; shift += 7)
        {
            var b = data[at++];
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return value;
            }
        }
    }

    private static ReadOnlySpan<byte> Delimited(ReadOnlySpan<byte> data, ref int at)
    {
        var length = (int)Varint(data, ref at);
        var slice = data.Slice(at, length);
        at += length;
        return slice;
    }

    private static void Skip(ReadOnlySpan<byte> data, ref int at, int wire)
    {
        switch (wire)
        {
            case 0:
                Varint(data, ref at);
                break;
            case 1:
                at += 8;
                break;
            case 2:
                Delimited(data, ref at);
                break;
            case 5:
                at += 4;
                break;
            default:
                throw new InvalidDataException($"Wire type {wire} at byte {at}.");
        }
    }
}
