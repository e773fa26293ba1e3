using System.Buffers;
using System.Runtime.InteropServices;

namespace ModelCompression.Data;

/// <summary>The element type of a data tensor as a model sees it.</summary>
public enum DataElementType
{
    /// <summary>32-bit floats (features, pixels).</summary>
    Float32,

    /// <summary>64-bit integers (token ids, attention masks).</summary>
    Int64,
}

/// <summary>How a tensor's numbers are stored (in a file or in memory), little-endian.</summary>
public enum StorageType
{
    /// <summary>One byte, 0 or 1 (numpy <c>b1</c>).</summary>
    Bool,

    /// <summary>Unsigned byte (<c>u1</c>, IDX 0x08).</summary>
    UInt8,

    /// <summary>Signed byte (<c>i1</c>).</summary>
    Int8,

    /// <summary><c>i2</c>.</summary>
    Int16,

    /// <summary><c>u2</c>.</summary>
    UInt16,

    /// <summary><c>i4</c>.</summary>
    Int32,

    /// <summary><c>u4</c>.</summary>
    UInt32,

    /// <summary><c>i8</c>.</summary>
    Int64,

    /// <summary><c>u8</c>.</summary>
    UInt64,

    /// <summary>IEEE half (<c>f2</c>).</summary>
    Float16,

    /// <summary><c>f4</c>.</summary>
    Float32,

    /// <summary><c>f8</c>.</summary>
    Float64,
}

/// <summary>
/// What is applied to every float value read from a tensor: <c>(raw * Scale - Mean[f]) / Std[f]</c>, in that
/// order, where f is the value's position in its sample (or 0 when one mean and std serve all positions).
/// </summary>
/// <param name="Scale">Multiplies the stored value first (e.g. 1/255 for bytes).</param>
/// <param name="Mean">Subtracted after scaling: one value, or one per position of a sample; null for none.</param>
/// <param name="Std">Divides after the mean: same length as <paramref name="Mean"/>; null for none.</param>
public sealed record FeatureTransform(float Scale, float[]? Mean, float[]? Std)
{
    /// <summary>True when applying it changes nothing.</summary>
    public bool IsIdentity => Scale == 1f && Mean is null && Std is null;

    internal void Apply(Span<float> sample)
    {
        if (Scale != 1f)
        {
            for (var i = 0; i < sample.Length; i++)
            {
                sample[i] *= Scale;
            }
        }

        if (Mean is null || Std is null)
        {
            return;
        }

        if (Mean.Length == 1)
        {
            var mean = Mean[0];
            var std = Std[0];
            for (var i = 0; i < sample.Length; i++)
            {
                sample[i] = (sample[i] - mean) / std;
            }
        }
        else
        {
            for (var i = 0; i < sample.Length; i++)
            {
                sample[i] = (sample[i] - Mean[i]) / Std[i];
            }
        }
    }
}

/// <summary>
/// One named input of every sample (e.g. <c>input_ids</c> int64 [128], or pixels float [28, 28]), stored in
/// memory or memory-mapped from a file. Rows are copied out in batches into caller buffers, converted from the
/// stored type and transformed (<see cref="Transform"/>) on the way; nothing is loaded whole.
/// </summary>
public sealed class DataTensor
{
    private readonly TensorStore _store;
    private readonly int[]? _rows;

    internal DataTensor(string name, TensorStore store, long[] sampleShape, FeatureTransform? transform, int[]? rows = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        Name = name;
        _store = store;
        SampleShape = sampleShape;
        SampleSize = checked((int)sampleShape.Aggregate(1L, (a, b) => a * b));
        if (SampleSize != store.RowElements)
        {
            throw new ArgumentException($"Samples of [{string.Join(", ", sampleShape)}] hold {SampleSize} values, but the store's rows hold {store.RowElements}.", nameof(sampleShape));
        }

        Transform = transform is { IsIdentity: true } ? null : transform;
        if (Transform is { Mean: { Length: > 1 } mean } && mean.Length != SampleSize)
        {
            throw new ArgumentException($"{mean.Length} means for samples of {SampleSize} values.", nameof(transform));
        }

        _rows = rows;
        Count = rows?.Length ?? store.Rows;
    }

    /// <summary>The tensor's name: the ONNX input it feeds when matched by name.</summary>
    public string Name { get; }

    /// <summary>The shape of one sample (no batch axis).</summary>
    public long[] SampleShape { get; }

    /// <summary>Values per sample.</summary>
    public int SampleSize { get; }

    /// <summary>Number of samples.</summary>
    public int Count { get; }

