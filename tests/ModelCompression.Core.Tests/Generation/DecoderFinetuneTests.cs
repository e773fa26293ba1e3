using ModelCompression.Diagnostics;
using ModelCompression.Generation;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Text;
using ModelCompression.Torch.Training;
using ModelCompression.Training;
using Xunit.Abstractions;
using static ModelCompression.Core.Tests.Generation.ChatTrainSupport;

namespace ModelCompression.Core.Tests.Generation;

/// <summary>
/// A decoder fine-tuned on chat data through the one training flow: the loss falls, validation perplexity picks the
/// lowest epoch and stops early, the written-back graph keeps its cache and generates; on "reverse this word" it answers
/// held-out prompts that the untrained model does not; token-level distillation from the PyTorch fixture brings the
/// student closer to the teacher than the labels alone.
/// </summary>
public sealed class DecoderFinetuneTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDir _temp = new();

    public void Dispose() => _temp.Dispose();

    private static TrainingSettings Settings(int epochs, int batchSize = 16) => new() { Epochs = epochs, BatchSize = batchSize, LearningRate = 3e-3, Seed = 4 };

    [Fact]
    public void Fine_tuning_lowers_the_loss_keeps_the_lowest_perplexity_and_generates_with_the_cache()
    {
        var template = Template();
        var train = ChatTrainingSet.Render(Reversals(48, seed: 1), template);
        var validation = ChatTrainingSet.Render(Reversals(16, seed: 1, skip: 48), template);
        var model = TinyDecoder(width: 32, layers: 1);
        var job = new DecoderFinetuneJob("finetune", model, "tiny.onnx", train, new LanguageModelObjective(0), Settings(4)) { Validation = validation };

        var trained = DecoderFinetune.Run(job);

        var result = trained.Result;
        output.WriteLine($"losses {string.Join(", ", result.EpochLosses.Select(l => l.ToString("F3")))}; perplexity {string.Join(", ", result.ValidationAccuracies.Select(p => p.ToString("F2")))}");
        Assert.True(result.EpochLosses[^1] < result.EpochLosses[0] * 0.8, "the loss falls");
        Assert.Equal(4, result.ValidationAccuracies.Count);
        // Perplexity is lower-is-better: the best epoch is the lowest one, and its weights are the ones written back.
        Assert.Equal(result.ValidationAccuracies.Min(), result.BestValidationAccuracy);
        Assert.Equal(result.ValidationAccuracies.ToList().IndexOf(result.ValidationAccuracies.Min()) + 1, result.BestEpoch);
        Assert.True(result.ValidationAccuracies.Min() < 257, "better than uniform over the vocabulary");
        Assert.Equal(DecoderSignature.Read(model, "a"), DecoderSignature.Read(trained.Model, "b"));
        Assert.True(DecoderSignature.Read(trained.Model, "b").HasCache);
        Assert.Equal(4, Answers(trained.Model, Reversals(4, seed: 1, skip: 48), _temp).Count);

        // No epoch counts as better by 1000 perplexity: patience 1 stops after the second epoch and keeps the first.
        var early = DecoderFinetune.Run(job with { Settings = Settings(4) with { EarlyStoppingPatience = 1, EarlyStoppingMinDelta = 1000 } });
        var stopped = early.Result;
        Assert.True(stopped.StoppedEarly);
        Assert.Equal((2, 1), (stopped.ValidationAccuracies.Count, stopped.BestEpoch));
        // The first epoch's weights are the ones written back: ONNX Runtime measures its perplexity, not the second's.
        var written = Perplexity(early.Model, validation);
        output.WriteLine($"early stopped: perplexity {string.Join(", ", stopped.ValidationAccuracies.Select(p => p.ToString("F3")))}, written back {written:F3}");
        Assert.Equal(stopped.ValidationAccuracies[0], written, stopped.ValidationAccuracies[0] * 1e-3);
        Assert.True(Math.Abs(stopped.ValidationAccuracies[1] - written) > 1);
    }

    [Fact]
    public void A_model_over_another_vocabulary_is_MC2085_and_data_past_its_positions_MC2086()
    {
        var markers = new ChatTemplateOptions();
        var template = new ChatTemplate(markers, GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Byte, Specials: markers.Markers)));
        var data = ChatTrainingSet.Render([Record("abc", "cba", 1)], template);

        var error = Assert.Throws<CompressionException>(() => DecoderFinetune.Run(new DecoderFinetuneJob("finetune", TinyDecoder(), "student.onnx", data, new LanguageModelObjective(0), Settings(1))));

        Assert.Equal(DiagnosticCodes.DecoderVocabularyMismatch, error.Code);
        Assert.Equal("student.onnx", error.Diagnostics[0].File);

        // The tiny decoder has 32 positions.
        var tooLong = ChatTrainingSet.Render([Record("abc", new string('z', 40), 1)], Template());
        var length = Assert.Throws<CompressionException>(() => DecoderFinetune.Run(new DecoderFinetuneJob("finetune", TinyDecoder(), "student.onnx", tooLong, new LanguageModelObjective(0), Settings(1))));
        Assert.Equal(DiagnosticCodes.DecoderSequenceTooLong, length.Code);
    }

    [Fact]
    public void A_tiny_decoder_learns_to_reverse_held_out_words()
    {
        var template = Template();
        var train = ChatTrainingSet.Render(Reversals(180, seed: 2), template);
        var heldOut = Reversals(36, seed: 2, skip: 180);
        var model = TinyDecoder();

        // 20 epochs of 12 steps: about 4 s of training here, which reached 100% held-out (40 epochs did too).
        var before = Answers(model, heldOut, _temp, "untrained.onnx");
        var trained = DecoderFinetune.Run(new DecoderFinetuneJob("finetune", model, "tiny.onnx", train, new LanguageModelObjective(0), Settings(20)));
        var after = Answers(trained.Model, heldOut, _temp);

        double Rate(List<string> answers) => answers.Zip(heldOut).Count(p => p.First == p.Second.Answer) / (double)heldOut.Count;
        output.WriteLine($"held-out exact match {Rate(before):P0} -> {Rate(after):P0}; loss {trained.Result.EpochLosses[0]:F3} -> {trained.Result.EpochLosses[^1]:F3} in {trained.Result.Duration.TotalSeconds:F1} s");
        output.WriteLine(string.Join(", ", heldOut.Zip(after).Take(8).Select(p => $"{p.First.Prompt[0].Content}->{p.Second}")));
        Assert.Equal(0, Rate(before));
        Assert.True(Rate(after) >= 0.8, $"exact match {Rate(after):P0}");
    }

    [Fact]
    public void Token_level_distillation_brings_the_student_closer_to_the_teacher()
    {
        var template = Template();
        var data = ChatTrainingSet.Render(
            [.. Reversals(24, seed: 3), Record("abcdefg", "hijk", 1), Record("1 2 3 4", " 5 6 7", 2), Record("Hello", ", world!", 3), Record("The red fox", " jumps over", 4)],
            template);
        var path = _temp.File("teacher.tokens");
        using (var teacher = DecoderSession.Open(DecoderFixture.Cached, threads: 1))
        {
            TeacherTokenCache.Write(teacher, data, path, TeacherTokenForm.Full);
        }

        using var store = TeacherTokenStore.Open(path);
        var teacherTokens = TeacherTokens.Of(store);
        var model = TinyDecoder(width: 32, layers: 1);
        ModelProto Train(double kdRatio) => DecoderFinetune.Run(
            new DecoderFinetuneJob("distill", model, "tiny.onnx", data, new LanguageModelObjective(kdRatio), Settings(6, batchSize: 8)) { Teacher = teacherTokens }).Model;

        var labelsOnly = MeanKl(Train(0), data, store);
        var distilled = MeanKl(Train(0.5), data, store);

        output.WriteLine($"KL(teacher || student) per trained token: kd_ratio 0 {labelsOnly:F3}, kd_ratio 0.5 {distilled:F3}");
        Assert.True(distilled < labelsOnly * 0.9, $"{distilled:F3} vs {labelsOnly:F3}");
    }

    /// <summary>exp of the mean negative log-likelihood of the trained tokens, the model run in ONNX Runtime row by row.</summary>
    private double Perplexity(ModelProto model, ChatTrainingSet data)
    {
        var path = _temp.File($"model-{Guid.NewGuid():N}.onnx");
        OnnxModelFile.Save(model, path);
        using var session = DecoderSession.Open(path, threads: 1);
        var L = data.SequenceLength;
        double nll = 0;
        long tokens = 0;
        for (var row = 0; row < data.Count; row++)
        {
            var length = data.AttentionMask.Slice(row * L, L).ToArray().Count(m => m == 1);
            var logits = session.Forward(data.InputIds.Slice(row * L, length).ToArray(), [.. Enumerable.Repeat(1L, length)], [.. Enumerable.Range(0, length).Select(i => (long)i)], 1);
            for (var t = 0; t < length; t++)
            {
                var label = data.Labels[(row * L) + t];
                if (label == TrainingSet.NoLabel)
                {
                    continue;
                }

                var at = logits.AsSpan(t * 257, 257).ToArray();
                var max = at.Max();
                nll -= at[label] - max - Math.Log(at.Sum(l => Math.Exp(l - max)));
                tokens++;
            }
        }

        return Math.Exp(nll / tokens);
    }

    /// <summary>The mean over trained tokens of KL(teacher || student), the student run in ONNX Runtime row by row.</summary>
    private double MeanKl(ModelProto student, ChatTrainingSet data, TeacherTokenStore store)
    {
        var path = _temp.File($"student-{Guid.NewGuid():N}.onnx");
        OnnxModelFile.Save(student, path);
        using var session = DecoderSession.Open(path, threads: 1);
        var L = data.SequenceLength;
        double sum = 0;
        long tokens = 0;
        for (var row = 0; row < data.Count; row++)
        {
            var length = data.AttentionMask.Slice(row * L, L).ToArray().Count(m => m == 1);
            var logits = session.Forward(data.InputIds.Slice(row * L, length).ToArray(), [.. Enumerable.Repeat(1L, length)], [.. Enumerable.Range(0, length).Select(i => (long)i)], 1);
            var teacher = new Half[store.TokensOf(row) * 257];
            store.Read(row, teacher, []);
            var labels = data.Labels.Slice(row * L, L);
            for (int t = 0, j = 0; t < length; t++)
            {
                if (labels[t] == TrainingSet.NoLabel)
                {
                    continue;
                }

                var row_ = logits.AsSpan(t * 257, 257);
                var max = double.NegativeInfinity;
                foreach (var l in row_)
                {
                    max = Math.Max(max, l);
                }

                var logSum = Math.Log(row_.ToArray().Sum(l => Math.Exp(l - max))) + max;
                for (var v = 0; v < 257; v++)
                {
                    var logT = (double)teacher[(j * 257) + v];
                    sum += Math.Exp(logT) * (logT - (row_[v] - logSum));
                }

                j++;
                tokens++;
            }
        }

        return sum / tokens;
    }
}
