using ModelCompression.Onnx;
using ModelCompression.Torch.Graph;
using ModelCompression.Torch.Native;
using ModelCompression.Torch.Training;
using TorchSharp;
using static ModelCompression.Torch.Tests.Graph.GraphTestSupport;
using static ModelCompression.Torch.Tests.Training.SequenceTestSupport;
using static ModelCompression.Torch.Tests.Training.TrainerTestSupport;

namespace ModelCompression.Torch.Tests.Training;

/// <summary>
/// Per-token training sets (labels [N, L]) through selection, splitting and batching, and the trainer running a tiny
/// causal decoder on them: next-token cross-entropy and token-level distillation from a stored teacher.
/// </summary>
[Collection(TrainerCollection.Name)]
public sealed class SequenceTrainingTests : IDisposable
{
    private readonly string _folder = TemporaryFolder();

    public SequenceTrainingTests() => TorchNativeLoader.EnsureLoaded();

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void Token_labels_follow_Select_and_SplitRandom_row_for_row()
    {
        var data = Sequences(10);
        var length = data.SequenceLength;
        long[] Row(TrainingSet set, int row) => set.TokenLabels!.AsSpan(row * length, length).ToArray();

        var picked = data.Select([7, 2, 7]);
        Assert.Equal([.. Row(data, 7), .. Row(data, 2), .. Row(data, 7)], picked.TokenLabels!);
        Assert.Equal(data.TrainedTokens(2), picked.TrainedTokens(1));
        using (var scope = torch.NewDisposeScope())
        {
            var names = new TrainableGraphInputs([DecoderConvention.InputIds, DecoderConvention.AttentionMask]);
            var ids = ToLongs(picked.Batch(names, [1])[DecoderConvention.InputIds]);
            var original = ToLongs(data.Batch(names, [2])[DecoderConvention.InputIds]);
            Assert.Equal(original, ids);
        }

        var (remainder, split) = data.SplitRandom(0.3, seed: 4);
        Assert.Equal((7, 3), (remainder.Count, split.Count));
        var rows = Enumerable.Range(0, 10).Select(r => Row(data, r)).ToList();
        var seen = Enumerable.Range(0, 7).Select(r => Row(remainder, r)).Concat(Enumerable.Range(0, 3).Select(r => Row(split, r))).ToList();
        Assert.All(seen, r => Assert.Contains(rows, o => o.SequenceEqual(r)));
        Assert.Equal(rows.Sum(r => r.Count(l => l != TrainingSet.NoLabel)), seen.Sum(r => r.Count(l => l != TrainingSet.NoLabel)));
    }

