using System.Globalization;
using ModelCompression.Diagnostics;

namespace ModelCompression.Data;

/// <summary>The splits of a recipe's data, read and checked.</summary>
public sealed class LoadedData : IDisposable
{
    private readonly IReadOnlyList<Dataset> _roots;

    internal LoadedData(Dataset train, Dataset test, Dataset? validation, Dataset? unlabelled, IReadOnlyList<Dataset> roots)
    {
        Train = train;
        Test = test;
        Validation = validation;
        Unlabelled = unlabelled;
        _roots = roots;
    }

    /// <summary>Training split (labelled).</summary>
    public Dataset Train { get; }

    /// <summary>Held-out split (labelled).</summary>
    public Dataset Test { get; }

    /// <summary>Validation split, when the recipe has one.</summary>
    public Dataset? Validation { get; }

    /// <summary>Unlabelled inputs, when the recipe has them.</summary>
    public Dataset? Unlabelled { get; }

    /// <summary>Label names, tokenizer and vocabulary, normalisation: shared by every split.</summary>
    public DataDescription Description => Train.Description;

    /// <summary>Every split, named, in a fixed order.</summary>
    public IEnumerable<(string Name, Dataset Data)> Splits()
    {
        yield return ("train", Train);
        yield return ("test", Test);
        if (Validation is not null)
        {
            yield return ("validation", Validation);
        }

        if (Unlabelled is not null)
        {
            yield return ("unlabelled", Unlabelled);
        }
    }

    /// <summary>Closes mapped files.</summary>
    public void Dispose()
    {
        foreach (var root in _roots)
        {
            root.Dispose();
        }
    }
}

/// <summary>
/// Reads a recipe's <see cref="DataSpec"/>: every split's files (IDX, NPY, NPZ, CSV, JSONL), carved parts,
/// text tokenized (and its compact vocabulary built from the training split), labels resolved (numbers, or
/// names through a sorted or given class list), normalisation computed from the training split and applied to
/// all. Bad rows are MC2022 with file and line (or row); splits that disagree are MC2020.
/// </summary>
public static class DataLoader
{
    /// <summary>Formats a recipe can name.</summary>
    public static IReadOnlyList<string> Formats { get; } = ["idx", "npy", "npz", "csv", "jsonl"];

    /// <summary>The format a file's name tells, or null.</summary>
    public static string? FormatOf(string path)
    {
        var name = Path.GetFileName(path).ToLowerInvariant();
        return name switch
        {
            _ when name.EndsWith(".npy", StringComparison.Ordinal) => "npy",
            _ when name.EndsWith(".npz", StringComparison.Ordinal) => "npz",
            _ when name.EndsWith(".csv", StringComparison.Ordinal) => "csv",
            _ when name.EndsWith(".jsonl", StringComparison.Ordinal) || name.EndsWith(".ndjson", StringComparison.Ordinal) => "jsonl",
            _ when name.EndsWith(".idx", StringComparison.Ordinal) || name.EndsWith(".gz", StringComparison.Ordinal) || name.Contains("-ubyte", StringComparison.Ordinal) => "idx",
            _ => null,
        };
    }

