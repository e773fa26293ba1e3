using System.IO.Compression;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Pruning;

/// <summary>How many of one weight's entries are zero.</summary>
/// <param name="Weight">The initializer's name.</param>
/// <param name="Count">Its entries.</param>
/// <param name="Zeros">Entries that are exactly 0.</param>
public sealed record LayerSparsity(string Weight, long Count, long Zeros)
{
    /// <summary>Zeros / Count.</summary>
    public double Sparsity => Count == 0 ? 0 : (double)Zeros / Count;
}

/// <summary>Sizes that show what pruning bought: parameters, zeros, and the file's size once compressed.</summary>
public static class ModelStatistics
{
    /// <summary>Initializer elements of every type (the same count as the evaluation's "parameters").</summary>
    public static long Parameters(ModelProto model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model.Graph.Initializer.Sum(TensorData.ElementCount);
    }

    /// <summary>Non-zero elements of the float initializers plus every element of the others.</summary>
    public static long NonZeroParameters(ModelProto model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model.Graph.Initializer.Sum(t => t.DataType == (int)DataType.Float
            ? TensorData.ToFloats(t).LongCount(v => v != 0)
            : TensorData.ElementCount(t));
    }

    /// <summary>Zeros of each named float initializer, in the order given.</summary>
    public static IReadOnlyList<LayerSparsity> Sparsity(ModelProto model, IEnumerable<string> weights)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(weights);
        var initializers = model.Graph.Initializer.ToDictionary(i => i.Name, StringComparer.Ordinal);
        return [.. weights.Select(name =>
        {
            var values = TensorData.ToFloats(initializers[name]);
            return new LayerSparsity(name, values.LongLength, values.LongCount(v => v == 0));
        })];
    }

    /// <summary>
    /// The file's size after deflate (what a zip or gzip of it weighs): dense storage keeps a pruned weight's
    /// size, so zeros pay off only where the model travels compressed.
    /// </summary>
    public static long CompressedBytes(string path)
    {
        using var counter = new CountingStream();
        using (var deflate = new DeflateStream(counter, CompressionLevel.Optimal, leaveOpen: true))
        using (var file = File.OpenRead(path))
        {
            file.CopyTo(deflate);
        }

        return counter.Length;
    }

    /// <summary>A write-only stream that only counts bytes.</summary>
    private sealed class CountingStream : Stream
    {
        private long _length;

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => _length;

        public override long Position
        {
            get => _length;
            set => throw new NotSupportedException();
        }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => _length += count;

        public override void Write(ReadOnlySpan<byte> buffer) => _length += buffer.Length;
    }
}
