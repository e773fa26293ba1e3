namespace ModelCompression.Pruning;

/// <summary>
/// Pruning masks from weight magnitudes (true keeps the weight). The smallest |w| go first; among equal
/// magnitudes the earlier weight (lower flat index, row-major) goes first, so a mask is a pure function of the
/// weights and the sparsity.
/// </summary>
public static class MagnitudeMasks
{
    /// <summary>How many of <paramref name="count"/> weights a sparsity removes: the nearest whole number.</summary>
    public static long PrunedCount(long count, double sparsity)
    {
        if (!(sparsity >= 0 && sparsity <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(sparsity), sparsity, "Sparsity must be in [0, 1].");
        }

        // Rounding rather than truncating: 0.29 * 100 is 28.999… in binary floating point.
        return Math.Min(count, (long)Math.Round(count * sparsity, MidpointRounding.AwayFromZero));
    }

    /// <summary>Removes the <see cref="PrunedCount"/> smallest-magnitude weights of one layer.</summary>
    public static bool[] Layer(ReadOnlySpan<float> weights, double sparsity) =>
        Global([weights.ToArray()], sparsity)[0];

    /// <summary>
    /// One threshold over several layers: the <see cref="PrunedCount"/> smallest magnitudes of all the weights
    /// together, wherever they are. Layers with small weights lose more than others.
    /// </summary>
    public static bool[][] Global(IReadOnlyList<float[]> layers, double sparsity)
    {
        ArgumentNullException.ThrowIfNull(layers);
        var total = layers.Sum(l => (long)l.Length);
        if (total > Array.MaxLength)
        {
            throw new ArgumentException($"{total} weights are more than one ranking can hold ({Array.MaxLength}).", nameof(layers));
        }

        // One sortable key per weight: |w|'s bits (a non-negative float's bits order as its value) above the
        // flat index, which breaks ties by position.
        var keys = new ulong[total];
        var offset = 0L;
        foreach (var layer in layers)
        {
            for (var i = 0; i < layer.Length; i++)
            {
                keys[offset + i] = Key(layer[i], (uint)(offset + i));
            }

            offset += layer.Length;
        }

        var keep = new bool[total];
        Array.Fill(keep, true);
        var pruned = PrunedCount(total, sparsity);
        if (pruned > 0)
        {
            Array.Sort(keys);
            for (var i = 0L; i < pruned; i++)
            {
                keep[(uint)keys[i]] = false;
            }
        }

        var masks = new bool[layers.Count][];
        offset = 0;
        for (var l = 0; l < layers.Count; l++)
        {
            masks[l] = keep.AsSpan((int)offset, layers[l].Length).ToArray();
            offset += layers[l].Length;
        }

        return masks;
    }

    /// <summary>
    /// N:M semi-structured sparsity on a 2-D weight (row-major <paramref name="rows"/> x <paramref name="columns"/>):
    /// in every group of <paramref name="m"/> consecutive weights along the reduction axis (the input features the
    /// weight sums over) the <paramref name="n"/> largest magnitudes stay. 2:4 is the pattern sparse tensor cores run.
    /// </summary>
    /// <param name="weights">The weight, row-major.</param>
    /// <param name="rows">Rows of the stored weight.</param>
    /// <param name="columns">Columns of the stored weight.</param>
    /// <param name="reductionAxis">0 when the rows are the input features (MatMul's [in, out]); 1 when the columns are (Gemm transB's [out, in]).</param>
    /// <param name="n">Weights kept per group.</param>
    /// <param name="m">Group size; the reduction axis must be a multiple of it.</param>
    public static bool[] NOfM(ReadOnlySpan<float> weights, int rows, int columns, int reductionAxis, int n, int m)
    {
        if (weights.Length != (long)rows * columns)
        {
            throw new ArgumentException($"{weights.Length} weights do not fill {rows} x {columns}.", nameof(weights));
        }

        if (reductionAxis is not (0 or 1))
        {
            throw new ArgumentOutOfRangeException(nameof(reductionAxis), reductionAxis, "A 2-D weight reduces along axis 0 or 1.");
        }

        if (m < 1 || n < 0 || n > m)
        {
            throw new ArgumentOutOfRangeException(nameof(n), $"Need 0 <= n ({n}) <= m ({m}) and m >= 1.");
        }

        var reduction = reductionAxis == 0 ? rows : columns;
        if (reduction % m != 0)
        {
            throw new ArgumentException($"The reduction axis ({reduction}) is not a multiple of {m}.", nameof(m));
        }

        var mask = new bool[weights.Length];
        var others = reductionAxis == 0 ? columns : rows;
        var group = new ulong[m];
        for (var other = 0; other < others; other++)
        {
            for (var start = 0; start < reduction; start += m)
            {
                for (var j = 0; j < m; j++)
                {
                    var flat = reductionAxis == 0 ? ((start + j) * columns) + other : (other * columns) + start + j;
                    group[j] = Key(weights[flat], (uint)flat);
                }

                Array.Sort(group);
                for (var j = m - n; j < m; j++)
                {
                    mask[(uint)group[j]] = true;
                }
            }
        }

        return mask;
    }

    /// <summary>Zeroes <paramref name="weights"/> where <paramref name="mask"/> is false, in place.</summary>
    public static void Apply(Span<float> weights, ReadOnlySpan<bool> mask)
    {
        if (weights.Length != mask.Length)
        {
            throw new ArgumentException($"{weights.Length} weights but a mask of {mask.Length}.", nameof(mask));
        }

        for (var i = 0; i < weights.Length; i++)
        {
            if (!mask[i])
            {
                weights[i] = 0;
            }
        }
    }

    private static ulong Key(float weight, uint index) =>
        ((ulong)BitConverter.SingleToUInt32Bits(MathF.Abs(weight)) << 32) | index;
}
