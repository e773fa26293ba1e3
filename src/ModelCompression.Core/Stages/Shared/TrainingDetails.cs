using ModelCompression.Torch.Training;
using ModelCompression.Training;

namespace ModelCompression.Stages;

/// <summary>The details of a finetune or distill run (and of a sweep's winning trial), as report.json shows them.</summary>
/// <param name="Epochs">Epochs asked for.</param>
/// <param name="Alpha">Weight of the teacher's soft targets (0 for labels only).</param>
/// <param name="Temperature">Softening temperature (1 for labels only).</param>
/// <param name="LearningRate">Peak learning rate.</param>
/// <param name="BatchSize">Samples per optimizer step.</param>
/// <param name="TrainSamples">Samples trained on, the unlabelled pool's included.</param>
/// <param name="UnlabelledSamples">Samples of the unlabelled pool.</param>
/// <param name="Optimizer">The optimizer.</param>
/// <param name="Schedule">The learning-rate schedule.</param>
/// <param name="WeightDecay">Weight decay.</param>
/// <param name="ClipGradNorm">Gradient clipping norm (0: off).</param>
/// <param name="Steps">Optimizer steps taken.</param>
/// <param name="StepsPerEpoch">Optimizer steps of one epoch.</param>
/// <param name="EpochsRun">Epochs trained.</param>
/// <param name="ValidationSamples">Samples of the validation set.</param>
/// <param name="BestValidationAccuracy">The best validation accuracy (empty without a validation set).</param>
/// <param name="BestEpoch">The epoch of the best validation accuracy.</param>
/// <param name="StoppedEarly">Whether early stopping ended the run.</param>
/// <param name="ResumedFromEpoch">The checkpoint epoch the run resumed from.</param>
/// <param name="InitializersFromTeacher">Initializers copied from the teacher before training.</param>
/// <param name="Hints">The feature hints, each "student -> teacher".</param>
/// <param name="HintWeight">Weight of the hint term (empty without hints).</param>
internal sealed record TrainingDetails(
    [property: Detail("epochs")] int Epochs,
    [property: Detail("alpha")] double Alpha,
    [property: Detail("temperature")] double Temperature,
    [property: Detail("learning_rate")] double LearningRate,
    [property: Detail("batch_size")] int BatchSize,
    [property: Detail("train_samples")] int TrainSamples,
    [property: Detail("unlabelled_samples")] int UnlabelledSamples,
    [property: Detail("optimizer")] OptimizerKind Optimizer,
    [property: Detail("schedule")] ScheduleKind Schedule,
    [property: Detail("weight_decay")] double WeightDecay,
    [property: Detail("clip_grad_norm")] double ClipGradNorm,
    [property: Detail("steps")] int Steps,
    [property: Detail("steps_per_epoch")] int StepsPerEpoch,
    [property: Detail("epochs_run")] int EpochsRun,
    [property: Detail("validation_samples")] int ValidationSamples,
    [property: Detail("best_validation_accuracy", Format = TrainingOutcome.ValidationAccuracyFormat, EmptyWhenNull = true)] double? BestValidationAccuracy,
    [property: Detail("best_epoch")] int BestEpoch,
    [property: Detail("stopped_early")] bool StoppedEarly,
    [property: Detail("resumed_from_epoch")] int ResumedFromEpoch,
    [property: Detail("initializers_from_teacher")] int InitializersFromTeacher,
    [property: Detail("hints", Separator = "; ")] IReadOnlyList<string> Hints,
    [property: Detail("hint_weight", EmptyWhenNull = true)] double? HintWeight)
{
    /// <summary>The details of a run with <paramref name="options"/> and <paramref name="loss"/> that ended as <paramref name="outcome"/>.</summary>
    public static TrainingDetails Of(
        TrainingSettings options,
        DistillationLoss loss,
        TrainingOutcome outcome,
        int initializersFromTeacher,
        IReadOnlyList<(string Student, string Teacher)> hints) => new(
        options.Epochs,
        loss.Alpha,
        loss.Temperature,
        options.LearningRate,
        options.BatchSize,
        outcome.TrainSamples,
        outcome.UnlabelledSamples,
        options.Optimizer,
        options.Schedule,
        options.WeightDecay,
        options.ClipGradNorm,
        outcome.Steps,
        outcome.StepsPerEpoch,
        outcome.EpochsRun,
        outcome.ValidationSamples,
        outcome.BestValidationAccuracy,
        outcome.BestEpoch,
        outcome.StoppedEarly,
        outcome.ResumedFromEpoch,
        initializersFromTeacher,
        [.. hints.Select(h => $"{h.Student} {DistillingOptions.HintSeparator} {h.Teacher}")],
        hints.Count > 0 ? loss.HintWeight : null);
}
