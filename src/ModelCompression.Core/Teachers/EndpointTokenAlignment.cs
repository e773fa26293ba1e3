using System.Text;
using ModelCompression.Text;

namespace ModelCompression.Teachers;

/// <summary>
/// Matches an endpoint teacher's answer tokens to the student's token ids, for token-level distillation from the
/// top_logprobs it gave. A token is matched by its bytes (the <c>bytes</c> the server lists with each token, or the
/// UTF-8 of its text when it lists none) against <see cref="GenerationTokenizer.TokenBytes"/>: the ids differ between
/// tokenizers, the text each token stands for does not. An answer counts only when the student's own encoding of it is
/// the teacher's tokens one for one (never a re-split): the student then learns, at each of its answer positions, the
/// distribution the teacher had at that very position.
/// </summary>
public sealed class EndpointTokenAlignment
{
    /// <summary>How many tokens a mismatch shows on each side.</summary>
    private const int Shown = 8;

    private readonly GenerationTokenizer _tokenizer;
    private readonly Dictionary<string, int> _ids = new(StringComparer.Ordinal);

    /// <summary>The alignment of answers to <paramref name="tokenizer"/>'s ids (its vocabulary is read once, here).</summary>
    public EndpointTokenAlignment(GenerationTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        _tokenizer = tokenizer;
        for (var id = 0; id < tokenizer.VocabularySize; id++)
        {
            if (tokenizer.TokenBytes(id) is not { Length: > 0 } bytes)
            {
                continue;
            }

            var key = Key(bytes);
            // Two ids of one text (a SentencePiece byte-fallback piece and a character piece): the one the tokenizer
            // itself encodes that text to is the one an answer's token means.
            if (!_ids.TryGetValue(key, out var other) || (Encodes(bytes, id) && !Encodes(bytes, other)))
            {
                _ids[key] = id;
            }
        }
    }

    /// <summary>
    /// Null when <paramref name="choice"/>'s tokens are the student's encoding of its text one for one (or it is empty);
    /// else what differs, in words (no log-probabilities at all; or the first tokens that differ on each side).
    /// </summary>
    public string? Mismatch(EndpointChoice choice)
    {
        ArgumentNullException.ThrowIfNull(choice);
        if (choice.Text.Length == 0)
        {
            return null; // Nothing to compare: an empty answer agrees with any tokenizer.
        }

        if (choice.Logprobs is not { Count: > 0 } tokens)
        {
            return "the reply has no log-probabilities (the request asked for logprobs with top_logprobs; this server did not give them)";
        }

        var teacher = tokens.Select(BytesOf).ToList();
        var student = _tokenizer.Encode(choice.Text).Select(id => _tokenizer.TokenBytes(id) ?? []).ToList();
        var first = Enumerable.Range(0, Math.Min(teacher.Count, student.Count)).FirstOrDefault(i => !teacher[i].AsSpan().SequenceEqual(student[i]), -1);
        if (first < 0 && teacher.Count == student.Count)
        {
            return null;
        }

        var at = first < 0 ? Math.Min(teacher.Count, student.Count) : first;
        return $"from token {at + 1} the teacher's tokens are {Show(teacher, at)} and the student's {Show(student, at)} (the teacher sent {teacher.Count} tokens, the student's tokenizer makes {student.Count} of the same text)";
    }

    /// <summary>
    /// The student's ids of <paramref name="content"/> (the answer as kept: trimmed, or a chain-of-thought reply's answer)
    /// and the teacher's tokens that spell it, when <paramref name="tokens"/> (the whole reply's) hold it on token
    /// boundaries and the student's encoding of it is those tokens one for one; else null.
    /// </summary>
    public AlignedAnswer? Align(IReadOnlyList<TokenLogprob> tokens, string content)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        ArgumentNullException.ThrowIfNull(content);
        if (tokens.Count == 0 || content.Length == 0)
        {
            return null;
        }

        var pieces = tokens.Select(BytesOf).ToList();
        var raw = pieces.SelectMany(p => p).ToArray();
        var wanted = Encoding.UTF8.GetBytes(content);
        var start = raw.AsSpan().IndexOf(wanted);
        if (start < 0)
        {
            return null;
        }

