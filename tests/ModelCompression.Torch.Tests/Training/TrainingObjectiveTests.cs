using System.Globalization;
using ModelCompression.Architectures;
using ModelCompression.Onnx.Proto;
using ModelCompression.Torch.Graph;
using ModelCompression.Torch.Native;
using ModelCompression.Torch.Training;
using TorchSharp;
using static ModelCompression.Torch.Tests.Graph.GraphTestSupport;
using static ModelCompression.Torch.Tests.Training.TrainerTestSupport;
using static TorchSharp.torch;

namespace ModelCompression.Torch.Tests.Training;

/// <summary>
/// The trainer asks an <see cref="ITrainingObjective"/> for the loss and the validation score. Classification's
/// (<see cref="DistillationLoss"/>) must give exactly the numbers the trainer computed itself before, and
/// regression's (<see cref="RegressionLoss"/>) must be the MSE it claims to be.
/// </summary>
[Collection(TrainerCollection.Name)]
public sealed class TrainingObjectiveTests
{
    public TrainingObjectiveTests() => TorchNativeLoader.EnsureLoaded();

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.5)]
    [InlineData(1.0)]
    public void DistillationLoss_through_the_interface_gives_the_loss_of_Compute_bit_for_bit(double alpha)
    {
        using var scope = torch.NewDisposeScope();
        var data = Synthetic(40);
        var loss = new DistillationLoss(alpha, 3);
        var unlabelled = data.WithUnlabelled(Synthetic(10, seed: 9));
        int[] rows = [3, 41, 7, 45, 0, 12];
        var logits = torch.tensor(RandomFloats(rows.Length * 4, 11), [rows.Length, 4]);

        ITrainingObjective objective = loss;
        var viaInterface = objective.Loss(logits, objective.Targets(unlabelled, rows)).item<float>();

        var labels = alpha >= 1 ? null : torch.tensor(rows.Select(r => unlabelled.Labels![r]).ToArray(), [rows.Length]);
        var teacher = alpha <= 0 ? null : torch.tensor(rows.SelectMany(r => unlabelled.TeacherLogits!.Skip(r * 4).Take(4)).ToArray(), [rows.Length, 4]);
        var direct = loss.Compute(logits, labels, teacher).item<float>();

        Assert.Equal(BitConverter.SingleToInt32Bits(direct), BitConverter.SingleToInt32Bits(viaInterface));
    }

    /// <summary>
    /// Epoch losses, validation accuracies and a weight digest of one run, as the trainer produced them at c90bf7c,
    /// before the objective seam (computed there with this same test): the seam must not move a bit.
    /// </summary>
    [Fact]
    [Trait("Category", "Slow")] // trains for three epochs
    public void Classification_training_gives_the_numbers_of_the_trainer_before_the_seam()
    {
        using var scope = torch.NewDisposeScope();
        var (data, validation) = Synthetic(150).SplitRandom(0.2, seed: 1);
        using var graph = TrainableGraph.Import(Mlp());
        var options = new TrainingOptions(3, 16, 1e-2, Seed: 3) { WarmupSteps = 5, Schedule = ScheduleKind.Cosine, ClipGradNorm = 1.0, EarlyStoppingPatience = 2 };

        var result = ClassificationTrainer.Train(graph, data, new DistillationLoss(0.5, 2), options, validation);

        var digest = Weights(graph).OrderBy(p => p.Key, StringComparer.Ordinal)
            .Aggregate(17L, (hash, p) => p.Value.Aggregate(hash, (h, v) => unchecked((h * 31) + BitConverter.SingleToInt32Bits(v))));
        var actual = string.Join(
            " ",
            [.. result.EpochLosses.Select(Bits), .. result.ValidationAccuracies.Select(Bits), digest.ToString(CultureInfo.InvariantCulture)]);
        Assert.Equal(BeforeTheSeam, actual);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.3)]
    [InlineData(1.0)]
    public void RegressionLoss_is_the_alpha_weighted_mean_squared_error_against_targets_and_teacher(double alpha)
    {
        using var scope = torch.NewDisposeScope();
        var data = LinearTargets(20);
        int[] rows = [4, 0, 19, 7];
        var outputs = RandomFloats(rows.Length, 12);
        ITrainingObjective objective = new RegressionLoss(alpha);

        var loss = objective.Loss(torch.tensor(outputs, [rows.Length, 1]), objective.Targets(data, rows)).item<float>();

        double Mse(float[] reference) => rows.Select((r, i) => Math.Pow(outputs[i] - reference[r], 2)).Average();
        var expected = (alpha * Mse(data.TeacherLogits!)) + ((1 - alpha) * Mse(data.Targets!));
        Assert.Equal(expected, loss, 5);
    }

    [Fact]
    public void RegressionLoss_averages_the_target_term_over_the_samples_that_have_targets()
    {
        using var scope = torch.NewDisposeScope();
        var labelled = LinearTargets(6);
        var pooled = labelled.WithUnlabelled(LinearTargets(4, seed: 30));
        Assert.True(float.IsNaN(pooled.Targets![7]));
        int[] rows = [1, 7, 3, 8];
        var outputs = RandomFloats(rows.Length, 13);
        ITrainingObjective objective = new RegressionLoss(0);

        var loss = objective.Loss(torch.tensor(outputs, [rows.Length, 1]), objective.Targets(pooled, rows)).item<float>();
        var none = objective.Loss(torch.tensor(outputs[..2], [2, 1]), objective.Targets(pooled, [7, 8])).item<float>();

        var expected = (Math.Pow(outputs[0] - pooled.Targets[1], 2) + Math.Pow(outputs[2] - pooled.Targets[3], 2)) / 2;
        Assert.Equal(expected, loss, 5);
        Assert.Equal(0f, none);
    }

    [Fact]
    public void RegressionLoss_refuses_a_set_without_float_targets()
    {
        var classes = Synthetic(10);
        var error = Assert.Throws<ArgumentException>(() => new RegressionLoss(0).CheckData(classes, null));
        Assert.Contains("no float targets", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    [Trait("Category", "Slow")] // trains for several epochs
    public void A_regressor_learns_and_its_best_epoch_is_the_one_with_the_lowest_validation_rmse()
    {
        using var scope = torch.NewDisposeScope();
        var (data, validation) = LinearTargets(400).SplitRandom(0.25, seed: 2);
        using var graph = TrainableGraph.Import(MlpBuilder.Build(new MlpOptions { Hidden = [16], Seed = 2 }, new ArchitectureInputs([12], 1)));
        var options = new TrainingOptions(12, 16, 1e-2, Seed: 3);

        var result = ClassificationTrainer.Train(graph, data, new RegressionLoss(0.5), options, validation);

        var scores = result.ValidationAccuracies;
        Assert.True(scores[^1] < scores[0] / 2, $"validation RMSE per epoch: {string.Join(", ", scores)}");
        Assert.Equal(scores.Min(), result.BestValidationAccuracy);
        Assert.Equal(scores.ToList().IndexOf(scores.Min()) + 1, result.BestEpoch);
    }

    /// <summary>Targets y = x . w for a fixed random w; the "teacher" predicts y + 0.1 (a slightly wrong teacher).</summary>
    private static TrainingSet LinearTargets(int count, int seed = 20)
    {
        var inputs = RandomFloats(count * 12, seed);
        var weights = RandomFloats(12, seed + 1);
        var targets = new float[count];
        for (var i = 0; i < count; i++)
        {
            for (var k = 0; k < 12; k++)
            {
                targets[i] += inputs[(i * 12) + k] * weights[k];
            }
        }

        return new TrainingSet(inputs, [12], null, [.. targets.Select(t => t + 0.1f)], 1) { Targets = targets };
    }

    private const string BeforeTheSeam = "3ffe32f25bbbbbbc 3ffc4bfcf7777777 3ffb8523e4444444 3fcdddddddddddde 3fd999999999999a 3fd7777777777777 6469578054211027414";

    private static string Bits(double value) => BitConverter.DoubleToInt64Bits(value).ToString("x16", CultureInfo.InvariantCulture);
}
