using System.Security.Cryptography;
using ModelCompression.Core.Tests.Pruning;
using ModelCompression.Onnx;
using ModelCompression.Stages;
using ModelCompression.Torch.Training;
using ModelCompression.Training;

namespace ModelCompression.Core.Tests.Stages;

/// <summary>The training flow behind finetune and prune recovery, on the Fashion-MNIST student.</summary>
[Collection(FashionStudentCollection.Name)]
[Trait("Category", "Slow")] // trains a Fashion-MNIST student, then fine-tunes and recovers it
public sealed class TrainingStageTests(FashionStudentFixture fashion)
{
    [Fact]
    public void Recovery_can_use_adamw_a_cosine_schedule_and_clipping()
    {
        var plain = new PruneOptions { Method = PruneMethod.Structured, Sparsity = 0.5, RecoveryEpochs = 2 };
        var tuned = plain with { Optimizer = OptimizerKind.AdamW, WeightDecay = 0.01, LearningRateSchedule = ScheduleKind.Cosine, WarmupFraction = 0.1, ClipGradNorm = 1 };
        var (plainOutput, tunedOutput) = (fashion.Output("adam"), fashion.Output("adamw"));

        var plainResult = new PruneStage(plain).Run(fashion.Context(), fashion.StudentPath, plainOutput);
        var tunedResult = new PruneStage(tuned).Run(fashion.Context(), fashion.StudentPath, tunedOutput);

        Assert.Equal(2, tunedResult.EpochLosses!.Count);
        Assert.All(tunedResult.EpochLosses, loss => Assert.True(double.IsFinite(loss) && loss > 0, $"loss {loss}"));
        Assert.Equal(plainResult.Details["steps"], tunedResult.Details["steps"]);
        Assert.NotEqual(Sha(plainOutput), Sha(tunedOutput));
        var (plainAccuracy, tunedAccuracy) = (fashion.Accuracy(plainOutput), fashion.Accuracy(tunedOutput));
        Assert.True(tunedAccuracy >= fashion.StudentAccuracy - 0.02, $"recovered with adamw to {tunedAccuracy:P2}, the unpruned student has {fashion.StudentAccuracy:P2}");
        Assert.NotEqual(plainAccuracy, tunedAccuracy);
    }

    [Fact]
    public void Finetune_trains_exactly_as_distill_on_the_labels_alone()
    {
        var training = new DistillOptions { Epochs = 2, BatchSize = 64, ValidationFraction = 0.1, Optimizer = OptimizerKind.AdamW, Schedule = ScheduleKind.Cosine, ClipGradNorm = 1, Alpha = 0 };
        var (finetuneOutput, distillOutput) = (fashion.Output("finetune"), fashion.Output("distill-alpha-0"));

        var finetuned = new FinetuneStage(new FinetuneOptions(training)).Run(fashion.Context(), fashion.StudentPath, finetuneOutput);
        var distilled = new DistillStage(training).Run(fashion.Context(), fashion.StudentPath, distillOutput);

        Assert.Equal(("finetune", "distill"), (finetuned.Stage, distilled.Stage));
        Assert.Equal(Sha(distillOutput), Sha(finetuneOutput));
        var outcome = finetuned.Training!;
        Assert.Equal(distilled.Training, outcome);
        Assert.Equal((FashionStudentFixture.TrainSamples - 300, 300, 0, 2), (outcome.TrainSamples, outcome.ValidationSamples, outcome.UnlabelledSamples, outcome.EpochsRun));
        Assert.Equal((outcome.TrainSamples + 63) / 64 * 2, outcome.Steps);
        Assert.Equal(("300", "0", "1", "labels only"), (finetuned.Details["validation_samples"], finetuned.Details["alpha"], finetuned.Details["temperature"], finetuned.Summary.Split(", ")[1]));
    }

    [Fact]
    public void The_flow_validates_on_the_given_split_or_carves_one_out_before_the_pool_joins()
    {
        var train = new TrainingSet(fashion.Train.Inputs, [28, 28], fashion.Train.Labels, fashion.TeacherLogits.Value, 10);
        using var heldOut = fashion.Test.Select([.. Enumerable.Range(0, 500)], "validation");
        var given = new TrainingSet(heldOut.Inputs, [28, 28], heldOut.Labels, null, 10);
        var pool = new TrainingSet(fashion.Train.Inputs, [28, 28], null, fashion.TeacherLogits.Value, 10);
        var messages = new List<string>();
        var checkpoints = fashion.Dir.Dir("flow-checkpoints");
        var job = new TrainingJob("flow", OnnxModelFile.Load(fashion.StudentPath), fashion.StudentPath, train, new DistillationLoss(0.5, 2), new TrainingSettings { Epochs = 1, BatchSize = 100, ValidationFraction = 0.2 })
        {
            CheckpointFolder = checkpoints,
            Info = messages.Add,
        };

        var onGiven = TrainingFlow.Run(job with { Validation = given }).Outcome;
        var carved = TrainingFlow.Run(job with { Unlabelled = pool }).Outcome;

        Assert.Equal((500, 3000, 0, 30), (onGiven.ValidationSamples, onGiven.TrainSamples, onGiven.UnlabelledSamples, onGiven.Steps));
        Assert.NotNull(onGiven.BestValidationAccuracy);
        // A fifth of the labelled samples is held out before the pool joins, so every validation sample has a label.
        Assert.Equal((600, 2400 + 3000, 3000, 54), (carved.ValidationSamples, carved.TrainSamples, carved.UnlabelledSamples, carved.Steps));
        Assert.Equal(["flow: 2400 labelled and 3000 unlabelled training samples"], messages);
        Assert.False(Directory.Exists(checkpoints), "a finished run's checkpoints are removed");
    }

    private static string Sha(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));
}