        // The tokens from the one that starts at 'start' to the one that ends at start + length, or none.
        int first = -1, last = -1;
        for (int i = 0, offset = 0; i < pieces.Count; offset += pieces[i].Length, i++)
        {
            first = offset == start ? i : first;
            if (first >= 0 && offset + pieces[i].Length == start + wanted.Length)
            {
                last = i;
                break;
            }
        }

        if (first < 0 || last < 0)
        {
            return null;
        }

        var ids = _tokenizer.Encode(content);
        if (ids.Count != last - first + 1)
        {
            return null;
        }

        for (var i = 0; i < ids.Count; i++)
        {
            if (_tokenizer.TokenBytes(ids[i]) is not { } bytes || !bytes.AsSpan().SequenceEqual(pieces[first + i]))
            {
                return null;
            }
        }

        return new AlignedAnswer([.. ids], [.. tokens.Skip(first).Take(ids.Count)]);
    }

    /// <summary>
    /// Fills one top-k row for the answer token <paramref name="token"/> the student knows as <paramref name="id"/>: the
    /// chosen token first, then each alternative that is a student token (a special token by its name, such as the end of
    /// text the teacher might have stopped on; any other by its bytes; one the student has no token for is left out), the
    /// rest padding that carries no probability (<paramref name="id"/> with
    /// <see cref="float.NegativeInfinity"/>, stored as fp16's lowest). Returns how many alternatives were left out.
    /// </summary>
    public int FillRow(TokenLogprob token, int id, Span<int> ids, Span<float> logProbs)
    {
        ArgumentNullException.ThrowIfNull(token);
        if (ids.Length == 0 || ids.Length != logProbs.Length)
        {
            throw new ArgumentException("A row has k > 0 ids and as many log-probabilities.", nameof(ids));
        }

        ids.Fill(id);
        logProbs.Fill(float.NegativeInfinity);
        logProbs[0] = (float)token.Logprob;
        var count = 1;
        var unmapped = 0;
        foreach (var alternative in token.Top)
        {
            // A special token (the end of text, a template's end marker) by its name, as servers list it; text by its bytes.
            if (!_tokenizer.SpecialTokens.TryGetValue(alternative.Token, out var other)
                && !_ids.TryGetValue(Key(alternative.Bytes is { } b ? [.. b] : Encoding.UTF8.GetBytes(alternative.Token)), out other))
            {
                unmapped++;
                continue;
            }

            if (count < ids.Length && !ids[..count].Contains(other))
            {
                ids[count] = other;
                logProbs[count++] = (float)alternative.Logprob;
            }
        }

        return unmapped;
    }

    private static byte[] BytesOf(TokenLogprob token) => token.Bytes is { } bytes ? [.. bytes] : Encoding.UTF8.GetBytes(token.Token);

    // Latin-1 maps every byte to one character and back: a cheap exact dictionary key for a byte string.
    private static string Key(byte[] bytes) => Encoding.Latin1.GetString(bytes);

    private bool Encodes(byte[] bytes, int id)
    {
        var text = Encoding.UTF8.GetString(bytes);
        return !text.Contains('\uFFFD', StringComparison.Ordinal) && _tokenizer.Encode(text) is [var only] && only == id;
    }

    private static string Show(List<byte[]> tokens, int at) =>
        "[" + string.Join("|", tokens.Skip(at).Take(Shown).Select(t => Encoding.UTF8.GetString(t).Replace("\n", "\\n", StringComparison.Ordinal))) + (tokens.Count > at + Shown ? "|..." : "") + "]";
}

/// <summary>An answer matched to the student's tokens (<see cref="EndpointTokenAlignment.Align"/>).</summary>
/// <param name="Ids">The student's ids of the answer, in order.</param>
/// <param name="Tokens">The teacher's tokens of the answer, one per id, with their log-probabilities and alternatives.</param>
public sealed record AlignedAnswer(IReadOnlyList<int> Ids, IReadOnlyList<TokenLogprob> Tokens);