    /// <summary>How the values are stored.</summary>
    public StorageType StorageType => _store.Type;

    /// <summary>Applied to every value read as float; null for none.</summary>
    public FeatureTransform? Transform { get; }

    /// <summary>True when the values live in a memory-mapped file rather than in managed memory.</summary>
    public bool IsMapped => _store is MappedStore;

    /// <summary>
    /// The natural element type: float for floating-point storage or when a transform applies, int64 for
    /// integer storage. An int64 tensor can still be read as float (a float model input takes it converted);
    /// a float tensor cannot be read as int64.
    /// </summary>
    public DataElementType ElementType =>
        Transform is not null || _store.Type is StorageType.Float16 or StorageType.Float32 or StorageType.Float64
            ? DataElementType.Float32
            : DataElementType.Int64;

    /// <summary>"name int64 [128]", for messages.</summary>
    public string Describe() =>
        $"{Name} {(ElementType == DataElementType.Float32 ? "float32" : "int64")} [{string.Join(", ", SampleShape)}]";

    /// <summary>A float tensor held in memory (no copy of <paramref name="values"/>).</summary>
    public static DataTensor FromFloats(string name, float[] values, long[] sampleShape, FeatureTransform? transform = null) =>
        new(name, ArrayStore.Create(values, RowElements(values.Length, sampleShape)), sampleShape, transform);

    /// <summary>An int64 tensor held in memory (no copy of <paramref name="values"/>).</summary>
    public static DataTensor FromInt64(string name, long[] values, long[] sampleShape) =>
        new(name, ArrayStore.Create(values, RowElements(values.Length, sampleShape)), sampleShape, null);

