using ModelCompression.Torch.Native;
using ModelCompression.Torch.Training;
using TorchSharp;
using static ModelCompression.Torch.Tests.Graph.GraphTestSupport;
using static ModelCompression.Torch.Tests.Training.SequenceTestSupport;
using static ModelCompression.Torch.Tests.Training.TrainerTestSupport;

namespace ModelCompression.Torch.Tests.Training;

/// <summary>
/// The teacher token store keeps, per labelled token, the teacher's log-probabilities (all of them in fp16, or the top k
/// with their ids), in a file that is written atomically and refuses to be read when it is not whole.
/// </summary>
public sealed class TeacherTokenStoreTests : IDisposable
{
    private readonly string _folder = TemporaryFolder();

    public TeacherTokenStoreTests() => TorchNativeLoader.EnsureLoaded();

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void The_full_form_keeps_the_log_softmax_of_every_labelled_position_in_fp16()
    {
        var data = Sequences(5);
        var logits = TeacherLogits(data);
        var path = Path.Join(_folder, "full.mctok");
        WriteStore(path, data, logits, TeacherTokenForm.Full);

        using var store = TeacherTokenStore.Open(path);
        Assert.Equal((TeacherTokenForm.Full, 0, Vocabulary, 5), (store.Form, store.K, store.Vocabulary, store.Count));
        var length = data.SequenceLength;
        for (var row = 0; row < data.Count; row++)
        {
            Assert.Equal(data.TrainedTokens(row), store.TokensOf(row));
            var values = new Half[store.TokensOf(row) * Vocabulary];
            store.Read(row, values, []);
            var j = 0;
            for (var t = 0; t < length; t++)
            {
                if (data.TokenLabels![(row * length) + t] == TrainingSet.NoLabel)
                {
                    continue;
                }

                var expected = LogSoftmax(logits.AsSpan(((row * length) + t) * Vocabulary, Vocabulary));
                for (var v = 0; v < Vocabulary; v++)
                {
                    // fp16 keeps 11 significant bits: half a unit in the last place of values below 8 in size.
                    Assert.Equal(expected[v], (double)values[(j * Vocabulary) + v], 0.004);
                }

                j++;
            }
        }

        Assert.Equal(Enumerable.Range(0, 5).Sum(data.TrainedTokens), store.Tokens);
    }

    [Fact]
    public void The_top_k_form_keeps_the_k_most_likely_ids_in_order_with_their_log_probabilities()
    {
        var path = Path.Join(_folder, "topk.mctok");
        // One sequence of three positions over a vocabulary of 5; the middle one is a prompt token (not stored).
        float[] logits = [1, 4, 2, 4, 0, /* prompt */ 9, 9, 9, 9, 9, /* */ -1, 0, 3, 1, 2];
        using (var writer = TeacherTokenWriter.Create(path, TeacherTokenForm.TopK, vocabulary: 5, k: 3))
        {
            writer.AppendLogits(logits, [2, TrainingSet.NoLabel, 4]);
            writer.AppendTopK([4, 0, 1], [-0.5f, -1.5f, -2f]);
            writer.Complete();
        }

        using var store = TeacherTokenStore.Open(path);
        Assert.Equal((TeacherTokenForm.TopK, 3, 2, 3L), (store.Form, store.K, store.Count, store.Tokens));
        var values = new Half[2 * 3];
        var ids = new int[2 * 3];
        store.Read(0, values, ids);
        // Equal logits (ids 1 and 3) come by id.
        Assert.Equal([1, 3, 2, 2, 4, 3], ids);
        var first = LogSoftmax(logits.AsSpan(0, 5));
        var third = LogSoftmax(logits.AsSpan(10, 5));
        double[] expected = [first[1], first[3], first[2], third[2], third[4], third[3]];
        for (var i = 0; i < 6; i++)
        {
            Assert.Equal(expected[i], (double)values[i], 0.002);
        }

        var given = new Half[3];
        var givenIds = new int[3];
        store.Read(1, given, givenIds);
        Assert.Equal([4, 0, 1], givenIds);
        Assert.Equal([(Half)(-0.5f), (Half)(-1.5f), (Half)(-2f)], given);
    }

