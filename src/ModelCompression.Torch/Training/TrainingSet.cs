using System.Buffers;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelCompression.Torch.Training;

/// <summary>Copies the samples at the given rows, row-major, into a caller buffer of rows x sample size.</summary>
/// <typeparam name="T">float or long.</typeparam>
public delegate void RowCopier<T>(ReadOnlySpan<int> rows, Span<T> destination);

/// <summary>
/// One input of a graph for every sample: float features (images, tabular data) or int64 ids (token ids,
/// attention masks of text models). Held in memory row-major, or read through a <see cref="RowCopier{T}"/>
/// from storage the caller owns (e.g. a memory-mapped file), one batch at a time.
/// </summary>
public sealed class InputArray
{
    private readonly float[]? _floats;
    private readonly long[]? _longs;
    private readonly RowCopier<float>? _copyFloats;
    private readonly RowCopier<long>? _copyLongs;

    private InputArray(string? name, float[]? floats, long[]? longs, long[] sampleShape)
    {
        SampleSize = SizeOf(sampleShape);
        var length = floats?.Length ?? longs!.Length;
        if (length % SampleSize != 0)
        {
            throw new ArgumentException($"{length} values do not split into samples of {SampleSize}.", nameof(sampleShape));
        }

        Name = name;
        _floats = floats;
        _longs = longs;
        SampleShape = sampleShape;
        Count = length / SampleSize;
    }

    private InputArray(string? name, int count, long[] sampleShape, RowCopier<float>? floats, RowCopier<long>? longs)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        SampleSize = SizeOf(sampleShape);
        Name = name;
        SampleShape = sampleShape;
        Count = count;
        _copyFloats = floats;
        _copyLongs = longs;
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
    public ScalarType DType => _floats is not null || _copyFloats is not null ? ScalarType.Float32 : ScalarType.Int64;

    /// <summary>A float32 input.</summary>
    public static InputArray Float(string? name, float[] values, long[] sampleShape) =>
        new(name, values ?? throw new ArgumentNullException(nameof(values)), null, sampleShape);

    /// <summary>An int64 input (token ids, masks).</summary>
    public static InputArray Int64(string? name, long[] values, long[] sampleShape) =>
        new(name, null, values ?? throw new ArgumentNullException(nameof(values)), sampleShape);

    /// <summary>A float32 input of <paramref name="count"/> samples that <paramref name="copy"/> reads batch by batch.</summary>
    public static InputArray Float(string? name, int count, long[] sampleShape, RowCopier<float> copy) =>
        new(name, count, sampleShape, copy ?? throw new ArgumentNullException(nameof(copy)), null);

    /// <summary>An int64 input of <paramref name="count"/> samples that <paramref name="copy"/> reads batch by batch.</summary>
    public static InputArray Int64(string? name, int count, long[] sampleShape, RowCopier<long> copy) =>
        new(name, count, sampleShape, null, copy ?? throw new ArgumentNullException(nameof(copy)));

    /// <summary>The samples at <paramref name="rows"/>, in that order, as a new array (a view for a copier-backed array).</summary>
    public InputArray Select(IReadOnlyList<int> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        if (_floats is not null)
        {
            return new InputArray(Name, Gather(_floats, rows, SampleSize), null, SampleShape);
        }

        if (_longs is not null)
        {
            return new InputArray(Name, null, Gather(_longs, rows, SampleSize), SampleShape);
        }

        var picked = rows.ToArray();
        foreach (var row in picked)
        {
            if ((uint)row >= (uint)Count)
            {
                throw new ArgumentOutOfRangeException(nameof(rows), row, $"The input has {Count} samples.");
            }
        }

        return _copyFloats is { } floats
            ? new InputArray(Name, picked.Length, SampleShape, Remap(floats, picked), null)
            : new InputArray(Name, picked.Length, SampleShape, null, Remap(_copyLongs!, picked));
    }

    /// <summary>
    /// The samples of <paramref name="first"/> followed by those of <paramref name="second"/> (same name, shape and
    /// type), read from the two without copying them up front.
    /// </summary>
    public static InputArray Concat(InputArray first, InputArray second)
    {
        ArgumentNullException.ThrowIfNull(first);
        ArgumentNullException.ThrowIfNull(second);
        if (first.Name != second.Name || first.DType != second.DType || !first.SampleShape.SequenceEqual(second.SampleShape))
        {
            throw new ArgumentException($"Input '{second.Name}' {second.DType}[{string.Join(", ", second.SampleShape)}] does not continue '{first.Name}' {first.DType}[{string.Join(", ", first.SampleShape)}].", nameof(second));
        }

        var count = first.Count + second.Count;
        return first.DType == ScalarType.Float32
            ? new InputArray(first.Name, count, first.SampleShape, ConcatRows<float>(first, second), null)
            : new InputArray(first.Name, count, first.SampleShape, null, ConcatRows<long>(first, second));
    }

