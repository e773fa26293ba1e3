using ModelCompression.Diagnostics;
using ModelCompression.Onnx;
using ModelCompression.Text;
using ModelCompression.Torch.Training;

namespace ModelCompression.Generation;

/// <summary>Where a part of a chat training set came from, and how much of it is used.</summary>
/// <param name="Origin">The part's name in reports ("gold", "teacher").</param>
/// <param name="FirstRow">The part's first row in the set.</param>
/// <param name="Rendering">How its records rendered: the kept sequences and records, and the counts of those that were cut or dropped.</param>
/// <param name="MaxLength">The maximum length its records were rendered in; null for none.</param>
public sealed record ChatPart(string Origin, int FirstRow, ChatRendering Rendering, int? MaxLength)
{
    /// <summary>The sequences the part adds (rows <see cref="FirstRow"/> onwards).</summary>
    public int Sequences => Rendering.Sequences.Count;

    /// <summary>The trained (labelled) tokens of the part.</summary>
    public long TrainedTokens => Rendering.Sequences.Sum(s => (long)s.Labels.Count(l => l != TrainingSet.NoLabel));

    /// <summary>The records dropped because their answer alone is longer than the maximum (MC2070).</summary>
    public int Dropped => Rendering.AnswerTooLong.Count;

    /// <summary>The MC2070 warning naming the dropped records, or null when none was.</summary>
    public Diagnostic? DroppedWarning => Rendering.DroppedWarning(MaxLength ?? int.MaxValue);
}

/// <summary>
/// Conversations rendered for next-token training of a decoder: int64 <c>input_ids</c> and <c>attention_mask</c> [N, L],
/// right-padded with the tokenizer's pad id, and next-token labels (<see cref="TrainingSet.NoLabel"/> except on the
/// assistant tokens that are learned), as <see cref="ChatTemplate.RenderForTraining"/> makes them. It may join several
/// parts (gold answers and a teacher's answers for sequence-level distillation), each keeping its origin for reports.
/// <c>position_ids</c> is not stored: the trainer makes it from the mask (cumsum - 1) when the graph reads it, and a
/// teacher run (<see cref="TeacherTokenCache"/>) does the same.
/// </summary>
public sealed class ChatTrainingSet
{
    private readonly long[] _ids;
    private readonly long[] _mask;
    private readonly long[] _labels;

    private ChatTrainingSet(long[] ids, long[] mask, long[] labels, int length, int vocabulary, int padId, IReadOnlyList<ChatPart> parts, int? maxLength)
    {
        _ids = ids;
        _mask = mask;
        _labels = labels;
        SequenceLength = length;
        Vocabulary = vocabulary;
        PadId = padId;
        Parts = parts;
        MaxLength = maxLength;
    }

    /// <summary>The parts in row order.</summary>
    public IReadOnlyList<ChatPart> Parts { get; }

    /// <summary>The number of sequences (rows).</summary>
    public int Count => _ids.Length / SequenceLength;

    /// <summary>L: the length of every row.</summary>
    public int SequenceLength { get; }

    /// <summary>The tokenizer's vocabulary size (the width of the model's logits).</summary>
    public int Vocabulary { get; }

    /// <summary>The id padding positions hold.</summary>
    public int PadId { get; }

    /// <summary>The maximum length the records were rendered in; null when L is the longest rendered sequence.</summary>
    public int? MaxLength { get; }

    /// <summary>
    /// The longest prefix any row is run to: up to its last labelled position (tokens after it change no loss, so neither
    /// training nor a teacher run reads them).
    /// </summary>
    public int LongestTrainedPrefix
    {
        get
        {
            var longest = 0;
            for (var row = 0; row < Count; row++)
            {
                var labels = _labels.AsSpan(row * SequenceLength, SequenceLength);
                var last = labels.LastIndexOfAnyExcept(TrainingSet.NoLabel);
                longest = Math.Max(longest, last + 1);
            }

            return longest;
        }
    }

    /// <summary>The trained tokens of all parts.</summary>
    public long TrainedTokens => Parts.Sum(p => p.TrainedTokens);

    /// <summary>The MC2070 warnings of the parts that dropped records (one per such part).</summary>
    public IReadOnlyList<Diagnostic> Warnings => [.. Parts.Select(p => p.DroppedWarning).OfType<Diagnostic>()];

    /// <summary>Row-major [N, L] token ids.</summary>
    public ReadOnlySpan<long> InputIds => _ids;

    /// <summary>Row-major [N, L] attention mask: 1 on tokens, 0 on padding.</summary>
    public ReadOnlySpan<long> AttentionMask => _mask;

    /// <summary>Row-major [N, L] next-token labels.</summary>
    public ReadOnlySpan<long> Labels => _labels;

