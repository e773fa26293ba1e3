using Microsoft.ML.Tokenizers;
using ModelCompression.Diagnostics;

namespace ModelCompression.Data;

/// <summary>The kinds of tokenizer text data can name.</summary>
public enum TokenizerKind
{
    /// <summary>BERT WordPiece with a vocab.txt (one token per line; the line number is the id).</summary>
    WordPiece,

    /// <summary>A SentencePiece .model file (BPE or unigram).</summary>
    SentencePiece,

    /// <summary>A tiktoken encoding served as a NuGet data package (cl100k_base, o200k_base).</summary>
    Tiktoken,
}

/// <summary>Which tokenizer to use and how.</summary>
/// <param name="Kind">The tokenizer kind.</param>
/// <param name="Source">The vocab.txt or .model path, or the tiktoken encoding name.</param>
/// <param name="Lowercase">WordPiece only: lower-case text first (uncased BERT vocabularies).</param>
/// <param name="PadId">The id padding positions hold; null takes the tokenizer's own (see <see cref="TextTokenizer.PadId"/>).</param>
public sealed record TokenizerSpec(TokenizerKind Kind, string Source, bool Lowercase = true, int? PadId = null);

/// <summary>
/// Turns text into token ids with Microsoft.ML.Tokenizers, truncated to a fixed length. WordPiece adds
/// [CLS] and [SEP] (as BERT models expect); SentencePiece adds its beginning-of-sentence token.
/// </summary>
public sealed class TextTokenizer
{
    /// <summary>The tiktoken encodings whose data packages this engine references.</summary>
    public static IReadOnlyList<string> TiktokenEncodings { get; } = ["cl100k_base", "o200k_base"];

    private readonly Tokenizer _tokenizer;

    private TextTokenizer(Tokenizer tokenizer, int padId, int vocabularySize)
    {
        _tokenizer = tokenizer;
        PadId = padId;
        VocabularySize = vocabularySize;
    }

    /// <summary>
    /// The id of padding: the spec's, else BERT's [PAD], SentencePiece's &lt;pad&gt; (or its unknown id when the
    /// model has none), tiktoken's &lt;|endoftext|&gt;. The attention mask marks padding, so models that use
    /// it never see the difference.
    /// </summary>
    public int PadId { get; }

    /// <summary>Ids run from 0 to this minus 1 (special tokens included).</summary>
    public int VocabularySize { get; }

