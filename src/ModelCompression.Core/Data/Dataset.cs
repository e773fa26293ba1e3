namespace ModelCompression.Data;

/// <summary>
/// Samples of one or several named input tensors (float32 or int64; e.g. pixels, or <c>input_ids</c> and
/// <c>attention_mask</c>) with optional int64 class labels (classification) or float targets (regression). Tensors live in memory or are memory-mapped from their
/// files; <see cref="Select"/>, <see cref="Shuffle"/> and <c>SplitRandom</c> make views that copy no
/// sample. Batches are copied into caller buffers with <see cref="DataTensor.CopyRows(ReadOnlySpan{int}, Span{float})"/>.
/// Dispose the set a reader returned to close its mapped files; views share them.
/// </summary>
public sealed class Dataset : IDisposable
{
    private readonly int[]? _originRows;
    private readonly IReadOnlyList<TensorStore> _owned;
    private float[]? _inputs;

    /// <summary>A set of one float input held in memory, row-major, <paramref name="sampleShape"/> values per sample.</summary>
    public Dataset(float[] inputs, long[] sampleShape, long[]? labels, string source)
        : this([DataTensor.FromFloats(DefaultInputName, inputs, sampleShape)], labels, source)
    {
    }

    /// <summary>A set of named tensors, all with the same number of samples.</summary>
    public Dataset(IReadOnlyList<DataTensor> tensors, long[]? labels, string source, DataDescription? description = null)
        : this(tensors, labels, source, description ?? DataDescription.Empty, new DataOrigin(source, null), null, null, [])
    {
    }

    internal Dataset(
        IReadOnlyList<DataTensor> tensors,
        long[]? labels,
        string source,
        DataDescription description,
        DataOrigin inputOrigin,
        DataOrigin? labelOrigin,
        int[]? originRows,
        IReadOnlyList<TensorStore> owned)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        if (tensors.Count == 0)
        {
            throw new ArgumentException("A data set needs at least one input tensor.", nameof(tensors));
        }

        Count = tensors[0].Count;
        if (tensors.FirstOrDefault(t => t.Count != Count) is { } odd)
        {
            throw new ArgumentException($"Tensor '{odd.Name}' has {odd.Count} samples but '{tensors[0].Name}' has {Count}.", nameof(tensors));
        }

        if (tensors.Select(t => t.Name).Distinct(StringComparer.Ordinal).Count() != tensors.Count)
        {
            throw new ArgumentException($"Tensor names repeat: {string.Join(", ", tensors.Select(t => t.Name))}.", nameof(tensors));
        }

        if (labels is not null && labels.Length != Count)
        {
            throw new ArgumentException($"{Count} samples but {labels.Length} labels.", nameof(labels));
        }