    /// <summary>Copies the samples at <paramref name="rows"/> as floats into <paramref name="destination"/> (rows x <see cref="SampleSize"/>).</summary>
    public void CopyRows(ReadOnlySpan<int> rows, Span<float> destination)
    {
        CheckDestination(rows.Length, destination.Length);
        if (_store is ArrayStore<float> floats && Transform is null)
        {
            for (var i = 0; i < rows.Length; i++)
            {
                floats.Row(Physical(rows[i])).CopyTo(destination.Slice(i * SampleSize, SampleSize));
            }

            return;
        }

        var scratch = ArrayPool<byte>.Shared.Rent(_store.RowBytes);
        try
        {
            for (var i = 0; i < rows.Length; i++)
            {
                var target = destination.Slice(i * SampleSize, SampleSize);
                var raw = scratch.AsSpan(0, _store.RowBytes);
                _store.ReadRows(Physical(rows[i]), 1, raw);
                StorageConversion.ToFloat(raw, _store.Type, target);
                Transform?.Apply(target);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(scratch);
        }
    }

    /// <summary>
    /// Copies the samples at <paramref name="rows"/> as int64 into <paramref name="destination"/>. Only for
    /// <see cref="DataElementType.Int64"/> tensors: floats are not silently truncated.
    /// </summary>
    public void CopyRows(ReadOnlySpan<int> rows, Span<long> destination)
    {
        if (ElementType != DataElementType.Int64)
        {
            throw new InvalidOperationException($"Tensor '{Name}' holds {StorageType} values{(Transform is null ? "" : " with a transform")}; it cannot be read as int64.");
        }

        CheckDestination(rows.Length, destination.Length);
        if (_store is ArrayStore<long> longs)
        {
            for (var i = 0; i < rows.Length; i++)
            {
                longs.Row(Physical(rows[i])).CopyTo(destination.Slice(i * SampleSize, SampleSize));
            }

            return;
        }

        var scratch = ArrayPool<byte>.Shared.Rent(_store.RowBytes);
        try
        {
            for (var i = 0; i < rows.Length; i++)
            {
                var raw = scratch.AsSpan(0, _store.RowBytes);
                _store.ReadRows(Physical(rows[i]), 1, raw);
                StorageConversion.ToInt64(raw, _store.Type, destination.Slice(i * SampleSize, SampleSize));
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(scratch);
        }
    }

    /// <summary>Copies samples <paramref name="start"/> to <paramref name="start"/> + <paramref name="count"/> - 1 as floats.</summary>
    public void CopyRange(int start, int count, Span<float> destination) => CopyRows(Range(start, count), destination);

    /// <summary>Copies samples <paramref name="start"/> to <paramref name="start"/> + <paramref name="count"/> - 1 as int64.</summary>
    public void CopyRange(int start, int count, Span<long> destination) => CopyRows(Range(start, count), destination);

    /// <summary>Every sample as floats, in memory: for small sets and callers that need one array.</summary>
    public float[] ToFloatArray()
    {
        if (_store is ArrayStore<float> { Values: var values } && Transform is null && _rows is null)
        {
            return values;
        }

        var result = new float[(long)Count * SampleSize];
        CopyRange(0, Count, result);
        return result;
    }

    /// <summary>The same samples read through <paramref name="transform"/> (replacing any transform).</summary>
    public DataTensor WithTransform(FeatureTransform? transform) => new(Name, _store, SampleShape, transform, _rows);

    /// <summary>A view of the samples at <paramref name="rows"/>, in that order; nothing is copied.</summary>
    internal DataTensor Select(int[] rows)
    {
        var physical = new int[rows.Length];
        for (var i = 0; i < rows.Length; i++)
        {
            physical[i] = Physical(rows[i]);
        }

        return new DataTensor(Name, _store, SampleShape, Transform, physical);
    }

    internal TensorStore Store => _store;

    private int Physical(int row)
    {
        if ((uint)row >= (uint)Count)
        {
            throw new ArgumentOutOfRangeException(nameof(row), row, $"Tensor '{Name}' has {Count} samples.");
        }

        return _rows is null ? row : _rows[row];
    }

    private void CheckDestination(int rows, int length)
    {
        if (length < (long)rows * SampleSize)
        {
            throw new ArgumentException($"{rows} samples of {SampleSize} values need {(long)rows * SampleSize} elements; the buffer has {length}.", "destination");
        }
    }

    private static int[] Range(int start, int count)
    {
        var rows = new int[count];
        for (var i = 0; i < count; i++)
        {
            rows[i] = start + i;
        }

        return rows;
    }

    private static int RowElements(int length, long[] sampleShape)
    {
        var size = sampleShape.Aggregate(1L, (a, b) => a * b);
        if (size <= 0 || length % size != 0)
        {
            throw new ArgumentException($"{length} values do not split into samples of {size}.", nameof(sampleShape));
        }

        return (int)size;
    }
}

/// <summary>Rows of equal size in some storage: managed memory or a memory-mapped file.</summary>
internal abstract class TensorStore(StorageType type, int rows, int rowElements) : IDisposable
{
    public StorageType Type { get; } = type;

    public int Rows { get; } = rows;

    public int RowElements { get; } = rowElements;

    public int RowBytes => RowElements * StorageConversion.Size(Type);

    /// <summary>Copies the raw bytes of <paramref name="count"/> rows from <paramref name="first"/> on.</summary>
    public abstract void ReadRows(int first, int count, Span<byte> destination);

    public virtual void Dispose()
    {
    }
}

/// <summary>Creates in-memory stores.</summary>
internal static class ArrayStore
{
    public static ArrayStore<float> Create(float[] values, int rowElements) => new(values, StorageType.Float32, rowElements);

    public static ArrayStore<long> Create(long[] values, int rowElements) => new(values, StorageType.Int64, rowElements);

    /// <summary>Raw little-endian bytes of any storage type.</summary>
    public static ArrayStore<byte> Create(byte[] values, StorageType type, int rowElements) => new(values, type, rowElements);
}

/// <summary>Rows held in a managed array: typed (float, long) or the raw bytes of any <see cref="StorageType"/>.</summary>
internal sealed class ArrayStore<T> : TensorStore
    where T : unmanaged
{
    private readonly int _perRow;

    public ArrayStore(T[] values, StorageType type, int rowElements)
        : base(type, RowCount(values.Length, PerRow(type, rowElements), type, rowElements), rowElements)
    {
        Values = values;
        _perRow = PerRow(type, rowElements);
    }

    public T[] Values { get; }

    public ReadOnlySpan<T> Row(int row) => Values.AsSpan(row * _perRow, _perRow);

    public override void ReadRows(int first, int count, Span<byte> destination) =>
        MemoryMarshal.AsBytes(Values.AsSpan(first * _perRow, count * _perRow)).CopyTo(destination);

    /// <summary>Array elements per row: the row's bytes over the array element's size.</summary>
    private static int PerRow(StorageType type, int rowElements) =>
        rowElements * StorageConversion.Size(type) / System.Runtime.CompilerServices.Unsafe.SizeOf<T>();

    private static int RowCount(int length, int perRow, StorageType type, int rowElements)
    {
        if (perRow <= 0 || length % perRow != 0)
        {
            throw new ArgumentException($"{length} array elements do not split into rows of {rowElements} {type} values.");
        }

        return length / perRow;
    }
}
