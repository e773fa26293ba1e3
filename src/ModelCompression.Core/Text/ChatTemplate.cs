using ModelCompression.Diagnostics;
using ModelCompression.Torch.Training;

namespace ModelCompression.Text;

/// <summary>How a conversation fared against the maximum length.</summary>
public enum ChatFit
{
    /// <summary>It fits whole.</summary>
    Whole,

    /// <summary>Tokens were cut from the left (the start of the conversation); the last trained answer and the generation prompt before it are whole.</summary>
    PromptCut,

    /// <summary>The last trained answer and its generation prompt alone are longer than the maximum: the conversation is not used (training on a cut answer would teach the model never to finish).</summary>
    AnswerTooLong,

    /// <summary>No assistant message is trained (the conversation ends on a user turn, or every answer has weight 0).</summary>
    NothingToTrain,
}

/// <summary>A conversation rendered for training.</summary>
/// <param name="Ids">The token ids (empty unless <see cref="Fit"/> is Whole or PromptCut).</param>
/// <param name="Trained">Per token: true only on the content and end of a trained assistant message.</param>
/// <param name="Labels">The next-token labels: <c>Labels[t] = Ids[t + 1]</c> where token t + 1 is trained, <see cref="TrainingSet.NoLabel"/> (-100) elsewhere and at the last position.</param>
/// <param name="Fit">How it fared against the maximum length.</param>
/// <param name="CutTokens">How many tokens were cut from the left.</param>
public sealed record ChatSequence(int[] Ids, bool[] Trained, long[] Labels, ChatFit Fit, int CutTokens);

/// <summary>A prompt rendered for generation: the conversation so far and the generation prompt.</summary>
/// <param name="Ids">The token ids, ending in the generation prompt's.</param>
/// <param name="CutTokens">How many tokens were cut from the left to fit the maximum length.</param>
public sealed record ChatPrompt(int[] Ids, int CutTokens);

/// <summary>Many conversations rendered for training, and how many fared how.</summary>
/// <param name="Sequences">The usable sequences (Whole or PromptCut), in input order.</param>
/// <param name="Records">The record of each sequence.</param>
/// <param name="Whole">How many fit whole.</param>
/// <param name="PromptCut">How many lost tokens at the start.</param>
/// <param name="AnswerTooLong">The records dropped because their last answer does not fit (<see cref="ChatFit.AnswerTooLong"/>).</param>
/// <param name="NothingToTrain">How many had no trained assistant message.</param>
public sealed record ChatRendering(IReadOnlyList<ChatSequence> Sequences, IReadOnlyList<ChatRecord> Records, int Whole, int PromptCut, IReadOnlyList<ChatRecord> AnswerTooLong, int NothingToTrain)
{
    /// <summary>The MC2070 warning that names the dropped records, or null when none was.</summary>
    public Diagnostic? DroppedWarning(int maxLength)
    {
        if (AnswerTooLong.Count == 0)
        {
            return null;
        }

        var shown = string.Join(", ", AnswerTooLong.Take(10).Select(r => r.Location)) + (AnswerTooLong.Count > 10 ? $" and {AnswerTooLong.Count - 10} more" : "");
        return Diagnostic.Warning(
            DiagnosticCodes.ChatAnswerTooLong,
            $"{AnswerTooLong.Count} conversation{(AnswerTooLong.Count == 1 ? "" : "s")} not used: the answer alone is longer than max_length {maxLength} tokens ({shown}). Raise max_length or shorten the answers.",
            AnswerTooLong[0].File,
            AnswerTooLong[0].Line);
    }
}

/// <summary>
/// Renders conversations with a <see cref="ChatTemplateOptions"/> into token ids. Each template's fixed text is split at
/// the tokenizer's special tokens (a marker becomes its one id) and the rest encoded as text; a message's content is
/// encoded on its own, as ordinary text. So a prompt for generation is exactly the ids training had before the answer.
/// For training, the loss sees only assistant tokens (the content and the rest of the assistant template after it,
/// the end marker included), every trained assistant turn of a multi-turn conversation counts, and a conversation
/// longer than the maximum is cut from the left, keeping the last trained answer whole (see <see cref="ChatFit"/>).
/// </summary>
public sealed class ChatTemplate
{
    private readonly Dictionary<ChatRole, (int[] Prefix, int[] Suffix)> _roles = [];
    private readonly int[] _generationPrompt;

