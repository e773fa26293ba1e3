using ModelCompression.Architectures;
using ModelCompression.Pruning;
using ModelCompression.Torch.Graph;
using ModelCompression.Torch.Native;
using ModelCompression.Torch.Training;
using TorchSharp;
using static ModelCompression.Core.Tests.Architectures.ArchitectureTestSupport;
using static ModelCompression.Core.Tests.Pruning.PruningTestSupport;

namespace ModelCompression.Core.Tests.Pruning;

public sealed class MaskedTrainingTests
{
    public MaskedTrainingTests() => TorchNativeLoader.EnsureLoaded();

    [Fact]
    public void The_trainer_calls_the_hook_after_every_step_without_gradients()
    {
        var model = MlpBuilder.Build(6, [8], 3, Activation.Relu, seed: 1);
        using var graph = TrainableGraph.Import(model);
        var calls = new List<(long Step, bool GradEnabled)>();

        ClassificationTrainer.Train(
            graph,
            Data(50),
            new DistillationLoss(0, 1),
            new TrainingOptions(Epochs: 2, BatchSize: 20, LearningRate: 1e-2, Seed: 1) { AfterOptimizerStep = step => calls.Add((step, torch.is_grad_enabled())) });

        // 50 samples in batches of 20: 3 steps per epoch.
        Assert.Equal([1L, 2, 3, 4, 5, 6], calls.Select(c => c.Step));
        Assert.All(calls, c => Assert.False(c.GradEnabled));
        Assert.True(torch.is_grad_enabled());
    }

    [Fact]
    public void Masks_follow_the_cubic_schedule_and_pruned_weights_stay_zero_while_training()
    {
        var model = MlpBuilder.Build(6, [8], 3, Activation.Relu, seed: 1);
        using var graph = TrainableGraph.Import(model);
        var weights = new[] { graph.ParametersByName["fc1.weight"], graph.ParametersByName["fc2.weight"] };
        var schedule = new CubicSparsitySchedule(0, 0.75, 8);
        using var masked = new MaskedWeights(weights, (values, s) => [.. values.Select(v => MagnitudeMasks.Layer(v, s))], schedule.At);
        masked.Enforce(schedule.At(0));
        var zerosAfterStep = new List<int>();
        var prunedEver = new HashSet<int>();
        var regrown = false;

        ClassificationTrainer.Train(
            graph,
            Data(100),
            new DistillationLoss(0, 1),
            new TrainingOptions(Epochs: 3, BatchSize: 25, LearningRate: 5e-2, Seed: 1)
            {
                AfterOptimizerStep = step =>
                {
                    masked.AfterStep(step);
                    var values = weights[0].detach().data<float>().ToArray();
                    zerosAfterStep.Add(values.Count(v => v == 0));
                    regrown |= prunedEver.Any(i => values[i] != 0);
                    prunedEver.UnionWith(Enumerable.Range(0, values.Length).Where(i => values[i] == 0));
                },
            });

        // 12 steps; the 8-step ramp updates every step: round(48 x s_t) of fc1's 48 weights are zero after step t.
        var expected = Enumerable.Range(1, 12).Select(t => (int)MagnitudeMasks.PrunedCount(48, schedule.At(t))).ToArray();
        Assert.Equal(expected, zerosAfterStep);
        Assert.Equal(36, expected[^1]);
        Assert.False(regrown, "a pruned weight came back");
        Assert.Equal(0.75, masked.Sparsity);
    }

    [Fact]
    public void Taylor_scores_are_zero_for_units_nobody_reads()
    {
        var model = MlpBuilder.Build(6, [8], 3, Activation.Relu, seed: 4);
        int[] unread = [0, 5];
        Update(model, "fc2.weight", (i, v) => unread.Contains(i % 8) ? 0 : v);
        var structure = Assert.Single(StructureFinder.Find(model, NameFilter.None).Structures);
        var data = Data(64);

        var scores = TaylorScores.Compute(
            model,
            [structure],
            new ScoringData(RandomFloats(64 * 6, 3), [6], data.Labels!, null, 3),
            new DistillationLoss(0, 1),
            batches: 4,
            batchSize: 16,
            seed: 1)[0];

        Assert.Equal(unread, Enumerable.Range(0, 8).Where(j => scores[j] == 0));
        var kept = StructuredPruner.KeepHighest(scores, 0.25);
        var pruned = StructuredPruner.Apply(model, [new PrunedStructure(structure, kept)]);
        var inputs = new Dictionary<string, (Array, long[])> { ["input"] = (RandomFloats(4 * 6, 5), [4, 6]) };
        AssertClose(RunOrt(model, inputs).Values, RunOrt(pruned, inputs).Values, 1e-6);
    }

    private static TrainingSet Data(int count)
    {
        var inputs = RandomFloats(count * 6, 7);
        var labels = Enumerable.Range(0, count).Select(i => (long)(inputs[i * 6] > 0 ? (inputs[(i * 6) + 1] > 0 ? 2 : 1) : 0)).ToArray();
        return new TrainingSet(inputs, [6], labels, null, 3);
    }
}
