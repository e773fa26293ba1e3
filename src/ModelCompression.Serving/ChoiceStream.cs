using ModelCompression.Generation;
using ModelCompression.Text;

namespace ModelCompression.Serving;

/// <summary>A token of an answer as the client gets it: its id, the text it adds to the answer, and its log-probabilities.</summary>
/// <param name="TokenId">The token.</param>
/// <param name="Text">What it adds to the answer's text (empty while it holds part of a character the next token completes; cut at a stop text).</param>
/// <param name="Offset">Where <paramref name="Text"/> starts in the answer.</param>
/// <param name="Logprob">Its log-probability under the model.</param>
/// <param name="Top">The step's most likely tokens, or null.</param>
internal sealed record AnswerToken(int TokenId, string Text, int Offset, float Logprob, IReadOnlyList<TokenLogprob>? Top);

/// <summary>
/// Turns one sequence's tokens, as they arrive, into answer text that is safe to send: text is released token by
/// token, except what could still turn out to be part of a stop token sequence (the last tokens, as many as the longest
/// stop sequence less one) or the start of a stop text (the last characters, as many as the longest stop text less
/// one), and tokens without text of their own wait for a token with text. When the sequence ends, <see cref="Finish"/> releases the rest as <see cref="GenerativeModel.AnswerText"/>
/// has it: the content tokens decoded, cut before the first stop text. So the streamed pieces always join to the
/// answer a non-streamed request gets, which is this class fed nothing but <see cref="Finish"/>, token for token.
/// </summary>
internal sealed class ChoiceStream
{
    private readonly GenerationTokenizer _tokenizer;
    private readonly IReadOnlyList<string> _stopStrings;
    private readonly int _heldTokens;
    private readonly int _heldCharacters;
    private readonly IncrementalDecoder _decoder;
    private readonly List<(int Id, float Logprob, IReadOnlyList<TokenLogprob>? Top)> _tokens = [];
    private readonly List<string> _pieces = [];
    private int _released;
    private int _releasedCharacters;
    private int _decodedCharacters;

    public ChoiceStream(GenerationTokenizer tokenizer, GenerationOptions options)
    {
        _tokenizer = tokenizer;
        _stopStrings = options.StopStrings;
        _heldTokens = Math.Max(0, options.StopSequences.Select(s => s.Count).DefaultIfEmpty(0).Max() - 1);
        _heldCharacters = Math.Max(0, options.StopStrings.Select(s => s.Length).DefaultIfEmpty(0).Max() - 1);
        _decoder = tokenizer.StartDecoding();
    }

    /// <summary>Adds a token of a sequence that goes on; returns the tokens whose text is now safe to send (often none or one).</summary>
    public IReadOnlyList<AnswerToken> Push(GeneratedToken token)
    {
        _tokens.Add((token.TokenId, token.Logprob, token.TopLogprobs));
        var piece = _decoder.Push(token.TokenId);
        _pieces.Add(piece);
        _decodedCharacters += piece.Length;

        // The last token that may go: not one that could belong to a stop sequence, and none whose text reaches into
        // what could start a stop text.
        var last = _released - 1;
        var end = _releasedCharacters;
        while (last + 1 < _tokens.Count - _heldTokens && end + _pieces[last + 1].Length <= _decodedCharacters - _heldCharacters)
        {
            end += _pieces[++last].Length;
        }

        // Tokens without text (part of a character, or special) go only with a token with text after them: the end
        // of the answer may still turn them into text, or leave them out with what follows a stop text.
        while (last >= _released && _pieces[last].Length == 0)
        {
            last--;
        }

        var released = new List<AnswerToken>();
        while (_released <= last)
        {
            released.Add(Release(_released, _pieces[_released]));
        }

        return released;
    }

    /// <summary>
    /// Ends the answer with its whole <paramref name="sequence"/>: returns the tokens not yet released that the answer
    /// keeps (its content tokens, less those that only hold text past a stop text), with their text, and the answer.
    /// </summary>
    public (IReadOnlyList<AnswerToken> Tokens, string Answer) Finish(GeneratedSequence sequence)
    {
        var content = sequence.ContentTokens;
        // The answer decoded from scratch, as GenerativeModel.AnswerText decodes it; the pieces come from a fresh
        // decoder over the same ids, so the part already released is the same text.
        var decoder = _tokenizer.StartDecoding();
        var pieces = content.Select(decoder.Push).ToList();
        if (pieces.Count > 0)
        {
            pieces[^1] += decoder.Flush();
        }

        var text = string.Concat(pieces);
        var cut = _stopStrings.Select(s => text.IndexOf(s, StringComparison.Ordinal)).Where(i => i >= 0).DefaultIfEmpty(text.Length).Min();
        var answer = text[..cut];
        var released = new List<AnswerToken>();
        for (var i = _released; i < content.Count; i++)
        {
            var start = _releasedCharacters;
            if (cut < text.Length && start >= cut)
            {
                // Everything from here on lies past the stop text.
                break;
            }

            if (i >= _tokens.Count)
            {
                _tokens.Add((content[i], sequence.Logprobs[i], sequence.TopLogprobs?[i]));
            }

            released.Add(Release(i, pieces[i][..Math.Min(pieces[i].Length, cut - start)]));
        }

        return (released, answer);
    }

    private AnswerToken Release(int index, string text)
    {
        var token = _tokens[index];
        var released = new AnswerToken(token.Id, text, _releasedCharacters, token.Logprob, token.Top);
        _released = index + 1;
        _releasedCharacters += text.Length;
        return released;
    }
}
