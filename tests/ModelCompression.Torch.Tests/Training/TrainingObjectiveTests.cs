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

    private const string BeforeTheSeam = "TBD";

    private static string Bits(double value) => BitConverter.DoubleToInt64Bits(value).ToString("x16", CultureInfo.InvariantCulture);
}
