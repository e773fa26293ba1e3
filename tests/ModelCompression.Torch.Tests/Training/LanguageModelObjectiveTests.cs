using ModelCompression.Onnx;
using ModelCompression.Torch.Native;
using ModelCompression.Torch.Training;
using TorchSharp;
using static ModelCompression.Torch.Tests.Graph.GraphTestSupport;
using static ModelCompression.Torch.Tests.Training.SequenceTestSupport;
using static ModelCompression.Torch.Tests.Training.TrainerTestSupport;
using static TorchSharp.torch;

namespace ModelCompression.Torch.Tests.Training;

/// <summary>
/// The language-model objective on hand-checkable tensors: masked next-token cross-entropy, the temperature-scaled
/// forward KL to full and top-k teacher distributions, and its gradients.
/// </summary>
public sealed class LanguageModelObjectiveTests : IDisposable
{
    private readonly string _folder = TemporaryFolder();
    private readonly List<TeacherTokenStore> _stores = [];

    public LanguageModelObjectiveTests() => TorchNativeLoader.EnsureLoaded();

    public void Dispose()
    {
        _stores.ForEach(s => s.Dispose());
        Directory.Delete(_folder, recursive: true);
    }

    [Fact]
    public void Kd_ratio_0_is_the_cross_entropy_of_the_labelled_tokens_bit_for_bit()
    {
        using var scope = torch.NewDisposeScope();
        var data = Sequences(6);
        int[] rows = [3, 0, 5];
        var width = data.BatchWidth(rows);
        var logits = torch.tensor(RandomFloats(rows.Length * width * Vocabulary, 2, 3.0), [rows.Length, width, Vocabulary]);
        ITrainingObjective objective = new LanguageModelObjective(0);

        var loss = objective.Loss(logits, objective.Targets(data, rows)).item<float>();

        var (labels, selected) = LabelledLogits(data, rows, width, logits);
        var expected = nn.functional.cross_entropy(selected, torch.tensor(labels)).item<float>();
        Assert.Equal(BitConverter.SingleToInt32Bits(expected), BitConverter.SingleToInt32Bits(loss));
        // The same as torch's own ignore_index over every position (up to summation order).
        var flat = torch.tensor(data.BatchTokenLabels(rows, width));
        var ignoring = nn.functional.cross_entropy(logits.reshape(-1, Vocabulary), flat, ignore_index: TrainingSet.NoLabel).item<float>();
        Assert.Equal(ignoring, loss, 5);
    }

    [Fact]
    public void Logits_at_unlabelled_positions_change_neither_the_loss_nor_the_gradients()
    {
        using var scope = torch.NewDisposeScope();
        var data = WithStore(Sequences(6), TeacherTokenForm.Full);
        int[] rows = [1, 4, 2];
        var width = data.BatchWidth(rows);
        ITrainingObjective objective = new LanguageModelObjective(0.5, 2);
        var values = RandomFloats(rows.Length * width * Vocabulary, 3, 3.0);
        var changed = (float[])values.Clone();
        var labels = data.BatchTokenLabels(rows, width);
        var masked = 0;
        for (var p = 0; p < labels.Length; p++)
        {
            if (labels[p] == TrainingSet.NoLabel)
            {
                masked++;
                for (var v = 0; v < Vocabulary; v++)
                {
                    changed[(p * Vocabulary) + v] = (v * 7 % 5) * 40f; // far from anything the labelled tokens see
                }
            }
        }

        Assert.True(masked > 3, "The rows need prompt and padding positions.");
        var (loss, gradient) = LossAndGradient(objective, data, rows, values, width);
        var (loss2, gradient2) = LossAndGradient(objective, data, rows, changed, width);

        Assert.Equal(BitConverter.SingleToInt32Bits(loss), BitConverter.SingleToInt32Bits(loss2));
        Assert.Equal(gradient, gradient2);
        for (var p = 0; p < labels.Length; p++)
        {
            Assert.True(labels[p] != TrainingSet.NoLabel || gradient.AsSpan(p * Vocabulary, Vocabulary).IndexOfAnyExcept(0f) < 0, $"Position {p} has no label but a gradient.");
        }
    }

