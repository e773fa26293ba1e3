using System.Text.Json;
using ModelCompression.Common;
using ModelCompression.Torch.Training;
using ModelCompression.Training;

namespace ModelCompression.Stages;

/// <summary>Whose soft targets recovery training learns from when alpha is above 0.</summary>
public enum RecoveryTeacher
{
    /// <summary>The recipe's teacher.</summary>
    Teacher,

    /// <summary>The stage's input: the student as it was before this stage pruned or factorized it (self-distillation).</summary>
    Dense,
}

/// <summary>
/// How the stages that change a trained student (prune, factorize) fine-tune it afterwards, on the labels or, with
/// alpha above 0, also on the teacher's soft targets. The optimizer, schedule and clipping keys are those of the
/// training stages (<see cref="TrainingSettings"/>); their defaults (adam at a constant learning rate, no clipping)
/// are what recovery always did. The learning-rate schedule is <c>learning_rate_schedule</c> here, since prune's
/// <c>schedule</c> is its sparsity schedule. Recovery holds out no validation set: gradual pruning spreads its
/// sparsity steps over the whole training data.
/// </summary>
public abstract record RecoveryOptions
{
    /// <summary>Samples per optimizer step during recovery.</summary>
    [Option("batch_size", "Samples per optimizer step during recovery.", Min = 1, Max = 1 << 20)]
    public int BatchSize { get; init; } = 128;

    /// <summary>Peak learning rate during recovery.</summary>
    [Option("learning_rate", "Peak learning rate of the optimizer during recovery: reached after warm-up, then decayed by learning_rate_schedule.", Min = 0, MinExclusive = true, Max = 10)]
    public double LearningRate { get; init; } = 1e-3;

    /// <summary>Weight of the teacher's soft targets during recovery.</summary>
    [Option("alpha", "Weight of the teacher's soft targets during recovery (knowledge distillation, with temperature); 0, the default, trains on labels only.", Min = 0, Max = 1)]
    public double Alpha { get; init; }

    /// <summary>Softening temperature of the soft targets.</summary>
    [Option("temperature", "Softening temperature of the teacher's and student's softmax during recovery.", Min = 0, MinExclusive = true, Max = 100)]
    public double Temperature { get; init; } = 4;

    /// <summary>Whose soft targets alpha weighs during recovery.</summary>
    [Option("recovery_teacher", "With alpha above 0, whose soft targets recovery learns: teacher (the recipe's) or dense (this stage's input, the student before it was pruned or factorized: self-distillation, which needs no teacher).")]
    public RecoveryTeacher RecoveryTeacher { get; init; } = RecoveryTeacher.Teacher;

    /// <summary>Seed of shuffling and dropout (and of prune's Taylor batches).</summary>
    [Option("seed", "Seed of shuffling and dropout during recovery (and of the batches prune's taylor criterion scores on).", Min = 0)]
    public int Seed { get; init; } = 1;

    /// <summary>The optimizer of recovery training.</summary>
    [Option("optimizer", "Optimizer of recovery training: adam, adamw (decoupled weight decay) or sgd (with momentum).")]
    public OptimizerKind Optimizer { get; init; } = OptimizerKind.Adam;

    /// <summary>Weight decay during recovery: L2 for adam and sgd, decoupled for adamw.</summary>
    [Option("weight_decay", "Weight decay during recovery: L2 for adam and sgd, decoupled for adamw; 0 for none.", Min = 0, Max = 1)]
    public double WeightDecay { get; init; }

    /// <summary>SGD momentum during recovery.</summary>
    [Option("momentum", "Momentum of sgd during recovery; the adam optimizers ignore it.", Min = 0, Max = 0.999)]
    public double Momentum { get; init; } = 0.9;

    /// <summary>Steps of linear learning-rate warm-up; wins over <see cref="WarmupFraction"/>.</summary>
    [Option("warmup_steps", "Optimizer steps of linear learning-rate warm-up from 0 at the start of recovery; wins over warmup_fraction when above 0.", Min = 0, Max = int.MaxValue)]
    public int WarmupSteps { get; init; }

    /// <summary>Warm-up as a fraction of all recovery steps.</summary>
    [Option("warmup_fraction", "Learning-rate warm-up as a fraction of all recovery steps (used when warmup_steps is 0).", Min = 0, Max = 0.9)]
    public double WarmupFraction { get; init; }

    /// <summary>The learning rate after warm-up.</summary>
    [Option("learning_rate_schedule", "Learning rate of recovery after warm-up, per step: constant, cosine (to 0) or linear (to 0).")]
    public ScheduleKind LearningRateSchedule { get; init; } = ScheduleKind.Constant;

    /// <summary>Largest global gradient norm during recovery; 0 turns clipping off.</summary>
    [Option("clip_grad_norm", "Largest global L2 norm of the gradients during recovery; larger ones are scaled down. 0 turns clipping off.", Min = 0, Max = 1e6)]
    public double ClipGradNorm { get; init; }

    /// <summary>Folder for TensorBoard event files of recovery, relative to the recipe; null writes none.</summary>
    [Option("tensorboard_dir", "Folder (relative to the recipe) for TensorBoard event files of recovery training: loss and learning rate per step, training loss per epoch. Not part of the cache key.")]
    public string? TensorBoardDirectory { get; init; }

    /// <summary>True when recovery reads the recipe's teacher (alpha above 0 with the teacher's targets).</summary>
    internal bool ReadsTeacher => Alpha > 0 && RecoveryTeacher == RecoveryTeacher.Teacher;

    /// <summary>
    /// A recovering stage's cache key: every option, the data, and the teacher only when recovery reads it (on the
    /// labels alone or the dense model's targets it does not, and a recipe without a teacher runs the stage too).
    /// </summary>
    internal void AddToKey(ContentHash key, StageContext context)
    {
        // Where the TensorBoard logs go does not change the model.
        key.Add("options", JsonSerializer.Serialize(this with { TensorBoardDirectory = null }, GetType())).Add("data", context.DataHash);
        if (ReadsTeacher)
        {
            key.Add("teacher", context.TeacherHash);
        }
    }

    /// <summary>The recovery run of <paramref name="epochs"/> epochs with these settings.</summary>
    internal RecoverySettings Recovery(int epochs) => new(
        new TrainingSettings
        {
            Epochs = epochs,
            BatchSize = BatchSize,
            LearningRate = LearningRate,
            Seed = Seed,
            Optimizer = Optimizer,
            WeightDecay = WeightDecay,
            Momentum = Momentum,
            WarmupSteps = WarmupSteps,
            WarmupFraction = WarmupFraction,
            Schedule = LearningRateSchedule,
            ClipGradNorm = ClipGradNorm,
            TensorBoardDirectory = TensorBoardDirectory,
        },
        Alpha,
        Temperature)
    {
        Teacher = RecoveryTeacher,
    };
}
