using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Google.Protobuf;
using ModelCompression.Diagnostics;
using ModelCompression.Onnx.Proto;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Onnx;

/// <summary>
/// Converts between <see cref="TensorProto"/> and .NET arrays. Data is read from <c>raw_data</c> (little-endian,
/// as the format requires) or from the typed fields (<c>float_data</c>, <c>int32_data</c>, …) the way the
/// ONNX spec assigns element types to them. Tensors still marked external (loaded with
/// <see cref="OnnxLoadOptions.LoadExternalData"/> off) have no data in memory and are refused.
/// </summary>
public static class TensorData
{
    /// <summary>Bytes per element, or null for types without a fixed whole-byte size (string, 4-bit types, undefined).</summary>
    public static int? ElementSize(DataType type) => type switch
    {
        DataType.Float or DataType.Int32 or DataType.Uint32 => 4,
        DataType.Double or DataType.Int64 or DataType.Uint64 or DataType.Complex64 => 8,
        DataType.Complex128 => 16,
        DataType.Int16 or DataType.Uint16 or DataType.Float16 or DataType.Bfloat16 => 2,
        DataType.Int8 or DataType.Uint8 or DataType.Bool
            or DataType.Float8E4M3Fn or DataType.Float8E4M3Fnuz or DataType.Float8E5M2 or DataType.Float8E5M2Fnuz => 1,
        _ => null,
    };

    /// <summary>
    /// The number of bytes <paramref name="elementCount"/> elements take in <c>raw_data</c> (4-bit types pack
    /// two per byte), or null for string and undefined types.
    /// </summary>
    public static long? ByteCount(DataType type, long elementCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(elementCount);
        if (type is DataType.Int4 or DataType.Uint4 or DataType.Float4E2M1)
        {
            return (elementCount + 1) / 2;
        }

        return ElementSize(type) is int size ? checked(elementCount * size) : null;
    }

    /// <summary>The number of elements of a shape: the product of its dims (1 for a scalar).</summary>
    /// <exception cref="ArgumentException">A dim is negative or the product overflows.</exception>
    public static long ElementCount(IEnumerable<long> dims)
    {
        ArgumentNullException.ThrowIfNull(dims);
        return TryElementCount(dims, out var count)
            ? count
            : throw new ArgumentException("Dims must be non-negative and their product must fit in 64 bits.", nameof(dims));
    }

    /// <summary>The number of elements of a tensor, from its dims.</summary>
    public static long ElementCount(TensorProto tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        return ElementCount(tensor.Dims);
    }

    /// <summary>True when the tensor's data lives in an external file that has not been read into memory.</summary>
    public static bool IsExternal(TensorProto tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        return tensor.DataLocation == TensorProto.Types.DataLocation.External;
    }

    /// <summary>
    /// The tensor's data as little-endian bytes in <c>raw_data</c> layout, taken from <c>raw_data</c> or converted
    /// from the typed field its element type uses. Returns false for string tensors and external tensors
    /// whose data was not loaded.
    /// </summary>
    public static bool TryGetBytes(TensorProto tensor, out ReadOnlyMemory<byte> bytes)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        bytes = default;
        if (IsExternal(tensor))
        {
            return false;
        }

        if (!tensor.RawData.IsEmpty)
        {
            bytes = tensor.RawData.Memory;
            return true;
        }

