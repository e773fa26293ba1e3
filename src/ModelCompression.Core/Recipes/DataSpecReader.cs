using System.Globalization;
using ModelCompression.Data;
using ModelCompression.Diagnostics;
using YamlDotNet.RepresentationModel;
using static ModelCompression.Recipes.DataKeys;

namespace ModelCompression.Recipes;

/// <summary>
/// Binds the <c>data:</c> section of a recipe, already checked against <see cref="DataKeys"/> (keys, types, ranges),
/// into a <see cref="DataSpec"/>. What is left here needs more than one value or the disk: the format told by a
/// file's name, 'file' against train/test, labels a format keeps inside, files that must exist, sections that apply
/// to one format. Files are read later by <see cref="DataLoader"/>.
/// </summary>
internal static partial class DataSpecReader
{
    private const string What = "data";

    public static DataSpec? Read(YamlMappingNode node, YamlSource source, string directory)
    {
        var problems = source.Problems.Count;
        var fileNode = YamlSource.Get(node, DataKeys.File);
        // A format not in the list is reported by the check; the training file's name may still tell the right one.
        var format = YamlSource.Text(node, Format) is { } given && DataLoader.Formats.Contains(given, StringComparer.Ordinal) ? given : null;

        // The format decides what a split looks like; without 'format' the training file's name tells it.
        var first = fileNode ?? YamlSource.Get(node, Train);
        format ??= InferFormat(first, source, directory);
        if (format is null)
        {
            if (first is null)
            {
                source.Error(DiagnosticCodes.RecipeMissingKey, $"{What} needs '{Train.Name}' and '{Test.Name}' (or '{DataKeys.File.Name}' with '{Carving.Name}').", node);
            }

            return null;
        }

        var labelsInside = format is "csv" or "jsonl" or "npz" or DataLoader.ChatFormat;
        DataSplit? SplitOf(RecipeKey key, bool labelled) => YamlSource.Get(node, key) is { } splitNode
            ? ReadSplit(splitNode, $"{What}.{key.Name}", labelled, labelsInside, source, directory)
            : null;

        var ratios = ReadRatios(YamlSource.Get(node, Carving) as YamlMappingNode, source, fileNode is not null);
        DataSplit? file = null, train, test;
        if (fileNode is not null)
        {
            foreach (var key in new[] { Train, Test, Validation })
            {
                if (YamlSource.Get(node, key) is { } extra)
                {
                    source.Error(DiagnosticCodes.RecipeInvalidValue, $"{What} has '{DataKeys.File.Name}', so its splits are carved by '{Carving.Name}'; remove '{key.Name}' (or remove '{DataKeys.File.Name}' and give the splits as files).", extra);
                }
            }

            if (ratios is null)
            {
                source.Error(DiagnosticCodes.RecipeMissingKey, $"{What} '{DataKeys.File.Name}' needs '{Carving.Name}' (e.g. split: {{ test: 0.2, validation: 0.1, seed: 7 }}).", fileNode);
            }

            file = ReadSplit(fileNode, $"{What}.{DataKeys.File.Name}", labelled: true, labelsInside, source, directory);
            train = file;
            test = file;
        }
        else
        {
            if (YamlSource.Get(node, Train) is null)
            {
                source.Error(DiagnosticCodes.RecipeMissingKey, $"{What} needs '{Train.Name}'.", node);
            }

            if (YamlSource.Get(node, Test) is null && ratios is not { Test: > 0 })
            {
                source.Error(DiagnosticCodes.RecipeMissingKey, $"{What} needs '{Test.Name}' (or split: {{ test: 0.2 }} to carve it from train).", node);
            }
            else if (YamlSource.Get(node, Test) is { } testNode && ratios is { Test: > 0 })
            {
                source.Error(DiagnosticCodes.RecipeInvalidValue, $"{What} has a '{Test.Name}' file and {Carving.Name}.{Split.Test.Name}: give one or the other.", testNode);
            }

            train = SplitOf(Train, labelled: true);
            test = SplitOf(Test, labelled: true) ?? train;
            if (ratios is { Validation: > 0 } && YamlSource.Get(node, Validation) is { } validationNode)
            {
                source.Error(DiagnosticCodes.RecipeInvalidValue, $"{What} has a '{Validation.Name}' file and {Carving.Name}.{Split.Validation.Name}: give one or the other.", validationNode);
            }
        }

        var validation = fileNode is null ? SplitOf(Validation, labelled: true) : null;
        var unlabelled = SplitOf(Unlabelled, labelled: false);
        var scale = YamlSource.Number(node, Scale) ?? Scale.DefaultAs<double>();
        var normalize = ReadNormalize(YamlSource.Get(node, Normalization), source);
        var textNode = YamlSource.Get(node, TextSection) as YamlMappingNode;
        var text = ReadText(textNode, source, directory);
        var classes = Strings(YamlSource.Get(node, Classes));
        if (classes is not null && classes.Distinct(StringComparer.Ordinal).Count() != classes.Count)
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, $"{What}.{Classes.Name} repeats a name.", YamlSource.Get(node, Classes));
        }

        CheckSections(node, format, source, textNode, scale, normalize);
        if (train is null || test is null || source.Problems.Count > problems)
        {
            return null;
        }

        return new DataSpec(format, train, test, (float)scale)
        {
            File = file,
            Validation = validation,
            Unlabelled = unlabelled,
            Split = ratios,
            Normalize = normalize,
            Csv = ReadCsv(YamlSource.Get(node, CsvSection) as YamlMappingNode, source),
            Npz = YamlSource.Get(node, NpzSection) is YamlMappingNode npz
                ? new NpzSpec(YamlSource.Text(npz, Npz.Labels), Strings(YamlSource.Get(npz, Npz.Inputs)))
                : new NpzSpec(),
            Text = text,
            Classes = classes,
            Line = YamlSource.Line(node) ?? 0,
        };
    }

    private static string? InferFormat(YamlNode? first, YamlSource source, string directory)
    {
        var path = first switch
        {
            YamlScalarNode { Value: { } value } => value,
            YamlMappingNode mapping => YamlSource.Get(mapping, SplitFiles.Inputs) switch
            {
                YamlScalarNode { Value: { } value } => value,
                YamlMappingNode named => (named.Children.Values.FirstOrDefault() as YamlScalarNode)?.Value,
                _ => null,
            },
            _ => null,
        };
        if (path is null)
        {
            return null;
        }

        var format = DataLoader.FormatOf(Path.Combine(directory, path));
        if (format is null)
        {
            source.Error(DiagnosticCodes.RecipeMissingKey, $"{What} needs '{Format.Name}': the name '{path}' does not tell it. Formats: {string.Join(", ", DataLoader.Formats)}.", first);
        }

        return format;
    }

    /// <summary>
    /// A split: "path" (CSV, JSONL, NPZ: labels inside), or { inputs: path | { name: path, ... }, labels: path }.
    /// Labels of an unlabelled split are never read.
    /// </summary>
    private static DataSplit? ReadSplit(YamlNode node, string what, bool labelled, bool labelsInside, YamlSource source, string directory)
    {
        var line = YamlSource.Line(node) ?? 0;
        var inputsWhat = $"{SplitFiles.Inputs.Name} in {what}";
        if (node is YamlScalarNode { Value: var value })
        {
            if (!labelsInside && labelled)
            {
                source.Error(DiagnosticCodes.RecipeInvalidValue, $"{what} needs {{ {SplitFiles.Inputs.Name}: FILE, {SplitFiles.Labels.Name}: FILE }}: this format keeps labels in their own file.", node);
                return null;
            }

            var path = value is { Length: > 0 } ? source.ExistingFile(value, node, inputsWhat, directory) : null;
            return path is null ? null : new DataSplit(path, labelled && labelsInside ? path : null) { Line = line };
        }

        if (node is not YamlMappingNode mapping)
        {
            return null;
        }

        if (labelsInside && mapping.Children.Keys.FirstOrDefault(k => k is YamlScalarNode { Value: var key } && key == SplitFiles.Labels.Name) is { } labelsKey)
        {
            // This format keeps the labels beside the inputs: a labels file is a key it does not know.
            source.Error(DiagnosticCodes.RecipeUnknownKey, $"Unknown key '{SplitFiles.Labels.Name}' in {what}{Suggestions.Hint(SplitFiles.Labels.Name, [SplitFiles.Inputs.Name], "Known keys")}", labelsKey);
        }

        string? inputs = null;
        Dictionary<string, string>? named = null;
        switch (YamlSource.Get(mapping, SplitFiles.Inputs))
        {
            case YamlMappingNode files when !labelsInside:
                named = new Dictionary<string, string>(StringComparer.Ordinal);
                foreach (var (key, file) in files.Children)
                {
                    var name = (key as YamlScalarNode)?.Value ?? "";
                    if (file is YamlScalarNode { Value: { Length: > 0 } text } && source.ExistingFile(text, file, $"{name} in {what}.{SplitFiles.Inputs.Name}", directory) is { } path)
                    {
                        named[name] = path;
                    }
                }

                if (named.Count == 0)
                {
                    source.Error(DiagnosticCodes.RecipeInvalidValue, $"{what}.{SplitFiles.Inputs.Name} names no tensor files.", files);
                }

                inputs = named.Values.FirstOrDefault();
                break;
            case YamlMappingNode files:
                source.Error(DiagnosticCodes.RecipeInvalidValue, $"'{SplitFiles.Inputs.Name}' in {what} must be a text value: this format keeps every input in one file.", files);
                break;
            case YamlScalarNode { Value: { Length: > 0 } text } one:
                inputs = source.ExistingFile(text, one, inputsWhat, directory);
                break;
        }

        string? labels = null;
        if (labelsInside)
        {
            labels = labelled ? inputs : null;
        }
        else if (labelled)
        {
            labels = YamlSource.Get(mapping, SplitFiles.Labels) switch
            {
                null => Missing(),
                YamlScalarNode { Value: { Length: > 0 } text } one => source.ExistingFile(text, one, $"{SplitFiles.Labels.Name} in {what}", directory),
                _ => null,
            };
        }

        return inputs is null || (labelled && labels is null) ? null : new DataSplit(inputs, labels) { NamedInputs = named, Line = line };

        string? Missing()
        {
            source.Error(DiagnosticCodes.RecipeMissingKey, $"{what} needs '{SplitFiles.Labels.Name}'.", mapping);
            return null;
        }
    }

    private static SplitRatios? ReadRatios(YamlMappingNode? node, YamlSource source, bool fromFile)
    {
        if (node is null)
        {
            return null;
        }

        var what = $"{What}.{Carving.Name}";
        double Part(RecipeKey key)
        {
            // Below 0 is out of the key's range, reported by the check.
            var value = YamlSource.Number(node, key) ?? 0;
            if (value >= 1 && value != Math.Floor(value))
            {
                source.Error(DiagnosticCodes.RecipeInvalidValue, $"{what}.{key.Name} {value.ToString(CultureInfo.InvariantCulture)} must be a fraction (0 to below 1) or a whole number of samples.", YamlSource.Get(node, key));
                return 0;
            }

            return Math.Max(value, 0);
        }

        var ratios = new SplitRatios(Part(Split.Test), Part(Split.Validation), Part(Split.Unlabelled), (int)(YamlSource.Number(node, Split.Seed) ?? Split.Seed.DefaultAs<int>()));
        var fractions = new[] { ratios.Test, ratios.Validation, ratios.Unlabelled }.Where(f => f < 1).Sum();
        if (fractions >= 1)
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, $"{what}'s fractions add up to 1 or more: nothing is left to train on.", node);
        }

        if (fromFile && ratios.Test <= 0)
        {
            source.Error(DiagnosticCodes.RecipeMissingKey, $"{what} needs '{Split.Test.Name}' when the splits are carved from '{DataKeys.File.Name}'.", node);
        }

        if (!fromFile && ratios is { Test: <= 0, Validation: <= 0, Unlabelled: <= 0 })
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, $"{what} carves nothing: give {Split.Test.Name}, {Split.Validation.Name} or {Split.Unlabelled.Name}.", node);
        }

        return ratios;
    }

    /// <summary>normalize: auto | per_feature | global | { mean: 0.5 | [..], std: 0.25 | [..] }; null when absent or malformed (reported).</summary>
    private static NormalizeSpec? ReadNormalize(YamlNode? node, YamlSource source)
    {
        switch (node)
        {
            case YamlScalarNode { Value: { } mode } when Normalize.Modes.TryGetValue(mode, out var computed):
                return new NormalizeSpec(computed);
            case YamlMappingNode mapping:
            {
                var mean = Numbers(YamlSource.Get(mapping, Normalize.Mean));
                var std = Numbers(YamlSource.Get(mapping, Normalize.Std));
                if (mean is null || std is null)
                {
                    return null;
                }

                if (mean.Length != std.Length && mean.Length != 1 && std.Length != 1)
                {
                    source.Error(DiagnosticCodes.RecipeInvalidValue, $"{What}.{Normalization.Name} has {mean.Length} means but {std.Length} stds.", mapping);
                }

                return new NormalizeSpec(NormalizeMode.Fixed, mean, std);
            }

            default:
                return null;
        }
    }

    private static CsvOptions ReadCsv(YamlMappingNode? node, YamlSource source)
    {
        if (node is null)
        {
            return new CsvOptions();
        }

        var delimiter = YamlSource.Text(node, Csv.Delimiter) ?? Csv.Delimiter.DefaultAs<string>();
        if (delimiter is "\\t" or "tab")
        {
            delimiter = "\t";
        }

        if (delimiter.Length != 1 || delimiter is "\"")
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, $"{What}.{CsvSection.Name}.{Csv.Delimiter.Name} must be one character (or tab).", YamlSource.Get(node, Csv.Delimiter));
            delimiter = Csv.Delimiter.DefaultAs<string>();
        }

        return new CsvOptions(YamlSource.Text(node, Csv.Label), YamlSource.Bool(node, Csv.Header), delimiter[0], Strings(YamlSource.Get(node, Csv.Ignore)));
    }

    private static void CheckSections(YamlMappingNode node, string format, YamlSource source, YamlMappingNode? text, double scale, NormalizeSpec? normalize)
    {
        if (format == DataLoader.ChatFormat)
        {
            // Conversations are tokenized by the recipe's generation section, and their splits are files of their own.
            foreach (var key in new[] { TextSection, Scale, Normalization, Classes, DataKeys.File, Carving })
            {
                if (YamlSource.Get(node, key) is { } given)
                {
                    source.Error(DiagnosticCodes.RecipeInvalidValue, $"'{key.Name}' does not apply to chat data: give train, test (and validation, unlabelled) as JSONL files; tokenization is the 'generation' section's.", given);
                }
            }
        }
        else if (format == "jsonl")
        {
            if (text is null)
            {
                source.Error(DiagnosticCodes.RecipeMissingKey, "JSONL data needs 'text' (e.g. text: { field: text, label: label, tokenizer: cl100k_base, max_length: 128 }).", node);
            }

            if (scale != 1 || normalize is not null)
            {
                source.Error(DiagnosticCodes.RecipeInvalidValue, $"{Scale.Name} and {Normalization.Name} apply to numeric inputs, not to token ids.", YamlSource.Get(node, Scale) ?? YamlSource.Get(node, Normalization));
            }
        }
        else if (text is not null)
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, $"'{TextSection.Name}' applies to jsonl data, not {format}.", text);
        }

        foreach (var (section, itsFormat) in new[] { (CsvSection, "csv"), (NpzSection, "npz") })
        {
            if (format != itsFormat && YamlSource.Get(node, section) is { } given)
            {
                source.Error(DiagnosticCodes.RecipeInvalidValue, $"'{section.Name}' applies to {itsFormat} data, not {format}.", given);
            }
        }
    }

    /// <summary>A scalar number or a list of them as floats (parsed as floats, not through double); null when absent or malformed.</summary>
    private static float[]? Numbers(YamlNode? node)
    {
        IReadOnlyList<YamlNode>? items = node switch
        {
            YamlSequenceNode list => [.. list.Children],
            YamlScalarNode => [node],
            _ => null,
        };
        if (items is null || items.Count == 0)
        {
            return null;
        }

        var values = new float[items.Count];
        for (var i = 0; i < items.Count; i++)
        {
            if (items[i] is not YamlScalarNode { Value: { } text } || !float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out values[i]) || !float.IsFinite(values[i]))
            {
                return null;
            }
        }

        return values;
    }

    /// <summary>A list of names; null when absent or not a list (reported by the check), without the items that are not names.</summary>
    private static List<string>? Strings(YamlNode? node) => node is YamlSequenceNode list
        ? [.. list.Children.OfType<YamlScalarNode>().Where(i => i.Value is { Length: > 0 }).Select(i => i.Value!)]
        : null;
}
