using System.IO.MemoryMappedFiles;
using System.Numerics;
using System.Runtime.InteropServices;

namespace ModelCompression.Data;

/// <summary>Converts raw little-endian values of a <see cref="StorageType"/> to float or int64.</summary>
internal static class StorageConversion
{
    public static int Size(StorageType type) => type switch
    {
        StorageType.Bool or StorageType.UInt8 or StorageType.Int8 => 1,
        StorageType.Int16 or StorageType.UInt16 or StorageType.Float16 => 2,
        StorageType.Int32 or StorageType.UInt32 or StorageType.Float32 => 4,
        _ => 8,
    };

    public static bool IsFloatingPoint(StorageType type) => type is StorageType.Float16 or StorageType.Float32 or StorageType.Float64;

    public static void ToFloat(ReadOnlySpan<byte> raw, StorageType type, Span<float> destination)
    {
        switch (type)
        {
            case StorageType.Float32:
                MemoryMarshal.Cast<byte, float>(raw).CopyTo(destination);
                break;
            case StorageType.Float64:
                Convert(MemoryMarshal.Cast<byte, double>(raw), destination);
                break;
            case StorageType.Float16:
                Convert(MemoryMarshal.Cast<byte, Half>(raw), destination);
                break;
            case StorageType.Bool:
            case StorageType.UInt8:
                for (var i = 0; i < destination.Length; i++)
                {
                    destination[i] = raw[i];
                }

                break;
            case StorageType.Int8:
                Convert(MemoryMarshal.Cast<byte, sbyte>(raw), destination);
                break;
            case StorageType.Int16:
                Convert(MemoryMarshal.Cast<byte, short>(raw), destination);
                break;
            case StorageType.UInt16:
                Convert(MemoryMarshal.Cast<byte, ushort>(raw), destination);
                break;
            case StorageType.Int32:
                Convert(MemoryMarshal.Cast<byte, int>(raw), destination);
                break;
            case StorageType.UInt32:
                Convert(MemoryMarshal.Cast<byte, uint>(raw), destination);
                break;
            case StorageType.Int64:
                Convert(MemoryMarshal.Cast<byte, long>(raw), destination);
                break;
            case StorageType.UInt64:
                Convert(MemoryMarshal.Cast<byte, ulong>(raw), destination);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(type), type, null);
        }
    }

    public static void ToInt64(ReadOnlySpan<byte> raw, StorageType type, Span<long> destination)
    {
        switch (type)
        {
            case StorageType.Int64:
                MemoryMarshal.Cast<byte, long>(raw).CopyTo(destination);
                break;
            case StorageType.Bool:
            case StorageType.UInt8:
                for (var i = 0; i < destination.Length; i++)
                {
                    destination[i] = raw[i];
                }

                break;
            case StorageType.Int8:
                Convert(MemoryMarshal.Cast<byte, sbyte>(raw), destination);
                break;
            case StorageType.Int16:
                Convert(MemoryMarshal.Cast<byte, short>(raw), destination);
                break;
            case StorageType.UInt16:
                Convert(MemoryMarshal.Cast<byte, ushort>(raw), destination);
                break;
            case StorageType.Int32:
                Convert(MemoryMarshal.Cast<byte, int>(raw), destination);
                break;
            case StorageType.UInt32:
                Convert(MemoryMarshal.Cast<byte, uint>(raw), destination);
                break;
            case StorageType.UInt64:
                // Ids above long.MaxValue do not occur in real vocabularies; CreateTruncating wraps them.
                Convert(MemoryMarshal.Cast<byte, ulong>(raw), destination);
                break;
            default:
                throw new InvalidOperationException($"{type} values cannot be read as int64.");
        }
    }

    private static void Convert<TFrom, TTo>(ReadOnlySpan<TFrom> source, Span<TTo> destination)
        where TFrom : INumberBase<TFrom>
        where TTo : INumberBase<TTo>
    {
        for (var i = 0; i < destination.Length; i++)
        {
            destination[i] = TTo.CreateTruncating(source[i]);
        }
    }
}

/// <summary>
/// Rows read straight from a memory-mapped file region: an NPY file (or a stored NPZ entry) larger than memory
/// is paged in by the operating system as batches touch it, never loaded whole into managed memory.
/// </summary>
internal sealed class MappedStore : TensorStore
{
    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private readonly long _offset;

    private MappedStore(MemoryMappedFile file, MemoryMappedViewAccessor view, long offset, StorageType type, int rows, int rowElements)
        : base(type, rows, rowElements)
    {
        _file = file;
        _view = view;
        _offset = offset;
    }

    /// <summary>Maps <paramref name="rows"/> rows that start <paramref name="offset"/> bytes into <paramref name="path"/>.</summary>
    public static TensorStore Open(string path, long offset, StorageType type, int rows, int rowElements)
    {
        if (rows == 0)
        {
            return ArrayStore.Create([], type, rowElements);
        }

        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        MemoryMappedFile? file = null;
        try
        {
            file = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            var view = file.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            return new MappedStore(file, view, offset, type, rows, rowElements);
        }
        catch
        {
            if (file is null)
            {
                stream.Dispose();
            }
            else
            {
                file.Dispose();
            }

            throw;
        }
    }

    public override void ReadRows(int first, int count, Span<byte> destination)
    {
        var position = _offset + ((long)first * RowBytes) + _view.PointerOffset;
        _view.SafeMemoryMappedViewHandle.ReadSpan((ulong)position, destination[..(count * RowBytes)]);
    }

    public override void Dispose()
    {
        _view.Dispose();
        _file.Dispose();
    }
}