        Tensors = tensors;
        Labels = labels;
        Source = source;
        Description = description;
        InputOrigin = inputOrigin;
        LabelOrigin = labelOrigin ?? inputOrigin;
        _originRows = originRows;
        _owned = owned;
    }

    /// <summary>The name of the only tensor of sets made from one array, file or CSV.</summary>
    public const string DefaultInputName = "input";

    /// <summary>The input tensors, in the order they were declared.</summary>
    public IReadOnlyList<DataTensor> Tensors { get; }

    /// <summary>Class labels, one per sample, or null for an unlabelled set (and for a set of float <see cref="Targets"/>).</summary>
    public long[]? Labels { get; }

    /// <summary>
    /// Float targets, one per sample (regression), or null: a set has class <see cref="Labels"/> or targets, never
    /// both. Read when the task asks for <see cref="LabelKind.Values"/>.
    /// </summary>
    public float[]? Targets { get; private init; }

    /// <summary>Whether the samples have labels of either kind.</summary>
    public bool IsLabelled => Labels is not null || Targets is not null;

    /// <summary>Number of samples.</summary>
    public int Count { get; }

    /// <summary>Where the data came from, for messages.</summary>
    public string Source { get; }

    /// <summary>What a model trained on this data must know: label names, token vocabulary, normalisation.</summary>
    public DataDescription Description { get; }

    /// <summary>The first tensor's sample shape (the only tensor's, for image and tabular sets).</summary>
    public long[] SampleShape => Tensors[0].SampleShape;

    /// <summary>Values per sample of the first tensor.</summary>
    public int SampleSize => Tensors[0].SampleSize;

    /// <summary>
    /// Every sample of the only tensor as floats, row-major, in memory (read once, then kept). For sets of one
    /// tensor only; large or mapped sets should be read in batches instead.
    /// </summary>
    public float[] Inputs => _inputs ??= Tensors.Count == 1
        ? Tensors[0].ToFloatArray()
        : throw new InvalidOperationException($"The data '{Source}' has {Tensors.Count} tensors ({string.Join(", ", Tensors.Select(t => t.Name))}); read them one by one.");

    /// <summary>The file the inputs came from and the line (or row) of each sample.</summary>
    internal DataOrigin InputOrigin { get; }

    /// <summary>The file the labels came from and the line (or row) of each sample.</summary>
    internal DataOrigin LabelOrigin { get; }

    /// <summary>The tensor named <paramref name="name"/>, or null.</summary>
    public DataTensor? Tensor(string name) => Tensors.FirstOrDefault(t => t.Name == name);

    /// <summary>Where sample <paramref name="row"/>'s inputs are: "file:line" for text formats, "file row N" for binary ones.</summary>
    public string Locate(int row) => InputOrigin.Describe(OriginRow(row));

    /// <summary>The file of sample <paramref name="row"/>'s inputs, its line there when the format has lines, and its row in the file.</summary>
    internal (string File, int? Line, int Row) InputLocation(int row) => (InputOrigin.File, InputOrigin.Line(OriginRow(row)), OriginRow(row));

    /// <summary>Whether the samples' raw texts were kept (<see cref="RawText"/>).</summary>
    internal bool HasRawTexts => InputOrigin.Texts is not null;

    /// <summary>
    /// Sample <paramref name="row"/>'s text as its file holds it, for text data read with the texts kept
    /// (<see cref="DataLoader.Load(DataSpec, LabelKind, bool)"/>); throws otherwise.
    /// </summary>
    internal string RawText(int row) =>
        (InputOrigin.Texts ?? throw new InvalidOperationException($"The data '{Source}' was read without its raw texts."))[OriginRow(row)];

    /// <summary>Where sample <paramref name="row"/>'s label is.</summary>
    public string LocateLabel(int row) => LabelOrigin.Describe(OriginRow(row));

    /// <summary>The line of sample <paramref name="row"/>'s label in its file, when the format has lines.</summary>
    internal int? LabelLine(int row) => LabelOrigin.Line(OriginRow(row));

    /// <summary>The samples at <paramref name="rows"/>, in that order, as a view (no sample is copied).</summary>
    public Dataset Select(IReadOnlyList<int> rows, string source)
    {
        ArgumentNullException.ThrowIfNull(rows);
        var picked = rows.ToArray();
        foreach (var row in picked)
        {
            if ((uint)row >= (uint)Count)
            {
                throw new ArgumentOutOfRangeException(nameof(rows), row, $"The data '{Source}' has {Count} samples.");
            }
        }

        var origin = new int[picked.Length];
        for (var i = 0; i < picked.Length; i++)
        {
            origin[i] = OriginRow(picked[i]);
        }

        return new Dataset(
            [.. Tensors.Select(t => t.Select(picked))],
            Labels is null ? null : [.. picked.Select(r => Labels[r])],
            source,
            Description,
            InputOrigin,
            LabelOrigin,
            origin,
            [])
        {
            Targets = Targets is null ? null : [.. picked.Select(r => Targets[r])],
        };
    }

    /// <summary>All samples in a seeded random order (a view). Same seed and data, same order.</summary>
    public Dataset Shuffle(int seed)
    {
        var order = Enumerable.Range(0, Count).ToArray();
        new Random(seed).Shuffle(order);
        return Select(order, Source);
    }

    /// <summary>
    /// Splits off a seeded random <paramref name="fraction"/> (e.g. a validation set); both parts keep the
    /// original order of their samples. Same seed and data, same split.
    /// </summary>
    public (Dataset Remainder, Dataset Split) SplitRandom(double fraction, int seed, string splitName)
    {
        var parts = SplitRandom([fraction], seed, [splitName]);
        return (parts[0], parts[1]);
    }

    /// <summary>
    /// Splits off seeded random parts, in order, each a fraction of all samples (below 1) or a number of
    /// samples (1 or more), and returns the remainder first, then each part; every part keeps the original
    /// order of its samples. Rounding goes to the remainder.
    /// </summary>
    public IReadOnlyList<Dataset> SplitRandom(IReadOnlyList<double> parts, int seed, IReadOnlyList<string> names)
    {
        ArgumentNullException.ThrowIfNull(parts);
        ArgumentNullException.ThrowIfNull(names);
        var sizes = parts.Select(p => double.IsNaN(p) || p < 0 ? -1 : p >= 1 ? (int)Math.Floor(p) : (int)Math.Round(Count * p)).ToArray();
        if (sizes.Any(s => s < 0) || sizes.Sum() > Count || parts.Where(p => p < 1).Sum() >= 1 || names.Count != parts.Count)
        {
            throw new ArgumentOutOfRangeException(nameof(parts), $"Split parts {string.Join(", ", parts)} of {Count} samples must be at least 0, named, and leave a remainder.");
        }

        var order = Enumerable.Range(0, Count).ToArray();
        new Random(seed).Shuffle(order);
        var taken = 0;
        var pieces = new List<Dataset>();
        foreach (var (size, name) in sizes.Zip(names))
        {
            pieces.Add(Select([.. order.Skip(taken).Take(size).Order()], $"{Source} ({name})"));
            taken += size;
        }

        return [Select([.. order.Skip(taken).Order()], Source), .. pieces];
    }

    /// <summary>The same samples without labels (an unlabelled pool made from a labelled file).</summary>
    public Dataset WithoutLabels(string source) =>
        new(Tensors, null, source, Description, InputOrigin, null, _originRows, []);

    /// <summary>The same samples with <paramref name="labels"/> read from <paramref name="origin"/>.</summary>
    internal Dataset WithLabels(long[] labels, DataOrigin origin) =>
        new(Tensors, labels, Source, Description, InputOrigin, origin, _originRows, _owned);

    /// <summary>The same samples with float <paramref name="targets"/> (and no class labels) read from <paramref name="origin"/>.</summary>
    internal Dataset WithTargets(float[] targets, DataOrigin origin)
    {
        ArgumentNullException.ThrowIfNull(targets);
        return targets.Length == Count
            ? new(Tensors, null, Source, Description, InputOrigin, origin, _originRows, _owned) { Targets = targets }
            : throw new ArgumentException($"{Count} samples but {targets.Length} targets.", nameof(targets));
    }

    /// <summary>The same samples with only the named tensors, in that order.</summary>
    internal Dataset KeepTensors(IReadOnlyList<string> names) =>
        new([.. names.Select(n => Tensor(n) ?? throw new ArgumentException($"No tensor '{n}'.", nameof(names)))], Labels, Source, Description, InputOrigin, LabelOrigin, _originRows, []) { Targets = Targets };

    /// <summary>The same samples with each tensor replaced by <paramref name="map"/>'s result.</summary>
    internal Dataset MapTensors(Func<DataTensor, DataTensor> map, DataDescription description) =>
        new([.. Tensors.Select(map)], Labels, Source, description, InputOrigin, LabelOrigin, _originRows, []) { Targets = Targets };

    /// <summary>Closes the memory-mapped files this set opened (views made from it must not be used after).</summary>
    public void Dispose()
    {
        foreach (var store in _owned)
        {
            store.Dispose();
        }
    }

    private int OriginRow(int row) => _originRows is null ? row : _originRows[row];
}

/// <summary>Where samples came from: a file, and for text formats the line of each sample.</summary>
/// <param name="File">The file.</param>
/// <param name="Lines">The 1-based line of each sample (by its row in the file), or null for binary formats.</param>
/// <param name="Texts">
/// The raw text of each sample (by its row in the file) of text data read with the texts kept (an endpoint teacher reads
/// them); null otherwise. Held here because every view (a carved split, a shuffle) keeps its origin rows.
/// </param>
internal sealed record DataOrigin(string File, int[]? Lines, string[]? Texts = null)
{
    public string Describe(int row) => Lines is null ? $"{File} row {row}" : $"{File}:{Lines[row]}";

    public int? Line(int row) => Lines?[row];
}
