using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace ModelCompression.Torch.Training;

/// <summary>
/// Writes a <see cref="TeacherTokenStore"/> one sequence at a time, in the order of the training set's rows: to a
/// temporary file beside <see cref="Path"/>, renamed over it by <see cref="Complete"/>, so a failed or interrupted run
/// never leaves a half store under the final name. Disposing without completing deletes the temporary file.
/// </summary>
public sealed class TeacherTokenWriter : IDisposable
{
    private readonly string _temporary;
    private readonly FileStream _stream;
    private readonly List<long> _offsets = [0];
    private bool _completed;

    private TeacherTokenWriter(string path, TeacherTokenForm form, int vocabulary, int k)
    {
        Path = path;
        Form = form;
        Vocabulary = vocabulary;
        K = k;
        _temporary = $"{path}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        _stream = new FileStream(_temporary, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16);
        _stream.Write(new byte[TeacherTokenStore.HeaderSize]);
    }

    /// <summary>The final file name.</summary>
    public string Path { get; }

    /// <summary>The form the store keeps.</summary>
    public TeacherTokenForm Form { get; }

    /// <summary>The teacher's vocabulary size.</summary>
    public int Vocabulary { get; }

    /// <summary>Entries per token in the top-k form; 0 in the full form.</summary>
    public int K { get; }

