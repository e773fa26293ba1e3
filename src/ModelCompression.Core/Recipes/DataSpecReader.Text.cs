using YamlDotNet.RepresentationModel;
using ModelCompression.Data;
using ModelCompression.Diagnostics;
using static ModelCompression.Recipes.DataKeys;

namespace ModelCompression.Recipes;

// Inside ModelCompression, 'Text' alone is the ModelCompression.Text namespace; the keys are meant here.
using Text = ModelCompression.Recipes.DataKeys.Text;

/// <summary>The <c>data.text</c> section: how jsonl text becomes token ids.</summary>
internal static partial class DataSpecReader
{
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

        var what = $"{What}.{TextSection.Name}";
        var tokenizer = ReadTokenizer(YamlSource.Get(node, Text.Tokenizer), source, directory, $"{what}.{Text.Tokenizer.Name}");
        // The range is the key's, reported by the check; the clamp only keeps a rejected value from overflowing.
        var maxLength = YamlSource.Number(node, Text.MaxLength) ?? Text.MaxLength.DefaultAs<double>();
        if (tokenizer is { Kind: TokenizerKind.WordPiece } && maxLength < 3)
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, $"{what}.{Text.MaxLength.Name} must be at least 3 for wordpiece: [CLS] and [SEP] take two positions.", YamlSource.Get(node, Text.MaxLength));
        }

        var padId = YamlSource.Number(node, Text.PadId);
        var mask = YamlSource.Get(node, Text.Mask) is YamlScalarNode { Value: { } off } && Text.NoMask.Contains(off, StringComparer.Ordinal)
            ? null
            : YamlSource.Text(node, Text.Mask) ?? Text.Mask.DefaultAs<string>();
        var ids = YamlSource.Text(node, Text.Ids) ?? Text.Ids.DefaultAs<string>();
        if (mask == ids)
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, $"{what}: the ids and the mask need different names.", YamlSource.Get(node, Text.Mask));
        }

        return tokenizer is null
            ? null
            : new TextSpec(
                YamlSource.Text(node, Text.Field) ?? Text.Field.DefaultAs<string>(),
                YamlSource.Text(node, Text.Label) ?? Text.Label.DefaultAs<string>(),
                tokenizer with { PadId = padId is { } p ? (int)p : null },
                (int)Math.Clamp(maxLength, 1, Text.MaxLength.Shape is NumberShape { Max: var max } ? max : maxLength),
                YamlSource.Bool(node, Text.CompactVocabulary) ?? Text.CompactVocabulary.DefaultAs<bool>(),
                ids,
                mask);
    }

    /// <summary>A tiktoken encoding's name, or one of <see cref="Text.TokenizerKinds"/> with its file or encoding; null when missing or malformed.</summary>
    private static TokenizerSpec? ReadTokenizer(YamlNode? node, YamlSource source, string directory, string what)
    {
        switch (node)
        {
            case YamlScalarNode { Value: { } encoding }:
                return Encoding(encoding);
            case YamlMappingNode mapping:
            {
                var kinds = Text.TokenizerKinds.Where(k => YamlSource.Get(mapping, k) is not null).ToList();
                if (kinds.Count != 1)
                {
                    source.Error(DiagnosticCodes.RecipeInvalidValue, $"{what} names one of {Text.WordPiece.Name} (a vocab.txt), {Text.SentencePiece.Name} (a .model file) or {Text.Tiktoken.Name} (an encoding).", mapping);
                    return null;
                }

                if (ReferenceEquals(kinds[0], Text.Tiktoken))
                {
                    return YamlSource.Text(mapping, Text.Tiktoken) is { } name ? Encoding(name) : null;
                }

                var path = YamlSource.Text(mapping, kinds[0]) is { } file ? source.ExistingFile(file, YamlSource.Get(mapping, kinds[0])!, $"{kinds[0].Name} in {what}", directory) : null;
                var lowercase = YamlSource.Bool(mapping, Text.Lowercase) ?? Text.Lowercase.DefaultAs<bool>();
                return path is null ? null : new TokenizerSpec(ReferenceEquals(kinds[0], Text.WordPiece) ? TokenizerKind.WordPiece : TokenizerKind.SentencePiece, path, lowercase);
            }

            default:
                return null;
        }

        // An encoding not served is reported by the check, with the served ones.
        static TokenizerSpec? Encoding(string name) =>
            TextTokenizer.TiktokenEncodings.Contains(name, StringComparer.Ordinal) ? new TokenizerSpec(TokenizerKind.Tiktoken, name) : null;
    }
}
