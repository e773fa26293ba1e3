using System.Text;

namespace ModelCompression.Text;

/// <summary>
/// The byte vocabulary for tiny models: ids 0-255 are the UTF-8 bytes of the text, 256 is <c>&lt;|endoftext|&gt;</c>
/// (also padding), and extra special tokens (a chat template's markers) follow from 257. Any text encodes, and no
/// vocabulary has to be built or shipped.
/// </summary>
internal sealed class ByteTokenizer : GenerationTokenizer
{
    private const int Bytes = 256;

    private readonly Dictionary<string, int> _specials;
    private readonly string[] _specialTexts;

    private ByteTokenizer(IReadOnlyList<string> extras)
    {
        _specials = new Dictionary<string, int>(StringComparer.Ordinal) { [EndOfText] = Bytes };
        CheckSpecials(extras, _specials);
        ExtraSpecials = [.. extras];
        for (var i = 0; i < extras.Count; i++)
        {
            _specials[extras[i]] = Bytes + 1 + i;
        }

        _specialTexts = [EndOfText, .. extras];
    }

    public override GenerationTokenizerKind Kind => GenerationTokenizerKind.Byte;

    public override string? Source => null;

    public override int VocabularySize => Bytes + _specialTexts.Length;

    public override int EndOfTextId => Bytes;

    public override int PadId => Bytes;

    public override IReadOnlyDictionary<string, int> SpecialTokens => _specials;

    internal override IReadOnlyList<string> ExtraSpecials { get; }

    public static ByteTokenizer Create(IReadOnlyList<string> extras) => new(extras);

    public override IReadOnlyList<int> Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var bytes = Encoding.UTF8.GetBytes(text);
        var ids = new int[bytes.Length];
        for (var i = 0; i < bytes.Length; i++)
        {
            ids[i] = bytes[i];
        }

        return ids;
    }

    /// <remarks>Ids 0-255 are their byte, whole character or not.</remarks>
    public override byte[]? TokenBytes(int id) => id is >= 0 and < Bytes ? [(byte)id] : null;

    public override string Decode(IEnumerable<int> ids, bool includeSpecials = false)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var text = new StringBuilder();
        var pending = new List<byte>();
        foreach (var id in ids)
        {
            if (id is >= 0 and < Bytes)
            {
                pending.Add((byte)id);
                continue;
            }

            if (id < Bytes || id >= VocabularySize)
            {
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"Not an id of the byte vocabulary (0 to {VocabularySize - 1}).");
            }

            // A special token ends the bytes before it: they decode on their own, as the model wrote them.
            Flush(text, pending);
            if (includeSpecials)
            {
                text.Append(_specialTexts[id - Bytes]);
            }
        }

        Flush(text, pending);
        return text.ToString();
    }

    private static void Flush(StringBuilder text, List<byte> pending)
    {
        // UTF8Encoding's decoder (not throwing) replaces each invalid or incomplete sequence with U+FFFD.
        text.Append(Encoding.UTF8.GetString([.. pending]));
        pending.Clear();
    }
}
