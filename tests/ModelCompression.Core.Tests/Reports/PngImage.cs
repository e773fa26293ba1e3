using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace ModelCompression.Core.Tests.Reports;

/// <summary>
/// Decodes the 8-bit RGB/RGBA non-interlaced PNGs a browser screenshot produces (PNG spec: IHDR, IDAT
/// zlib stream, per-row filters None/Sub/Up/Average/Paeth), enough to check what a page rendered.
/// </summary>
internal sealed class PngImage
{
    private static readonly byte[] Signature = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    private readonly byte[] _pixels;
    private readonly int _channels;

    private PngImage(int width, int height, int channels, byte[] pixels)
    {
        Width = width;
        Height = height;
        _channels = channels;
        _pixels = pixels;
    }

    public int Width { get; }

    public int Height { get; }

    /// <summary>The width and height in the IHDR chunk, without decoding the image.</summary>
    public static (int Width, int Height) ReadSize(byte[] png)
    {
        CheckSignature(png);
        if (Encoding.ASCII.GetString(png, 12, 4) != "IHDR")
        {
            throw new InvalidDataException("The first PNG chunk is not IHDR.");
        }

        return (BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(16)), BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(20)));
    }

    public static PngImage Decode(byte[] png)
    {
        var (width, height) = ReadSize(png);
        int bitDepth = png[24], colourType = png[25], interlace = png[28];
        if (bitDepth != 8 || colourType is not (2 or 6) || interlace != 0)
        {
            throw new NotSupportedException($"PNG with bit depth {bitDepth}, colour type {colourType}, interlace {interlace}: only 8-bit RGB/RGBA, not interlaced.");
        }

        var channels = colourType == 6 ? 4 : 3;
        using var compressed = new MemoryStream();
        for (var offset = 8; offset < png.Length;)
        {
            var length = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(offset));
            var type = Encoding.ASCII.GetString(png, offset + 4, 4);
            if (type == "IDAT")
            {
                compressed.Write(png, offset + 8, length);
            }

            offset += 12 + length;
        }

        compressed.Position = 0;
        using var inflated = new MemoryStream();
        using (var zlib = new ZLibStream(compressed, CompressionMode.Decompress))
        {
            zlib.CopyTo(inflated);
        }

        return new PngImage(width, height, channels, Unfilter(inflated.ToArray(), width, height, channels));
    }

    public (byte R, byte G, byte B) Pixel(int x, int y)
    {
        var i = ((y * Width) + x) * _channels;
        return (_pixels[i], _pixels[i + 1], _pixels[i + 2]);
    }

    private static byte[] Unfilter(byte[] data, int width, int height, int channels)
    {
        var stride = width * channels;
        if (data.Length < (stride + 1) * height)
        {
            throw new InvalidDataException($"PNG image data holds {data.Length} bytes, {(stride + 1) * height} expected.");
        }

        var pixels = new byte[stride * height];
        for (var y = 0; y < height; y++)
        {
            var filter = data[y * (stride + 1)];
            var source = data.AsSpan((y * (stride + 1)) + 1, stride);
            var row = pixels.AsSpan(y * stride, stride);
            Span<byte> above = y == 0 ? new byte[stride] : pixels.AsSpan((y - 1) * stride, stride);
            for (var i = 0; i < stride; i++)
            {
                int left = i >= channels ? row[i - channels] : 0;
                int up = above[i];
                int upLeft = i >= channels ? above[i - channels] : 0;
                var predictor = filter switch
                {
                    0 => 0,
                    1 => left,
                    2 => up,
                    3 => (left + up) / 2,
                    4 => Paeth(left, up, upLeft),
                    _ => throw new InvalidDataException($"Unknown PNG filter {filter} on row {y}."),
                };
                row[i] = (byte)(source[i] + predictor);
            }
        }

        return pixels;
    }

    private static int Paeth(int a, int b, int c)
    {
        var p = a + b - c;
        int pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }

    private static void CheckSignature(byte[] png)
    {
        if (png.Length < 33 || !png.AsSpan(0, 8).SequenceEqual(Signature))
        {
            throw new InvalidDataException("Not a PNG file.");
        }
    }
}
