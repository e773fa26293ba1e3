using System.Buffers;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelCompression.Torch.Training;

/// <summary>
/// The teacher distributions of a <see cref="TrainingSet"/>'s sequences: row i of the set reads a sequence of a
/// <see cref="TeacherTokenStore"/>. Selecting or concatenating rows makes a new view over the same stores; nothing is
/// read before a batch asks. The stores stay owned (and disposed) by the caller.
/// </summary>
public sealed class TeacherTokens
{
    private readonly TeacherTokenStore[] _stores;
    private readonly (int Store, int Sequence)[] _rows;

    private TeacherTokens(TeacherTokenStore[] stores, (int Store, int Sequence)[] rows)
    {
        _stores = stores;
        _rows = rows;
    }

    /// <summary>Whether the stores keep full distributions or the top k of each (what a report states).</summary>
    public TeacherTokenForm Form => _stores[0].Form;

    /// <summary>Entries per token in the top-k form; 0 in the full form.</summary>
    public int K => _stores[0].K;

    /// <summary>The teacher's vocabulary size.</summary>
    public int Vocabulary => _stores[0].Vocabulary;

    /// <summary>The number of sequences (rows).</summary>
    public int Count => _rows.Length;

    /// <summary>Every sequence of <paramref name="store"/>, in its order.</summary>
    public static TeacherTokens Of(TeacherTokenStore store)
    {
        ArgumentNullException.ThrowIfNull(store);
        return new TeacherTokens([store], [.. Enumerable.Range(0, store.Count).Select(s => (0, s))]);
    }

    /// <summary>The stored tokens of row <paramref name="row"/>.</summary>
    public int TokensOf(int row)
    {
        var (store, sequence) = _rows[row];
        return _stores[store].TokensOf(sequence);
    }

    /// <summary>The rows at <paramref name="rows"/>, in that order.</summary>
    public TeacherTokens Select(IReadOnlyList<int> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        return new TeacherTokens(_stores, [.. rows.Select(r => (uint)r < (uint)Count ? _rows[r] : throw new ArgumentOutOfRangeException(nameof(rows), r, $"There are {Count} sequences."))]);
    }

    /// <summary>The rows of <paramref name="first"/> followed by those of <paramref name="second"/> (same form, k and vocabulary).</summary>
    public static TeacherTokens Concat(TeacherTokens first, TeacherTokens second)
    {
        ArgumentNullException.ThrowIfNull(first);
        ArgumentNullException.ThrowIfNull(second);
        if (first.Form != second.Form || first.K != second.K || first.Vocabulary != second.Vocabulary)
        {
            throw new ArgumentException(
                $"Teacher tokens of {second.Form} k {second.K} over {second.Vocabulary} ids ('{second._stores[0].Path}') do not continue {first.Form} k {first.K} over {first.Vocabulary} ('{first._stores[0].Path}').",
                nameof(second));
        }

        var shift = first._stores.Length;
        return new TeacherTokens([.. first._stores, .. second._stores], [.. first._rows, .. second._rows.Select(r => (r.Store + shift, r.Sequence))]);
    }

    /// <summary>
    /// The stored tokens of <paramref name="rows"/>, row after row, as float32 log-probabilities [tokens, vocabulary or
    /// k] and, in the top-k form, their ids (int64 [tokens, k]; null in the full form), in the caller's dispose scope.
    /// </summary>
    internal (Tensor LogProbs, Tensor? Ids) Batch(ReadOnlySpan<int> rows)
    {
        var tokens = 0L;
        foreach (var row in rows)
        {
            tokens += TokensOf(row);
        }

        var width = Form == TeacherTokenForm.Full ? Vocabulary : K;
        if (tokens * width > Array.MaxLength)
        {
            throw new ArgumentException($"A batch of {tokens} tokens of {width} teacher values each does not fit in one array: use smaller batches or the top-k form.", nameof(rows));
        }

        var valueCount = (int)(tokens * width);
        var idCount = Form == TeacherTokenForm.Full ? 0 : (int)tokens * K;
        var values = ArrayPool<Half>.Shared.Rent(Math.Max(1, valueCount));
        var ids = ArrayPool<int>.Shared.Rent(Math.Max(1, idCount));
        try
        {
            for (int i = 0, at = 0; i < rows.Length; i++)
            {
                var (store, sequence) = _rows[rows[i]];
                var count = TokensOf(rows[i]);
                _stores[store].Read(sequence, values.AsSpan(at * width, count * width), ids.AsSpan(Form == TeacherTokenForm.Full ? 0 : at * K, Form == TeacherTokenForm.Full ? 0 : count * K));
                at += count;
            }

            var half = torch.empty([tokens, width], ScalarType.Float16);
            half.bytes = MemoryMarshal.AsBytes(values.AsSpan(0, valueCount));
            Tensor? idTensor = null;
            if (Form == TeacherTokenForm.TopK)
            {
                var int32 = torch.empty([tokens, K], ScalarType.Int32);
                int32.bytes = MemoryMarshal.AsBytes(ids.AsSpan(0, idCount));
                idTensor = int32.to_type(ScalarType.Int64);
            }

            return (half.to_type(ScalarType.Float32), idTensor);
        }
        finally
        {
            ArrayPool<Half>.Shared.Return(values);
            ArrayPool<int>.Shared.Return(ids);
        }
    }
}
