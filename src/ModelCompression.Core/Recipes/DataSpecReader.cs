using System.Globalization;
using ModelCompression.Data;
using ModelCompression.Diagnostics;
using YamlDotNet.RepresentationModel;

namespace ModelCompression.Recipes;

/// <summary>
/// Reads the <c>data:</c> section of a recipe into a <see cref="DataSpec"/>, collecting every problem with its
/// line (MC1xxx). Files must exist; their contents are read later by <see cref="DataLoader"/>.
/// </summary>
internal static class DataSpecReader
{
    internal static readonly string[] Keys =
        ["format", "train", "test", "validation", "unlabelled", "file", "split", "scale", "normalize", "csv", "npz", "text", "classes"];

    public static DataSpec? Read(YamlMappingNode? node, YamlSource source, string directory)
    {
        if (node is null)
        {
            return null;
        }

        source.CheckKeys(node, "data", Keys);
        var problems = source.Problems.Count;
        var fileNode = YamlSource.Get(node, "file");
        var format = source.String(node, "format", "data", required: false);
        if (format is not null && !DataLoader.Formats.Contains(format, StringComparer.Ordinal))
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, $"data format '{format}' is not supported{Suggestions.Hint(format, [.. DataLoader.Formats], "Formats")}", YamlSource.Get(node, "format"));
            format = null;
        }

        // The format decides what a split looks like; without 'format' the training file's name tells it.
        var first = fileNode ?? YamlSource.Get(node, "train");
        format ??= InferFormat(first, source, directory);
        if (format is null)
        {
            if (first is null)
            {
                source.Error(DiagnosticCodes.RecipeMissingKey, "data needs 'train' and 'test' (or 'file' with 'split').", node);
            }

            return null;
        }

        var labelsInside = format is "csv" or "jsonl" or "npz";
        DataSplit? Split(string key, bool labelled) => YamlSource.Get(node, key) is { } splitNode
            ? ReadSplit(splitNode, $"data.{key}", labelled, labelsInside, source, directory)
            : null;

        var ratios = ReadRatios(source.Mapping(node, "split", "data", required: false), source, fileNode is not null);
        DataSplit? file = null, train, test;
        if (fileNode is not null)
        {
            foreach (var key in new[] { "train", "test", "validation" })
            {
                if (YamlSource.Get(node, key) is { } extra)
                {
                    source.Error(DiagnosticCodes.RecipeInvalidValue, $"data has 'file', so its splits are carved by 'split'; remove '{key}' (or remove 'file' and give the splits as files).", extra);
                }
            }

            if (ratios is null)
            {
                source.Error(DiagnosticCodes.RecipeMissingKey, "data 'file' needs 'split' (e.g. split: { test: 0.2, validation: 0.1, seed: 7 }).", fileNode);
            }

            file = ReadSplit(fileNode, "data.file", labelled: true, labelsInside, source, directory);
            train = file;
            test = file;
        }
        else
        {
            if (YamlSource.Get(node, "train") is null)
            {
                source.Error(DiagnosticCodes.RecipeMissingKey, "data needs 'train'.", node);
            }

            if (YamlSource.Get(node, "test") is null && ratios is not { Test: > 0 })
            {
                source.Error(DiagnosticCodes.RecipeMissingKey, "data needs 'test' (or split: { test: 0.2 } to carve it from train).", node);
            }
            else if (YamlSource.Get(node, "test") is { } testNode && ratios is { Test: > 0 })
            {
                source.Error(DiagnosticCodes.RecipeInvalidValue, "data has a 'test' file and split.test: give one or the other.", testNode);
            }

            train = Split("train", labelled: true);
            test = Split("test", labelled: true) ?? train;
            if (ratios is { Validation: > 0 } && YamlSource.Get(node, "validation") is { } validationNode)
            {
                source.Error(DiagnosticCodes.RecipeInvalidValue, "data has a 'validation' file and split.validation: give one or the other.", validationNode);
            }
        }

        var validation = fileNode is null ? Split("validation", labelled: true) : null;
        var unlabelled = Split("unlabelled", labelled: false);
        var scale = source.Number(node, "scale", "data") ?? 1.0;
        var normalize = ReadNormalize(YamlSource.Get(node, "normalize"), source);
        var csv = ReadCsv(source.Mapping(node, "csv", "data", required: false), source);
        var npz = ReadNpz(source.Mapping(node, "npz", "data", required: false), source);
        var textNode = source.Mapping(node, "text", "data", required: false);
        var text = ReadText(textNode, source, directory);
        var classes = ReadStrings(YamlSource.Get(node, "classes"), "data.classes", source);
        if (classes is not null && classes.Distinct(StringComparer.Ordinal).Count() != classes.Count)
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, "data.classes repeats a name.", YamlSource.Get(node, "classes"));
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
            Csv = csv,
            Npz = npz,
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
            YamlMappingNode mapping => YamlSource.Get(mapping, "inputs") switch
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
            source.Error(DiagnosticCodes.RecipeMissingKey, $"data needs 'format': the name '{path}' does not tell it. Formats: {string.Join(", ", DataLoader.Formats)}.", first);
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
        if (node is YamlScalarNode)
        {
            if (!labelsInside && labelled)
            {
                source.Error(DiagnosticCodes.RecipeInvalidValue, $"{what} needs {{ inputs: FILE, labels: FILE }}: this format keeps labels in their own file.", node);
                return null;
            }

            var wrapper = new YamlMappingNode { { "inputs", node } };
            var path = source.ExistingFile(wrapper, "inputs", what, directory, required: true);
            return path is null ? null : new DataSplit(path, labelled && labelsInside ? path : null) { Line = line };
        }

        if (node is not YamlMappingNode mapping)
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, $"{what} must be a file name or a mapping such as {{ inputs: FILE, labels: FILE }}.", node);
            return null;
        }

        source.CheckKeys(mapping, what, labelsInside ? ["inputs"] : ["inputs", "labels"]);
        string? inputs = null;
        Dictionary<string, string>? named = null;
        switch (YamlSource.Get(mapping, "inputs"))
        {
            case null:
                source.Error(DiagnosticCodes.RecipeMissingKey, $"{what} needs 'inputs'.", mapping);
                break;
            case YamlMappingNode files when !labelsInside:
                named = new Dictionary<string, string>(StringComparer.Ordinal);
                foreach (var (key, _) in files.Children)
                {
                    var name = (key as YamlScalarNode)?.Value ?? "";
                    if (source.ExistingFile(files, name, $"{what}.inputs", directory, required: true) is { } path)
                    {
                        named[name] = path;
                    }
                }

                if (named.Count == 0)
                {
                    source.Error(DiagnosticCodes.RecipeInvalidValue, $"{what}.inputs names no tensor files.", files);
                }

                inputs = named.Values.FirstOrDefault();
                break;
            default:
                inputs = source.ExistingFile(mapping, "inputs", what, directory, required: true);
                break;
        }

        string? labels = null;
        if (labelsInside)
        {
            labels = labelled ? inputs : null;
        }
        else if (labelled)
        {
            labels = source.ExistingFile(mapping, "labels", what, directory, required: true);
        }

        return inputs is null || (labelled && labels is null) ? null : new DataSplit(inputs, labels) { NamedInputs = named, Line = line };
    }

    private static SplitRatios? ReadRatios(YamlMappingNode? node, YamlSource source, bool fromFile)
    {
        if (node is null)
        {
            return null;
        }

        source.CheckKeys(node, "data.split", "test", "validation", "unlabelled", "seed");
        double Part(string key)
        {
            var value = source.Number(node, key, "data.split") ?? 0;
            if (value < 0 || (value >= 1 && value != Math.Floor(value)))
            {
                source.Error(DiagnosticCodes.RecipeInvalidValue, $"data.split.{key} {value.ToString(CultureInfo.InvariantCulture)} must be a fraction (0 to below 1) or a whole number of samples.", YamlSource.Get(node, key));
                return 0;
            }

            return value;
        }

        var ratios = new SplitRatios(Part("test"), Part("validation"), Part("unlabelled"), (int)(source.Number(node, "seed", "data.split") ?? 1));
        var fractions = new[] { ratios.Test, ratios.Validation, ratios.Unlabelled }.Where(f => f < 1).Sum();
        if (fractions >= 1)
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, "data.split's fractions add up to 1 or more: nothing is left to train on.", node);
        }

        if (fromFile && ratios.Test <= 0)
        {
            source.Error(DiagnosticCodes.RecipeMissingKey, "data.split needs 'test' when the splits are carved from 'file'.", node);
        }

        if (!fromFile && ratios is { Test: <= 0, Validation: <= 0, Unlabelled: <= 0 })
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, "data.split carves nothing: give test, validation or unlabelled.", node);
        }

        return ratios;
    }

    /// <summary>normalize: auto | per_feature | global | { mean: 0.5 | [..], std: 0.25 | [..] }.</summary>
    private static NormalizeSpec? ReadNormalize(YamlNode? node, YamlSource source)
    {
        switch (node)
        {
            case null:
                return null;
            case YamlScalarNode { Value: "auto" or "per_feature" }:
                return new NormalizeSpec(NormalizeMode.PerFeature);
            case YamlScalarNode { Value: "global" }:
                return new NormalizeSpec(NormalizeMode.Global);
            case YamlMappingNode mapping:
            {
                source.CheckKeys(mapping, "data.normalize", "mean", "std");
                var mean = ReadNumbers(YamlSource.Get(mapping, "mean"), "data.normalize.mean", source);
                var std = ReadNumbers(YamlSource.Get(mapping, "std"), "data.normalize.std", source);
                if (mean is null || std is null)
                {
                    source.Error(DiagnosticCodes.RecipeMissingKey, "data.normalize needs 'mean' and 'std' (one number each, or one per input value).", mapping);
                    return null;
                }

                if (mean.Length != std.Length && mean.Length != 1 && std.Length != 1)
                {
                    source.Error(DiagnosticCodes.RecipeInvalidValue, $"data.normalize has {mean.Length} means but {std.Length} stds.", mapping);
                }

                if (std.Any(s => s <= 0))
                {
                    source.Error(DiagnosticCodes.RecipeInvalidValue, "data.normalize.std must be above 0.", YamlSource.Get(mapping, "std"));
                }

                return new NormalizeSpec(NormalizeMode.Fixed, mean, std);
            }

            default:
                source.Error(DiagnosticCodes.RecipeInvalidValue, "data.normalize is auto (per feature, from the training split), global (one mean and std from the training split), or { mean: M, std: S }.", node);
                return null;
        }
    }

    private static CsvOptions ReadCsv(YamlMappingNode? node, YamlSource source)
    {
        if (node is null)
        {
            return new CsvOptions();
        }

        source.CheckKeys(node, "data.csv", "label", "header", "delimiter", "ignore");
        var delimiter = source.String(node, "delimiter", "data.csv", required: false) ?? ",";
        if (delimiter is "\\t" or "tab")
        {
            delimiter = "\t";
        }

        if (delimiter.Length != 1 || delimiter is "\"")
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, "data.csv.delimiter must be one character (or tab).", YamlSource.Get(node, "delimiter"));
            delimiter = ",";
        }

        return new CsvOptions(
            source.String(node, "label", "data.csv", required: false),
            Bool(node, "header", "data.csv", source),
            delimiter[0],
            ReadStrings(YamlSource.Get(node, "ignore"), "data.csv.ignore", source));
    }

    private static NpzSpec ReadNpz(YamlMappingNode? node, YamlSource source)
    {
        if (node is null)
        {
            return new NpzSpec();
        }

        source.CheckKeys(node, "data.npz", "labels", "inputs");
        return new NpzSpec(source.String(node, "labels", "data.npz", required: false), ReadStrings(YamlSource.Get(node, "inputs"), "data.npz.inputs", source));
    }

    /// <summary>
    /// text: { field, label, tokenizer: ENCODING | { wordpiece: vocab.txt, lowercase } | { sentencepiece: m.model } | { tiktoken: ENCODING },
    /// max_length, compact_vocabulary, pad_id, ids, mask }.
    /// </summary>
    private static TextSpec? ReadText(YamlMappingNode? node, YamlSource source, string directory)
    {
        if (node is null)
        {
            return null;
        }

        const string What = "data.text";
        source.CheckKeys(node, What, "field", "label", "tokenizer", "max_length", "compact_vocabulary", "pad_id", "ids", "mask");
        var tokenizer = ReadTokenizer(YamlSource.Get(node, "tokenizer"), node, source, directory);
        var maxLength = source.Number(node, "max_length", What) ?? 128;
        if (maxLength < 1 || maxLength > 1 << 16 || maxLength != Math.Floor(maxLength))
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, $"{What}.max_length must be a whole number from 1 to 65536.", YamlSource.Get(node, "max_length"));
        }

        if (tokenizer is { Kind: TokenizerKind.WordPiece } && maxLength < 3)
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, $"{What}.max_length must be at least 3 for wordpiece: [CLS] and [SEP] take two positions.", YamlSource.Get(node, "max_length"));
        }

        var padId = source.Number(node, "pad_id", What);
        if (padId is { } pad && (pad < 0 || pad != Math.Floor(pad)))
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, $"{What}.pad_id must be a whole number, 0 or more.", YamlSource.Get(node, "pad_id"));
        }

        var mask = YamlSource.Get(node, "mask") is YamlScalarNode { Value: "false" or "none" } ? null : source.String(node, "mask", What, required: false) ?? "attention_mask";
        var ids = source.String(node, "ids", What, required: false) ?? "input_ids";
        if (mask == ids)
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, $"{What}: the ids and the mask need different names.", YamlSource.Get(node, "mask"));
        }

        return tokenizer is null
            ? null
            : new TextSpec(
                source.String(node, "field", What, required: false) ?? "text",
                source.String(node, "label", What, required: false) ?? "label",
                tokenizer with { PadId = padId is { } p ? (int)p : null },
                (int)Math.Clamp(maxLength, 1, 1 << 16),
                Bool(node, "compact_vocabulary", What, source) ?? false,
                ids,
                mask);
    }

    private static TokenizerSpec? ReadTokenizer(YamlNode? node, YamlMappingNode parent, YamlSource source, string directory)
    {
        const string What = "data.text.tokenizer";
        switch (node)
        {
            case null:
                source.Error(DiagnosticCodes.RecipeMissingKey, $"data.text needs 'tokenizer': a tiktoken encoding ({string.Join(", ", TextTokenizer.TiktokenEncodings)}), {{ wordpiece: vocab.txt }} or {{ sentencepiece: FILE.model }}.", parent);
                return null;
            case YamlScalarNode { Value: { } encoding }:
                return Encoding(encoding, node, source);
            case YamlMappingNode mapping:
            {
                source.CheckKeys(mapping, What, "wordpiece", "sentencepiece", "tiktoken", "lowercase");
                var kinds = new[] { "wordpiece", "sentencepiece", "tiktoken" }.Where(k => YamlSource.Get(mapping, k) is not null).ToList();
                if (kinds.Count != 1)
                {
                    source.Error(DiagnosticCodes.RecipeInvalidValue, $"{What} names one of wordpiece (a vocab.txt), sentencepiece (a .model file) or tiktoken (an encoding).", mapping);
                    return null;
                }

                if (kinds[0] == "tiktoken")
                {
                    return source.String(mapping, "tiktoken", What, required: true) is { } name ? Encoding(name, YamlSource.Get(mapping, "tiktoken")!, source) : null;
                }

                var path = source.ExistingFile(mapping, kinds[0], What, directory, required: true);
                var lowercase = Bool(mapping, "lowercase", What, source) ?? true;
                return path is null ? null : new TokenizerSpec(kinds[0] == "wordpiece" ? TokenizerKind.WordPiece : TokenizerKind.SentencePiece, path, lowercase);
            }

            default:
                source.Error(DiagnosticCodes.RecipeInvalidValue, $"{What} is an encoding name or a mapping.", node);
                return null;
        }
    }

    private static TokenizerSpec? Encoding(string name, YamlNode node, YamlSource source)
    {
        if (TextTokenizer.TiktokenEncodings.Contains(name, StringComparer.Ordinal))
        {
            return new TokenizerSpec(TokenizerKind.Tiktoken, name);
        }

        source.Error(DiagnosticCodes.RecipeInvalidValue, $"Tokenizer encoding '{name}' is not served here. Encodings: {string.Join(", ", TextTokenizer.TiktokenEncodings)}; or give {{ wordpiece: vocab.txt }} or {{ sentencepiece: FILE.model }}.", node);
        return null;
    }

    private static void CheckSections(YamlMappingNode node, string format, YamlSource source, YamlMappingNode? text, double scale, NormalizeSpec? normalize)
    {
        if (format == "jsonl")
        {
            if (text is null)
            {
                source.Error(DiagnosticCodes.RecipeMissingKey, "JSONL data needs 'text' (e.g. text: { field: text, label: label, tokenizer: cl100k_base, max_length: 128 }).", node);
            }

            if (scale != 1 || normalize is not null)
            {
                source.Error(DiagnosticCodes.RecipeInvalidValue, "scale and normalize apply to numeric inputs, not to token ids.", YamlSource.Get(node, "scale") ?? YamlSource.Get(node, "normalize"));
            }
        }
        else if (text is not null)
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, $"'text' applies to jsonl data, not {format}.", text);
        }

        if (format != "csv" && YamlSource.Get(node, "csv") is { } csv)
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, $"'csv' applies to csv data, not {format}.", csv);
        }

        if (format != "npz" && YamlSource.Get(node, "npz") is { } npz)
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, $"'npz' applies to npz data, not {format}.", npz);
        }
    }

    private static bool? Bool(YamlMappingNode parent, string key, string what, YamlSource source)
    {
        switch (YamlSource.Get(parent, key))
        {
            case null:
                return null;
            case YamlScalarNode { Value: "true" or "True" or "yes" }:
                return true;
            case YamlScalarNode { Value: "false" or "False" or "no" }:
                return false;
            case var other:
                source.Error(DiagnosticCodes.RecipeInvalidValue, $"'{key}' in {what} must be true or false.", other);
                return null;
        }
    }

    private static float[]? ReadNumbers(YamlNode? node, string what, YamlSource source)
    {
        var items = node switch
        {
            null => null,
            YamlSequenceNode list => list.Children.ToList(),
            _ => [node],
        };
        if (items is null)
        {
            return null;
        }

        var values = new float[items.Count];
        for (var i = 0; i < items.Count; i++)
        {
            if (items[i] is YamlScalarNode { Value: { } text } && float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && float.IsFinite(value))
            {
                values[i] = value;
            }
            else
            {
                source.Error(DiagnosticCodes.RecipeInvalidValue, $"{what} must be a number or a list of numbers.", items[i]);
                return null;
            }
        }

        return values.Length == 0 ? null : values;
    }

    private static List<string>? ReadStrings(YamlNode? node, string what, YamlSource source)
    {
        switch (node)
        {
            case null:
                return null;
            case YamlSequenceNode list:
                var values = new List<string>();
                foreach (var item in list)
                {
                    if (item is YamlScalarNode { Value: { Length: > 0 } value })
                    {
                        values.Add(value);
                    }
                    else
                    {
                        source.Error(DiagnosticCodes.RecipeInvalidValue, $"{what} must be a list of names.", item);
                    }
                }

                return values;
            default:
                source.Error(DiagnosticCodes.RecipeInvalidValue, $"{what} must be a list, e.g. [a, b].", node);
                return null;
        }
    }
}
