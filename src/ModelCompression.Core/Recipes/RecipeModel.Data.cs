using ModelCompression.Data;

namespace ModelCompression.Recipes;

/// <summary>The recipe's <c>data:</c> section, described once (see <see cref="RecipeKey"/>); <see cref="DataSpecReader"/> binds it.</summary>
internal static class DataKeys
{
    private const double MaxTextLength = 1 << 16;

    /// <summary>A split's <c>{ inputs, labels }</c> form.</summary>
    public static class SplitFiles
    {
        /// <summary>'inputs': one file, or tensor name to file.</summary>
        public static readonly RecipeKey Inputs = new(
            "inputs",
            "The inputs: one file, or { tensor_name: FILE, ... } for a model with several inputs (npy).",
            new OneOfShape([new TextShape { Description = "One file." }, new MapShape(new TextShape()) { Description = "Input tensor name to file." }]))
        { Required = true };

        /// <summary>'labels': the labels file (formats that keep labels beside the inputs).</summary>
        public static readonly RecipeKey Labels = new("labels", "The labels file (idx, npy: labels are a file of their own).", new TextShape());

        /// <summary>The mapping.</summary>
        public static readonly MappingShape Shape = new([Inputs, Labels]) { Description = "{ inputs: FILE, labels: FILE }." };
    }

    /// <summary>'split': parts carved from 'file' (or from train) by fraction or count.</summary>
    public static class Split
    {
        private static NumberShape Part() => new(Whole: false) { Min = 0 };

        /// <summary>'test'.</summary>
        public static readonly RecipeKey Test = new("test", "The test part: a fraction (0 to below 1) or a whole number of samples.", Part());

        /// <summary>'validation'.</summary>
        public static readonly RecipeKey Validation = new("validation", "The validation part (early stopping, sweeps): a fraction or a whole number of samples.", Part());

        /// <summary>'unlabelled'.</summary>
        public static readonly RecipeKey Unlabelled = new("unlabelled", "A part whose labels are dropped, an unlabelled pool for distillation: a fraction or a whole number of samples.", Part());

        /// <summary>'seed'.</summary>
        public static readonly RecipeKey Seed = new("seed", "The seed of the shuffle that deals the samples to the parts.", new NumberShape(Whole: true)) { Default = 1 };

        /// <summary>The mapping.</summary>
        public static readonly MappingShape Shape = new([Test, Validation, Unlabelled, Seed]);
    }

    /// <summary>'normalize: { mean, std }'.</summary>
    public static class Normalize
    {
        /// <summary>'mean'.</summary>
        public static readonly RecipeKey Mean = new("mean", "One mean, or one per input value.", Numbers(above0: false)) { Required = true };

        /// <summary>'std'.</summary>
        public static readonly RecipeKey Std = new("std", "One standard deviation (above 0), or one per input value.", Numbers(above0: true)) { Required = true };

        /// <summary>The names a scalar 'normalize' takes, and what each computes from the training split ('auto' is per feature).</summary>
        public static readonly IReadOnlyDictionary<string, NormalizeMode> Modes = new Dictionary<string, NormalizeMode>(StringComparer.Ordinal)
        {
            ["auto"] = NormalizeMode.PerFeature,
            ["per_feature"] = NormalizeMode.PerFeature,
            ["global"] = NormalizeMode.Global,
        };

        /// <summary>The mapping.</summary>
        public static readonly MappingShape Fixed = new([Mean, Std]) { Description = "A given mean and standard deviation." };

        private static OneOfShape Numbers(bool above0)
        {
            var number = new NumberShape(Whole: false) { Min = above0 ? 0 : double.NaN, MinExclusive = above0 };
            return new OneOfShape([number, new ListShape(number) { MinItems = 1 }]);
        }
    }

    /// <summary>'csv: { … }'.</summary>
    public static class Csv
    {
        private static OneOfShape Column() => new([new TextShape { Description = "A header name." }, new NumberShape(Whole: true) { Min = 0, Description = "A 0-based column number." }]);

        /// <summary>'label'.</summary>
        public static readonly RecipeKey Label = new("label", "The label column: a header name or a 0-based column number (default: the column named label, else the last one).", Column());

