namespace ModelCompression.Data;

/// <summary>One split of the data: the file(s) of its inputs and (optionally) of its labels.</summary>
/// <param name="Inputs">Absolute path of the inputs file (the first one when there are <see cref="NamedInputs"/>).</param>
/// <param name="Labels">
/// Absolute path of the labels file, or null for unlabelled data. For CSV, JSONL and NPZ the labels are in the
/// inputs file, and this is the same path.
/// </param>
public sealed record DataSplit(string Inputs, string? Labels)
{
    /// <summary>Several input tensors, one file each, by tensor name (e.g. input_ids, attention_mask); null for one.</summary>
    public IReadOnlyDictionary<string, string>? NamedInputs { get; init; }

    /// <summary>The split's line in the recipe, for errors found when it is read.</summary>
    public int Line { get; init; }

    /// <summary>The input files, by tensor name (the only one is named <see cref="Dataset.DefaultInputName"/>).</summary>
    public IReadOnlyDictionary<string, string> InputFiles() =>
        NamedInputs ?? new Dictionary<string, string> { [Dataset.DefaultInputName] = Inputs };

    /// <summary>Every file of the split.</summary>
    public IEnumerable<string> Files() => InputFiles().Values.Append(Labels).OfType<string>().Distinct(StringComparer.Ordinal);
}

/// <summary>
/// Parts carved at random (seeded) out of the training data or out of <see cref="DataSpec.File"/>. Each part
/// is a fraction (below 1) or a number of samples (1 or more); 0 for none. What is left is the training split.
/// </summary>
/// <param name="Test">The held-out part.</param>
/// <param name="Validation">The validation part.</param>
/// <param name="Unlabelled">A part whose labels are dropped (an unlabelled pool for distillation).</param>
/// <param name="Seed">The seed of the shuffle.</param>
public sealed record SplitRatios(double Test, double Validation, double Unlabelled, int Seed);

/// <summary>How float inputs are normalised after <see cref="DataSpec.Scale"/>.</summary>
public enum NormalizeMode
{
    /// <summary>The mean and standard deviation given in the recipe.</summary>
    Fixed,

    /// <summary>One mean and std per input position, computed from the training split.</summary>
    PerFeature,

    /// <summary>One mean and std over all input values, computed from the training split.</summary>
    Global,
}

/// <summary>Normalisation: <c>(x * scale - mean) / std</c>.</summary>
/// <param name="Mode">Given, or computed from the training split per feature or over all values.</param>
/// <param name="Mean">With <see cref="NormalizeMode.Fixed"/>: one value, or one per input position.</param>
/// <param name="Std">With <see cref="NormalizeMode.Fixed"/>: as <paramref name="Mean"/>.</param>
public sealed record NormalizeSpec(NormalizeMode Mode, float[]? Mean = null, float[]? Std = null);

/// <summary>How JSONL text becomes token tensors.</summary>
/// <param name="Field">The JSON field holding the text.</param>
/// <param name="LabelField">The JSON field holding the label (a class number or name).</param>
/// <param name="Tokenizer">The tokenizer.</param>
/// <param name="MaxLength">Tokens per sample: longer text is truncated, shorter padded.</param>
/// <param name="CompactVocabulary">Remap the ids seen in the training text to 0..V-1 (0 padding, 1 unknown).</param>
/// <param name="IdsName">The name of the ids tensor.</param>
/// <param name="MaskName">The name of the attention mask tensor (1 token, 0 padding); null for no mask.</param>
public sealed record TextSpec(string Field, string LabelField, TokenizerSpec Tokenizer, int MaxLength, bool CompactVocabulary, string IdsName = "input_ids", string? MaskName = "attention_mask");

/// <summary>Which arrays of an NPZ archive are what.</summary>
/// <param name="Labels">The label array; null takes "labels", else "y".</param>
/// <param name="Inputs">The input arrays; null takes every other array.</param>
public sealed record NpzSpec(string? Labels = null, IReadOnlyList<string>? Inputs = null);

/// <summary>The data sets of a recipe.</summary>
/// <param name="Format">The file format: idx, npy, npz, csv or jsonl (given, or told by the training file's name).</param>
/// <param name="Train">Training split (for a carved <see cref="Split"/>: the file the parts come from).</param>
/// <param name="Test">Held-out split for evaluation and gates (the same file as <paramref name="Train"/> when carved from it).</param>
/// <param name="Scale">Factor applied to every input value (e.g. 1/255 for bytes).</param>
public sealed record DataSpec(string Format, DataSplit Train, DataSplit Test, float Scale)
{
    /// <summary>A validation split given as files; null when none or when carved by <see cref="Split"/>.</summary>
    public DataSplit? Validation { get; init; }

    /// <summary>Unlabelled inputs (labels in the file, if any, are ignored); null when none or carved.</summary>
    public DataSplit? Unlabelled { get; init; }

    /// <summary>Parts carved at random from the training file (or from <see cref="File"/>); null for none.</summary>
    public SplitRatios? Split { get; init; }

    /// <summary>One file all splits are carved from by <see cref="Split"/>; null when the splits are files.</summary>
    public DataSplit? File { get; init; }

    /// <summary>Normalisation after scaling; null for none.</summary>
    public NormalizeSpec? Normalize { get; init; }

    /// <summary>How CSV files are read.</summary>
    public CsvOptions Csv { get; init; } = new();

    /// <summary>How JSONL text is tokenized; null for numeric formats.</summary>
    public TextSpec? Text { get; init; }

    /// <summary>Which arrays of NPZ archives are labels and inputs.</summary>
    public NpzSpec Npz { get; init; } = new();

    /// <summary>Class names in class-number order, for text labels; null sorts the names found.</summary>
    public IReadOnlyList<string>? Classes { get; init; }

    /// <summary>The data section's line in the recipe.</summary>
    public int Line { get; init; }

    /// <summary>Every data file (and tokenizer file).</summary>
    public IEnumerable<string> Files()
    {
        var splits = new[] { File, Train, Test, Validation, Unlabelled }.OfType<DataSplit>();
        var files = splits.SelectMany(s => s.Files());
        if (Text?.Tokenizer is { Kind: not TokenizerKind.Tiktoken } tokenizer)
        {
            files = files.Append(tokenizer.Source);
        }

        return files.Distinct(StringComparer.Ordinal);
    }
}
