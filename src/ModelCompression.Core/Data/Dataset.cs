namespace ModelCompression.Data;

/// <summary>
/// Labelled samples held in memory, row-major: <see cref="Count"/> samples of <see cref="SampleShape"/>
/// float elements each, already scaled. Labels are null for an unlabelled set.
/// </summary>
public sealed class Dataset
{
    /// <summary>Creates a data set; checks that inputs and labels agree in count.</summary>
    public Dataset(float[] inputs, long[] sampleShape, long[]? labels, string source)
    {
        SampleSize = checked((int)sampleShape.Aggregate(1L, (a, b) => a * b));
        if (SampleSize <= 0 || inputs.Length % SampleSize != 0)
        {
            throw new ArgumentException($"{inputs.Length} values do not split into samples of {SampleSize}.", nameof(inputs));
        }

        Count = inputs.Length / SampleSize;
        if (labels is not null && labels.Length != Count)
        {
            throw new ArgumentException($"{Count} samples but {labels.Length} labels.", nameof(labels));
        }

        Inputs = inputs;
        SampleShape = sampleShape;
        Labels = labels;
        Source = source;
    }

    /// <summary>All samples, row-major.</summary>
    public float[] Inputs { get; }

    /// <summary>The shape of one sample as stored (no batch axis), e.g. [28, 28].</summary>
    public long[] SampleShape { get; }

    /// <summary>Elements per sample.</summary>
    public int SampleSize { get; }

    /// <summary>Labels, one per sample, or null.</summary>
    public long[]? Labels { get; }

    /// <summary>Number of samples.</summary>
    public int Count { get; }

    /// <summary>Where the data came from, for messages.</summary>
    public string Source { get; }

    /// <summary>The samples at <paramref name="rows"/>, in that order, as a new data set.</summary>
    public Dataset Select(IReadOnlyList<int> rows, string source)
    {
        var inputs = new float[rows.Count * SampleSize];
        var labels = Labels is null ? null : new long[rows.Count];
        for (var i = 0; i < rows.Count; i++)
        {
            Array.Copy(Inputs, (long)rows[i] * SampleSize, inputs, (long)i * SampleSize, SampleSize);
            if (labels is not null)
            {
                labels[i] = Labels![rows[i]];
            }
        }

        return new Dataset(inputs, SampleShape, labels, source);
    }

    /// <summary>
    /// Splits off a seeded random <paramref name="fraction"/> (e.g. a validation set); the rest keeps its
    /// original order.
    /// </summary>
    public (Dataset Remainder, Dataset Split) SplitRandom(double fraction, int seed, string splitName)
    {
        var order = Enumerable.Range(0, Count).ToArray();
        new Random(seed).Shuffle(order);
        var splitCount = (int)Math.Round(Count * fraction);
        var split = order.Take(splitCount).Order().ToArray();
        var rest = order.Skip(splitCount).Order().ToArray();
        return (Select(rest, Source), Select(split, $"{Source} ({splitName})"));
    }
}