    /// <summary>Makes the tokenizer; MC2024 when its file or encoding cannot be loaded.</summary>
    public static TextTokenizer Create(TokenizerSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        try
        {
            return spec.Kind switch
            {
                TokenizerKind.WordPiece => WordPiece(spec),
                TokenizerKind.SentencePiece => SentencePiece(spec),
                _ => Tiktoken(spec),
            };
        }
        // Microsoft.ML.Tokenizers 3 reads SentencePiece models with its own protobuf reader, which throws
        // InvalidDataException (not an IOException) for a file that is not one.
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException or ArgumentException or InvalidOperationException or FormatException or NotSupportedException)
        {
            throw CompressionException.Error(
                DiagnosticCodes.TokenizerUnavailable,
                $"Cannot make the {spec.Kind} tokenizer from '{spec.Source}': {e.Message}",
                spec.Kind == TokenizerKind.Tiktoken ? null : spec.Source);
        }
    }

    /// <summary>The ids of <paramref name="text"/>, at most <paramref name="maxLength"/> of them.</summary>
    public IReadOnlyList<int> Encode(string text, int maxLength) => _tokenizer switch
    {
        BertTokenizer bert => bert.EncodeToIds(text, maxLength, addSpecialTokens: true, out _, out _),
        _ => _tokenizer.EncodeToIds(text, maxLength, out _, out _),
    };

    private static TextTokenizer WordPiece(TokenizerSpec spec)
    {
        var tokenizer = BertTokenizer.Create(spec.Source, new BertOptions { LowerCaseBeforeTokenization = spec.Lowercase });
        // vocab.txt: the id of a token is its line number (from 0).
        var size = File.ReadLines(spec.Source).Count();
        return new TextTokenizer(tokenizer, spec.PadId ?? tokenizer.PaddingTokenId, size);
    }

    private static TextTokenizer SentencePiece(TokenizerSpec spec)
    {
        using var stream = File.OpenRead(spec.Source);
        var tokenizer = SentencePieceTokenizer.Create(stream, addBeginningOfSentence: true, addEndOfSentence: false);
        var vocabulary = tokenizer.Vocabulary;
        var size = vocabulary.Count == 0 ? 0 : vocabulary.Values.Max() + 1;
        var pad = spec.PadId ?? (vocabulary.TryGetValue("<pad>", out var id) ? id : tokenizer.UnknownId);
        return new TextTokenizer(tokenizer, pad, size);
    }

    private static TextTokenizer Tiktoken(TokenizerSpec spec)
    {
        if (!TiktokenEncodings.Contains(spec.Source, StringComparer.Ordinal))
        {
            throw new ArgumentException($"'{spec.Source}' is not one of the tiktoken encodings served here ({string.Join(", ", TiktokenEncodings)})");
        }

        var tokenizer = TiktokenTokenizer.CreateForEncoding(spec.Source);
        var special = tokenizer.SpecialTokens;
        if (special is null || special.Count == 0)
        {
            throw new InvalidOperationException($"encoding '{spec.Source}' has no special tokens to tell its vocabulary size");
        }

        // The served encodings number their special tokens after every regular token (cl100k_base up to
        // 100276, o200k_base up to 200018), so the largest special id bounds every id the tokenizer makes.
        var size = special.Values.Max() + 1;
        var pad = spec.PadId ?? (special.TryGetValue("<|endoftext|>", out var id) ? id : 0);
        return new TextTokenizer(tokenizer, pad, size);
    }
}

/// <summary>
/// A small vocabulary made from the token ids seen in the training text: id 0 is padding, 1 stands for any
/// id not seen in training, and the seen ids become 2, 3, ... in increasing order of the tokenizer's id.
/// Embedding tables then hold only what the data uses. The mapping is part of the model's contract: the same
/// mapping must be applied to every split and at inference.
/// </summary>
public sealed class CompactVocabulary
{
    /// <summary>The compact id of padding.</summary>
    public const int PadId = 0;

    /// <summary>The compact id of every token not seen in the training text.</summary>
    public const int UnknownId = 1;

    private readonly Dictionary<int, int> _compact;

    /// <summary>A vocabulary of the given tokenizer ids (compact id i + 2 stands for <paramref name="tokenizerIds"/>[i]).</summary>
    public CompactVocabulary(IReadOnlyList<int> tokenizerIds)
    {
        ArgumentNullException.ThrowIfNull(tokenizerIds);
        TokenizerIds = [.. tokenizerIds];
        _compact = new Dictionary<int, int>(TokenizerIds.Count);
        for (var i = 0; i < TokenizerIds.Count; i++)
        {
            if (!_compact.TryAdd(TokenizerIds[i], i + 2))
            {
                throw new ArgumentException($"Tokenizer id {TokenizerIds[i]} appears twice.", nameof(tokenizerIds));
            }
        }
    }

    /// <summary>The tokenizer ids behind compact ids 2, 3, ...</summary>
    public IReadOnlyList<int> TokenizerIds { get; }

    /// <summary>Compact ids run from 0 to this minus 1.</summary>
    public int Size => TokenizerIds.Count + 2;

    /// <summary>Builds the vocabulary of every id in <paramref name="sequences"/> (the training text's).</summary>
    public static CompactVocabulary Build(IEnumerable<IReadOnlyList<int>> sequences)
    {
        var seen = new SortedSet<int>();
        foreach (var sequence in sequences)
        {
            seen.UnionWith(sequence);
        }

        return new CompactVocabulary([.. seen]);
    }

    /// <summary>The compact id of a tokenizer id (<see cref="UnknownId"/> when it was not in the training text).</summary>
    public int Map(int tokenizerId) => _compact.TryGetValue(tokenizerId, out var id) ? id : UnknownId;
}