    /// <summary>A renderer of <paramref name="options"/> with <paramref name="tokenizer"/> (made with the options' markers as specials).</summary>
    public ChatTemplate(ChatTemplateOptions options, GenerationTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(tokenizer);
        var problems = options.Problems();
        if (problems.Count > 0)
        {
            throw new ArgumentException(string.Join(" ", problems), nameof(options));
        }

        Options = options;
        Tokenizer = tokenizer;
        foreach (var role in Enum.GetValues<ChatRole>())
        {
            var (prefix, suffix) = Split(Template(options, role));
            _roles[role] = ([.. EncodeFixed(prefix)], [.. EncodeFixed(suffix)]);
        }

        _generationPrompt = [.. EncodeFixed(options.GenerationPrompt)];
    }

    /// <summary>The options.</summary>
    public ChatTemplateOptions Options { get; }

    /// <summary>The tokenizer.</summary>
    public GenerationTokenizer Tokenizer { get; }

    /// <summary>
    /// Every text a tokenizer encodes when <paramref name="options"/> render <paramref name="records"/>: the templates'
    /// fixed text between markers, and each message's content. A character vocabulary or a compact vocabulary built from
    /// them (with the markers as specials) covers every id rendering makes.
    /// </summary>
    public static IEnumerable<string> Texts(ChatTemplateOptions options, IEnumerable<ChatRecord> records)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(records);
        var fixedText = Enum.GetValues<ChatRole>().Select(r => Template(options, r)).Append(options.GenerationPrompt)
            .SelectMany(t => t.Split(ChatTemplateOptions.Placeholder))
            .SelectMany(t => Pieces(t, options.Markers))
            .Where(p => !p.Special)
            .Select(p => p.Text)
            .Distinct(StringComparer.Ordinal);
        foreach (var text in fixedText)
        {
            yield return text;
        }

