using ModelCompression.Common;
using ModelCompression.Torch.Training;

namespace ModelCompression.Training;

/// <summary>
/// How a model trains: budget, optimizer, schedule, clipping, validation, early stopping and logs. The training
/// stages (finetune, distill, sweep) take it as their own flat recipe keys; prune and factorize recovery build one
/// from their recovery keys. <see cref="ToTrainingOptions"/> is the one place it becomes the trainer's options.
/// </summary>
public record TrainingSettings
{
    /// <summary>Passes over the training data.</summary>
    [Option("epochs", "Passes over the training data.", Min = 1, Max = 10000)]
    public int Epochs { get; init; } = 10;

    /// <summary>Samples per optimizer step.</summary>
    [Option("batch_size", "Samples per optimizer step.", Min = 1, Max = 1 << 20)]
    public int BatchSize { get; init; } = 128;

    /// <summary>Peak learning rate (after warm-up, before decay).</summary>
    [Option("learning_rate", "Peak learning rate of the optimizer: reached after warm-up, then decayed by the schedule.", Min = 0, MinExclusive = true, Max = 10)]
    public double LearningRate { get; init; } = 1e-3;

    /// <summary>Seed of shuffling and dropout.</summary>
    [Option("seed", "Seed of shuffling, dropout and the validation split: the same seed and data give the same weights.", Min = 0)]
    public int Seed { get; init; } = 1;

    /// <summary>The optimizer.</summary>
    [Option("optimizer", "adam, adamw (decoupled weight decay) or sgd (with momentum).")]
    public OptimizerKind Optimizer { get; init; } = OptimizerKind.Adam;

    /// <summary>Weight decay: L2 for adam and sgd, decoupled for adamw.</summary>
    [Option("weight_decay", "Weight decay: L2 for adam and sgd, decoupled for adamw; 0 for none.", Min = 0, Max = 1)]
    public double WeightDecay { get; init; }

    /// <summary>SGD momentum.</summary>
    [Option("momentum", "Momentum of sgd; the adam optimizers ignore it.", Min = 0, Max = 0.999)]
    public double Momentum { get; init; } = 0.9;

    /// <summary>Steps of linear learning-rate warm-up; wins over <see cref="WarmupFraction"/>.</summary>
    [Option("warmup_steps", "Optimizer steps of linear learning-rate warm-up from 0; wins over warmup_fraction when above 0.", Min = 0, Max = int.MaxValue)]
    public int WarmupSteps { get; init; }

    /// <summary>Warm-up as a fraction of all steps.</summary>
    [Option("warmup_fraction", "Learning-rate warm-up as a fraction of all optimizer steps (used when warmup_steps is 0).", Min = 0, Max = 0.9)]
    public double WarmupFraction { get; init; }

    /// <summary>The learning rate after warm-up.</summary>
    [Option("schedule", "Learning rate after warm-up, per step: constant, cosine (to 0) or linear (to 0).")]
    public ScheduleKind Schedule { get; init; } = ScheduleKind.Constant;

    /// <summary>Largest global gradient norm; 0 turns clipping off.</summary>
    [Option("clip_grad_norm", "Largest global L2 norm of the gradients; larger ones are scaled down. 0 turns clipping off.", Min = 0, Max = 1e6)]
    public double ClipGradNorm { get; init; }

    /// <summary>Fraction of the training data held out (seeded) to measure validation accuracy after every epoch.</summary>
    [Option("validation_fraction", "Fraction of the training data held out (split by seed) to measure accuracy after every epoch; 0 for none. The best epoch's weights are kept.", Min = 0, Max = 0.5)]
    public double ValidationFraction { get; init; }

    /// <summary>Epochs without a better validation accuracy before training stops.</summary>
    [Option("early_stopping_patience", "Epochs without a better validation accuracy before training stops; 0 never stops early. Needs validation_fraction or a validation split in the data.", Min = 0, Max = 10000)]
    public int EarlyStoppingPatience { get; init; }

    /// <summary>Smallest rise of the validation accuracy that counts as better.</summary>
    [Option("early_stopping_min_delta", "Smallest rise of the validation accuracy that counts as better.", Min = 0, Max = 1)]
    public double EarlyStoppingMinDelta { get; init; }

    /// <summary>Folder for TensorBoard event files, relative to the recipe; null writes none.</summary>
    [Option("tensorboard_dir", "Folder (relative to the recipe) for TensorBoard event files: loss and learning rate per step; training loss, learning rate, validation loss and validation accuracy per epoch. Not part of the cache key.")]
    public string? TensorBoardDirectory { get; init; }

    /// <summary>
    /// Optimizer steps per epoch; 0 makes an epoch one pass over the labelled data. Not a recipe option: a
    /// labels-only twin takes its student's count, since a student that also learns from an unlabelled pool
    /// takes many more steps per epoch than one pass over the labels, and a twin with fewer steps is no fair
    /// comparison.
    /// </summary>
    public int StepsPerEpoch { get; init; }

    /// <summary>
    /// The trainer's options for these settings. Momentum reaches the trainer only with sgd, so a recipe's
    /// momentum (0.9 by default) cannot change an adam run.
    /// </summary>
    /// <param name="checkpointDirectory">Where the resumable end-of-epoch checkpoint lives; null keeps none.</param>
    /// <param name="logDirectory">The TensorBoard folder, already resolved against the recipe; null writes none.</param>
    /// <param name="afterOptimizerStep">Called after every optimizer step (pruning masks); null for none.</param>
    public TrainingOptions ToTrainingOptions(string? checkpointDirectory, string? logDirectory, Action<long>? afterOptimizerStep = null) =>
        new(Epochs, BatchSize, LearningRate, Seed)
        {
            Optimizer = Optimizer,
            WeightDecay = WeightDecay,
            Momentum = Optimizer == OptimizerKind.Sgd ? Momentum : 0,
            WarmupSteps = WarmupSteps,
            WarmupFraction = WarmupFraction,
            Schedule = Schedule,
            ClipGradNorm = ClipGradNorm,
            StepsPerEpoch = StepsPerEpoch,
            EarlyStoppingPatience = EarlyStoppingPatience,
            EarlyStoppingMinDelta = EarlyStoppingMinDelta,
            CheckpointDirectory = checkpointDirectory,
            LogDirectory = logDirectory,
            AfterOptimizerStep = afterOptimizerStep,
        };
}
