using TorchSharp;
using static TorchSharp.torch;

namespace ModelCompression.Torch.Training;

/// <summary>
/// One input of a graph for every sample, held in memory row-major: float features (images, tabular data) or
/// int64 ids (token ids, attention masks of text models).
/// </summary>
public sealed class InputArray
{
    private readonly float[]? _floats;
    private readonly long[]? _longs;

    private InputArray(string? name, float[]? floats, long[]? longs, long[] sampleShape)
    {
        SampleSize = checked((int)sampleShape.Aggregate(1L, (a, b) => a * b));
        var length = floats?.Length ?? longs!.Length;
        if (SampleSize <= 0 || length % SampleSize != 0)
        {
            throw new ArgumentException($"{length} values do not split into samples of {SampleSize}.", nameof(sampleShape));
        }

        Name = name;
        _floats = floats;
        _longs = longs;
        SampleShape = sampleShape;
        Count = length / SampleSize;
    }

    /// <summary>The graph input this array feeds; null for the graph's only input.</summary>
    public string? Name { get; }

    /// <summary>The shape of one sample (no batch axis).</summary>
    public long[] SampleShape { get; }

    /// <summary>Elements per sample.</summary>
    public int SampleSize { get; }

    /// <summary>Number of samples.</summary>
    public int Count { get; }

    /// <summary>The element type of the batches made from this array.</summary>
    public ScalarType DType => _floats is not null ? ScalarType.Float32 : ScalarType.Int64;

    /// <summary>A float32 input.</summary>
    public static InputArray Float(string? name, float[] values, long[] sampleShape) =>
        new(name, values ?? throw new ArgumentNullException(nameof(values)), null, sampleShape);

    /// <summary>An int64 input (token ids, masks).</summary>
    public static InputArray Int64(string? name, long[] values, long[] sampleShape) =>
        new(name, null, values ?? throw new ArgumentNullException(nameof(values)), sampleShape);

    /// <summary>The samples at <paramref name="rows"/>, in that order, as a new array.</summary>
    public InputArray Select(IReadOnlyList<int> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        return _floats is not null
            ? new InputArray(Name, Gather(_floats, rows, SampleSize), null, SampleShape)
            : new InputArray(Name, null, Gather(_longs!, rows, SampleSize), SampleShape);
    }

    /// <summary>A batch tensor [rows, ..SampleShape] of the given rows.</summary>
    internal Tensor Batch(ReadOnlySpan<int> rows)
    {
        long[] shape = [rows.Length, .. SampleShape];
        return _floats is not null
            ? torch.tensor(Gather(_floats, rows, SampleSize), shape)
            : torch.tensor(Gather(_longs!, rows, SampleSize), shape);
    }

    internal static T[] Gather<T>(T[] source, IReadOnlyList<int> rows, int width)
    {
        var result = new T[rows.Count * width];
        for (var i = 0; i < rows.Count; i++)
        {
            Array.Copy(source, (long)rows[i] * width, result, (long)i * width, width);
        }

        return result;
    }

    internal static T[] Gather<T>(T[] source, ReadOnlySpan<int> rows, int width)
    {
        var result = new T[rows.Length * width];
        for (var i = 0; i < rows.Length; i++)
        {
            Array.Copy(source, (long)rows[i] * width, result, (long)i * width, width);
        }

        return result;
    }
}

/// <summary>
/// Inputs (one or several named arrays), labels and, for distillation, teacher logits, all held in memory.
/// </summary>
public sealed class TrainingSet
{
    /// <summary>A set whose samples feed the graph's only input as float32.</summary>
    /// <param name="inputs">Samples, <paramref name="sampleShape"/> elements each, row-major.</param>
    /// <param name="sampleShape">The shape of one sample as the student's input wants it (no batch axis).</param>
    /// <param name="labels">Class labels, one per sample; null for unlabelled data.</param>
    /// <param name="teacherLogits">Teacher logits, <paramref name="classes"/> per sample; null when not distilling.</param>
    /// <param name="classes">Number of classes.</param>
    public TrainingSet(float[] inputs, long[] sampleShape, long[]? labels, float[]? teacherLogits, int classes)
        : this([InputArray.Float(null, inputs, sampleShape)], labels, teacherLogits, classes)
    {
    }

