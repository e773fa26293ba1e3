using System.Text.Json;
using ModelCompression.Common;

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
/// How the stages that change a trained student (prune, factorize) fine-tune it afterwards: Adam at a constant
/// learning rate, on the labels or, with alpha above 0, also on the teacher's soft targets.
/// </summary>
public abstract record RecoveryOptions
{
    /// <summary>Samples per optimizer step during recovery.</summary>
    [Option("batch_size", "Samples per optimizer step during recovery.", Min = 1, Max = 1 << 20)]
    public int BatchSize { get; init; } = 128;

    /// <summary>Adam learning rate during recovery.</summary>
    [Option("learning_rate", "Adam learning rate during recovery.", Min = 0, MinExclusive = true, Max = 10)]
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

    /// <summary>True when recovery reads the recipe's teacher (alpha above 0 with the teacher's targets).</summary>
    internal bool ReadsTeacher => Alpha > 0 && RecoveryTeacher == RecoveryTeacher.Teacher;

    /// <summary>
    /// A recovering stage's cache key: every option, the data, and the teacher only when recovery reads it (on the
    /// labels alone or the dense model's targets it does not, and a recipe without a teacher runs the stage too).
    /// </summary>
    internal void AddToKey(ContentHash key, StageContext context)
    {
        key.Add("options", JsonSerializer.Serialize(this, GetType())).Add("data", context.DataHash);
        if (ReadsTeacher)
        {
            key.Add("teacher", context.TeacherHash);
        }
    }

    /// <summary>The recovery run of <paramref name="epochs"/> epochs with these settings.</summary>
    internal RecoverySettings Recovery(int epochs) => new(epochs, BatchSize, LearningRate, Alpha, Temperature, Seed) { Teacher = RecoveryTeacher };
}
