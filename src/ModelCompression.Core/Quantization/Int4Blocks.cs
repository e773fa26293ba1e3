namespace ModelCompression.Quantization;

/// <summary>
/// A weight in the layout of ONNX Runtime's com.microsoft MatMulNBits with 4 bits: for each output column n and
/// each block b of <see cref="BlockSize"/> consecutive inputs (along K), <see cref="BlobSize"/> bytes of codes
/// (two per byte, the even position in the low nibble), one float scale, and for asymmetric blocks a 4-bit zero
/// point (two per byte, the even block in the low nibble). A code q dequantizes to (q - zero_point) x scale; without
/// zero points the operator uses 8. The last block of a column whose K is not a multiple of the block size is padded
/// with the zero point's code, so the padding dequantizes to 0.
/// </summary>
/// <param name="Columns">N: output columns (MatMulNBits' attribute N).</param>
/// <param name="Rows">K: inputs per column (MatMulNBits' attribute K).</param>
/// <param name="BlockSize">Inputs per block.</param>
/// <param name="Packed">The codes, [N, blocks, blob] row-major (MatMulNBits' input B).</param>
/// <param name="Scales">One scale per column and block, [N, blocks] row-major.</param>
/// <param name="ZeroPoints">Packed zero points, [N, ceil(blocks / 2)], or null for symmetric blocks (zero point 8).</param>
public sealed record Int4Blocks(int Columns, int Rows, int BlockSize, byte[] Packed, float[] Scales, byte[]? ZeroPoints)
{
    /// <summary>The block sizes MatMulNBits accepts: powers of two from 16 (its CPU kernels cover 16 to 256).</summary>
    public static IReadOnlyList<int> SupportedBlockSizes { get; } = [16, 32, 64, 128, 256];

    /// <summary>Blocks per column: ceil(K / block size).</summary>
    public int BlocksPerColumn => (Rows + BlockSize - 1) / BlockSize;

    /// <summary>Bytes of codes per block: block size x 4 bits / 8.</summary>
    public int BlobSize => BlockSize / 2;

    /// <summary>Bytes the weight takes in the model: codes, float scales and packed zero points.</summary>
    public long Bytes => Packed.LongLength + (Scales.LongLength * sizeof(float)) + (ZeroPoints?.LongLength ?? 0);

    /// <summary>
    /// Quantizes a weight given as one row of K values per output column ([N, K] row-major: a Gemm's weight with
    /// transB, an embedding table read as a tied output head, or a MatMul's [K, N] weight transposed).
    /// Symmetric blocks: the value of largest magnitude m maps to code 0 (-8 x scale, scale = m / -8), so that side
    /// of the range gets the extra level 4-bit two's complement has (eight steps instead of seven); the rest round
    /// to the nearest code in 0..15, and only a value of -m itself would clamp (to 7 x scale). Asymmetric blocks:
    /// the block's range widened to include 0 maps onto 0..15 with an integer zero point, so 0 (a pruned weight)
    /// stays exactly 0.
    /// </summary>
    /// <param name="columnsByRows">The weight, [N, K] row-major.</param>
    /// <param name="columns">N.</param>
    /// <param name="rows">K.</param>
    /// <param name="blockSize">One of <see cref="SupportedBlockSizes"/>.</param>
    /// <param name="symmetric">Symmetric blocks (no zero points) or asymmetric ones.</param>
    public static Int4Blocks Quantize(ReadOnlySpan<float> columnsByRows, int columns, int rows, int blockSize, bool symmetric)
    {
        if (!SupportedBlockSizes.Contains(blockSize))
        {
            throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, $"MatMulNBits block sizes are {string.Join(", ", SupportedBlockSizes)}.");
        }

        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(columns);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rows);
        if (columnsByRows.Length != (long)columns * rows)
        {
            throw new ArgumentException($"The weight has {columnsByRows.Length} values, not {columns} x {rows}.", nameof(columnsByRows));
        }

        var blocks = (rows + blockSize - 1) / blockSize;
        var blob = blockSize / 2;
        var packed = new byte[(long)columns * blocks * blob];
        var scales = new float[columns * blocks];
        var zeroPointRow = (blocks + 1) / 2;
        var zeroPoints = symmetric ? null : new byte[columns * zeroPointRow];
        var codes = new byte[blockSize];
        for (var n = 0; n < columns; n++)
        {
            for (var b = 0; b < blocks; b++)
            {
                var start = b * blockSize;
                var block = columnsByRows.Slice((n * rows) + start, Math.Min(blockSize, rows - start));
                var (scale, zeroPoint) = symmetric ? SymmetricScale(block) : AsymmetricScale(block);
                scales[(n * blocks) + b] = scale;
                codes.AsSpan().Fill((byte)zeroPoint);
                for (var i = 0; i < block.Length; i++)
                {
                    codes[i] = scale == 0 ? (byte)zeroPoint : (byte)Math.Clamp((int)MathF.Round(block[i] / scale, MidpointRounding.ToEven) + zeroPoint, 0, 15);
                }

                var offset = ((long)n * blocks * blob) + ((long)b * blob);
                for (var i = 0; i < blob; i++)
                {
                    packed[offset + i] = (byte)(codes[2 * i] | (codes[(2 * i) + 1] << 4));
                }

                if (zeroPoints is not null)
                {
                    zeroPoints[(n * zeroPointRow) + (b / 2)] |= (byte)(b % 2 == 0 ? zeroPoint : zeroPoint << 4);
                }
            }
        }

        return new Int4Blocks(columns, rows, blockSize, packed, scales, zeroPoints);
    }

    /// <summary>The same blocks with every scale multiplied by <paramref name="factor"/> (a Gemm's alpha).</summary>
    public Int4Blocks WithScalesTimes(float factor) => this with { Scales = [.. Scales.Select(s => s * factor)] };

    private static (float Scale, int ZeroPoint) SymmetricScale(ReadOnlySpan<float> block)
    {
        var largest = 0f;
        foreach (var v in block)
        {
            if (MathF.Abs(v) > MathF.Abs(largest))
            {
                largest = v;
            }
        }

        // A block of zeros: scale 0 keeps every code at the zero point.
        return (largest == 0 ? 0f : largest / -8f, 8);
    }

    private static (float Scale, int ZeroPoint) AsymmetricScale(ReadOnlySpan<float> block)
    {
        float low = 0f, high = 0f;
        foreach (var v in block)
        {
            low = MathF.Min(low, v);
            high = MathF.Max(high, v);
        }

        if (high == low)
        {
            return (0f, 8);
        }

        var scale = (high - low) / 15f;
        return (scale, Math.Clamp((int)MathF.Round(-low / scale, MidpointRounding.ToEven), 0, 15));
    }
}