    [Fact]
    public void Bad_token_labels_are_refused_with_the_sequence_and_position()
    {
        long[] ids = [1, 2, 3, 4, 1, 2, 3, 4];
        var inputs = new[] { InputArray.Int64(DecoderConvention.InputIds, ids, [4]) };
        long[] labels = [2, 3, 4, -100, 2, 3, 9, -100];

        var error = Assert.Throws<ArgumentException>(() => new TrainingSet(inputs, null, null, 5) { TokenLabels = labels });
        Assert.Contains("Sequence 1, position 2: label 9", error.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new TrainingSet(inputs, null, null, 5) { TokenLabels = labels[..6] });
        Assert.Throws<ArgumentException>(() => new TrainingSet([InputArray.Float("x", new float[8], [4])], null, null, 5) { TokenLabels = [.. labels.Select(l => l == 9 ? 1 : l)] });
        Assert.Contains("ConcatSequences", Assert.Throws<ArgumentException>(() => Sequences(2).WithUnlabelled(Sequences(2))).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_batch_is_cut_to_its_longest_labelled_prefix_and_gets_position_ids_from_the_mask()
    {
        // Two right-padded rows and a left-padded one, whose positions start at 0 on its first token.
        long[] ids = [5, 6, 7, 8, 0, 0, /* */ 5, 6, 0, 0, 0, 0, /* */ 0, 5, 6, 7, 0, 0];
        long[] mask = [1, 1, 1, 1, 0, 0, /* */ 1, 1, 0, 0, 0, 0, /* */ 0, 1, 1, 1, 0, 0];
        long[] labels = [-100, 7, 8, -100, -100, -100, /* */ 6, -100, -100, -100, -100, -100, /* */ -100, 6, -100, -100, -100, -100];
        var data = new TrainingSet([InputArray.Int64(DecoderConvention.InputIds, ids, [6]), InputArray.Int64(DecoderConvention.AttentionMask, mask, [6])], null, null, 10)
        {
            TokenLabels = labels,
        };
        var names = new TrainableGraphInputs([DecoderConvention.InputIds, DecoderConvention.AttentionMask, DecoderConvention.PositionIds]);
        using var scope = torch.NewDisposeScope();

        var both = data.Batch(names, [0, 1]);
        Assert.Equal(new long[] { 2, 3 }, both[DecoderConvention.InputIds].shape);
        Assert.Equal([5, 6, 7, 5, 6, 0], ToLongs(both[DecoderConvention.InputIds]));
        Assert.Equal([0, 1, 2, 0, 1, 1], ToLongs(both[DecoderConvention.PositionIds]));
        Assert.Equal([0, 0, 0, 1], ToLongs(data.Batch(names, [2, 1])[DecoderConvention.PositionIds]));
        var second = data.Batch(names, [1]);
        Assert.Equal(new long[] { 1, 1 }, second[DecoderConvention.PositionIds].shape);
        Assert.Equal([-100, 7, 8, 6, -100, -100], data.BatchTokenLabels([0, 1], 3));
        // Without an attention mask, positions count from 0.
        var idsOnly = new TrainingSet([InputArray.Int64(DecoderConvention.InputIds, ids, [6])], null, null, 10) { TokenLabels = labels };
        Assert.Equal([0, 1, 2, 0, 1, 2], ToLongs(idsOnly.Batch(new TrainableGraphInputs([DecoderConvention.InputIds, DecoderConvention.PositionIds]), [0, 1])[DecoderConvention.PositionIds]));
    }

    [Fact]
    public void A_tiny_decoder_learns_the_text_its_masked_loss_and_validation_perplexity_fall()
    {
        var data = Sequences(48);
        var validation = Sequences(16, seed: 2);
        using var scope = torch.NewDisposeScope();
        using var graph = TrainableGraph.Import(TinyDecoder());
        var before = LanguageModelObjective.Evaluate(graph, validation);

        var result = ClassificationTrainer.Train(graph, data, new LanguageModelObjective(0), new TrainingOptions(12, 8, 3e-2, Seed: 1), validation);

        var after = LanguageModelObjective.Evaluate(graph, validation);
        var losses = result.EpochLosses;
        Assert.True(losses[^1] < losses[0] * 0.6, $"epoch losses: {string.Join(", ", losses)}");
        var perplexities = result.ValidationAccuracies;
        Assert.True(perplexities[^1] < perplexities[0] && perplexities[0] < before.Perplexity, $"perplexity before {before.Perplexity}, per epoch: {string.Join(", ", perplexities)}");
        Assert.Equal(perplexities.Min(), result.BestValidationAccuracy);
        // The trainer's validation score is Evaluate's perplexity (the weights after the last epoch are the best's or equal).
        Assert.Equal(result.BestValidationAccuracy!.Value, after.Perplexity, 1e-9 * after.Perplexity);
        Assert.True(after.TokenAccuracy > before.TokenAccuracy + 0.2, $"token accuracy {before.TokenAccuracy} -> {after.TokenAccuracy}");
        Assert.Equal(Enumerable.Range(0, 16).Sum(validation.TrainedTokens), after.Tokens);
    }

    [Theory]
    [InlineData(TeacherTokenForm.Full, 0)]
    [InlineData(TeacherTokenForm.TopK, 4)]
    public void A_student_distilled_from_a_stored_teacher_moves_towards_it(TeacherTokenForm form, int k)
    {
        var data = Sequences(32);
        var path = Path.Join(_folder, "teacher.mctok");
        using var scope = torch.NewDisposeScope();
        // The teacher is a decoder of the same shape with a sharper head: its distributions are within the student's reach.
        using (var teacher = TrainableGraph.Import(TinyDecoder(seed: 11, headBound: 2.0)))
        {
            WriteStore(path, data, FullLogits(teacher, data), form, k);
        }

        using var store = TeacherTokenStore.Open(path);
        var distilled = new TrainingSet(data.Inputs, null, null, data.Classes) { TokenLabels = data.TokenLabels, TeacherTokens = TeacherTokens.Of(store) };
        using var graph = TrainableGraph.Import(TinyDecoder());

        var result = ClassificationTrainer.Train(graph, distilled, new LanguageModelObjective(1, 2), new TrainingOptions(10, 8, 3e-2, Seed: 1));

        Assert.Equal(form, distilled.TeacherTokens!.Form);
        var losses = result.EpochLosses;
        Assert.True(losses[^1] < losses[0] * 0.5, $"epoch losses (T^2 KL): {string.Join(", ", losses)}");
    }

    [Fact]
    public void A_sequence_run_resumes_bit_for_bit_but_not_from_a_checkpoint_of_another_teacher_form()
    {
        var data = Sequences(24);
        var full = Path.Join(_folder, "full.mctok");
        var topK = Path.Join(_folder, "topk.mctok");
        var logits = TeacherLogits(data);
        WriteStore(full, data, logits, TeacherTokenForm.Full);
        WriteStore(topK, data, logits, TeacherTokenForm.TopK, k: 3);
        using var fullStore = TeacherTokenStore.Open(full);
        using var topKStore = TeacherTokenStore.Open(topK);
        TrainingSet With(TeacherTokenStore store) => new(data.Inputs, null, null, data.Classes) { TokenLabels = data.TokenLabels, TeacherTokens = TeacherTokens.Of(store) };
        var objective = new LanguageModelObjective(0.5, 2);
        var checkpoints = Path.Join(_folder, "checkpoints");
        var options = new TrainingOptions(3, 8, 1e-2, Seed: 2);
        using var scope = torch.NewDisposeScope();

        Dictionary<string, float[]> straight;
        using (var graph = TrainableGraph.Import(TinyDecoder()))
        {
            ClassificationTrainer.Train(graph, With(fullStore), objective, options);
            straight = Weights(graph);
        }

        using (var graph = TrainableGraph.Import(TinyDecoder()))
        {
            using var stop = new CancellationTokenSource();
            Assert.ThrowsAny<OperationCanceledException>(() => ClassificationTrainer.Train(graph, With(fullStore), objective, options with { CheckpointDirectory = checkpoints }, progress: new StopAtEpoch(3, stop), cancellationToken: stop.Token));
        }

        CopyFolder(checkpoints, Path.Join(_folder, "copy"));
        using (var graph = TrainableGraph.Import(TinyDecoder()))
        {
            // A checkpoint of the full-form run is not the top-k run's: it starts over.
            var other = ClassificationTrainer.Train(graph, With(topKStore), objective, options with { CheckpointDirectory = Path.Join(_folder, "copy") });
            Assert.Equal(0, other.ResumedFromEpoch);
        }

        using (var graph = TrainableGraph.Import(TinyDecoder()))
        {
            var resumed = ClassificationTrainer.Train(graph, With(fullStore), objective, options with { CheckpointDirectory = checkpoints });
            Assert.Equal(2, resumed.ResumedFromEpoch);
            AssertBitIdentical(straight, Weights(graph));
        }
    }

    private static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from))
        {
            File.Copy(file, Path.Join(to, Path.GetFileName(file)));
        }
    }

    /// <summary>The teacher's logits at every position of every sequence, [N, L, V], from a forward pass over whole sequences.</summary>
    private static float[] FullLogits(TrainableGraph teacher, TrainingSet data)
    {
        var length = data.SequenceLength;
        var all = new float[data.Count * length * data.Classes];
        var names = new TrainableGraphInputs(teacher.InputNames);
        using var noGrad = torch.no_grad();
        for (var row = 0; row < data.Count; row++)
        {
            using var scope = torch.NewDisposeScope();
            var logits = ToArray(teacher.Forward(data.Batch(names, [row]))[DecoderConvention.Logits]);
            // The batch is cut to the row's labelled prefix; later positions are unlabelled and never read.
            logits.CopyTo(all, row * length * data.Classes);
        }

        return all;
    }

    private static long[] ToLongs(torch.Tensor tensor) => tensor.contiguous().data<long>().ToArray();
}