    /// <summary>Starts a store at <paramref name="path"/> (which <see cref="Complete"/> creates or replaces).</summary>
    /// <param name="path">The store's file.</param>
    /// <param name="form">Full distributions, or the top <paramref name="k"/> of each.</param>
    /// <param name="vocabulary">The teacher's vocabulary size (the width of its logits).</param>
    /// <param name="k">Entries kept per token in the top-k form (1..vocabulary); 0 for the full form.</param>
    public static TeacherTokenWriter Create(string path, TeacherTokenForm form, int vocabulary, int k = 0)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(vocabulary);
        if (form == TeacherTokenForm.TopK ? k <= 0 || k > vocabulary : form != TeacherTokenForm.Full || k != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(k), k, $"The {form} form takes k in 1..{vocabulary} for top-k, 0 for full.");
        }

        return new TeacherTokenWriter(System.IO.Path.GetFullPath(path), form, vocabulary, k);
    }

    /// <summary>
    /// Adds the next sequence from the teacher's logits over all its positions: <paramref name="logits"/> is
    /// [positions, vocabulary] row-major and <paramref name="labels"/> the sequence's per-token labels; only positions
    /// whose label is not <see cref="TrainingSet.NoLabel"/> are stored (log-softmax, then all of it or its top k).
    /// </summary>
    public void AppendLogits(ReadOnlySpan<float> logits, ReadOnlySpan<long> labels)
    {
        ThrowIfCompleted();
        if (logits.Length != (long)labels.Length * Vocabulary)
        {
            throw new ArgumentException($"{labels.Length} positions of a vocabulary of {Vocabulary} need {(long)labels.Length * Vocabulary} logits, not {logits.Length}.", nameof(logits));
        }

        var trained = 0;
        foreach (var label in labels)
        {
            trained += label == TrainingSet.NoLabel ? 0 : 1;
        }

        var width = Form == TeacherTokenForm.Full ? Vocabulary : K;
        var values = new Half[trained * width];
        var ids = new int[Form == TeacherTokenForm.Full ? 0 : trained * K];
        var logProbs = new double[Vocabulary];
        for (int t = 0, j = 0; t < labels.Length; t++)
        {
            if (labels[t] == TrainingSet.NoLabel)
            {
                continue;
            }

            LogSoftmax(logits.Slice(t * Vocabulary, Vocabulary), logProbs);
            if (Form == TeacherTokenForm.Full)
            {
                for (var v = 0; v < Vocabulary; v++)
                {
                    values[(j * width) + v] = ToHalf(logProbs[v]);
                }
            }
            else
            {
                var top = TopK(logProbs, K);
                for (var i = 0; i < K; i++)
                {
                    ids[(j * K) + i] = top[i];
                    values[(j * K) + i] = ToHalf(logProbs[top[i]]);
                }
            }

            j++;
        }

        Write(trained, values, ids);
    }

    /// <summary>
    /// Adds the next sequence in the top-k form from log-probabilities the teacher gave (an endpoint's top_logprobs):
    /// <paramref name="ids"/> and <paramref name="logProbs"/> are [trained tokens, k] row-major, one row per trained
    /// position of the sequence, in order.
    /// </summary>
    public void AppendTopK(ReadOnlySpan<int> ids, ReadOnlySpan<float> logProbs)
    {
        ThrowIfCompleted();
        if (Form != TeacherTokenForm.TopK)
        {
            throw new InvalidOperationException($"The store at '{Path}' keeps full distributions; top-k entries do not fit it.");
        }

        if (ids.Length != logProbs.Length || ids.Length % K != 0)
        {
            throw new ArgumentException($"Top-k entries come in rows of k = {K} ids and as many log-probabilities, not {ids.Length} ids and {logProbs.Length} values.", nameof(ids));
        }

        foreach (var id in ids)
        {
            if ((uint)id >= (uint)Vocabulary)
            {
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"A token id must be in 0..{Vocabulary - 1}.");
            }
        }

        var values = new Half[logProbs.Length];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = ToHalf(logProbs[i]);
        }

        Write(ids.Length / K, values, ids);
    }

    /// <summary>Writes the offset table and the header, and renames the file to <see cref="Path"/>.</summary>
    public void Complete()
    {
        ThrowIfCompleted();
        var table = _stream.Position;
        var offsets = _offsets.ToArray();
        _stream.Write(MemoryMarshal.AsBytes(offsets.AsSpan()));
        var header = new byte[TeacherTokenStore.HeaderSize];
        TeacherTokenStore.Magic.CopyTo(header, 0);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(8), TeacherTokenStore.Version);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(12), (int)Form);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(16), K);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(20), Vocabulary);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(24), offsets.Length - 1);
        BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(32), offsets[^1]);
        BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(40), table);
        _stream.Position = 0;
        _stream.Write(header);
        _stream.Flush(flushToDisk: true);
        _stream.Dispose();
        File.Move(_temporary, Path, overwrite: true);
        _completed = true;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _stream.Dispose();
        if (!_completed)
        {
            File.Delete(_temporary);
        }
    }

    private void Write(int tokens, Half[] values, ReadOnlySpan<int> ids)
    {
        if (_offsets.Count - 1 == int.MaxValue)
        {
            throw new InvalidOperationException($"The store at '{Path}' is full ({int.MaxValue} sequences).");
        }

        _stream.Write(MemoryMarshal.AsBytes(ids));
        _stream.Write(MemoryMarshal.AsBytes(values.AsSpan()));
        _offsets.Add(_offsets[^1] + tokens);
    }

    private void ThrowIfCompleted() => ObjectDisposedException.ThrowIf(_completed, this);

    /// <summary>
    /// The ids of the <paramref name="k"/> largest values, largest first; equal values by id, so the file does not
    /// depend on a sort's stability. A heap of k: a vocabulary of 50,000 is not sorted for every token.
    /// </summary>
    internal static int[] TopK(ReadOnlySpan<double> values, int k)
    {
        // The heap's minimum is the least likely kept entry (lowest value, then highest id).
        var heap = new PriorityQueue<int, (double Value, int Id)>(k, LeastLikelyFirst.Instance);
        for (var id = 0; id < values.Length; id++)
        {
            if (heap.Count < k)
            {
                heap.Enqueue(id, (values[id], id));
            }
            else if (LeastLikelyFirst.Instance.Compare((values[id], id), PeekPriority(heap)) > 0)
            {
                heap.DequeueEnqueue(id, (values[id], id));
            }
        }

        var top = new int[k];
        for (var i = k - 1; i >= 0; i--)
        {
            top[i] = heap.Dequeue();
        }

        return top;
    }

    private static (double Value, int Id) PeekPriority(PriorityQueue<int, (double Value, int Id)> heap) =>
        heap.TryPeek(out _, out var priority) ? priority : default;

    private static void LogSoftmax(ReadOnlySpan<float> logits, Span<double> destination)
    {
        var max = double.NegativeInfinity;
        foreach (var x in logits)
        {
            max = Math.Max(max, x);
        }

        var sum = 0.0;
        foreach (var x in logits)
        {
            sum += Math.Exp(x - max);
        }

        var log = max + Math.Log(sum);
        for (var i = 0; i < logits.Length; i++)
        {
            destination[i] = logits[i] - log;
        }
    }

    /// <summary>
    /// fp16 with impossible tokens (-inf, or below fp16's range) at its lowest finite value: exp of it is 0 in float32
    /// as -inf's is, but 0 * (lowest - log q) stays 0 in the KL sum where 0 * -inf would be NaN.
    /// </summary>
    private static Half ToHalf(double logProb) =>
        double.IsNaN(logProb) ? throw new ArgumentException("A teacher log-probability is NaN.")
        : logProb < (double)Half.MinValue ? Half.MinValue : (Half)logProb;

    private sealed class LeastLikelyFirst : IComparer<(double Value, int Id)>
    {
        public static readonly LeastLikelyFirst Instance = new();

        public int Compare((double Value, int Id) x, (double Value, int Id) y) =>
            x.Value != y.Value ? x.Value.CompareTo(y.Value) : y.Id.CompareTo(x.Id);
    }
}
