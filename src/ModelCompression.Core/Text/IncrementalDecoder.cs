using System.Text;

namespace ModelCompression.Text;

/// <summary>
/// Decodes ids that arrive one at a time (streaming, stop sequences) so that the pieces it returns join to what
/// <see cref="GenerationTokenizer.Decode"/> makes of all the ids. Byte-level tokens can end inside a UTF-8 character,
/// and SentencePiece drops the space of a text's first piece, so a token's text is not its decode alone: each step
/// decodes the ids since the last emitted token's predecessor and returns what the new ids added, and holds it back
/// while it ends in U+FFFD (an incomplete character that the next ids may complete). Special tokens decode to nothing.
/// </summary>
public sealed class IncrementalDecoder
{
    private readonly GenerationTokenizer _tokenizer;
    private readonly List<int> _ids = [];
    private readonly StringBuilder _text = new();
    private int _prefixStart;
    private int _readStart;

    internal IncrementalDecoder(GenerationTokenizer tokenizer) => _tokenizer = tokenizer;

    /// <summary>Every id pushed so far.</summary>
    public IReadOnlyList<int> Ids => _ids;

    /// <summary>The text returned so far (what is held back is not in it until more ids or <see cref="Flush"/>).</summary>
    public string Text => _text.ToString();

    /// <summary>Adds <paramref name="id"/>; returns the text it completes (empty while a character is incomplete).</summary>
    public string Push(int id)
    {
        _ids.Add(id);
        var window = _ids.GetRange(_prefixStart, _ids.Count - _prefixStart);
        var prefix = _tokenizer.Decode(_ids.GetRange(_prefixStart, _readStart - _prefixStart));
        var full = _tokenizer.Decode(window);
        if (full.Length <= prefix.Length || full[^1] == '\uFFFD' || !full.StartsWith(prefix, StringComparison.Ordinal))
        {
            return "";
        }

        var added = full[prefix.Length..];
        _prefixStart = _readStart;
        _readStart = _ids.Count;
        _text.Append(added);
        return added;
    }

    /// <summary>Returns whatever is held back (an incomplete character decodes as U+FFFD): the text is over.</summary>
    public string Flush()
    {
        var prefix = _tokenizer.Decode(_ids.GetRange(_prefixStart, _readStart - _prefixStart));
        var full = _tokenizer.Decode(_ids.GetRange(_prefixStart, _ids.Count - _prefixStart));
        var added = full.Length > prefix.Length && full.StartsWith(prefix, StringComparison.Ordinal) ? full[prefix.Length..] : "";
        _prefixStart = _readStart = _ids.Count;
        _text.Append(added);
        return added;
    }
}