    [Fact]
    public void A_truncated_store_is_an_error_that_names_the_file()
    {
        var data = Sequences(3);
        var path = Path.Join(_folder, "cut.mctok");
        WriteStore(path, data, TeacherLogits(data), TeacherTokenForm.TopK, k: 4);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^9]);

        var error = Assert.Throws<InvalidDataException>(() => TeacherTokenStore.Open(path));
        Assert.Contains(path, error.Message, StringComparison.Ordinal);
        Assert.Contains("truncated", error.Message, StringComparison.Ordinal);

        File.WriteAllBytes(path, bytes[..20]);
        Assert.Contains(path, Assert.Throws<InvalidDataException>(() => TeacherTokenStore.Open(path)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_foreign_file_is_an_error_that_names_the_file()
    {
        var path = Path.Join(_folder, "model.onnx");
        File.WriteAllBytes(path, RandomFloats(100, 1).SelectMany(BitConverter.GetBytes).ToArray());

        var error = Assert.Throws<InvalidDataException>(() => TeacherTokenStore.Open(path));
        Assert.Contains(path, error.Message, StringComparison.Ordinal);
        Assert.Contains("not a teacher token store", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_store_not_completed_leaves_no_file_and_a_completed_one_replaces_the_old()
    {
        var path = Path.Join(_folder, "atomic.mctok");
        File.WriteAllText(path, "the last good store");
        using (var writer = TeacherTokenWriter.Create(path, TeacherTokenForm.Full, vocabulary: 3))
        {
            writer.AppendLogits([1, 2, 3], [0]);
        }

        Assert.Equal("the last good store", File.ReadAllText(path));
        Assert.Equal([path], Directory.GetFiles(_folder));

        using (var writer = TeacherTokenWriter.Create(path, TeacherTokenForm.Full, vocabulary: 3))
        {
            writer.AppendLogits([1, 2, 3], [0]);
            writer.Complete();
        }

        using var store = TeacherTokenStore.Open(path);
        Assert.Equal(1, store.Count);
        Assert.Equal([path], Directory.GetFiles(_folder));
    }

    [Fact]
    public void Impossible_tokens_are_stored_at_the_lowest_fp16_value_not_minus_infinity()
    {
        var path = Path.Join(_folder, "inf.mctok");
        using (var writer = TeacherTokenWriter.Create(path, TeacherTokenForm.Full, vocabulary: 3))
        {
            writer.AppendLogits([0, float.NegativeInfinity, 0], [1]);
            writer.Complete();
        }

        using var store = TeacherTokenStore.Open(path);
        var values = new Half[3];
        store.Read(0, values, []);
        Assert.Equal((Half[])[(Half)(-MathF.Log(2)), Half.MinValue, (Half)(-MathF.Log(2))], values);
    }

    [Fact]
    public void Teacher_tokens_follow_row_selection_and_concatenation_across_stores()
    {
        var data = Sequences(6);
        var other = Sequences(4, seed: 7);
        var first = Path.Join(_folder, "a.mctok");
        var second = Path.Join(_folder, "b.mctok");
        var logits = TeacherLogits(data);
        var otherLogits = TeacherLogits(other, seed: 8);
        WriteStore(first, data, logits, TeacherTokenForm.Full);
        WriteStore(second, other, otherLogits, TeacherTokenForm.Full);
        using var a = TeacherTokenStore.Open(first);
        using var b = TeacherTokenStore.Open(second);
        var joined = data.ConcatSequences(other);
        Assert.Null(joined.TeacherTokens);
        Assert.Equal([.. data.TokenLabels!, .. other.TokenLabels!], joined.TokenLabels!);
        var withTeacher = new TrainingSet(data.Inputs, null, null, data.Classes) { TokenLabels = data.TokenLabels, TeacherTokens = TeacherTokens.Of(a) }
            .ConcatSequences(new TrainingSet(other.Inputs, null, null, other.Classes) { TokenLabels = other.TokenLabels, TeacherTokens = TeacherTokens.Of(b) });

        var picked = withTeacher.Select([8, 1, 6]);

        using var scope = torch.NewDisposeScope();
        var (values, ids) = picked.TeacherTokens!.Batch([0, 1, 2]);
        Assert.Null(ids);
        var expected = new List<float>();
        foreach (var (set, stored, row) in new[] { (other, b, 2), (data, a, 1), (other, b, 0) })
        {
            var half = new Half[stored.TokensOf(row) * Vocabulary];
            stored.Read(row, half, []);
            expected.AddRange(half.Select(h => (float)h));
            Assert.Equal(set.TrainedTokens(row), stored.TokensOf(row));
        }

        Assert.Equal([expected.Count / Vocabulary, Vocabulary], values.shape);
        Assert.Equal(expected, ToArray(values));
        Assert.Equal((long[])[.. other.TokenLabels!.Skip(2 * 16).Take(16), .. data.TokenLabels!.Skip(16).Take(16), .. other.TokenLabels!.Take(16)], picked.TokenLabels!);
    }

    private static double[] LogSoftmax(ReadOnlySpan<float> logits)
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

        var result = new double[logits.Length];
        for (var i = 0; i < logits.Length; i++)
        {
            result[i] = logits[i] - max - Math.Log(sum);
        }

        return result;
    }
}