        /// <summary>'header'.</summary>
        public static readonly RecipeKey Header = new("header", "Whether the first line names the columns (default: told by whether it holds a non-number).", new BoolShape());

        /// <summary>'delimiter'.</summary>
        public static readonly RecipeKey Delimiter = new("delimiter", "The field separator: one character, or tab.", new TextShape()) { Default = "," };

        /// <summary>'ignore'.</summary>
        public static readonly RecipeKey Ignore = new("ignore", "Columns that are neither inputs nor the label, e.g. an id.", new ListShape(Column()));

        /// <summary>The mapping.</summary>
        public static readonly MappingShape Shape = new([Label, Header, Delimiter, Ignore]);
    }

    /// <summary>'npz: { … }'.</summary>
    public static class Npz
    {
        /// <summary>'labels'.</summary>
        public static readonly RecipeKey Labels = new("labels", "The label array (default: labels, else y).", new TextShape());

        /// <summary>'inputs'.</summary>
        public static readonly RecipeKey Inputs = new("inputs", "The input arrays (default: every other array).", new ListShape(new TextShape()));

        /// <summary>The mapping.</summary>
        public static readonly MappingShape Shape = new([Labels, Inputs]);
    }

    /// <summary>'text: { … }' and its tokenizer.</summary>
    public static class Text
    {
        private static EnumShape Encoding() => new(() => TextTokenizer.TiktokenEncodings)
        {
            Description = "A tiktoken encoding.",
            Invalid = name => $"Tokenizer encoding '{name}' is not served here. Encodings: {string.Join(", ", TextTokenizer.TiktokenEncodings)}; or give {{ {WordPiece.Name}: vocab.txt }} or {{ {SentencePiece.Name}: FILE.model }}.",
        };

        /// <summary>'wordpiece'.</summary>
        public static readonly RecipeKey WordPiece = new("wordpiece", "A WordPiece vocab.txt (BERT).", new TextShape());

        /// <summary>'sentencepiece'.</summary>
        public static readonly RecipeKey SentencePiece = new("sentencepiece", "A SentencePiece .model file.", new TextShape());

        /// <summary>'tiktoken'.</summary>
        public static readonly RecipeKey Tiktoken = new("tiktoken", "A tiktoken encoding.", Encoding());

        /// <summary>'lowercase'.</summary>
        public static readonly RecipeKey Lowercase = new("lowercase", "Lower-case the text before a wordpiece or sentencepiece tokenizer.", new BoolShape()) { Default = true };

        /// <summary>The tokenizer kinds a mapping names one of.</summary>
        public static readonly IReadOnlyList<RecipeKey> TokenizerKinds = [WordPiece, SentencePiece, Tiktoken];

        /// <summary>'field'.</summary>
        public static readonly RecipeKey Field = new("field", "The JSON field holding the text.", new TextShape()) { Default = "text" };

        /// <summary>'label'.</summary>
        public static readonly RecipeKey Label = new("label", "The JSON field holding the label (a class number or name).", new TextShape()) { Default = "label" };

        /// <summary>'tokenizer'.</summary>
        public static readonly RecipeKey Tokenizer = new(
            "tokenizer",
            "The tokenizer: a tiktoken encoding, { wordpiece: vocab.txt }, { sentencepiece: FILE.model } or { tiktoken: ENCODING }.",
            new OneOfShape([Encoding(), new MappingShape([WordPiece, SentencePiece, Tiktoken, Lowercase]) { Description = "One tokenizer kind, with its file or encoding." }]))
        { Required = true };

        /// <summary>'max_length'.</summary>
        public static readonly RecipeKey MaxLength = new("max_length", "Tokens per sample: longer text is truncated, shorter padded (wordpiece: at least 3, for [CLS] and [SEP]).", new NumberShape(Whole: true) { Min = 1, Max = MaxTextLength }) { Default = 128 };

        /// <summary>'compact_vocabulary'.</summary>
        public static readonly RecipeKey CompactVocabulary = new("compact_vocabulary", "Remap the ids seen in the training text to 0..V-1 (0 padding, 1 unknown), so an embedding table stays small.", new BoolShape()) { Default = false };