    /// <summary>A batch tensor [rows, ..SampleShape] of the given rows.</summary>
    /// <remarks>
    /// The rows go through a pooled buffer into memory of torch's allocator. torch.tensor of a new array would copy
    /// the array once more and keep that copy pinned as the batch's storage: two large-object-heap arrays per batch
    /// (a 128-image batch is 400 KB of floats), and storage aligned to 8 or 16 bytes where torch aligns to 64.
    /// </remarks>
    internal Tensor Batch(ReadOnlySpan<int> rows)
    {
        long[] shape = [rows.Length, .. SampleShape];
        return DType == ScalarType.Float32 ? Batch<float>(rows, shape) : Batch<long>(rows, shape);
    }

    private Tensor Batch<T>(ReadOnlySpan<int> rows, long[] shape)
        where T : unmanaged
    {
        var length = rows.Length * SampleSize;
        var buffer = ArrayPool<T>.Shared.Rent(length);
        try
        {
            var values = buffer.AsSpan(0, length);
            CopyRows(rows, values);
            var batch = torch.empty(shape, DType);
            batch.bytes = MemoryMarshal.AsBytes(values);
            return batch;
        }
        finally
        {
            ArrayPool<T>.Shared.Return(buffer);
        }
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

    /// <summary>Copies <paramref name="rows"/> into <paramref name="destination"/>, row after row.</summary>
    private void CopyRows<T>(ReadOnlySpan<int> rows, Span<T> destination)
    {
        if (_floats is not null || _longs is not null)
        {
            var source = (T[])(object)(_floats ?? (object)_longs!);
            for (var i = 0; i < rows.Length; i++)
            {
                source.AsSpan(rows[i] * SampleSize, SampleSize).CopyTo(destination.Slice(i * SampleSize, SampleSize));
            }
        }
        else
        {
            ((RowCopier<T>)(object)(_copyFloats ?? (object)_copyLongs!))(rows, destination);
        }
    }

    private static RowCopier<T> ConcatRows<T>(InputArray first, InputArray second) => (rows, destination) =>
    {
        var width = first.SampleSize;
        Span<int> one = stackalloc int[1];
        for (var i = 0; i < rows.Length; i++)
        {
            var fromFirst = rows[i] < first.Count;
            one[0] = fromFirst ? rows[i] : rows[i] - first.Count;
            (fromFirst ? first : second).CopyRows(one, destination.Slice(i * width, width));
        }
    };

    private static RowCopier<T> Remap<T>(RowCopier<T> copy, int[] picked) => (rows, destination) =>
    {
        var mapped = new int[rows.Length];
        for (var i = 0; i < rows.Length; i++)
        {
            mapped[i] = picked[rows[i]];
        }

        copy(mapped, destination);
    };

    private static int SizeOf(long[] sampleShape)
    {
        ArgumentNullException.ThrowIfNull(sampleShape);
        var size = sampleShape.Aggregate(1L, (a, b) => a * b);
        return size is > 0 and <= int.MaxValue
            ? (int)size
            : throw new ArgumentException($"Samples of [{string.Join(", ", sampleShape)}] must hold at least one value.", nameof(sampleShape));
    }
}

/// <summary>
/// Inputs (one or several named arrays), class labels or float targets and, for distillation, teacher logits (a
/// regression teacher's outputs) and feature-hint targets.
/// </summary>
public sealed partial class TrainingSet
{
    private readonly float[]? _targets;

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
    /// <param name="hints">Feature-distillation targets: the teacher's values of intermediate tensors, one array per hint with the same samples.</param>
    public TrainingSet(IReadOnlyList<InputArray> inputs, long[]? labels, float[]? teacherLogits, int classes, IReadOnlyList<HintTarget>? hints = null)
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

        hints ??= [];
        if (hints.FirstOrDefault(h => h.Teacher.Count != Count || h.Teacher.DType != ScalarType.Float32) is { } badHint)
        {
            throw new ArgumentException($"Hint '{badHint.StudentTensor}' needs {Count} float samples of the teacher's '{badHint.TeacherTensor}', not {badHint.Teacher.Count} {badHint.Teacher.DType}.", nameof(hints));
        }

        Inputs = inputs;
        Hints = hints;
        Labels = labels;
        TeacherLogits = teacherLogits;
        Classes = classes;
    }

