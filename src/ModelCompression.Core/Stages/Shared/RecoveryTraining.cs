using ModelCompression.Onnx.Proto;
using ModelCompression.Torch.Graph;
using ModelCompression.Torch.Training;
using ModelCompression.Training;

namespace ModelCompression.Stages;

/// <summary>How a transformed model is fine-tuned to win back what the transform cost.</summary>
/// <param name="Training">Epochs (0 trains nothing), batch size, optimizer, schedule and clipping.</param>
/// <param name="Alpha">Weight of the soft targets (knowledge distillation); 0 trains on labels only.</param>
/// <param name="Temperature">Softening temperature of the soft targets.</param>
internal sealed record RecoverySettings(TrainingSettings Training, double Alpha, double Temperature)
{
    /// <summary>Whose soft targets <see cref="Alpha"/> weighs.</summary>
    public RecoveryTeacher Teacher { get; init; } = RecoveryTeacher.Teacher;

    /// <summary>Passes over the training data; 0 trains nothing.</summary>
    public int Epochs => Training.Epochs;

    /// <summary>Optimizer steps the run takes over <paramref name="samples"/> training samples.</summary>
    public long Steps(int samples) => (long)Epochs * ((samples + Training.BatchSize - 1) / Training.BatchSize);
}

/// <summary>
/// Recovery training shared by the stages that change a trained student (prune, factorize): the training flow on
/// the labels (and, with alpha above 0, the teacher's or the dense model's soft targets), with an optional hook
/// after every optimizer step (pruning masks).
/// </summary>
internal static class RecoveryTraining
{
    /// <summary>
    /// Fine-tunes <paramref name="model"/> (the transform of <paramref name="inputModel"/>); returns the trained
    /// model and what training did, or the model as it was and null when <see cref="RecoverySettings.Epochs"/> is 0.
    /// </summary>
    /// <param name="stage">The stage, whose cache key names the checkpoint folder.</param>
    /// <param name="context">The run.</param>
    /// <param name="inputModel">The stage's input file (same inputs and outputs as <paramref name="model"/>).</param>
    /// <param name="model">The transformed model.</param>
    /// <param name="settings">Epochs, optimizer and loss.</param>
    /// <param name="afterStep">Given the imported graph, the action to run after every optimizer step; null for none.</param>
    public static (ModelProto Model, TrainingResult? Result, int Samples) Run(
        IStage stage,
        StageContext context,
        string inputModel,
        ModelProto model,
        RecoverySettings settings,
        Func<TrainableGraph, Action<long>>? afterStep = null)
    {
        if (settings.Epochs == 0)
        {
            return (model, null, 0);
        }

        var bindings = StageTraining.BindStudent(context, inputModel);
        var teacherLogits = SoftTargetLogits(context, inputModel, settings);
        var data = Data.DatasetTraining.ToTrainingSet(context.Train, bindings, teacherLogits, context.Classes);
        var job = StageTraining.Job(stage, context, inputModel, model, data, context.Task.Objective(settings.Alpha, settings.Temperature), settings.Training) with
        {
            AfterStep = afterStep,
        };
        var trained = TrainingFlow.Run(job, context.CancellationToken);
        return (trained.Model, trained.Result, trained.Outcome.TrainSamples);
    }

    /// <summary>
    /// The logits whose softened softmax recovery learns when alpha is above 0 (null otherwise): the recipe's
    /// teacher's, or the stage's input model's on the training data (self-distillation from the dense student).
    /// </summary>
    internal static float[]? SoftTargetLogits(StageContext context, string inputModel, RecoverySettings settings)
    {
        if (settings.Alpha <= 0)
        {
            return null;
        }

        if (settings.Teacher == RecoveryTeacher.Teacher)
        {
            return context.TeacherSoftTargetLogits(settings.Temperature);
        }

        return context.DenseModelLogits(inputModel);
    }
}