    /// <summary>A set of several named inputs (e.g. int64 input_ids and attention_mask).</summary>
    /// <param name="inputs">One array per graph input, all with the same number of samples.</param>
    /// <param name="labels">Class labels, one per sample; null for unlabelled data.</param>
    /// <param name="teacherLogits">Teacher logits, <paramref name="classes"/> per sample; null when not distilling.</param>
    /// <param name="classes">Number of classes.</param>
    public TrainingSet(IReadOnlyList<InputArray> inputs, long[]? labels, float[]? teacherLogits, int classes)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        if (inputs.Count == 0)
        {
            throw new ArgumentException("At least one input is needed.", nameof(inputs));
        }

        if (inputs.Count > 1 && inputs.Any(i => i.Name is null))
        {
            throw new ArgumentException("With several inputs every input needs the name of the graph input it feeds.", nameof(inputs));
        }

        if (classes <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(classes), classes, "At least one class is needed.");
        }

        Count = inputs[0].Count;
        if (inputs.FirstOrDefault(i => i.Count != Count) is { } odd)
        {
            throw new ArgumentException($"Input '{odd.Name}' has {odd.Count} samples but '{inputs[0].Name}' has {Count}.", nameof(inputs));
        }

        if (labels is not null && labels.Length != Count)
        {
            throw new ArgumentException($"{Count} samples but {labels.Length} labels.", nameof(labels));
        }

        if (teacherLogits is not null && teacherLogits.Length != (long)Count * classes)
        {
            throw new ArgumentException($"{Count} samples of {classes} classes need {(long)Count * classes} teacher logits, not {teacherLogits.Length}.", nameof(teacherLogits));
        }

        Inputs = inputs;
        Labels = labels;
        TeacherLogits = teacherLogits;
        Classes = classes;
    }

    /// <summary>The inputs, one array per graph input.</summary>
    public IReadOnlyList<InputArray> Inputs { get; }

    /// <summary>Class labels, one per sample, or null.</summary>
    public long[]? Labels { get; }

    /// <summary>Teacher logits, <see cref="Classes"/> per sample, or null.</summary>
    public float[]? TeacherLogits { get; }

    /// <summary>Number of classes.</summary>
    public int Classes { get; }

    /// <summary>The number of samples.</summary>
    public int Count { get; }

    /// <summary>The samples at <paramref name="rows"/>, in that order, as a new set.</summary>
    public TrainingSet Select(IReadOnlyList<int> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        return new TrainingSet(
            [.. Inputs.Select(i => i.Select(rows))],
            Labels is null ? null : InputArray.Gather(Labels, rows, 1),
            TeacherLogits is null ? null : InputArray.Gather(TeacherLogits, rows, Classes),
            Classes);
    }

    /// <summary>
    /// Splits off a seeded random <paramref name="fraction"/> of the samples (a validation set); both parts
    /// keep the original order of their samples. Same seed and data, same split.
    /// </summary>
    public (TrainingSet Remainder, TrainingSet Split) SplitRandom(double fraction, int seed)
    {
        if (fraction is <= 0 or >= 1 || double.IsNaN(fraction))
        {
            throw new ArgumentOutOfRangeException(nameof(fraction), fraction, "The split fraction must be between 0 and 1.");
        }

        var order = Enumerable.Range(0, Count).ToArray();
        new Random(seed).Shuffle(order);
        var splitCount = Math.Clamp((int)Math.Round(Count * fraction), 1, Count - 1);
        return (Select([.. order.Skip(splitCount).Order()]), Select([.. order.Take(splitCount).Order()]));
    }

    /// <summary>The graph inputs of one batch, by graph input name.</summary>
    internal Dictionary<string, Tensor> Batch(TrainableGraphInputs names, ReadOnlySpan<int> rows)
    {
        var batch = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var input in Inputs)
        {
            batch[names.Resolve(input.Name)] = input.Batch(rows);
        }

        return batch;
    }
}

/// <summary>Maps a <see cref="InputArray.Name"/> (null for "the only input") to a graph input name.</summary>
internal sealed class TrainableGraphInputs(IReadOnlyList<string> graphInputs)
{
    public string Resolve(string? name)
    {
        if (name is null)
        {
            return graphInputs.Count == 1
                ? graphInputs[0]
                : throw new ArgumentException($"The graph has {graphInputs.Count} inputs ({string.Join(", ", graphInputs)}); name each input array.");
        }

        return graphInputs.Contains(name, StringComparer.Ordinal)
            ? name
            : throw new ArgumentException($"The graph has no input '{name}'. Inputs: {string.Join(", ", graphInputs)}.");
    }
}
