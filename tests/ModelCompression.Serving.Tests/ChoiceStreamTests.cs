using System.Text;
using ModelCompression.Generation;

namespace ModelCompression.Serving.Tests;

/// <summary>
/// What a stream may send before an answer ends: byte tokens that hold part of a character wait for the rest, text
/// that may start a stop text or belong to a stop token sequence waits until it cannot, and the pieces always join to
/// the whole answer (GenerativeModel.AnswerText's: content tokens decoded, cut before the first stop text).
/// </summary>
public sealed class ChoiceStreamTests
{
    private static readonly GenerationOptions Plain = new() { StopTokenIds = [Folders.EndOfText] };

    [Theory]
    [InlineData("añb €x!", "", null, "añb €x!")]
    [InlineData("añb €x!", "", "€x", "añb ")]
    [InlineData("ab ab", "", "b a", "a")]
    [InlineData("abxyz", "xy", null, "ab")]
    [InlineData("x€€y", "", "€€", "x")]
    [InlineData("€€y", "", "€€", "")]
    public void Streamed_pieces_join_to_the_answer_and_never_run_ahead_of_it(string text, string stopSequence, string? stopString, string answer)
    {
        var tokenizer = Folders.ByteTokenizer();
        var options = Plain with
        {
            StopSequences = stopSequence.Length > 0 ? [[.. Encoding.UTF8.GetBytes(stopSequence).Select(b => (int)b)]] : [],
            StopStrings = stopString is null ? [] : [stopString],
            Decode = ids => tokenizer.Decode(ids),
        };
        var (tokens, finish, stopLength) = Generated(text, stopSequence, stopString);
        var sequence = new GeneratedSequence(0, 0, tokens, finish, stopLength, [.. tokens.Select(t => -0.5f)], null);

        var stream = new ChoiceStream(tokenizer, options);
        var sent = new StringBuilder();
        var entries = new List<AnswerToken>();
        for (var i = 0; i < tokens.Count - 1; i++)
        {
            foreach (var released in stream.Push(new GeneratedToken(0, 0, tokens[i], -0.5f, null, null)))
            {
                // Nothing sent is ever taken back: it is already the answer's beginning.
                sent.Append(released.Text);
                entries.Add(released);
                Assert.StartsWith(sent.ToString(), answer, StringComparison.Ordinal);
                Assert.DoesNotContain('\uFFFD', released.Text);
            }
        }

        var (rest, whole) = stream.Finish(sequence);
        entries.AddRange(rest);
        sent.Append(string.Concat(rest.Select(r => r.Text)));

        Assert.Equal(answer, whole);
        Assert.Equal(answer, sent.ToString());
        // Offsets are where each piece starts in the answer, tokens in order.
        Assert.Equal(entries.Select(e => e.Offset), entries.Select((e, i) => entries.Take(i).Sum(p => p.Text.Length)));
        Assert.Equal(tokens.Take(entries.Count), entries.Select(e => e.TokenId));
        // A stream fed nothing but the end gives the same answer: the non-streamed path.
        var (all, again) = new ChoiceStream(tokenizer, options).Finish(sequence);
        Assert.Equal(answer, again);
        Assert.Equal(entries.Select(e => (e.TokenId, e.Text)), all.Select(e => (e.TokenId, e.Text)));
    }

    [Fact]
    public void A_token_that_holds_part_of_a_character_waits_for_the_rest()
    {
        var stream = new ChoiceStream(Folders.ByteTokenizer(), Plain);
        var euro = Encoding.UTF8.GetBytes("€");

        Assert.Equal(["a"], stream.Push(Token('a')).Select(r => r.Text));
        Assert.Empty(stream.Push(Token(euro[0])));
        Assert.Empty(stream.Push(Token(euro[1])));
        // The third byte completes the character: the two waiting tokens go with it, their text on the last.
        Assert.Equal(["", "", "€"], stream.Push(Token(euro[2])).Select(r => r.Text));
    }

    private static GeneratedToken Token(int id) => new(0, 0, id, -1f, null, null);

    /// <summary>The tokens a generator makes of <paramref name="text"/>: it stops on a stop sequence, a stop text, or the end of text.</summary>
    private static (List<int> Tokens, FinishReason Finish, int StopLength) Generated(string text, string stopSequence, string? stopString)
    {
        var bytes = Encoding.UTF8.GetBytes(text).Select(b => (int)b).ToList();
        if (stopSequence.Length > 0)
        {
            var at = text.IndexOf(stopSequence, StringComparison.Ordinal);
            var end = Encoding.UTF8.GetByteCount(text[..(at + stopSequence.Length)]);
            return (bytes[..end], FinishReason.Stop, Encoding.UTF8.GetByteCount(stopSequence));
        }

        if (stopString is not null)
        {
            // The generator stops at the first token whose decoded text holds the stop text.
            for (var count = 1; count <= bytes.Count; count++)
            {
                if (Folders.ByteTokenizer().Decode(bytes[..count]).Contains(stopString, StringComparison.Ordinal))
                {
                    return (bytes[..count], FinishReason.Stop, 0);
                }
            }
        }

        return ([.. bytes, Folders.EndOfText], FinishReason.Eos, 1);
    }
}
