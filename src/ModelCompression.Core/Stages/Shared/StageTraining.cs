using System.Globalization;
using ModelCompression.Common;
using ModelCompression.Diagnostics;
using ModelCompression.Inference;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Torch.Training;
using ModelCompression.Training;

namespace ModelCompression.Stages;

/// <summary>
/// The adapter between a stage's <see cref="StageContext"/> and <see cref="TrainingFlow"/>: binds the data to the
/// student, names the checkpoint folder, forwards progress and messages to the reporter.
/// </summary>
internal static class StageTraining
{
    /// <summary>A job for <paramref name="stage"/> on <paramref name="inputModel"/>, with its checkpoints, progress, logs and messages.</summary>
    public static TrainingJob Job(
        IStage stage,
        StageContext context,
        string inputModel,
        ModelProto model,
        TrainingSet train,
        ITrainingObjective loss,
        TrainingSettings settings) =>
        new(stage.Kind, model, inputModel, train, loss, settings)
        {
            CheckpointFolder = CheckpointFolder(stage, context),
            LogDirectory = settings.TensorBoardDirectory is { Length: > 0 } logs ? Path.Combine(context.RecipeDirectory, logs) : null,
            Progress = context.TrainingReporter(stage.Kind),
            Info = context.Reporter.Info,
        };

    /// <summary>
    /// How the training data's tensors feed the student's inputs; MC2020 when they do not fit or when the student's
    /// output is not as wide as the teacher's.
    /// </summary>
    public static IReadOnlyList<Data.InputBinding> BindStudent(StageContext context, string studentModel)
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
    /// The checkpoint folder of this stage run, named by the key the cache stores its output under
    /// (<see cref="StageContext.StageKey"/>, set by the pipeline's stage runner), so a killed run of the same stage,
    /// input, options and data resumes from its last epoch; null (no checkpoints) for a stage run outside the runner.
    /// </summary>
    public static string? CheckpointFolder(IStage stage, StageContext context) =>
        context.StageKey is { } key ? Path.Combine(context.CheckpointRoot, $"{stage.Kind}-{key}") : null;

    /// <summary>
    /// <paramref name="student"/>, or with init_from_teacher a copy that starts from the teacher's matching
    /// initializers; how many were copied (a warning when none).
    /// </summary>
    public static (ModelProto Student, int Copied) StartFromTeacher(string kind, StageContext context, ModelProto student, TrainingStageOptions options)
    {
        if (!options.InitFromTeacher)
        {
            return (student, 0);
        }

        var (initial, copied) = TeacherInitialization.Apply(student, OnnxModelFile.Load(context.TeacherPath), options.LayerMap);
        if (copied.Count == 0)
        {
            context.Reporter.Report(Diagnostic.Warning(
                DiagnosticCodes.NothingToTransform,
                $"{kind}: init_from_teacher found no student initializer matching a teacher initializer by name and shape; the student starts from its own weights.",
                context.RecipePath));
        }
        else
        {
            context.Reporter.Info($"{kind}: {copied.Count} of {initial.Graph.Initializer.Count} initializers start from the teacher's");
        }

        return (initial, copied.Count);
    }

    /// <summary>The result of a finetune or distill run: the summary line, the typed details and the outcome.</summary>
    public static StageResult Result(
        string kind,
        TrainingSettings options,
        DistillationLoss loss,
        TrainedModel trained,
        int initializersFromTeacher,
        IReadOnlyList<(string Student, string Teacher)> hints,
        TimeSpan elapsed)
    {
        var invariant = CultureInfo.InvariantCulture;
        var result = trained.Result;
        var summary = $"{result.EpochLosses.Count}/{options.Epochs} epochs"
            + (result.ResumedFromEpoch > 0 ? $" (resumed after epoch {result.ResumedFromEpoch})" : "")
            + (loss.Alpha > 0 ? $", alpha {loss.Alpha.ToString(invariant)}, T {loss.Temperature.ToString(invariant)}" : ", labels only")
            + (hints.Count > 0 ? $", {hints.Count} hint{(hints.Count == 1 ? "" : "s")} (weight {loss.HintWeight.ToString(invariant)})" : "")
            + $", final loss {result.EpochLosses[^1].ToString("0.0000", invariant)}";
        return new StageResult(
            kind,
            summary,
            StageDetails.Of(TrainingDetails.Of(options, loss, trained.Outcome, initializersFromTeacher, hints)),
            result.EpochLosses,
            elapsed.TotalSeconds,
            result.ValidationAccuracies.Count > 0 ? result.ValidationAccuracies : null)
        {
            Training = trained.Outcome,
        };
    }
}
