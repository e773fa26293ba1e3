using ModelCompression.Common;
using ModelCompression.Torch.Training;

namespace ModelCompression.Stages;

/// <summary>Options every training stage shares (finetune, distill): budget, optimizer, schedule, validation, logs.</summary>
public abstract record TrainingStageOptions
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

    /// <summary>Whether the student starts from the teacher's weights where names and shapes match.</summary>
    [Option("init_from_teacher", "Start the student from the teacher's weights: every initializer whose name and shape match a teacher initializer (after layer_map) is copied before training.")]
    public bool InitFromTeacher { get; init; }

    /// <summary>Student layer i starts from teacher layer LayerMap[i]; empty maps names one to one.</summary>
    [Option("layer_map", "With init_from_teacher: student layer i starts from teacher layer layer_map[i], e.g. [1, 3] for a 2-layer student of a 4-layer teacher (layers are found by 'layer<N>' / 'layers.<N>' in names).", Min = 0, Max = 10000)]
    public int[] LayerMap { get; init; } = [];

    /// <summary>Folder for TensorBoard event files, relative to the recipe; null writes none.</summary>
    [Option("tensorboard_dir", "Folder (relative to the recipe) for TensorBoard event files: loss and learning rate per step; training loss, learning rate, validation loss and validation accuracy per epoch. Not part of the cache key.")]
    public string? TensorBoardDirectory { get; init; }
}