    /// <summary>Reads every split of <paramref name="spec"/>.</summary>
    /// <param name="spec">The recipe's data section.</param>
    /// <param name="labels">What the labels are (the task's): class numbers or names, or float targets.</param>
    public static LoadedData Load(DataSpec spec, LabelKind labels = LabelKind.Classes)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var tokenizer = spec.Text is { } text ? TextTokenizer.Create(text.Tokenizer) : null;
        var roots = new List<Dataset>();
        try
        {
            // Read every file once; text labels stay raw until all splits are known.
            var pieces = new List<Piece>();
            Piece Read(string name, DataSplit split, bool labelled, int? features = null)
            {
                var piece = ReadSplit(spec, name, split, labelled, tokenizer, features, labels);
                roots.Add(piece.Data);
                pieces.Add(piece);
                return piece;
            }

            Piece train, test;
            Piece? validation = null, unlabelled = null;
            if (spec.File is { } file)
            {
                train = Read("file", file, labelled: true);
                test = train;
            }
            else
            {
                train = Read("train", spec.Train, labelled: true);
                // A test split carved from train (split.test) names the training file here.
                test = spec.Test == spec.Train ? train : Read("test", spec.Test, labelled: true);
                validation = spec.Validation is { } v ? Read("validation", v, labelled: true) : null;
            }

            unlabelled = spec.Unlabelled is { } u ? Read("unlabelled", u, labelled: false, train.Features) : null;

            // Float targets have no class names; they are numbers as written.
            var names = labels == LabelKind.Values ? null : ResolveLabelNames(spec, pieces);
            foreach (var piece in pieces)
            {
                if (labels == LabelKind.Values)
                {
                    piece.AttachTargets();
                }
                else
                {
                    piece.AttachLabels(names, spec.Classes is not null);
                }
            }

            var trainData = train.Data;
            var testData = test.Data;
            var validationData = validation?.Data;
            var unlabelledData = unlabelled?.Data;
            if (spec.Split is { } ratios)
            {
                (trainData, var carvedTest, var carvedValidation, var carvedPool) = Carve(train.Data, ratios);
                testData = carvedTest ?? testData;
                validationData = carvedValidation ?? validationData;
                unlabelledData = carvedPool ?? unlabelledData;
            }

            var description = DataDescription.Empty with { LabelNames = names };
            if (spec.Text is { } textSpec)
            {
                var vocabulary = textSpec.CompactVocabulary ? BuildVocabulary(trainData, textSpec) : null;
                description = description with
                {
                    Tokenizer = new TokenizerDescription(
                        textSpec.Tokenizer.Kind.ToString().ToLowerInvariant(),
                        textSpec.Tokenizer.Kind == TokenizerKind.Tiktoken ? textSpec.Tokenizer.Source : Path.GetFileName(textSpec.Tokenizer.Source),
                        textSpec.MaxLength,
                        vocabulary is null ? tokenizer!.PadId : CompactVocabulary.PadId,
                        vocabulary?.Size ?? tokenizer!.VocabularySize,
                        vocabulary),
                };
                Dataset Finish(Dataset d) => FinishText(d, vocabulary, textSpec, description);
                trainData = Finish(trainData);
                testData = Finish(testData);
                validationData = validationData is null ? null : Finish(validationData);
                unlabelledData = unlabelledData is null ? null : Finish(unlabelledData);
            }
            else
            {
                var transforms = Transforms(trainData, spec);
                description = description with { Transforms = transforms };
                Dataset Finish(Dataset d) => d.MapTensors(t => transforms.TryGetValue(t.Name, out var f) ? t.WithTransform(f) : t, description);
                trainData = Finish(trainData);
                testData = Finish(testData);
                validationData = validationData is null ? null : Finish(validationData);
                unlabelledData = unlabelledData is null ? null : Finish(unlabelledData);
            }

            var loaded = new LoadedData(trainData, testData, validationData, unlabelledData, roots);
            CheckSplitsAgree(loaded);
            return loaded;
        }
        catch
        {
            foreach (var root in roots)
            {
                root.Dispose();
            }

            throw;
        }
    }

    /// <summary>A split as read from its file(s): numeric labels attached, text labels kept raw.</summary>
    private sealed class Piece(Dataset data, RawLabels? raw, int? features)
    {
        public Dataset Data { get; private set; } = data;

        public RawLabels? Raw { get; } = raw;

        /// <summary>Values per sample of a CSV file's features (to tell whether an unlabelled file has a label column).</summary>
        public int? Features { get; } = features;

        public void AttachLabels(IReadOnlyList<string>? names, bool namesGiven)
        {
            if (Raw is null)
            {
                return;
            }

            var labels = new long[Raw.Values.Length];
            var bad = new BadRows();
            for (var i = 0; i < labels.Length; i++)
            {
                var text = Raw.Values[i]!;
                if (names is null)
                {
                    labels[i] = long.Parse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
                    continue;
                }

                var index = IndexOf(names, text);
                if (index < 0)
                {
                    bad.Add(Raw.File, Raw.Lines[i], $"{Raw.File}:{Raw.Lines[i]}", $"label '{text}' is not one of the classes ({string.Join(", ", names)})");
                }

                labels[i] = index;
            }

            bad.ThrowIfAny(DiagnosticCodes.DataBadRows, namesGiven ? $"Labels in '{Raw.File}' are not in the recipe's classes" : $"Labels in '{Raw.File}' are not class names");
            Data = Data.WithLabels(labels, new DataOrigin(Raw.File, Raw.Lines));
        }

        /// <summary>Parses text labels as float targets (invariant culture); every one that is not a finite number is reported with its line.</summary>
        public void AttachTargets()
        {
            if (Raw is null)
            {
                return;
            }

            var targets = new float[Raw.Values.Length];
            var bad = new BadRows();
            for (var i = 0; i < targets.Length; i++)
            {
                var text = Raw.Values[i]!;
                if (!float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out targets[i]) || !float.IsFinite(targets[i]))
                {
                    bad.Add(Raw.File, Raw.Lines[i], $"{Raw.File}:{Raw.Lines[i]}", $"target '{text}' is not a finite number");
                }
            }

            bad.ThrowIfAny(DiagnosticCodes.DataBadRows, $"Targets in '{Raw.File}' are not all numbers (task: regression reads each label as a real number)");
            Data = Data.WithTargets(targets, new DataOrigin(Raw.File, Raw.Lines));
        }

        private static int IndexOf(IReadOnlyList<string> names, string text)
        {
            for (var i = 0; i < names.Count; i++)
            {
                if (names[i] == text)
                {
                    return i;
                }
            }

            return -1;
        }
    }

    private static Piece ReadSplit(DataSpec spec, string name, DataSplit split, bool labelled, TextTokenizer? tokenizer, int? features, LabelKind kind)
    {
        var format = spec.Format;
        var labelsPath = labelled ? split.Labels : null;
        if (labelled && labelsPath is null)
        {
            throw CompressionException.Error(DiagnosticCodes.DataSchemaMismatch, $"The {name} split '{split.Inputs}' needs labels.", split.Inputs);
        }

        switch (format)
        {
            case "idx":
            case "npy":
            {
                var tensors = new List<DataTensor>();
                foreach (var (tensorName, path) in split.InputFiles())
                {
                    tensors.Add(format == "idx" ? IdxReader.OpenInputs(path, tensorName) : NpyReader.Open(path, tensorName));
                }

                var owned = tensors.Select(t => t.Store).ToList();
                var count = tensors[0].Count;
                if (tensors.FirstOrDefault(t => t.Count != count) is { } odd)
                {
                    owned.ForEach(s => s.Dispose());
                    throw CompressionException.Error(
                        DiagnosticCodes.DataSchemaMismatch,
                        $"The {name} split's inputs disagree in sample count: '{split.InputFiles()[tensors[0].Name]}' has {count}, '{split.InputFiles()[odd.Name]}' has {odd.Count}.",
                        split.InputFiles()[odd.Name]);
                }

                long[]? labels = null;
                float[]? targets = null;
                if (labelsPath is not null)
                {
                    try
                    {
                        if (kind == LabelKind.Values)
                        {
                            targets = format == "idx" ? [.. IdxReader.ReadLabels(labelsPath, count, split.Inputs).Select(l => (float)l)] : NpyTargets(labelsPath, count, split.Inputs);
                        }
                        else
                        {
                            labels = format == "idx" ? IdxReader.ReadLabels(labelsPath, count, split.Inputs) : NpyLabels(labelsPath, count, split.Inputs);
                        }
                    }
                    catch
                    {
                        owned.ForEach(s => s.Dispose());
                        throw;
                    }
                }

                var data = new Dataset(tensors, labels, split.Inputs, DataDescription.Empty, new DataOrigin(split.Inputs, null), labelsPath is null ? null : new DataOrigin(labelsPath, null), null, owned);
                data = targets is null ? data : data.WithTargets(targets, new DataOrigin(labelsPath!, null));
                CheckFinite(data, tensors.ToDictionary(t => t.Name, t => split.InputFiles()[t.Name]));
                return new Piece(data, null, null);
            }

            case "npz":
            {
                var entries = NpzReader.List(split.Inputs).Select(e => e.Name).ToList();
                var labelArray = spec.Npz.Labels ?? (entries.Contains("labels") ? "labels" : entries.Contains("y") ? "y" : null);
                if (labelled && labelArray is null)
                {
                    throw CompressionException.Error(DiagnosticCodes.DataSchemaMismatch, $"NPZ archive '{split.Inputs}' has no 'labels' or 'y' array (it has: {string.Join(", ", entries)}); name the label array with npz: {{ labels: NAME }}.", split.Inputs);
                }

                var inputs = spec.Npz.Inputs ?? [.. entries.Where(e => e != labelArray)];
                var tensors = NpzReader.Open(split.Inputs, inputs);
                var owned = tensors.Select(t => t.Store).ToList();
                try
                {
                    var count = tensors[0].Count;
                    if (tensors.FirstOrDefault(t => t.Count != count) is { } odd)
                    {
                        throw CompressionException.Error(DiagnosticCodes.DataSchemaMismatch, $"NPZ archive '{split.Inputs}': array '{tensors[0].Name}' has {count} samples but '{odd.Name}' has {odd.Count}.", split.Inputs);
                    }

                    long[]? labels = null;
                    float[]? targets = null;
                    if (labelled)
                    {
                        var read = kind == LabelKind.Values ? (targets = NpzReader.ReadTargets(split.Inputs, labelArray!)).Length : (labels = NpzReader.ReadLabels(split.Inputs, labelArray!)).Length;
                        if (read != count)
                        {
                            throw CompressionException.Error(DiagnosticCodes.DataSchemaMismatch, $"NPZ archive '{split.Inputs}': label array '{labelArray}' has {read} values but the inputs hold {count} samples.", split.Inputs);
                        }
                    }

                    var data = new Dataset(tensors, labels, split.Inputs, DataDescription.Empty, new DataOrigin(split.Inputs, null), null, null, owned);
                    data = targets is null ? data : data.WithTargets(targets, new DataOrigin(split.Inputs, null));
                    CheckFinite(data, tensors.ToDictionary(t => t.Name, t => $"{split.Inputs}:{t.Name}"));
                    return new Piece(data, null, null);
                }
                catch
                {
                    owned.ForEach(s => s.Dispose());
                    throw;
                }
            }

            case "csv":
            {
                var table = CsvReader.Read(split.Inputs, spec.Csv, labelled, features);
                var tensor = DataTensor.FromFloats(Dataset.DefaultInputName, table.Features, [table.FeatureCount]);
                var data = new Dataset([tensor], null, split.Inputs, DataDescription.Empty, new DataOrigin(split.Inputs, table.Lines), null, null, []);
                return new Piece(data, table.Labels, table.FeatureCount);
            }

            case "jsonl":
            {
                var text = spec.Text ?? throw CompressionException.Error(DiagnosticCodes.RecipeMissingKey, "JSONL data needs a 'text' section with a tokenizer.", split.Inputs);
                var read = JsonlReader.Read(split.Inputs, text.Field, text.LabelField, labelled, kind);
                var data = Tokenize(read, split.Inputs, tokenizer!, text);
                return new Piece(data, read.Labels, null);
            }

            default:
                throw CompressionException.Error(DiagnosticCodes.RecipeInvalidValue, $"Data format '{format}' is not known. Formats: {string.Join(", ", Formats)}.", split.Inputs);
        }
    }

    private static float[] NpyTargets(string path, int count, string inputs)
    {
        var targets = NpyReader.ReadTargets(path);
        return targets.Length == count
            ? targets
            : throw CompressionException.Error(
                DiagnosticCodes.DataSchemaMismatch,
                $"Targets '{path}' hold {targets.Length} values but the inputs '{inputs}' hold {count} samples: expected [{count}].",
                path);
    }

    private static long[] NpyLabels(string path, int count, string inputs)
    {
        var labels = NpyReader.ReadLabels(path);
        return labels.Length == count
            ? labels
            : throw CompressionException.Error(
                DiagnosticCodes.DataSchemaMismatch,
                $"Labels '{path}' hold {labels.Length} values but the inputs '{inputs}' hold {count} samples: expected [{count}].",
                path);
    }

    /// <summary>Token ids (tokenizer ids, truncated, padded with the tokenizer's pad id) and the attention mask.</summary>
    private static Dataset Tokenize(JsonlReader.Texts read, string path, TextTokenizer tokenizer, TextSpec spec)
    {
        var length = spec.MaxLength;
        var ids = new long[(long)read.Values.Length * length];
        var mask = new long[ids.Length];
        for (var i = 0; i < read.Values.Length; i++)
        {
            var encoded = tokenizer.Encode(read.Values[i], length);
            var row = ids.AsSpan(i * length, length);
            row.Fill(tokenizer.PadId);
            for (var j = 0; j < encoded.Count; j++)
            {
                row[j] = encoded[j];
                mask[(i * length) + j] = 1;
            }
        }

        return new Dataset(
            [DataTensor.FromInt64(spec.IdsName, ids, [length]), DataTensor.FromInt64(MaskTensor(spec), mask, [length])],
            null,
            path,
            DataDescription.Empty,
            new DataOrigin(path, read.Lines),
            null,
            null,
            []);
    }

    /// <summary>The mask is always made (it tells padding when remapping ids) and dropped at the end when the spec has no mask.</summary>
    private static string MaskTensor(TextSpec spec) => spec.MaskName ?? "attention_mask";

    /// <summary>The tokenizer ids of the training split's real tokens (padding excluded), as a compact vocabulary.</summary>
    private static CompactVocabulary BuildVocabulary(Dataset train, TextSpec spec)
    {
        var (ids, mask) = TokenArrays(train, spec);
        var length = spec.MaxLength;
        var sequences = Enumerable.Range(0, train.Count).Select(row =>
            (IReadOnlyList<int>)[.. Enumerable.Range(row * length, length).Where(i => mask[i] != 0).Select(i => (int)ids[i])]);
        return CompactVocabulary.Build(sequences);
    }

    /// <summary>Remaps ids to the compact vocabulary (when there is one) and drops the mask when none is wanted.</summary>
    private static Dataset FinishText(Dataset data, CompactVocabulary? vocabulary, TextSpec spec, DataDescription description)
    {
        var (ids, mask) = TokenArrays(data, spec);
        if (vocabulary is not null)
        {
            for (var i = 0; i < ids.Length; i++)
            {
                ids[i] = mask[i] == 0 ? CompactVocabulary.PadId : vocabulary.Map((int)ids[i]);
            }
        }

        long[] shape = [spec.MaxLength];
        var idsTensor = DataTensor.FromInt64(spec.IdsName, ids, shape);
        var maskTensor = DataTensor.FromInt64(MaskTensor(spec), mask, shape);
        return data.MapTensors(t => t.Name == spec.IdsName ? idsTensor : maskTensor, description).KeepTensors(spec.MaskName is null ? [spec.IdsName] : [spec.IdsName, spec.MaskName]);
    }

    private static (long[] Ids, long[] Mask) TokenArrays(Dataset data, TextSpec spec)
    {
        var ids = new long[(long)data.Count * spec.MaxLength];
        var mask = new long[ids.Length];
        data.Tensor(spec.IdsName)!.CopyRange(0, data.Count, ids);
        data.Tensor(MaskTensor(spec))!.CopyRange(0, data.Count, mask);
        return (ids, mask);
    }

    /// <summary>
    /// Numeric labels when every label of every split is a whole number and the recipe lists no classes;
    /// otherwise class names: the recipe's list, or every name found, sorted (ordinal).
    /// </summary>
    private static IReadOnlyList<string>? ResolveLabelNames(DataSpec spec, IReadOnlyList<Piece> pieces)
    {
        var raw = pieces.Select(p => p.Raw).OfType<RawLabels>().ToList();
        if (spec.Classes is { } classes)
        {
            return classes;
        }

        var values = raw.SelectMany(r => r.Values).OfType<string>().ToList();
        if (values.All(v => long.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _)))
        {
            return null;
        }

        return [.. values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)];
    }

    private static (Dataset Train, Dataset? Test, Dataset? Validation, Dataset? Unlabelled) Carve(Dataset source, SplitRatios ratios)
    {
        // A part of 1 or more is a number of samples (the recipe checks it is whole).
        var counts = new[] { ratios.Test, ratios.Validation, ratios.Unlabelled }.Sum(p => p >= 1 ? p : Math.Round(source.Count * p));
        if (counts >= source.Count)
        {
            throw CompressionException.Error(
                DiagnosticCodes.DataSchemaMismatch,
                $"split: test {ratios.Test}, validation {ratios.Validation} and unlabelled {ratios.Unlabelled} leave no training samples out of {source.Count} in '{source.Source}'.",
                source.Source);
        }

        var parts = source.SplitRandom([ratios.Test, ratios.Validation, ratios.Unlabelled], ratios.Seed, ["test", "validation", "unlabelled"]);
        return (
            parts[0],
            ratios.Test > 0 ? parts[1] : null,
            ratios.Validation > 0 ? parts[2] : null,
            ratios.Unlabelled > 0 ? parts[3].WithoutLabels($"{source.Source} (unlabelled)") : null);
    }

    /// <summary>The recipe's scale and normalisation, per float-capable tensor; auto statistics come from the training split.</summary>
    private static Dictionary<string, FeatureTransform> Transforms(Dataset train, DataSpec spec)
    {
        var transforms = new Dictionary<string, FeatureTransform>(StringComparer.Ordinal);
        foreach (var tensor in train.Tensors)
        {
            var scaled = new FeatureTransform(spec.Scale, null, null);
            var transform = spec.Normalize switch
            {
                null => scaled,
                { Mode: NormalizeMode.Fixed, Mean: { } mean, Std: { } std } => FixedNormalization(tensor, scaled, mean, std, spec),
                { Mode: var mode } => Statistics(tensor.WithTransform(scaled), mode == NormalizeMode.Global, scaled),
            };
            if (!transform.IsIdentity)
            {
                transforms[tensor.Name] = transform;
            }
        }

        return transforms;
    }

    private static FeatureTransform FixedNormalization(DataTensor tensor, FeatureTransform scaled, float[] mean, float[] std, DataSpec spec)
    {
        // One mean or one std serves every position when the other is given per position.
        var width = Math.Max(mean.Length, std.Length);
        if (width > 1)
        {
            mean = mean.Length == 1 ? [.. Enumerable.Repeat(mean[0], width)] : mean;
            std = std.Length == 1 ? [.. Enumerable.Repeat(std[0], width)] : std;
        }

        if ((mean.Length != 1 && mean.Length != tensor.SampleSize) || std.Length != mean.Length)
        {
            throw CompressionException.Error(
                DiagnosticCodes.DataSchemaMismatch,
                $"normalize: {mean.Length} means and {std.Length} stds for tensor '{tensor.Name}' with samples of {tensor.SampleSize} values; give one of each, or one per value.",
                null,
                spec.Line);
        }

        return scaled with { Mean = mean, Std = std };
    }

    /// <summary>Mean and (population) standard deviation per position or over all, in one streaming pass; a std of 0 becomes 1.</summary>
    private static FeatureTransform Statistics(DataTensor tensor, bool global, FeatureTransform scaled)
    {
        var width = tensor.SampleSize;
        var sums = new double[width];
        var squares = new double[width];
        const int Batch = 256;
        var buffer = new float[Batch * width];
        for (var start = 0; start < tensor.Count; start += Batch)
        {
            var size = Math.Min(Batch, tensor.Count - start);
            tensor.CopyRange(start, size, buffer);
            for (var row = 0; row < size; row++)
            {
                var sample = buffer.AsSpan(row * width, width);
                for (var f = 0; f < width; f++)
                {
                    double v = sample[f];
                    sums[f] += v;
                    squares[f] += v * v;
                }
            }
        }

        float[] mean, std;
        if (global)
        {
            var n = (double)tensor.Count * width;
            var m = sums.Sum() / n;
            mean = [(float)m];
            std = [StdOf((squares.Sum() / n) - (m * m))];
        }
        else
        {
            mean = new float[width];
            std = new float[width];
            for (var f = 0; f < width; f++)
            {
                var m = sums[f] / tensor.Count;
                mean[f] = (float)m;
                std[f] = StdOf((squares[f] / tensor.Count) - (m * m));
            }
        }

        return scaled with { Mean = mean, Std = std };
    }

    private static float StdOf(double variance)
    {
        var std = (float)Math.Sqrt(Math.Max(0, variance));
        // A constant input (a border pixel that is always 0) is only centred.
        return std > 1e-12f ? std : 1f;
    }

    /// <summary>NaN and infinite values of floating-point storage are bad rows (integers cannot hold them).</summary>
    private static void CheckFinite(Dataset data, IReadOnlyDictionary<string, string> files)
    {
        var bad = new BadRows();
        foreach (var tensor in data.Tensors.Where(t => StorageConversion.IsFloatingPoint(t.StorageType)))
        {
            var width = tensor.SampleSize;
            const int Batch = 256;
            var buffer = new float[Batch * width];
            var file = files[tensor.Name];
            for (var start = 0; start < tensor.Count; start += Batch)
            {
                var size = Math.Min(Batch, tensor.Count - start);
                tensor.CopyRange(start, size, buffer);
                var values = buffer.AsSpan(0, size * width);
                if (!HasNonFinite(values))
                {
                    continue;
                }

                for (var row = 0; row < size; row++)
                {
                    var sample = values.Slice(row * width, width);
                    var at = IndexOfNonFinite(sample);
                    if (at >= 0)
                    {
                        bad.Add(file, null, $"{file} row {start + row}", $"value {at} of '{tensor.Name}' is {sample[at].ToString(CultureInfo.InvariantCulture)}");
                    }
                }
            }
        }

        if (bad.Count > 0)
        {
            data.Dispose();
        }

        bad.ThrowIfAny(DiagnosticCodes.DataBadRows, $"Data '{data.Source}' holds NaN or infinite values");
    }

    private static bool HasNonFinite(ReadOnlySpan<float> values) => IndexOfNonFinite(values) >= 0;

    private static int IndexOfNonFinite(ReadOnlySpan<float> values)
    {
        for (var i = 0; i < values.Length; i++)
        {
            if (!float.IsFinite(values[i]))
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>Every split must have the training split's tensors: same names, types and sample shapes.</summary>
    private static void CheckSplitsAgree(LoadedData data)
    {
        var expected = string.Join(", ", data.Train.Tensors.Select(t => t.Describe()));
        foreach (var (name, split) in data.Splits().Skip(1))
        {
            var actual = string.Join(", ", split.Tensors.Select(t => t.Describe()));
            if (actual != expected)
            {
                throw CompressionException.Error(
                    DiagnosticCodes.DataSchemaMismatch,
                    $"The {name} split does not match the training split: {name}: {actual}; train: {expected}.",
                    split.Source,
                    null);
            }
        }

        if (!data.Test.IsLabelled)
        {
            throw CompressionException.Error(DiagnosticCodes.DataSchemaMismatch, "The test split has no labels; evaluation needs them.", data.Test.Source);
        }
    }
}
