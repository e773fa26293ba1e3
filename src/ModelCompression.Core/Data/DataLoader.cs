using System.Globalization;
using ModelCompression.Diagnostics;

namespace ModelCompression.Data;

/// <summary>
/// Reads a recipe's <see cref="DataSpec"/>: every split's files (IDX, NPY, NPZ, CSV, JSONL), carved parts,
/// text tokenized (and its compact vocabulary built from the training split), labels resolved (numbers, or
/// names through a sorted or given class list), normalisation computed from the training split and applied to
/// all. Bad rows are MC2022 with file and line (or row); splits that disagree are MC2020. The formats are read by
/// <see cref="SplitReader"/>, text by <see cref="TextEncoding"/>, normalisation by <see cref="FeatureNormalization"/>.
/// </summary>
public static class DataLoader
{
    /// <summary>Formats a recipe can name.</summary>
    public static IReadOnlyList<string> Formats { get; } = ["idx", "npy", "npz", "csv", "jsonl", ChatFormat];

    /// <summary>
    /// The format of generation data: JSONL conversations (OpenAI's chat fine-tuning format, or prompt/completion), read by
    /// <c>Text.ChatReader</c> for task: generation; never read into tensors here.
    /// </summary>
    public const string ChatFormat = "chat";

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
    /// <param name="keepTexts">
    /// Keep text samples' raw texts (Dataset.RawText) for a teacher that reads text (an endpoint): off by default, since
    /// the tokens are all training needs and a large split's texts would stay in memory for nothing.
    /// </param>
    public static LoadedData Load(DataSpec spec, LabelKind labels = LabelKind.Classes, bool keepTexts = false)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (spec.Format == ChatFormat)
        {
            throw new InvalidOperationException("Chat data is read as conversations (task: generation), not as tensors.");
        }

        var tokenizer = spec.Text is { } text ? TextTokenizer.Create(text.Tokenizer) : null;
        var roots = new List<Dataset>();
        try
        {
            // Read every file once; text labels stay raw until all splits are known.
            var pieces = new List<SplitPiece>();
            SplitPiece Read(string name, DataSplit split, bool labelled, int? features = null)
            {
                var piece = SplitReader.Read(spec, name, split, labelled, tokenizer, features, labels, keepTexts);
                roots.Add(piece.Data);
                pieces.Add(piece);
                return piece;
            }

            SplitPiece train, test;
            SplitPiece? validation = null, unlabelled = null;
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
                var vocabulary = textSpec.CompactVocabulary ? TextEncoding.BuildVocabulary(trainData, textSpec) : null;
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
                Dataset Finish(Dataset d) => TextEncoding.FinishText(d, vocabulary, textSpec, description);
                trainData = Finish(trainData);
                testData = Finish(testData);
                validationData = validationData is null ? null : Finish(validationData);
                unlabelledData = unlabelledData is null ? null : Finish(unlabelledData);
            }
            else
            {
                var transforms = FeatureNormalization.Transforms(trainData, spec);
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

    /// <summary>
    /// Numeric labels when every label of every split is a whole number and the recipe lists no classes;
    /// otherwise class names: the recipe's list, or every name found, sorted (ordinal).
    /// </summary>
    private static IReadOnlyList<string>? ResolveLabelNames(DataSpec spec, IReadOnlyList<SplitPiece> pieces)
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