        switch ((DataType)tensor.DataType)
        {
            case DataType.Float or DataType.Complex64:
                bytes = ToLittleEndian<float>(tensor.FloatData.ToArray());
                return true;
            case DataType.Double or DataType.Complex128:
                bytes = ToLittleEndian<double>(tensor.DoubleData.ToArray());
                return true;
            case DataType.Int64:
                bytes = ToLittleEndian<long>(tensor.Int64Data.ToArray());
                return true;
            case DataType.Uint64:
                bytes = ToLittleEndian<ulong>(tensor.Uint64Data.ToArray());
                return true;
            case DataType.Uint32:
                bytes = ToLittleEndian<uint>(tensor.Uint64Data.Select(v => (uint)v).ToArray());
                return true;
            case DataType.Int32:
                bytes = ToLittleEndian<int>(tensor.Int32Data.ToArray());
                return true;
            case DataType.Int16 or DataType.Uint16 or DataType.Float16 or DataType.Bfloat16:
                // 16-bit values (and the bit patterns of the 16-bit floats) sit in the low half of each int32.
                bytes = ToLittleEndian<ushort>(tensor.Int32Data.Select(v => (ushort)v).ToArray());
                return true;
            case DataType.Int8 or DataType.Uint8 or DataType.Bool
                or DataType.Float8E4M3Fn or DataType.Float8E4M3Fnuz or DataType.Float8E5M2 or DataType.Float8E5M2Fnuz
                or DataType.Int4 or DataType.Uint4 or DataType.Float4E2M1:
                // One byte per int32 entry; 4-bit types are already packed two to a byte.
                bytes = tensor.Int32Data.Select(v => (byte)v).ToArray();
                return true;
            default:
                return false;
        }
    }

    /// <summary>The tensor's data as little-endian bytes (see <see cref="TryGetBytes"/>).</summary>
    /// <exception cref="InvalidOperationException">A string tensor, or external data that was not loaded.</exception>
    public static ReadOnlyMemory<byte> GetBytes(TensorProto tensor) =>
        TryGetBytes(tensor, out var bytes)
            ? bytes
            : throw new InvalidOperationException(
                $"Tensor '{tensor.Name}' has no fixed-size data in memory (a string tensor, or external data that was not loaded).");

    /// <summary>Reads a FLOAT tensor.</summary>
    public static float[] ToFloats(TensorProto tensor) => Read<float>(tensor, DataType.Float);

    /// <summary>Reads a DOUBLE tensor.</summary>
    public static double[] ToDoubles(TensorProto tensor) => Read<double>(tensor, DataType.Double);

    /// <summary>Reads an INT64 tensor.</summary>
    public static long[] ToInt64s(TensorProto tensor) => Read<long>(tensor, DataType.Int64);

    /// <summary>Reads an INT32 tensor.</summary>
    public static int[] ToInt32s(TensorProto tensor) => Read<int>(tensor, DataType.Int32);

    /// <summary>Reads an INT8 tensor.</summary>
    public static sbyte[] ToInt8s(TensorProto tensor) => Read<sbyte>(tensor, DataType.Int8);

    /// <summary>Reads a UINT8 tensor.</summary>
    public static byte[] ToUInt8s(TensorProto tensor) => Read<byte>(tensor, DataType.Uint8);

    /// <summary>Reads a FLOAT16 tensor.</summary>
    public static Half[] ToHalves(TensorProto tensor) => Read<Half>(tensor, DataType.Float16);

    /// <summary>Reads a BOOL tensor (any non-zero byte is true).</summary>
    public static bool[] ToBools(TensorProto tensor) => Read<byte>(tensor, DataType.Bool).Select(b => b != 0).ToArray();

    /// <summary>Makes a FLOAT tensor. <paramref name="dims"/> null means one dimension of the array's length; empty means a scalar.</summary>
    public static TensorProto FromFloats(string name, ReadOnlySpan<float> values, long[]? dims = null) =>
        Create(name, DataType.Float, ToLittleEndian(values), values.Length, dims);

    /// <summary>Makes a DOUBLE tensor (dims as in <see cref="FromFloats"/>).</summary>
    public static TensorProto FromDoubles(string name, ReadOnlySpan<double> values, long[]? dims = null) =>
        Create(name, DataType.Double, ToLittleEndian(values), values.Length, dims);

    /// <summary>Makes an INT64 tensor (dims as in <see cref="FromFloats"/>).</summary>
    public static TensorProto FromInt64s(string name, ReadOnlySpan<long> values, long[]? dims = null) =>
        Create(name, DataType.Int64, ToLittleEndian(values), values.Length, dims);

    /// <summary>Makes an INT32 tensor (dims as in <see cref="FromFloats"/>).</summary>
    public static TensorProto FromInt32s(string name, ReadOnlySpan<int> values, long[]? dims = null) =>
        Create(name, DataType.Int32, ToLittleEndian(values), values.Length, dims);

    /// <summary>Makes an INT8 tensor (dims as in <see cref="FromFloats"/>).</summary>
    public static TensorProto FromInt8s(string name, ReadOnlySpan<sbyte> values, long[]? dims = null) =>
        Create(name, DataType.Int8, ToLittleEndian(values), values.Length, dims);

    /// <summary>Makes a UINT8 tensor (dims as in <see cref="FromFloats"/>).</summary>
    public static TensorProto FromUInt8s(string name, ReadOnlySpan<byte> values, long[]? dims = null) =>
        Create(name, DataType.Uint8, values.ToArray(), values.Length, dims);

    /// <summary>Makes a FLOAT16 tensor (dims as in <see cref="FromFloats"/>).</summary>
    public static TensorProto FromHalves(string name, ReadOnlySpan<Half> values, long[]? dims = null) =>
        Create(name, DataType.Float16, ToLittleEndian(values), values.Length, dims);

    /// <summary>Makes a BOOL tensor (dims as in <see cref="FromFloats"/>).</summary>
    public static TensorProto FromBools(string name, ReadOnlySpan<bool> values, long[]? dims = null)
    {
        var bytes = new byte[values.Length];
        for (var i = 0; i < values.Length; i++)
        {
            bytes[i] = values[i] ? (byte)1 : (byte)0;
        }

        return Create(name, DataType.Bool, bytes, values.Length, dims);
    }

    /// <summary>
    /// Makes a tensor of any fixed-size type from its little-endian bytes. The byte length must match the dims.
    /// </summary>
    public static TensorProto FromBytes(string name, DataType type, ReadOnlySpan<byte> littleEndianBytes, long[] dims)
    {
        ArgumentNullException.ThrowIfNull(dims);
        var count = ElementCount(dims);
        var expected = ByteCount(type, count)
            ?? throw new ArgumentException($"Element type {type} has no fixed size.", nameof(type));
        if (expected != littleEndianBytes.Length)
        {
            throw new ArgumentException(
                $"Tensor '{name}': {littleEndianBytes.Length} bytes given, dims [{string.Join(",", dims)}] of {type} need {expected}.",
                nameof(littleEndianBytes));
        }

        return NewTensor(name, type, littleEndianBytes.ToArray(), dims);
    }

    /// <summary>Removes a tensor's data in every encoding (raw, typed fields, external reference); strings stay.</summary>
    internal static void ClearData(TensorProto tensor)
    {
        tensor.RawData = ByteString.Empty;
        tensor.FloatData.Clear();
        tensor.Int32Data.Clear();
        tensor.Int64Data.Clear();
        tensor.DoubleData.Clear();
        tensor.Uint64Data.Clear();
        tensor.ExternalData.Clear();
        tensor.DataLocation = TensorProto.Types.DataLocation.Default;
    }

    internal static bool TryElementCount(IEnumerable<long> dims, out long count)
    {
        count = 1;
        foreach (var dim in dims)
        {
            if (dim < 0)
            {
                return false;
            }

            try
            {
                count = checked(count * dim);
            }
            catch (OverflowException)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The byte count the tensor's dims and type call for, or null when unknown (strings, bad dims).</summary>
    internal static long? ExpectedByteCount(TensorProto tensor) =>
        TryElementCount(tensor.Dims, out var count) ? ByteCount((DataType)tensor.DataType, count) : null;

    private static TensorProto Create(string name, DataType type, byte[] bytes, int length, long[]? dims)
    {
        ArgumentNullException.ThrowIfNull(name);
        dims ??= [length];
        var count = ElementCount(dims);
        if (count != length)
        {
            throw new ArgumentException(
                $"Tensor '{name}': {length} values given, dims [{string.Join(",", dims)}] need {count}.", nameof(dims));
        }

        return NewTensor(name, type, bytes, dims);
    }

    private static TensorProto NewTensor(string name, DataType type, byte[] bytes, long[] dims)
    {
        var tensor = new TensorProto
        {
            Name = name,
            DataType = (int)type,
            RawData = UnsafeByteOperations.UnsafeWrap(bytes),
        };
        tensor.Dims.AddRange(dims);
        return tensor;
    }

    private static T[] Read<T>(TensorProto tensor, DataType expected)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if ((DataType)tensor.DataType != expected)
        {
            throw new ArgumentException(
                $"Tensor '{tensor.Name}' is {(DataType)tensor.DataType}, not {expected}.", nameof(tensor));
        }

        var bytes = GetBytes(tensor).Span;
        var count = ElementCount(tensor);
        var size = Unsafe.SizeOf<T>();
        if (bytes.Length != count * size)
        {
            throw CompressionException.Error(
                DiagnosticCodes.ModelInvalid,
                $"Tensor '{tensor.Name}' holds {bytes.Length} bytes of data but its dims [{string.Join(",", tensor.Dims)}] need {count * size}.");
        }

        var result = new T[count];
        bytes.CopyTo(MemoryMarshal.AsBytes(result.AsSpan()));
        if (!BitConverter.IsLittleEndian)
        {
            ReverseEach(MemoryMarshal.AsBytes(result.AsSpan()), size);
        }

        return result;
    }

    private static byte[] ToLittleEndian<T>(ReadOnlySpan<T> values)
        where T : unmanaged
    {
        var bytes = MemoryMarshal.AsBytes(values).ToArray();
        if (!BitConverter.IsLittleEndian)
        {
            ReverseEach(bytes, Unsafe.SizeOf<T>());
        }

        return bytes;
    }

    private static void ReverseEach(Span<byte> bytes, int size)
    {
        if (size == 1)
        {
            return;
        }

        for (var i = 0; i + size <= bytes.Length; i += size)
        {
            bytes.Slice(i, size).Reverse();
        }
    }
}