        foreach (var record in records)
        {
            foreach (var message in record.Messages)
            {
                yield return message.Content;
            }
        }
    }

    /// <summary>The text of <paramref name="messages"/>, followed by the generation prompt when <paramref name="generationPrompt"/>.</summary>
    public string RenderText(IReadOnlyList<ChatMessage> messages, bool generationPrompt = false)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var text = string.Concat(messages.Select(m => Template(Options, m.Role).Replace(ChatTemplateOptions.Placeholder, m.Content, StringComparison.Ordinal)));
        return generationPrompt ? text + Options.GenerationPrompt : text;
    }

    /// <summary>Renders <paramref name="messages"/> for training, in at most <paramref name="maxLength"/> tokens.</summary>
    public ChatSequence RenderForTraining(IReadOnlyList<ChatMessage> messages, int maxLength)
    {
        ArgumentNullException.ThrowIfNull(messages);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLength, 2);
        var ids = new List<int>();
        var trained = new List<bool>();
        var anchor = -1;
        foreach (var message in messages)
        {
            var (prefix, suffix) = _roles[message.Role];
            var learn = message.Role == ChatRole.Assistant && message.Trained;
            if (learn)
            {
                // The assistant template starts with the generation prompt: keeping from here keeps what generation sees.
                anchor = ids.Count;
            }

            Append(ids, trained, prefix, false);
            Append(ids, trained, Tokenizer.Encode(message.Content), learn);
            Append(ids, trained, suffix, learn);
        }

        if (anchor < 0)
        {
            return new ChatSequence([], [], [], ChatFit.NothingToTrain, 0);
        }

        var cut = Math.Max(0, ids.Count - maxLength);
        if (cut > anchor)
        {
            return new ChatSequence([], [], [], ChatFit.AnswerTooLong, 0);
        }

        int[] kept = [.. ids.Skip(cut)];
        bool[] mask = [.. trained.Skip(cut)];
        var labels = new long[kept.Length];
        for (var t = 0; t < kept.Length; t++)
        {
            labels[t] = t + 1 < kept.Length && mask[t + 1] ? kept[t + 1] : TrainingSet.NoLabel;
        }

        return new ChatSequence(kept, mask, labels, cut > 0 ? ChatFit.PromptCut : ChatFit.Whole, cut);
    }

    /// <summary>Renders every record for training; see <see cref="ChatRendering"/> for what is counted.</summary>
    public ChatRendering RenderAll(IEnumerable<ChatRecord> records, int maxLength)
    {
        ArgumentNullException.ThrowIfNull(records);
        var sequences = new List<ChatSequence>();
        var kept = new List<ChatRecord>();
        var tooLong = new List<ChatRecord>();
        int whole = 0, promptCut = 0, nothing = 0;
        foreach (var record in records)
        {
            var sequence = RenderForTraining(record.Messages, maxLength);
            switch (sequence.Fit)
            {
                case ChatFit.AnswerTooLong:
                    tooLong.Add(record);
                    continue;
                case ChatFit.NothingToTrain:
                    nothing++;
                    continue;
                case ChatFit.PromptCut:
                    promptCut++;
                    break;
                default:
                    whole++;
                    break;
            }

            sequences.Add(sequence);
            kept.Add(record);
        }

        return new ChatRendering(sequences, kept, whole, promptCut, tooLong, nothing);
    }

    /// <summary>Tokens of the generation prompt (the start of an assistant message) every prompt for generation ends in.</summary>
    public int GenerationPromptLength => _generationPrompt.Length;

    /// <summary>
    /// Renders <paramref name="messages"/> (the conversation so far, e.g. <see cref="ChatRecord.Prompt"/>) and the
    /// generation prompt, in at most <paramref name="maxLength"/> tokens: longer prompts lose tokens from the left; the
    /// generation prompt always stays.
    /// </summary>
    public ChatPrompt RenderForGeneration(IReadOnlyList<ChatMessage> messages, int maxLength)
    {
        ArgumentNullException.ThrowIfNull(messages);
        if (maxLength < _generationPrompt.Length + 1)
        {
            throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, $"A prompt needs more than the generation prompt's {_generationPrompt.Length} tokens.");
        }

        var ids = new List<int>();
        foreach (var message in messages)
        {
            var (prefix, suffix) = _roles[message.Role];
            ids.AddRange(prefix);
            ids.AddRange(Tokenizer.Encode(message.Content));
            ids.AddRange(suffix);
        }

        ids.AddRange(_generationPrompt);
        var cut = Math.Max(0, ids.Count - maxLength);
        return new ChatPrompt([.. ids.Skip(cut)], cut);
    }

    private static string Template(ChatTemplateOptions options, ChatRole role) => role switch
    {
        ChatRole.System => options.System,
        ChatRole.User => options.User,
        _ => options.Assistant,
    };

    private static (string Prefix, string Suffix) Split(string template)
    {
        var at = template.IndexOf(ChatTemplateOptions.Placeholder, StringComparison.Ordinal);
        return (template[..at], template[(at + ChatTemplateOptions.Placeholder.Length)..]);
    }

    private static void Append(List<int> ids, List<bool> trained, IReadOnlyList<int> add, bool learn)
    {
        ids.AddRange(add);
        trained.AddRange(Enumerable.Repeat(learn, add.Count));
    }

    /// <summary>Fixed template text: each special token of the tokenizer is its one id, the text between is encoded.</summary>
    private List<int> EncodeFixed(string text)
    {
        var ids = new List<int>();
        foreach (var (piece, special) in Pieces(text, [.. Tokenizer.SpecialTokens.Keys]))
        {
            if (special)
            {
                ids.Add(Tokenizer.SpecialTokens[piece]);
            }
            else
            {
                ids.AddRange(Tokenizer.Encode(piece));
            }
        }

        return ids;
    }

    /// <summary><paramref name="text"/> split at the leftmost (then longest) occurrence of each of <paramref name="specials"/>.</summary>
    private static List<(string Text, bool Special)> Pieces(string text, IReadOnlyList<string> specials)
    {
        var pieces = new List<(string, bool)>();
        var start = 0;
        while (start < text.Length)
        {
            var (at, length) = (-1, 0);
            foreach (var special in specials)
            {
                var found = text.IndexOf(special, start, StringComparison.Ordinal);
                if (found >= 0 && (at < 0 || found < at || (found == at && special.Length > length)))
                {
                    (at, length) = (found, special.Length);
                }
            }

            if (at < 0)
            {
                pieces.Add((text[start..], false));
                break;
            }

            if (at > start)
            {
                pieces.Add((text[start..at], false));
            }

            pieces.Add((text.Substring(at, length), true));
            start = at + length;
        }

        return pieces;
    }
}
