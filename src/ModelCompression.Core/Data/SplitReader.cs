using System.Globalization;
using ModelCompression.Diagnostics;

namespace ModelCompression.Data;

/// <summary>
/// Reads one split of a recipe's data in its format (IDX, NPY, NPZ, CSV, JSONL) into a <see cref="SplitPiece"/>:
/// inputs that agree in sample count, labels that match them, no NaN or infinite values. Text labels stay raw
/// until <see cref="DataLoader"/> knows every split's.
/// </summary>
internal static class SplitReader
{
    /// <summary>
    /// The <paramref name="name"/> split's files; <paramref name="features"/> tells an unlabelled CSV file whether it has a
    /// label column; <paramref name="keepTexts"/> keeps text samples' raw texts beside their tokens.
    /// </summary>
    public static SplitPiece Read(DataSpec spec, string name, DataSplit split, bool labelled, TextTokenizer? tokenizer, int? features, LabelKind kind, bool keepTexts = false)
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
                return new SplitPiece(data, null, null);
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
                    return new SplitPiece(data, null, null);
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
                return new SplitPiece(data, table.Labels, table.FeatureCount);
            }

            case "jsonl":
            {
                var text = spec.Text ?? throw CompressionException.Error(DiagnosticCodes.RecipeMissingKey, "JSONL data needs a 'text' section with a tokenizer.", split.Inputs);
                var read = JsonlReader.Read(split.Inputs, text.Field, text.LabelField, labelled, kind);
                var data = TextEncoding.Tokenize(read, split.Inputs, tokenizer!, text, keepTexts);
                return new SplitPiece(data, read.Labels, null);
            }

            default:
                throw CompressionException.Error(DiagnosticCodes.RecipeInvalidValue, $"Data format '{format}' is not known. Formats: {string.Join(", ", DataLoader.Formats)}.", split.Inputs);
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
}
