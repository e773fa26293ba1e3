using System.Text;

namespace ModelCompression.Text;

/// <summary>
/// A character vocabulary built from training text, for tiny models: <c>&lt;|endoftext|&gt;</c> 0 (also padding),
/// <c>&lt;|unk|&gt;</c> 1 for any character the training text did not have, extra special tokens from 2, then every
/// character (Unicode scalar value, so a character outside the BMP is one id) of the text in increasing code point
/// order. The same texts give the same ids on every machine.
/// </summary>
internal sealed class CharacterTokenizer : GenerationTokenizer
{
    private const int UnknownId = 1;

    private readonly Dictionary<string, int> _specials;
    private readonly string[] _specialTexts;
    private readonly Dictionary<int, int> _ids;
    private readonly int _firstCharacter;

    private CharacterTokenizer(IReadOnlyList<Rune> characters, IReadOnlyList<string> extras)
    {
        _specials = new Dictionary<string, int>(StringComparer.Ordinal) { [EndOfText] = 0, [UnknownCharacter] = UnknownId };
        CheckSpecials(extras, _specials);
        ExtraSpecials = [.. extras];
        _specialTexts = [EndOfText, UnknownCharacter, .. extras];
        for (var i = 0; i < extras.Count; i++)
        {
            _specials[extras[i]] = 2 + i;
        }

        _firstCharacter = _specialTexts.Length;
        Characters = [.. characters];
        _ids = new Dictionary<int, int>(Characters.Count);
        for (var i = 0; i < Characters.Count; i++)
        {
            if (!_ids.TryAdd(Characters[i].Value, _firstCharacter + i))
            {
                throw new ArgumentException($"The character U+{Characters[i].Value:X4} appears twice in the vocabulary.", nameof(characters));
            }
        }
    }

    /// <summary>The characters behind ids <see cref="SpecialTokens"/>.Count, ... in order.</summary>
    public IReadOnlyList<Rune> Characters { get; }

    public override GenerationTokenizerKind Kind => GenerationTokenizerKind.Character;

    public override string? Source => null;

    public override int VocabularySize => _firstCharacter + Characters.Count;

    public override int EndOfTextId => 0;

    public override int PadId => 0;

    public override IReadOnlyDictionary<string, int> SpecialTokens => _specials;

    internal override IReadOnlyList<string> ExtraSpecials { get; }

    /// <summary>The vocabulary of every character in <paramref name="texts"/>.</summary>
    public static CharacterTokenizer Build(IEnumerable<string> texts, IReadOnlyList<string> extras)
    {
        var seen = new SortedSet<int>();
        foreach (var text in texts)
        {
            foreach (var rune in text.EnumerateRunes())
            {
                seen.Add(rune.Value);
            }
        }

        return new CharacterTokenizer([.. seen.Select(v => new Rune(v))], extras);
    }

    /// <summary>The vocabulary of exactly <paramref name="characters"/>, in that order (as a saved description lists them).</summary>
    public static CharacterTokenizer FromCharacters(IReadOnlyList<Rune> characters, IReadOnlyList<string> extras) => new(characters, extras);

    public override IReadOnlyList<int> Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length);
        foreach (var rune in text.EnumerateRunes())
        {
            ids.Add(_ids.TryGetValue(rune.Value, out var id) ? id : UnknownId);
        }

        return ids;
    }

    public override string Decode(IEnumerable<int> ids, bool includeSpecials = false)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var text = new StringBuilder();
        foreach (var id in ids)
        {
            if (id < 0 || id >= VocabularySize)
            {
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"Not an id of the character vocabulary (0 to {VocabularySize - 1}).");
            }

            if (id >= _firstCharacter)
            {
                text.Append(Characters[id - _firstCharacter].ToString());
            }
            else if (id == UnknownId)
            {
                // The model chose "some character the training text did not have": show that something is there.
                text.Append(includeSpecials ? UnknownCharacter : "\uFFFD");
            }
            else if (includeSpecials)
            {
                text.Append(_specialTexts[id]);
            }
        }

        return text.ToString();
    }
}