        /// <summary>'pad_id'.</summary>
        public static readonly RecipeKey PadId = new("pad_id", "The id padding takes (default: the tokenizer's).", new NumberShape(Whole: true) { Min = 0 });

        /// <summary>'ids'.</summary>
        public static readonly RecipeKey Ids = new("ids", "The name of the token-ids tensor.", new TextShape()) { Default = "input_ids" };

        /// <summary>The words 'mask' takes for no mask.</summary>
        public static readonly IReadOnlyList<string> NoMask = ["false", "none"];

        /// <summary>'mask'.</summary>
        public static readonly RecipeKey Mask = new(
            "mask",
            "The name of the attention-mask tensor (1 token, 0 padding), or false for none.",
            new OneOfShape([new TextShape { Description = "A tensor name." }, new BoolShape { Description = "false: no mask." }]))
        { Default = "attention_mask" };

        /// <summary>The mapping.</summary>
        public static readonly MappingShape Shape = new([Field, Label, Tokenizer, MaxLength, CompactVocabulary, PadId, Ids, Mask]);
    }

    /// <summary>A split: one file (formats with labels inside) or { inputs, labels }.</summary>
    private static OneOfShape SplitShape() => new([new TextShape { Description = "One file (csv, jsonl, npz keep the labels inside)." }, SplitFiles.Shape]);

    /// <summary>'format'.</summary>
    public static readonly RecipeKey Format = new(
        "format",
        "The file format (default: told by the training file's name).",
        new EnumShape(() => DataLoader.Formats) { Invalid = format => $"data format '{format}' is not supported{Suggestions.Hint(format, [.. DataLoader.Formats], "Formats")}" });

    /// <summary>'train'.</summary>
    public static readonly RecipeKey Train = new("train", "The training split.", SplitShape());

    /// <summary>'test'.</summary>
    public static readonly RecipeKey Test = new("test", "The held-out split evaluation and gates measure (or carve it from train with split.test).", SplitShape());

    /// <summary>'validation'.</summary>
    public static readonly RecipeKey Validation = new("validation", "The validation split early stopping and sweeps measure.", SplitShape());

    /// <summary>'unlabelled'.</summary>
    public static readonly RecipeKey Unlabelled = new("unlabelled", "Inputs without labels, on which distillation also learns the teacher's outputs.", SplitShape());

    /// <summary>'file'.</summary>
    public static readonly RecipeKey File = new("file", "One labelled file that 'split' carves test, validation and unlabelled parts from (instead of train and test).", SplitShape());

    /// <summary>'split'.</summary>
    public static readonly RecipeKey Carving = new("split", "Parts carved from 'file' (or from train) by fraction or count.", Split.Shape);

    /// <summary>'scale'.</summary>
    public static readonly RecipeKey Scale = new("scale", "A factor applied to every input value (e.g. 1/255 for bytes).", new NumberShape(Whole: false)) { Default = 1 };

    /// <summary>'normalize'.</summary>
    public static readonly RecipeKey Normalization = new(
        "normalize",
        "Standardize the inputs after scaling: auto (per feature, from the training split), global (one mean and std from the training split), or { mean: M, std: S }.",
        new OneOfShape([new EnumShape(() => [.. Normalize.Modes.Keys]) { Description = "Computed from the training split." }, Normalize.Fixed]));

    /// <summary>'csv'.</summary>
    public static readonly RecipeKey CsvSection = new("csv", "How csv data is read.", Csv.Shape);

    /// <summary>'npz'.</summary>
    public static readonly RecipeKey NpzSection = new("npz", "Which arrays of npz data are the inputs and the labels.", Npz.Shape);

    /// <summary>'text'.</summary>
    public static readonly RecipeKey TextSection = new("text", "How jsonl text becomes token ids (jsonl data needs it).", Text.Shape);

    /// <summary>'classes'.</summary>
    public static readonly RecipeKey Classes = new("classes", "The class names, in label order (labels written as names are looked up here).", new ListShape(new TextShape()));

    /// <summary>The section.</summary>
    public static readonly MappingShape Shape = new([Format, Train, Test, Validation, Unlabelled, File, Carving, Scale, Normalization, CsvSection, NpzSection, TextSection, Classes])
    {
        Description = "The data: format, splits as files or carved by ratio, scaling, text tokenization.",
    };
}
