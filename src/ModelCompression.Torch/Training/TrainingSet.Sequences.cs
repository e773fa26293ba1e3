using ModelCompression.Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelCompression.Torch.Training;

/// <summary>
/// The per-token layout of a training set, for decoders (<see cref="LanguageModelObjective"/>): every input is a token
/// sequence of one length L (input_ids, attention_mask, int64 [L] per sample, right-padded), <see cref="TokenLabels"/>
/// holds L labels per sample, already shifted by the data (label[t] = id[t + 1] where the token is learned,
/// <see cref="NoLabel"/> on prompt tokens and padding), and <see cref="Classes"/> is the vocabulary size.
/// </summary>
/// <remarks>
/// A batch is cut to its longest labelled prefix (the last labelled position + 1 over its rows), not padded to L:
/// logits of a causal model at position t depend on tokens up to t only, so the tokens after the last labelled position
/// change no loss, and a batch of short answers does not pay for the longest sequence of the set. The objective and the
/// teacher store agree on positions because both only ever address labelled ones.
/// </remarks>
public sealed partial class TrainingSet
{
    private readonly long[]? _tokenLabels;
    private readonly int[]? _labelledLengths;
    private readonly TeacherTokens? _teacherTokens;

    /// <summary>
    /// Per-token labels, <see cref="SequenceLength"/> per sample (row-major [N, L]): the next token's id (in
    /// 0..<see cref="Classes"/> - 1) where the model learns, <see cref="NoLabel"/> elsewhere. Null for per-sample sets.
    /// </summary>
    public long[]? TokenLabels
    {
        get => _tokenLabels;
        init
        {
            if (value is null)
            {
                return;
            }

            if (Hints.Count > 0)
            {
                throw new ArgumentException("Per-token labels do not take feature hints.", nameof(TokenLabels));
            }

            var length = Inputs[0].SampleShape is [var l] ? l : -1;
            if (Inputs.FirstOrDefault(i => i.SampleShape is not [var n] || n != length || i.DType != ScalarType.Int64) is { } odd)
            {
                throw new ArgumentException($"Per-token labels need int64 token sequences of one length; input '{odd.Name}' is {odd.DType}[{string.Join(", ", odd.SampleShape)}].", nameof(TokenLabels));
            }

            if (value.Length != (long)Count * length)
            {
                throw new ArgumentException($"{Count} sequences of {length} tokens need {(long)Count * length} token labels, not {value.Length}.", nameof(TokenLabels));
            }

            var lengths = new int[Count];
            for (var row = 0; row < Count; row++)
            {
                for (var t = 0; t < length; t++)
                {
                    var label = value[(row * length) + t];
                    if (label == NoLabel)
                    {
                        continue;
                    }

                    if ((ulong)label >= (ulong)Classes)
                    {
                        throw new ArgumentException($"Sequence {row}, position {t}: label {label} is not a token id of a vocabulary of {Classes} (nor {NoLabel}, no label).", nameof(TokenLabels));
                    }

                    lengths[row] = t + 1;
                }
            }

            _tokenLabels = value;
            _labelledLengths = lengths;
        }
    }

    /// <summary>The teacher's distributions at every labelled token (token-level distillation), or null.</summary>
    public TeacherTokens? TeacherTokens
    {
        get => _teacherTokens;
        init
        {
            if (value is not null && value.Count != Count)
            {
                throw new ArgumentException($"{Count} sequences but teacher tokens for {value.Count}.", nameof(TeacherTokens));
            }

            _teacherTokens = value;
        }
    }

    /// <summary>The length L of every sequence of a per-token set (0 for a per-sample set).</summary>
    public int SequenceLength => _tokenLabels is null ? 0 : (int)Inputs[0].SampleShape[0];

    /// <summary>The number of labelled tokens of <paramref name="row"/> (per-token sets).</summary>
    public int TrainedTokens(int row)
    {
        var labels = _tokenLabels ?? throw new InvalidOperationException("The set has no per-token labels.");
        var length = SequenceLength;
        var count = 0;
        foreach (var label in labels.AsSpan(row * length, length))
        {
            count += label == NoLabel ? 0 : 1;
        }

        return count;
    }

