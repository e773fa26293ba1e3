using ModelCompression.Diagnostics;
using ModelCompression.Generation;
using ModelCompression.Text;
using ModelCompression.Torch.Training;
using static ModelCompression.Core.Tests.Generation.ChatTrainSupport;

namespace ModelCompression.Core.Tests.Generation;

/// <summary>
/// The PyTorch fixture as a local teacher: its stored distributions at the trained positions equal the log-softmax of
/// <see cref="DecoderSession.Forward"/> on each whole sequence (fp16 and top-k), whatever the batching; another
/// tokenizer is MC2083, another vocabulary MC2085; the cache key follows its inputs.
/// </summary>
public sealed class TeacherTokenCacheTests : IDisposable
{
    private readonly TempDir _temp = new();
    private readonly DecoderSession _teacher = DecoderSession.Open(DecoderFixture.Cached, threads: 1);

    public void Dispose()
    {
        _teacher.Dispose();
        _temp.Dispose();
    }

    private static ChatTrainingSet Data() => ChatTrainingSet.Render(
        [Record("abcdefg", "hijk", 1), Record("1 2 3", " 4 5 6", 2), Record("Hello", ", world!", 3), Record("q", "rstu", 4), Record("The red fox", " jumps", 5)],
        Template());

    [Theory]
    [InlineData(TeacherTokenForm.Full, 0, 2)]
    [InlineData(TeacherTokenForm.Full, 0, 5)]
    [InlineData(TeacherTokenForm.TopK, 8, 3)]
    public void The_store_holds_the_teachers_log_softmax_at_the_trained_positions(TeacherTokenForm form, int k, int batchSize)
    {
        var data = Data();
        var path = _temp.File("teacher.tokens");

        TeacherTokenCache.Write(_teacher, data, path, form, k, batchSize);

        using var store = TeacherTokenStore.Open(path);
        Assert.Equal((data.Count, form, k, 257), (store.Count, store.Form, store.K, store.Vocabulary));
        var tokens = TeacherTokens.Of(store);
        var training = data.ToTrainingSet(tokens);
        var L = data.SequenceLength;
        var width = form == TeacherTokenForm.Full ? 257 : k;
        for (var row = 0; row < data.Count; row++)
        {
            Assert.Equal(training.TrainedTokens(row), tokens.TokensOf(row));
            // The reference: this row alone, unpadded, through ONNX Runtime.
            var length = data.AttentionMask.Slice(row * L, L).ToArray().Count(m => m == 1);
            var ids = data.InputIds.Slice(row * L, length).ToArray();
            var logits = _teacher.Forward(ids, [.. Enumerable.Repeat(1L, length)], [.. Enumerable.Range(0, length).Select(i => (long)i)], 1);
            var labels = data.Labels.Slice(row * L, L).ToArray();
            var half = new Half[tokens.TokensOf(row) * width];
            var storedTop = new int[form == TeacherTokenForm.Full ? 0 : tokens.TokensOf(row) * k];
            store.Read(row, half, storedTop);
            var stored = half.Select(h => (float)h).ToArray();
            var j = 0;
            for (var t = 0; t < length; t++)
            {
                if (labels[t] == TrainingSet.NoLabel)
                {
                    continue;
                }

                var expected = LogSoftmax(logits.AsSpan(t * 257, 257));
                if (form == TeacherTokenForm.Full)
                {
                    for (var v = 0; v < 257; v++)
                    {
                        // fp16 keeps 11 bits: a relative error below 2^-11, plus an absolute floor near 0.
                        Assert.True(Math.Abs(stored[(j * width) + v] - expected[v]) <= 1e-3 + (Math.Abs(expected[v]) / 1024), $"row {row} t {t} id {v}: {stored[(j * width) + v]} vs {expected[v]}");
                    }
                }
                else
                {
                    var top = Enumerable.Range(0, 257).OrderByDescending(v => expected[v]).Take(k).ToArray();
                    Assert.Equal(top, storedTop.Skip(j * k).Take(k));
                    Assert.All(Enumerable.Range(0, k), i => Assert.Equal(expected[top[i]], stored[(j * k) + i], 1e-3 + (Math.Abs(expected[top[i]]) / 1024)));
                }

                j++;
            }

            Assert.Equal(tokens.TokensOf(row), j);
        }
    }

