using System.Buffers.Binary;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Evaluation;

/// <summary>
/// Counts a model's parameters: the elements of every initializer (subgraphs' included), as stored. A
/// quantized weight counts by its stored int8/uint8 elements, so a quantized model has about as many parameters
/// as its float original (plus its scales and zero points), and a pruned one as many, with fewer non-zero.
/// </summary>
public static class ParameterCount
{
    /// <summary>All initializer elements, and those whose stored value is not zero.</summary>
    /// <remarks>
    /// A float element is zero when all its bits but the sign are (so -0.0 is zero); any other element when all
    /// its bits are (so an int8 weight equal to its zero point still counts as non-zero: it is the stored value
    /// that is counted). Tensors without data in memory (strings) count as non-zero.
    /// </remarks>
    public static (long Parameters, long NonZero) Count(ModelProto model)
    {
        ArgumentNullException.ThrowIfNull(model);
        long parameters = 0, nonZero = 0;
        foreach (var tensor in Graphs(model.Graph).SelectMany(g => g.Initializer))
        {
            var elements = TensorData.ElementCount(tensor);
            parameters += elements;
            nonZero += TensorData.TryGetBytes(tensor, out var bytes) && TensorData.ByteCount((DataType)tensor.DataType, elements) == bytes.Length
                ? elements - Zeros((DataType)tensor.DataType, bytes.Span, elements)
                : elements;
        }

        return (parameters, nonZero);
    }

    /// <summary>A graph and, depth first, the subgraphs its nodes hold (If branches, Loop and Scan bodies).</summary>
    private static IEnumerable<GraphProto> Graphs(GraphProto graph)
    {
        yield return graph;
        foreach (var attribute in graph.Node.SelectMany(n => n.Attribute))
        {
            foreach (var subgraph in attribute.Graphs.Prepend(attribute.G).OfType<GraphProto>().SelectMany(Graphs))
            {
                yield return subgraph;
            }
        }
    }

    private static long Zeros(DataType type, ReadOnlySpan<byte> bytes, long elements)
    {
        if (elements == 0)
        {
            return 0;
        }

        long zeros = 0;
        switch (type)
        {
            case DataType.Float:
                for (var i = 0; i < bytes.Length; i += 4)
                {
                    zeros += (BinaryPrimitives.ReadUInt32LittleEndian(bytes[i..]) & 0x7FFF_FFFFu) == 0 ? 1 : 0;
                }

                return zeros;
            case DataType.Double:
                for (var i = 0; i < bytes.Length; i += 8)
                {
                    zeros += (BinaryPrimitives.ReadUInt64LittleEndian(bytes[i..]) & 0x7FFF_FFFF_FFFF_FFFFul) == 0 ? 1 : 0;
                }

                return zeros;
            case DataType.Float16 or DataType.Bfloat16:
                for (var i = 0; i < bytes.Length; i += 2)
                {
                    zeros += (BinaryPrimitives.ReadUInt16LittleEndian(bytes[i..]) & 0x7FFF) == 0 ? 1 : 0;
                }

                return zeros;
            case DataType.Float8E4M3Fn or DataType.Float8E5M2:
                foreach (var b in bytes)
                {
                    zeros += (b & 0x7F) == 0 ? 1 : 0;
                }

                return zeros;
            case DataType.Int4 or DataType.Uint4 or DataType.Float4E2M1:
                // Two elements per byte, the first in the low nibble; an odd count leaves the last high nibble unused.
                for (long i = 0; i < elements; i++)
                {
                    var nibble = (bytes[(int)(i / 2)] >> (i % 2 == 0 ? 0 : 4)) & 0xF;
                    zeros += (type == DataType.Float4E2M1 ? nibble & 0x7 : nibble) == 0 ? 1 : 0;
                }

                return zeros;
            default:
                // Integers, bool and the 8-bit float types whose 0x80 is NaN: zero is all bits zero.
                var size = (int)(bytes.Length / elements);
                for (var i = 0; i < bytes.Length; i += size)
                {
                    zeros += bytes.Slice(i, size).IndexOfAnyExcept((byte)0) < 0 ? 1 : 0;
                }

                return zeros;
        }
    }
}
