namespace ModelCompression.Torch.Training;

/// <summary>The optimizer of a training run.</summary>
public enum OptimizerKind
{
    /// <summary>Adam; weight decay is added to the gradient (L2 regularisation).</summary>
    Adam,

    /// <summary>Adam with decoupled weight decay (Loshchilov and Hutter).</summary>
    AdamW,

    /// <summary>Stochastic gradient descent with (optional) momentum.</summary>
    Sgd,
}

/// <summary>How the learning rate changes after warm-up, step by step.</summary>
public enum ScheduleKind
{
    /// <summary>Stays at the base learning rate.</summary>
    Constant,

    /// <summary>Half a cosine from the base learning rate down to 0 at the last step.</summary>
    Cosine,

    /// <summary>A straight line from the base learning rate down to 0 at the last step.</summary>
    Linear,
}

/// <summary>Options of one training run.</summary>
/// <param name="Epochs">Passes over the training set.</param>
/// <param name="BatchSize">Samples per optimizer step.</param>
/// <param name="LearningRate">Base (peak) learning rate.</param>
/// <param name="Seed">Seeds shuffling and dropout: same seed and data, same weights.</param>
public sealed record TrainingOptions(int Epochs, int BatchSize, double LearningRate, int Seed)
{
    /// <summary>The optimizer.</summary>
    public OptimizerKind Optimizer { get; init; } = OptimizerKind.Adam;

    /// <summary>Weight decay (L2 for Adam and SGD, decoupled for AdamW); 0 for none.</summary>
    public double WeightDecay { get; init; }

    /// <summary>SGD momentum; ignored by the Adam optimizers.</summary>
    public double Momentum { get; init; }

    /// <summary>Steps of linear warm-up from 0 to the base learning rate; wins over <see cref="WarmupFraction"/> when above 0.</summary>
    public int WarmupSteps { get; init; }

    /// <summary>Warm-up as a fraction of all steps, used when <see cref="WarmupSteps"/> is 0.</summary>
    public double WarmupFraction { get; init; }

    /// <summary>The learning rate after warm-up.</summary>
    public ScheduleKind Schedule { get; init; } = ScheduleKind.Constant;

    /// <summary>Largest global L2 norm of all gradients; larger ones are scaled down. 0 turns clipping off.</summary>
    public double ClipGradNorm { get; init; }

    /// <summary>
    /// Epochs without an improvement of the validation accuracy before training stops; 0 never stops early.
    /// Needs a validation set.
    /// </summary>
    public int EarlyStoppingPatience { get; init; }

    /// <summary>Smallest rise of the validation accuracy that counts as an improvement.</summary>
    public double EarlyStoppingMinDelta { get; init; }

    /// <summary>
    /// Optimizer steps per epoch, each on a full batch drawn from back-to-back shuffled passes over the data;
    /// 0 makes an epoch one pass (its last batch may be short). A labels-only twin takes its student's count, so
    /// both get the same steps, schedule and validation points though the student also learns from a pool.
    /// </summary>
    public int StepsPerEpoch { get; init; }

    /// <summary>With a validation set: end with the weights of the best validation epoch rather than the last.</summary>
    public bool RestoreBestWeights { get; init; } = true;

    /// <summary>
    /// Folder for the end-of-epoch checkpoint. When it holds a checkpoint of the same run (same options, data
    /// size and parameters), training resumes after its epoch and ends with the same weights as a run that
    /// was never stopped. Null keeps no checkpoint.
    /// </summary>
    public string? CheckpointDirectory { get; init; }

    /// <summary>Folder for TensorBoard event files (loss and learning rate per step; training loss, learning rate, validation loss and accuracy per epoch); null for none.</summary>
    public string? LogDirectory { get; init; }

    /// <summary>
    /// Called after every optimizer step with the global step count (1 after the first step), inside
    /// <c>no_grad</c>, so a caller can change weights in place (e.g. re-apply pruning masks). Null for none.
    /// </summary>
    public Action<long>? AfterOptimizerStep { get; init; }

