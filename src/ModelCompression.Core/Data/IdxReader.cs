using System.Buffers.Binary;
using System.IO.Compression;
using ModelCompression.Diagnostics;

namespace ModelCompression.Data;

/// <summary>
/// Reads IDX files (the format of MNIST and Fashion-MNIST), plain or gzip-compressed: a big-endian magic
/// number (two zero bytes, an element type, the number of dimensions), the dimensions, then the data.
/// </summary>
public static class IdxReader
{
    private const byte UnsignedByte = 0x08;

    /// <summary>An IDX file's shape and raw unsigned-byte data.</summary>
    /// <param name="Dimensions">All dimensions; the first is the item count.</param>
    /// <param name="Data">The data, row-major.</param>
    public sealed record IdxArray(int[] Dimensions, byte[] Data);

    /// <summary>Reads an unsigned-byte IDX file (.gz is decompressed). Bad files give MC2021 with the path.</summary>
    public static IdxArray Read(string path)
    {
        try
        {
            using var file = File.OpenRead(path);
            using var stream = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase)
                ? new GZipStream(file, CompressionMode.Decompress)
                : (Stream)file;
            Span<byte> header = stackalloc byte[4];
            stream.ReadExactly(header);
            if (header[0] != 0 || header[1] != 0)
            {
                throw Bad(path, "it does not start with an IDX magic number");
            }

            if (header[2] != UnsignedByte)
            {
                throw Bad(path, $"element type 0x{header[2]:x2} is not supported (only unsigned bytes, 0x08)");
            }

            var dims = new int[header[3]];
            if (dims.Length == 0)
            {
                throw Bad(path, "it declares no dimensions");
            }

            long total = 1;
            for (var i = 0; i < dims.Length; i++)
            {
                stream.ReadExactly(header);
                dims[i] = BinaryPrimitives.ReadInt32BigEndian(header);
                if (dims[i] <= 0)
                {
                    throw Bad(path, $"dimension {i} is {dims[i]}");
                }

                total *= dims[i];
            }

            if (total > Array.MaxLength)
            {
                throw Bad(path, $"it holds {total} values, more than fit in memory at once");
            }

            var data = new byte[total];
            try
            {
                stream.ReadExactly(data);
            }
            catch (EndOfStreamException)
            {
                throw Bad(path, $"it is truncated: the header promises {total} values");
            }

            return new IdxArray(dims, data);
        }
        catch (EndOfStreamException)
        {
            throw Bad(path, "it ends inside the header");
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            throw Bad(path, e.Message);
        }
    }

    private static CompressionException Bad(string path, string why) =>
        CompressionException.Error(DiagnosticCodes.DataUnreadable, $"Cannot read IDX data '{path}': {why}.", path);

    /// <summary>
    /// Loads an image file and a label file as a <see cref="Dataset"/>, each pixel multiplied by
    /// <paramref name="scale"/> as it is read. Without <paramref name="labelsPath"/> the set is unlabelled.
    /// </summary>
    public static Dataset LoadLabelled(string inputsPath, string? labelsPath, float scale)
    {
        var images = OpenInputs(inputsPath, Dataset.DefaultInputName);
        var tensor = scale == 1f ? images : images.WithTransform(new FeatureTransform(scale, null, null));
        var labels = labelsPath is null ? null : ReadLabels(labelsPath, images.Count, inputsPath);
        return new Dataset([tensor], labels, inputsPath, DataDescription.Empty, new DataOrigin(inputsPath, null), labelsPath is null ? null : new DataOrigin(labelsPath, null), null, []);
    }

    /// <summary>An IDX file's items as a tensor (bytes kept as they are, in memory: IDX files are gzip-compressed).</summary>
    public static DataTensor OpenInputs(string path, string name)
    {
        var array = Read(path);
        long[] sampleShape = [.. array.Dimensions.Skip(1).Select(d => (long)d)];
        if (sampleShape.Length == 0)
        {
            sampleShape = [1];
        }

        return new DataTensor(name, ArrayStore.Create(array.Data, StorageType.UInt8, array.Data.Length / array.Dimensions[0]), sampleShape, null);
    }

    /// <summary>Reads a one-dimensional IDX label file, checking it has <paramref name="expected"/> items (MC2020 otherwise).</summary>
    public static long[] ReadLabels(string labelsPath, int expected, string inputsPath)
    {
        var labelArray = Read(labelsPath);
        if (labelArray.Dimensions.Length != 1 || labelArray.Dimensions[0] != expected)
        {
            throw CompressionException.Error(
                DiagnosticCodes.DataSchemaMismatch,
                $"Labels '{labelsPath}' have shape [{string.Join(", ", labelArray.Dimensions)}] but the inputs '{inputsPath}' hold {expected} samples: expected [{expected}].",
                labelsPath);
        }

        return [.. labelArray.Data.Select(b => (long)b)];
    }
}