    [Fact]
    public void Another_tokenizer_is_MC2083_naming_the_teacher_and_saying_only_sequence_level_applies()
    {
        var withMarkers = GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Byte, Specials: ["<|user|>"]));

        TeacherTokenCache.CheckSameTokenizer(Bytes(), Bytes(), DecoderFixture.Cached);
        var error = Assert.Throws<CompressionException>(() => TeacherTokenCache.CheckSameTokenizer(withMarkers, Bytes(), DecoderFixture.Cached));

        Assert.Equal(DiagnosticCodes.TeacherTokenizerMismatch, error.Code);
        Assert.Equal(DecoderFixture.Cached, error.Diagnostics[0].File);
        Assert.Contains("only sequence-level distillation", error.Message, StringComparison.Ordinal);
        var characters = GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Character), ["abc"]);
        Assert.Equal(DiagnosticCodes.TeacherTokenizerMismatch, Assert.Throws<CompressionException>(() => TeacherTokenCache.CheckSameTokenizer(characters, Bytes(), "t.onnx")).Code);
    }

    [Fact]
    public void A_teacher_over_another_vocabulary_is_MC2085_and_leaves_no_file()
    {
        var markers = new ChatTemplateOptions();
        var template = new ChatTemplate(markers, GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Byte, Specials: markers.Markers)));
        var data = ChatTrainingSet.Render([Record("abc", "cba", 1)], template);
        var path = _temp.File("teacher.tokens");

        var error = Assert.Throws<CompressionException>(() => TeacherTokenCache.Write(_teacher, data, path, TeacherTokenForm.Full));

        Assert.Equal(DiagnosticCodes.DecoderVocabularyMismatch, error.Code);
        Assert.Contains("257", error.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(_temp.Path));
    }

    [Fact]
    public void Sequences_longer_than_the_teachers_positions_are_MC2086()
    {
        // The fixture has 64 positions; the last answer token is predicted from position 71, so 72 positions are run.
        var data = ChatTrainingSet.Render([Record("abc", "cba", 1), Record("a", new string('z', 64), 2)], Template());

        var error = Assert.Throws<CompressionException>(() => TeacherTokenCache.Write(_teacher, data, _temp.File("t.tokens"), TeacherTokenForm.Full));

        Assert.Equal(DiagnosticCodes.DecoderSequenceTooLong, error.Code);
        Assert.Contains("64 positions", error.Message, StringComparison.Ordinal);
        Assert.Equal(72, data.LongestTrainedPrefix);
    }

    [Fact]
    public void The_cache_key_changes_with_each_of_its_inputs()
    {
        var bytes = Bytes();
        var key = TeacherTokenCache.Key("m", "d", bytes, Plain, TeacherTokenForm.TopK, 8);

        Assert.Equal(key, TeacherTokenCache.Key("m", "d", Bytes(), Plain with { }, TeacherTokenForm.TopK, 8));
        string[] others =
        [
            TeacherTokenCache.Key("m2", "d", bytes, Plain, TeacherTokenForm.TopK, 8),
            TeacherTokenCache.Key("m", "d2", bytes, Plain, TeacherTokenForm.TopK, 8),
            TeacherTokenCache.Key("m", "d", GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Byte, Specials: ["<|x|>"])), Plain, TeacherTokenForm.TopK, 8),
            TeacherTokenCache.Key("m", "d", bytes, Plain with { User = "U: {content}\n" }, TeacherTokenForm.TopK, 8),
            TeacherTokenCache.Key("m", "d", bytes, Plain, TeacherTokenForm.TopK, 16),
            TeacherTokenCache.Key("m", "d", bytes, Plain, TeacherTokenForm.Full, 0),
        ];
        Assert.Equal(others.Length + 1, others.Append(key).Distinct().Count());
        Assert.Equal(Data().ContentHash(), Data().ContentHash());
    }

    private static double[] LogSoftmax(ReadOnlySpan<float> logits)
    {
        var max = double.NegativeInfinity;
        foreach (var l in logits)
        {
            max = Math.Max(max, l);
        }

        var sum = 0.0;
        foreach (var l in logits)
        {
            sum += Math.Exp(l - max);
        }

        var result = new double[logits.Length];
        for (var i = 0; i < logits.Length; i++)
        {
            result[i] = logits[i] - max - Math.Log(sum);
        }

        return result;
    }
}