    /// <summary>The label of a sample that has none (an unlabelled pool's): the hard loss skips it.</summary>
    public const long NoLabel = -100;

    /// <summary>The inputs, one array per graph input.</summary>
    public IReadOnlyList<InputArray> Inputs { get; }

    /// <summary>Feature-distillation targets (empty when the training has no hints).</summary>
    public IReadOnlyList<HintTarget> Hints { get; }

    /// <summary>
    /// This set followed by <paramref name="unlabelled"/> (same inputs, teacher logits on both): its samples get
    /// <see cref="NoLabel"/>, so distillation learns from the teacher alone there.
    /// </summary>
    public TrainingSet WithUnlabelled(TrainingSet unlabelled)
    {
        ArgumentNullException.ThrowIfNull(unlabelled);
        if (TokenLabels is not null || unlabelled.TokenLabels is not null)
        {
            throw new ArgumentException("Sets of per-token labels mark unlabelled tokens in their labels; join them with ConcatSequences.", nameof(unlabelled));
        }

        if ((TeacherLogits is null) != (unlabelled.TeacherLogits is null) || (TeacherLogits is null && Hints.Count == 0))
        {
            throw new ArgumentException("Unlabelled samples teach only through the teacher (its logits or hint tensors), which both sets need alike.", nameof(unlabelled));
        }

        if (!Hints.Select(h => h.StudentTensor).SequenceEqual(unlabelled.Hints.Select(h => h.StudentTensor)))
        {
            throw new ArgumentException("The unlabelled samples need the same hint targets as the labelled ones.", nameof(unlabelled));
        }

        var inputs = Inputs.Select(i => InputArray.Concat(i, unlabelled.Inputs.Single(u => u.Name == i.Name))).ToList();
        var labels = new long[Count + unlabelled.Count];
        Array.Fill(labels, NoLabel);
        Labels?.CopyTo(labels, 0);
        var hints = Hints.Select((h, i) => h with { Teacher = InputArray.Concat(h.Teacher, unlabelled.Hints[i].Teacher) }).ToList();
        float[]? targets = null;
        if (Targets is not null)
        {
            targets = new float[(long)(Count + unlabelled.Count) * Classes];
            Array.Fill(targets, float.NaN);
            Targets.CopyTo(targets, 0);
        }

        return new TrainingSet(inputs, labels, TeacherLogits is null ? null : [.. TeacherLogits, .. unlabelled.TeacherLogits!], Classes, hints) { Targets = targets };
    }

    /// <summary>Class labels, one per sample, or null.</summary>
    public long[]? Labels { get; }

    /// <summary>
    /// Float targets (regression), <see cref="Classes"/> per sample (the output width), or null. NaN marks a sample
    /// without a target (an unlabelled pool's). Classification sets use <see cref="Labels"/> instead.
    /// </summary>
    public float[]? Targets
    {
        get => _targets;
        init
        {
            if (value is not null && value.Length != (long)Count * Classes)
            {
                throw new ArgumentException($"{Count} samples of {Classes} outputs need {(long)Count * Classes} targets, not {value.Length}.", nameof(Targets));
            }

            _targets = value;
        }
    }

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
            Classes,
            [.. Hints.Select(h => h with { Teacher = h.Teacher.Select(rows) })])
        {
            Targets = Targets is null ? null : InputArray.Gather(Targets, rows, Classes),
            TokenLabels = TokenLabels is null ? null : InputArray.Gather(TokenLabels, rows, SequenceLength),
            TeacherTokens = TeacherTokens?.Select(rows),
        };
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

        if (TokenLabels is not null)
        {
            ShapeSequenceBatch(batch, names, rows);
        }

        return batch;
    }
}

/// <summary>Maps a <see cref="InputArray.Name"/> (null for "the only input") to a graph input name.</summary>
internal sealed class TrainableGraphInputs(IReadOnlyList<string> graphInputs)
{
    public bool Has(string name) => graphInputs.Contains(name, StringComparer.Ordinal);

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

/// <summary>
/// A feature-distillation target: the student's intermediate tensor <see cref="StudentTensor"/> learns to match
/// (through a learned projection where the widths differ) the teacher's <see cref="TeacherTensor"/>, whose values
/// per sample are <see cref="Teacher"/>.
/// </summary>
/// <param name="StudentTensor">A value of the student graph (a node output).</param>
/// <param name="TeacherTensor">The teacher's value it learns from (for messages and the checkpoint fingerprint).</param>
/// <param name="Teacher">The teacher's values, one float sample per training sample, batch axis first.</param>
public sealed record HintTarget(string StudentTensor, string TeacherTensor, InputArray Teacher);