    /// <summary>Checks every value and reports each problem at once.</summary>
    public void Validate()
    {
        var problems = new List<string>();
        if (Epochs < 1)
        {
            problems.Add($"epochs must be at least 1, not {Epochs}");
        }

        if (BatchSize < 1)
        {
            problems.Add($"batch size must be at least 1, not {BatchSize}");
        }

        if (!(LearningRate > 0) || double.IsInfinity(LearningRate))
        {
            problems.Add($"learning rate must be above 0, not {LearningRate}");
        }

        if (!(WeightDecay >= 0))
        {
            problems.Add($"weight decay must be 0 or more, not {WeightDecay}");
        }

        if (!(Momentum >= 0 && Momentum < 1))
        {
            problems.Add($"momentum must be in [0, 1), not {Momentum}");
        }

        if (StepsPerEpoch < 0)
        {
            problems.Add($"steps per epoch must be 0 (one pass) or more, not {StepsPerEpoch}");
        }

        if (WarmupSteps < 0)
        {
            problems.Add($"warm-up steps must be 0 or more, not {WarmupSteps}");
        }

        if (!(WarmupFraction >= 0 && WarmupFraction < 1))
        {
            problems.Add($"warm-up fraction must be in [0, 1), not {WarmupFraction}");
        }

        if (!(ClipGradNorm >= 0))
        {
            problems.Add($"gradient clipping norm must be 0 (off) or more, not {ClipGradNorm}");
        }

        if (EarlyStoppingPatience < 0)
        {
            problems.Add($"early stopping patience must be 0 (off) or more, not {EarlyStoppingPatience}");
        }

        if (!(EarlyStoppingMinDelta >= 0))
        {
            problems.Add($"early stopping min delta must be 0 or more, not {EarlyStoppingMinDelta}");
        }

        if (problems.Count > 0)
        {
            throw new ArgumentException($"Invalid training options: {string.Join("; ", problems)}.");
        }
    }
}

/// <summary>Where a training run is, for progress display.</summary>
/// <param name="Epoch">1-based epoch.</param>
/// <param name="Epochs">Total epochs.</param>
/// <param name="Step">Steps done so far over the whole run.</param>
/// <param name="TotalSteps">Steps the whole run takes.</param>
/// <param name="Loss">Mean loss of the current epoch so far.</param>
/// <param name="Elapsed">Time since the run (or its resumption) started.</param>
/// <param name="LearningRate">The learning rate of the last step.</param>
/// <param name="ValidationAccuracy">The objective's validation score (accuracy for classification, RMSE for regression) after the last finished epoch; null without a validation set.</param>
public sealed record TrainingProgress(
    int Epoch,
    int Epochs,
    int Step,
    int TotalSteps,
    double Loss,
    TimeSpan Elapsed,
    double LearningRate = 0,
    double? ValidationAccuracy = null);

/// <summary>What a training run did.</summary>
/// <param name="EpochLosses">Mean training loss of each epoch run (including those before a resumption).</param>
/// <param name="Duration">Wall time of this call.</param>
public sealed record TrainingResult(IReadOnlyList<double> EpochLosses, TimeSpan Duration)
{
    /// <summary>The objective's validation score (<see cref="ITrainingObjective.Validation"/>: accuracy for classification) after each epoch; empty without a validation set.</summary>
    public IReadOnlyList<double> ValidationAccuracies { get; init; } = [];

    /// <summary>The 1-based epoch with the best validation score; 0 without a validation set.</summary>
    public int BestEpoch { get; init; }

    /// <summary>The best validation score (the highest accuracy, the lowest RMSE); null without a validation set.</summary>
    public double? BestValidationAccuracy { get; init; }

    /// <summary>True when early stopping ended the run before its last epoch.</summary>
    public bool StoppedEarly { get; init; }

    /// <summary>The epoch of the checkpoint this run resumed from; 0 when it started fresh.</summary>
    public int ResumedFromEpoch { get; init; }

    /// <summary>Optimizer steps taken over the whole run.</summary>
    public int Steps { get; init; }

    /// <summary>Optimizer steps of one epoch (an early-stopped run takes fewer epochs, not fewer steps per epoch).</summary>
    public int StepsPerEpoch { get; init; }
}