    [Theory]
    [InlineData(TeacherTokenForm.Full, 0, 1.0, 0.5)]
    [InlineData(TeacherTokenForm.Full, 0, 2.0, 0.3)]
    [InlineData(TeacherTokenForm.TopK, 4, 2.0, 0.7)]
    [InlineData(TeacherTokenForm.TopK, 1, 0.5, 1.0)]
    public void The_loss_is_the_hand_computed_mix_of_cross_entropy_and_temperature_scaled_forward_kl(TeacherTokenForm form, int k, double temperature, double ratio)
    {
        using var scope = torch.NewDisposeScope();
        var data = WithStore(Sequences(5), form, k);
        int[] rows = [4, 1];
        var width = data.BatchWidth(rows);
        var values = RandomFloats(rows.Length * width * Vocabulary, 4, 3.0);
        ITrainingObjective objective = new LanguageModelObjective(ratio, temperature);

        var loss = objective.Loss(torch.tensor(values, [rows.Length, width, Vocabulary]), objective.Targets(data, rows)).item<float>();

        // By hand, in double, from the store's own fp16 values (what the objective reads).
        var store = TeacherTokenStore.Open(Path.Join(_folder, "teacher.mctok"));
        using var _ = store;
        double ce = 0, kl = 0;
        var tokens = 0;
        for (var i = 0; i < rows.Length; i++)
        {
            var stored = new Half[store.TokensOf(rows[i]) * (k == 0 ? Vocabulary : k)];
            var ids = new int[k == 0 ? 0 : store.TokensOf(rows[i]) * k];
            store.Read(rows[i], stored, ids);
            var j = 0;
            for (var t = 0; t < width; t++)
            {
                var label = data.TokenLabels![(rows[i] * data.SequenceLength) + t];
                if (label == TrainingSet.NoLabel)
                {
                    continue;
                }

                var s = values.AsSpan(((i * width) + t) * Vocabulary, Vocabulary).ToArray().Select(x => (double)x).ToArray();
                ce -= LogSoftmax(s, 1)[label];
                var student = LogSoftmax(s, temperature);
                var width2 = k == 0 ? Vocabulary : k;
                var teacher = LogSoftmax([.. stored.AsSpan(j * width2, width2).ToArray().Select(h => (double)h)], temperature);
                for (var e = 0; e < width2; e++)
                {
                    var id = k == 0 ? e : ids[(j * k) + e];
                    kl += Math.Exp(teacher[e]) * (teacher[e] - student[id]);
                }

                j++;
                tokens++;
            }
        }

        var expected = ((1 - ratio) * ce / tokens) + (ratio * temperature * temperature * kl / tokens);
        Assert.Equal(expected, loss, 1e-5 * Math.Max(1, Math.Abs(expected)));
        Assert.True(kl > 0);
    }

    [Theory]
    [InlineData(TeacherTokenForm.Full, 0)]
    [InlineData(TeacherTokenForm.TopK, 3)]
    public void The_gradient_matches_central_differences(TeacherTokenForm form, int k)
    {
        using var scope = torch.NewDisposeScope();
        var data = WithStore(Sequences(4), form, k);
        int[] rows = [2, 0];
        var width = data.BatchWidth(rows);
        var objective = new LanguageModelObjective(0.6, 1.5);
        var targets = objective.Targets(data, rows);
        var values = RandomFloats(rows.Length * width * Vocabulary, 5, 2.0).Select(x => (double)x).ToArray();
        var logits = torch.tensor(values, [rows.Length, width, Vocabulary], requires_grad: true);
        objective.Loss(logits, targets).backward();
        var gradient = ToDoubles(logits.grad!);

        double Loss(double[] x)
        {
            using var inner = torch.NewDisposeScope();
            return objective.Loss(torch.tensor(x, [rows.Length, width, Vocabulary]), targets).item<double>();
        }

        var random = new Random(9);
        const double Step = 1e-6;
        for (var n = 0; n < 60; n++)
        {
            var i = random.Next(values.Length);
            var plus = (double[])values.Clone();
            var minus = (double[])values.Clone();
            plus[i] += Step;
            minus[i] -= Step;
            var numeric = (Loss(plus) - Loss(minus)) / (2 * Step);
            Assert.True(Math.Abs(numeric - gradient[i]) < 1e-6, $"Element {i}: analytic {gradient[i]}, numeric {numeric}.");
        }
    }

    [Fact]
    public void A_batch_without_labelled_tokens_has_a_zero_loss_that_still_backpropagates()
    {
        using var scope = torch.NewDisposeScope();
        var labels = Enumerable.Repeat(TrainingSet.NoLabel, 2 * 4).ToArray();
        var data = new TrainingSet([InputArray.Int64(DecoderConvention.InputIds, new long[8], [4])], null, null, 3) { TokenLabels = labels };
        var logits = torch.ones([2, 1, 3], requires_grad: true);
        ITrainingObjective objective = new LanguageModelObjective(0);

        var loss = objective.Loss(logits, objective.Targets(data, [0, 1]));
        loss.backward();

        Assert.Equal(0f, loss.item<float>());
        Assert.Equal(new float[6], ToArray(logits.grad!));
    }