    /// <summary>
    /// This set's sequences followed by <paramref name="other"/>'s (gold answers and a teacher's answers, say): same
    /// inputs and vocabulary, both with per-token labels, both with or both without teacher tokens.
    /// </summary>
    public TrainingSet ConcatSequences(TrainingSet other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (_tokenLabels is null || other._tokenLabels is null || Classes != other.Classes || SequenceLength != other.SequenceLength)
        {
            throw new ArgumentException($"Only sets of per-token labels of one length and vocabulary concatenate (L {SequenceLength} and {other.SequenceLength}, vocabulary {Classes} and {other.Classes}).", nameof(other));
        }

        if ((_teacherTokens is null) != (other._teacherTokens is null))
        {
            throw new ArgumentException("Both sets need teacher tokens, or neither.", nameof(other));
        }

        var inputs = Inputs.Select(i => InputArray.Concat(i, other.Inputs.SingleOrDefault(o => o.Name == i.Name) ?? throw new ArgumentException($"The other set has no input '{i.Name}'.", nameof(other)))).ToList();
        return new TrainingSet(inputs, null, null, Classes)
        {
            TokenLabels = [.. _tokenLabels, .. other._tokenLabels],
            TeacherTokens = _teacherTokens is null ? null : TeacherTokens.Concat(_teacherTokens, other._teacherTokens!),
        };
    }

    /// <summary>
    /// What a checkpoint of a per-token set must agree on beyond the sample count: the sequence length and the teacher
    /// store's form (top-k and full teach differently). Empty for per-sample sets, whose fingerprints stay as they were.
    /// </summary>
    internal string SequenceFingerprint => _tokenLabels is null ? ""
        : FormattableString.Invariant($"|sequences of {SequenceLength}|teacher tokens {(_teacherTokens is null ? "none" : $"{_teacherTokens.Form} k {_teacherTokens.K}")}");

    /// <summary>The width a batch of <paramref name="rows"/> is cut to: its longest labelled prefix, at least 1.</summary>
    internal int BatchWidth(ReadOnlySpan<int> rows)
    {
        var lengths = _labelledLengths ?? throw new InvalidOperationException("The set has no per-token labels.");
        var width = 1;
        foreach (var row in rows)
        {
            width = Math.Max(width, lengths[row]);
        }

        return width;
    }

    /// <summary>The rows' token labels cut to <paramref name="width"/>, row-major [rows, width].</summary>
    internal long[] BatchTokenLabels(ReadOnlySpan<int> rows, int width)
    {
        var labels = _tokenLabels ?? throw new InvalidOperationException("The set has no per-token labels.");
        var length = SequenceLength;
        var batch = new long[rows.Length * width];
        for (var i = 0; i < rows.Length; i++)
        {
            labels.AsSpan(rows[i] * length, width).CopyTo(batch.AsSpan(i * width, width));
        }

        return batch;
    }

    /// <summary>
    /// Cuts the sequence inputs of a batch to its width and, when the graph reads position_ids that the set does not
    /// hold, adds them: cumsum(attention_mask) - 1 clamped at 0 (so right padding repeats the last position), or
    /// 0..width-1 without a mask.
    /// </summary>
    private void ShapeSequenceBatch(Dictionary<string, Tensor> batch, TrainableGraphInputs names, ReadOnlySpan<int> rows)
    {
        var width = BatchWidth(rows);
        foreach (var name in batch.Keys.ToList())
        {
            if (width < SequenceLength)
            {
                batch[name] = batch[name].narrow(1, 0, width).contiguous();
            }
        }

        if (names.Has(DecoderConvention.PositionIds) && !batch.ContainsKey(DecoderConvention.PositionIds))
        {
            if (batch.TryGetValue(DecoderConvention.AttentionMask, out var mask))
            {
                using var zero = 0L.ToScalar();
                batch[DecoderConvention.PositionIds] = mask.cumsum(1).Plus(-1L).clamp_min_(zero);
            }
            else
            {
                batch[DecoderConvention.PositionIds] = ScalarArithmetic.Arange(0, width, 1).unsqueeze(0).expand(rows.Length, width).contiguous();
            }
        }
    }
}
