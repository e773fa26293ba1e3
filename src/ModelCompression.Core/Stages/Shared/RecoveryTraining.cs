using ModelCompression.Common;
using ModelCompression.Diagnostics;
using ModelCompression.Inference;
using ModelCompression.Onnx.Proto;
using ModelCompression.Onnx;
using ModelCompression.Torch.Graph;
using ModelCompression.Torch.Native;
using ModelCompression.Torch.Training;

namespace ModelCompression.Stages;

/// <summary>How a transformed model is fine-tuned to win back what the transform cost.</summary>
/// <param name="Epochs">Passes over the training data; 0 trains nothing.</param>
/// <param name="BatchSize">Samples per optimizer step.</param>
/// <param name="LearningRate">Adam learning rate.</param>
/// <param name="Alpha">Weight of the teacher's soft targets (knowledge distillation); 0 trains on labels only.</param>
/// <param name="Temperature">Softening temperature of the soft targets.</param>
/// <param name="Seed">Seed of shuffling and dropout.</param>
internal sealed record RecoverySettings(int Epochs, int BatchSize, double LearningRate, double Alpha, double Temperature, int Seed)
{
    /// <summary>Whose soft targets <see cref="Alpha"/> weighs.</summary>
    public RecoveryTeacher Teacher { get; init; } = RecoveryTeacher.Teacher;

    /// <summary>Optimizer steps the run takes over <paramref name="samples"/> training samples.</summary>
    public long Steps(int samples) => (long)Epochs * ((samples + BatchSize - 1) / BatchSize);
}

/// <summary>
/// Recovery training shared by the stages that change a trained student (prune, factorize): the distill
/// stage's flow — schema check, teacher logits for the KD term, resumable checkpoints keyed like the stage's
/// cache entry, progress to the reporter — with Adam at a constant learning rate and an optional hook after
/// every optimizer step (pruning masks).
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

        var bindings = BindStudent(context, inputModel);
        var teacherLogits = SoftTargetLogits(context, inputModel, settings);
        TorchNativeLoader.EnsureLoaded();
        using var student = TrainableGraph.Import(model, modelPath: inputModel);
        var data = Data.DatasetTraining.ToTrainingSet(context.Train, bindings, teacherLogits, context.Classes);
        var checkpoints = CheckpointFolder(stage, context, inputModel);
        var hook = afterStep?.Invoke(student);
        var result = ClassificationTrainer.Train(
            student,
            data,
            context.Task.Objective(settings.Alpha, settings.Temperature),
            new TrainingOptions(settings.Epochs, settings.BatchSize, settings.LearningRate, settings.Seed)
            {
                CheckpointDirectory = checkpoints,
                AfterOptimizerStep = hook,
            },
            validation: null,
            new Progress(context, stage.Kind),
            context.CancellationToken);
        var trained = student.WriteBack();
        // The output is about to be cached under the same key; the checkpoints only served an interrupted run.
        TryDelete(checkpoints);
        return (trained, result, data.Count);
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

    /// <summary>
    /// How the training data's tensors feed the student's inputs; MC2020 when they do not fit or when the student's
    /// output is not as wide as the teacher's.
    /// </summary>
    internal static IReadOnlyList<Data.InputBinding> BindStudent(StageContext context, string studentModel)
    {
        using var runner = new OnnxRunner(studentModel, threads: 1);
        var bindings = runner.Bind(context.Train, "student");
        if (runner.OutputWidth != context.Classes)
        {
            throw CompressionException.Error(
                DiagnosticCodes.DataSchemaMismatch,
                $"The student's output '{runner.OutputName}' has {runner.OutputWidth} classes but the teacher has {context.Classes}.",
                studentModel);
        }

        return bindings;
    }

    /// <summary>
    /// The checkpoint folder of this stage run, named by the same key the cache stores its output under, so a
    /// killed run of the same stage, input, options and data resumes from its last epoch.
    /// </summary>
    internal static string CheckpointFolder(IStage stage, StageContext context, string inputModel)
    {
        var key = new ContentHash().Add("engine", EngineInfo.Version).Add("stage", stage.Kind).Add("input", ModelHash.ComputeFile(inputModel));
        stage.AddToKey(key, context);
        return Path.Combine(context.CheckpointRoot, $"{stage.Kind}-{key.Finish()}");
    }

    /// <summary>Removes a finished run's checkpoints (its output is about to be cached under the same key).</summary>
    internal static void TryDelete(string folder)
    {
        try
        {
            if (Directory.Exists(folder))
            {
                Directory.Delete(folder, recursive: true);
            }
        }
        catch (IOException)
        {
            // A leftover checkpoint only costs disk space; the stage's result is what counts.
        }
        catch (UnauthorizedAccessException)
        {
            // As above.
        }
    }

    /// <summary>Forwards training progress synchronously (IProgress's default posts to the thread pool).</summary>
    internal sealed class Progress(StageContext context, string stage) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => context.Reporter.Training(stage, value);
    }
}
