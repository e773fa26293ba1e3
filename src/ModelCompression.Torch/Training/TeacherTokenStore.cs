using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace ModelCompression.Torch.Training;

/// <summary>How a <see cref="TeacherTokenStore"/> keeps the teacher's distribution at each trained token.</summary>
public enum TeacherTokenForm
{
    /// <summary>The whole vocabulary: one fp16 log-probability per token id.</summary>
    Full = 0,

    /// <summary>
    /// The k most likely ids (int32) and their fp16 log-probabilities. Distillation renormalises over the k entries:
    /// the rest of the vocabulary is unknown (a top-k endpoint) or left out to keep the file small.
    /// </summary>
    TopK = 1,
}

/// <summary>
/// The teacher's next-token distributions of a set of token sequences, stored once in a file and read one batch of
/// sequences at a time, so that token-level distillation neither runs the teacher every epoch nor holds [N, L, V]
/// floats in memory. Only trained positions (label != <see cref="TrainingSet.NoLabel"/>) are stored, in the order of
/// their sequence and position. Values are log-probabilities at temperature 1 (log-softmax of the teacher's logits):
/// log_softmax(logp / T) is log_softmax(logits / T) for any T, and near 0, where the likely tokens are, fp16 is precise.
/// </summary>
/// <remarks>
/// Layout (little-endian): a 48-byte header (magic "MCTOKKD1", version, form, k, vocabulary, sequences, tokens, the
/// position of the offset table), the entries of every sequence one after another (full: tokens x vocabulary fp16;
/// top-k: the sequence's tokens x k int32 ids, then its tokens x k fp16 log-probabilities), then the offset table:
/// sequences + 1 int64 token offsets. <see cref="TeacherTokenWriter"/> writes it under a temporary name and renames it.
/// </remarks>
public sealed class TeacherTokenStore : IDisposable
{
    internal const int HeaderSize = 48;
    internal const int Version = 1;
    internal static readonly byte[] Magic = "MCTOKKD1"u8.ToArray();

    private readonly SafeFileHandle _file;
    private readonly long[] _offsets;

    private TeacherTokenStore(string path, SafeFileHandle file, TeacherTokenForm form, int k, int vocabulary, long[] offsets)
    {
        Path = path;
        _file = file;
        Form = form;
        K = k;
        Vocabulary = vocabulary;
        _offsets = offsets;
    }

    /// <summary>The file.</summary>
    public string Path { get; }

    /// <summary>Whether the store holds full distributions or the top k of each.</summary>
    public TeacherTokenForm Form { get; }

    /// <summary>Entries per token in the top-k form; 0 in the full form.</summary>
    public int K { get; }

    /// <summary>The teacher's vocabulary size.</summary>
    public int Vocabulary { get; }

    /// <summary>The number of sequences.</summary>
    public int Count => _offsets.Length - 1;

    /// <summary>The number of stored (trained) tokens of all sequences.</summary>
    public long Tokens => _offsets[^1];

    /// <summary>Bytes of one token's entry.</summary>
    internal long EntryBytes => EntrySize(Form, K, Vocabulary);

    /// <summary>
    /// Opens a store. A file that is not one (another magic or version), or whose size, header and offset table
    /// disagree (a truncated file), throws <see cref="InvalidDataException"/> naming the file.
    /// </summary>
    public static TeacherTokenStore Open(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var file = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        try
        {
            var length = RandomAccess.GetLength(file);
            var header = new byte[HeaderSize];
            if (length < HeaderSize || RandomAccess.Read(file, header, 0) != HeaderSize || !header.AsSpan(0, 8).SequenceEqual(Magic))
            {
                throw Bad(path, "it is not a teacher token store (no MCTOKKD1 header)");
            }

            var version = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(8));
            if (version != Version)
            {
                throw Bad(path, $"it is version {version} of the format; this engine reads version {Version}");
            }

            var form = (TeacherTokenForm)BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(12));
            var k = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(16));
            var vocabulary = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(20));
            var count = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(24));
            var tokens = BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(32));
            var table = BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(40));
            if (form is not (TeacherTokenForm.Full or TeacherTokenForm.TopK) || vocabulary <= 0 || count < 0 || tokens < 0
                || (form == TeacherTokenForm.TopK ? k <= 0 || k > vocabulary : k != 0))
            {
                throw Bad(path, $"its header is inconsistent (form {(int)form}, k {k}, vocabulary {vocabulary}, {count} sequences, {tokens} tokens)");
            }

            var expected = HeaderSize + (tokens * EntrySize(form, k, vocabulary));
            if (table != expected || length != expected + ((count + 1L) * sizeof(long)))
            {
                throw Bad(path, $"it is {length} bytes, but its header describes {expected + ((count + 1L) * sizeof(long))} (truncated or overwritten?)");
            }

            var offsets = new long[count + 1];
            RandomAccess.Read(file, MemoryMarshal.AsBytes(offsets.AsSpan()), table);
            for (var i = 0; i < count; i++)
            {
                if (offsets[i + 1] < offsets[i])
                {
                    throw Bad(path, $"the token offsets of sequence {i} run backwards");
                }
            }

            if (offsets[0] != 0 || offsets[^1] != tokens)
            {
                throw Bad(path, $"its offset table covers tokens {offsets[0]}..{offsets[^1]}, not 0..{tokens}");
            }

            return new TeacherTokenStore(path, file, form, k, vocabulary, offsets);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>The number of stored tokens of sequence <paramref name="sequence"/>.</summary>
    public int TokensOf(int sequence)
    {
        if ((uint)sequence >= (uint)Count)
        {
            throw new ArgumentOutOfRangeException(nameof(sequence), sequence, $"The store has {Count} sequences.");
        }

        return (int)(_offsets[sequence + 1] - _offsets[sequence]);
    }

    /// <summary>
    /// Copies the entries of <paramref name="sequence"/> into <paramref name="values"/> (fp16, tokens x vocabulary or
    /// tokens x k) and, in the top-k form, <paramref name="ids"/> (tokens x k); both spans are exactly that long.
    /// </summary>
    public void Read(int sequence, Span<Half> values, Span<int> ids)
    {
        var tokens = TokensOf(sequence);
        var width = Form == TeacherTokenForm.Full ? Vocabulary : K;
        if (values.Length != (long)tokens * width || ids.Length != (Form == TeacherTokenForm.Full ? 0 : tokens * K))
        {
            throw new ArgumentException($"Sequence {sequence} has {tokens} tokens of {width} values.", nameof(values));
        }

        var position = HeaderSize + (_offsets[sequence] * EntryBytes);
        if (!ids.IsEmpty)
        {
            ReadExactly(MemoryMarshal.AsBytes(ids), position);
            position += ids.Length * sizeof(int);
        }

        ReadExactly(MemoryMarshal.AsBytes(values), position);
    }

    /// <inheritdoc />
    public void Dispose() => _file.Dispose();

    internal static long EntrySize(TeacherTokenForm form, int k, int vocabulary) =>
        form == TeacherTokenForm.Full ? vocabulary * 2L : k * 6L;

    private void ReadExactly(Span<byte> destination, long position)
    {
        while (!destination.IsEmpty)
        {
            var read = RandomAccess.Read(_file, destination, position);
            if (read == 0)
            {
                throw Bad(Path, "it ended early (shortened after it was opened?)");
            }

            destination = destination[read..];
            position += read;
        }
    }

    private static InvalidDataException Bad(string path, string why) =>
        new($"Teacher token store '{path}' cannot be read: {why}.");
}