    [Fact]
    public void CheckData_refuses_a_store_written_for_other_data_and_a_set_without_token_labels()
    {
        var data = Sequences(4);
        var other = Sequences(4, seed: 3);
        var path = Path.Join(_folder, "other.mctok");
        WriteStore(path, other, TeacherLogits(other), TeacherTokenForm.TopK, k: 2);
        using var store = TeacherTokenStore.Open(path);
        var mismatched = new TrainingSet(data.Inputs, null, null, data.Classes) { TokenLabels = data.TokenLabels, TeacherTokens = TeacherTokens.Of(store) };

        var error = Assert.Throws<ArgumentException>(() => new LanguageModelObjective(0.5).CheckData(mismatched, null));
        Assert.Contains("written for other data", error.Message, StringComparison.Ordinal);
        Assert.Contains("needs per-token labels", Assert.Throws<ArgumentException>(() => new LanguageModelObjective(0).CheckData(Synthetic(4), null)).Message, StringComparison.Ordinal);
        Assert.Contains("has none", Assert.Throws<ArgumentException>(() => new LanguageModelObjective(0.5).CheckData(data, null)).Message, StringComparison.Ordinal);
        new LanguageModelObjective(0).CheckData(data, other);

        var wider = Path.Join(_folder, "wider.mctok");
        using (var writer = TeacherTokenWriter.Create(wider, TeacherTokenForm.TopK, Vocabulary + 1, k: 2))
        {
            for (var row = 0; row < data.Count; row++)
            {
                var tokens = data.TrainedTokens(row);
                writer.AppendTopK(new int[tokens * 2], new float[tokens * 2]);
            }

            writer.Complete();
        }

        using var widerStore = TeacherTokenStore.Open(wider);
        var otherVocabulary = new TrainingSet(data.Inputs, null, null, data.Classes) { TokenLabels = data.TokenLabels, TeacherTokens = TeacherTokens.Of(widerStore) };
        Assert.Contains("needs one vocabulary", Assert.Throws<ArgumentException>(() => new LanguageModelObjective(0.5).CheckData(otherVocabulary, null)).Message, StringComparison.Ordinal);
    }

    /// <summary>The labels of the labelled tokens of <paramref name="rows"/> and their logits, selected by hand.</summary>
    private static (long[] Labels, Tensor Logits) LabelledLogits(TrainingSet data, int[] rows, int width, Tensor logits)
    {
        var labels = new List<long>();
        var picked = new List<Tensor>();
        for (var i = 0; i < rows.Length; i++)
        {
            for (var t = 0; t < width; t++)
            {
                var label = data.TokenLabels![(rows[i] * data.SequenceLength) + t];
                if (label != TrainingSet.NoLabel)
                {
                    labels.Add(label);
                    picked.Add(logits[i, t]);
                }
            }
        }

        return ([.. labels], torch.stack(picked));
    }

    private static (float Loss, float[] Gradient) LossAndGradient(ITrainingObjective objective, TrainingSet data, int[] rows, float[] values, int width)
    {
        using var scope = torch.NewDisposeScope();
        var logits = torch.tensor(values, [rows.Length, width, Vocabulary], requires_grad: true);
        var loss = objective.Loss(logits, objective.Targets(data, rows));
        loss.backward();
        return (loss.item<float>(), ToArray(logits.grad!));
    }

    private TrainingSet WithStore(TrainingSet data, TeacherTokenForm form, int k = 0)
    {
        var path = Path.Join(_folder, "teacher.mctok");
        WriteStore(path, data, TeacherLogits(data), form, k);
        // The set reads the store for the test's lifetime; the folder goes with the test class.
        var store = TeacherTokenStore.Open(path);
        _stores.Add(store);
        return new TrainingSet(data.Inputs, null, null, data.Classes) { TokenLabels = data.TokenLabels, TeacherTokens = TeacherTokens.Of(store) };
    }

    private static double[] LogSoftmax(double[] logits, double temperature)
    {
        var scaled = logits.Select(x => x / temperature).ToArray();
        var max = scaled.Max();
        var log = max + Math.Log(scaled.Sum(x => Math.Exp(x - max)));
        return [.. scaled.Select(x => x - log)];
    }
}