    /// <summary>
    /// Renders <paramref name="records"/> with <paramref name="template"/>. With <paramref name="maxLength"/> every row
    /// is that long (records longer are cut from the left or, when their answer alone does not fit, dropped and counted
    /// in an MC2070 warning); without, L is the longest rendered sequence. MC2084 (naming the first record's file) when
    /// no record is left to train.
    /// </summary>
    public static ChatTrainingSet Render(IEnumerable<ChatRecord> records, ChatTemplate template, int? maxLength = null, string origin = "gold")
    {
        ArgumentNullException.ThrowIfNull(records);
        ArgumentNullException.ThrowIfNull(template);
        ArgumentNullException.ThrowIfNull(origin);
        var list = records as IReadOnlyList<ChatRecord> ?? [.. records];
        var rendering = template.RenderAll(list, maxLength ?? int.MaxValue);
        if (rendering.Sequences.Count == 0)
        {
            var why = rendering.AnswerTooLong.Count > 0
                ? $"{rendering.AnswerTooLong.Count} answers are longer than max_length {maxLength}"
                : "none has a trained assistant answer";
            throw CompressionException.Error(
                DiagnosticCodes.ChatNothingToTrain,
                $"No conversation of the {origin} data can be trained ({list.Count} read; {why}).",
                list.FirstOrDefault()?.File,
                list.FirstOrDefault()?.Line);
        }

        var length = maxLength ?? rendering.Sequences.Max(s => s.Ids.Length);
        var tokenizer = template.Tokenizer;
        var rows = rendering.Sequences.Count;
        var ids = new long[rows * length];
        var mask = new long[rows * length];
        var labels = new long[rows * length];
        Array.Fill(ids, tokenizer.PadId);
        Array.Fill(labels, TrainingSet.NoLabel);
        for (var row = 0; row < rows; row++)
        {
            var sequence = rendering.Sequences[row];
            for (var t = 0; t < sequence.Ids.Length; t++)
            {
                ids[(row * length) + t] = sequence.Ids[t];
                mask[(row * length) + t] = 1;
                labels[(row * length) + t] = sequence.Labels[t];
            }
        }

        return new ChatTrainingSet(ids, mask, labels, length, tokenizer.VocabularySize, tokenizer.PadId, [new ChatPart(origin, 0, rendering, maxLength)], maxLength);
    }

    /// <summary>
    /// This set's rows followed by <paramref name="other"/>'s (gold answers, then a teacher's: sequence-level
    /// distillation). The shorter rows are padded to the longer L; both must come from one vocabulary and pad id.
    /// </summary>
    public ChatTrainingSet Concat(ChatTrainingSet other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (Vocabulary != other.Vocabulary || PadId != other.PadId)
        {
            throw new ArgumentException($"Chat sets of vocabularies {Vocabulary} and {other.Vocabulary} (pad {PadId} and {other.PadId}) do not concatenate: render both with one tokenizer.", nameof(other));
        }

        var length = Math.Max(SequenceLength, other.SequenceLength);
        var (ids, mask, labels) = (new long[(Count + other.Count) * length], new long[(Count + other.Count) * length], new long[(Count + other.Count) * length]);
        Array.Fill(ids, PadId);
        Array.Fill(labels, TrainingSet.NoLabel);
        Copy(this, 0);
        Copy(other, Count);
        var parts = Parts.Concat(other.Parts.Select(p => p with { FirstRow = p.FirstRow + Count })).ToList();
        var maxLength = MaxLength == other.MaxLength ? MaxLength : null;
        return new ChatTrainingSet(ids, mask, labels, length, Vocabulary, PadId, parts, maxLength);

        void Copy(ChatTrainingSet from, int firstRow)
        {
            for (var row = 0; row < from.Count; row++)
            {
                var source = row * from.SequenceLength;
                var target = (firstRow + row) * length;
                from._ids.AsSpan(source, from.SequenceLength).CopyTo(ids.AsSpan(target));
                from._mask.AsSpan(source, from.SequenceLength).CopyTo(mask.AsSpan(target));
                from._labels.AsSpan(source, from.SequenceLength).CopyTo(labels.AsSpan(target));
            }
        }
    }

    /// <summary>
    /// The per-token <see cref="TrainingSet"/> of these rows (inputs named by the <see cref="DecoderConvention"/>,
    /// <see cref="TrainingSet.Classes"/> the vocabulary), with the teacher's distributions when given (a store written
    /// for this set by <see cref="TeacherTokenCache.Write"/>).
    /// </summary>
    public TrainingSet ToTrainingSet(TeacherTokens? teacher = null)
    {
        long[] shape = [SequenceLength];
        return new TrainingSet(
            [InputArray.Int64(DecoderConvention.InputIds, _ids, shape), InputArray.Int64(DecoderConvention.AttentionMask, _mask, shape)],
            null,
            null,
            Vocabulary)
        {
            TokenLabels = _labels,
            TeacherTokens = teacher,
        };
    }

    /// <summary>A hash of the rows (ids, mask, labels, L): the data part of a teacher store's cache key.</summary>
    public string ContentHash()
    {
        var hash = new System.IO.Hashing.XxHash128();
        hash.Append(BitConverter.GetBytes(SequenceLength));
        hash.Append(BitConverter.GetBytes(Vocabulary));
        hash.Append(System.Runtime.InteropServices.MemoryMarshal.AsBytes(_ids.AsSpan()));
        hash.Append(System.Runtime.InteropServices.MemoryMarshal.AsBytes(_mask.AsSpan()));
        hash.Append(System.Runtime.InteropServices.MemoryMarshal.AsBytes(_labels.AsSpan()));
        return Convert.ToHexStringLower(hash.GetCurrentHash());
    }
}
