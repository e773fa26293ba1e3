using System.Text;
using ModelCompression.Data;

namespace ModelCompression.Text;

/// <summary>
/// A tokenizer whose ids go through a <see cref="Data.CompactVocabulary"/>, as the classifiers' compact vocabulary
/// does: 0 is padding, 1 any id the training text did not have, and the ids it had (every special token included)
/// become 2, 3, ... in increasing order of the underlying tokenizer's id. A model's embedding and output then hold only
/// what the data uses, and the kept map decodes the model's ids.
/// </summary>
internal sealed class CompactTokenizer : GenerationTokenizer
{
    private readonly Dictionary<string, int> _specials;

    private CompactTokenizer(GenerationTokenizer inner, CompactVocabulary vocabulary)
    {
        Inner = inner;
        Vocabulary = vocabulary;
        _specials = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (text, id) in inner.SpecialTokens)
        {
            var compact = vocabulary.Map(id);
            if (compact == Data.CompactVocabulary.UnknownId)
            {
                throw new ArgumentException($"The compact vocabulary lacks the special token '{text}' ({id}).", nameof(vocabulary));
            }

            _specials[text] = compact;
        }
    }

    /// <summary>The tokenizer whose ids the vocabulary maps.</summary>
    public GenerationTokenizer Inner { get; }

    /// <summary>The map.</summary>
    public CompactVocabulary Vocabulary { get; }

    public override CompactVocabulary? CompactVocabulary => Vocabulary;

    public override GenerationTokenizerKind Kind => Inner.Kind;

    public override string? Source => Inner.Source;

    public override int VocabularySize => Vocabulary.Size;

    public override int EndOfTextId => Vocabulary.Map(Inner.EndOfTextId);

    public override int PadId => Data.CompactVocabulary.PadId;

    public override IReadOnlyDictionary<string, int> SpecialTokens => _specials;

    internal override IReadOnlyList<string> ExtraSpecials => Inner.ExtraSpecials;

    /// <summary>The compact vocabulary of the ids <paramref name="texts"/> encode to, plus every special token of <paramref name="inner"/>.</summary>
    public static CompactTokenizer Build(GenerationTokenizer inner, IEnumerable<string> texts)
    {
        var seen = new SortedSet<int>(inner.SpecialTokens.Values);
        foreach (var text in texts)
        {
            seen.UnionWith(inner.Encode(text));
        }

        return new CompactTokenizer(inner, new CompactVocabulary([.. seen]));
    }

    /// <summary>The tokenizer of a saved map.</summary>
    public static CompactTokenizer FromIds(GenerationTokenizer inner, IReadOnlyList<int> tokenizerIds) => new(inner, new CompactVocabulary(tokenizerIds));

    public override IReadOnlyList<int> Encode(string text) => [.. Inner.Encode(text).Select(Vocabulary.Map)];

    /// <remarks>The inner tokenizer's bytes of the id this one stands for; padding and unknown have none.</remarks>
    public override byte[]? TokenBytes(int id) => id >= 2 && id < VocabularySize ? Inner.TokenBytes(Vocabulary.TokenizerIds[id - 2]) : null;

    public override string Decode(IEnumerable<int> ids, bool includeSpecials = false)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var text = new StringBuilder();
        var run = new List<int>();
        foreach (var id in ids)
        {
            if (id < 0 || id >= VocabularySize)
            {
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"Not an id of the compact vocabulary (0 to {VocabularySize - 1}).");
            }

            if (id >= 2)
            {
                // Runs of known ids decode together: byte-level BPE tokens may hold parts of one character.
                run.Add(Vocabulary.TokenizerIds[id - 2]);
            }
            else if (id == Data.CompactVocabulary.UnknownId)
            {
                text.Append(Inner.Decode(run, includeSpecials)).Append('\uFFFD');
                run.Clear();
            }
        }

        return text.Append(Inner.Decode(run, includeSpecials)).ToString();
    }
}
