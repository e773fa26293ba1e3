using System.Diagnostics;
using System.Globalization;
using ModelCompression.Inference;
using ModelCompression.Onnx;
using ModelCompression.Pipeline;
using ModelCompression.Torch.Graph;
using ModelCompression.Torch.Native;
using ModelCompression.Torch.Training;

namespace ModelCompression.Stages;

/// <summary>
/// Trains the student on the teacher's soft targets and the true labels:
/// alpha * T^2 * KL(teacher || student at temperature T) + (1 - alpha) * cross-entropy. The student graph is
/// imported into TorchSharp, trained, and the same graph is written back with the trained weights.
/// </summary>
public sealed class DistillStage(DistillOptions options) : IStage
{
    /// <inheritdoc />
    public string Kind => "distill";

    /// <inheritdoc />
    public void AddToKey(ContentHash key, StageContext context) => key
        // Where the TensorBoard logs go does not change the model.
        .Add("options", System.Text.Json.JsonSerializer.Serialize(options with { TensorBoardDirectory = null }))
        .Add("teacher", context.TeacherHash)
        .Add("data", context.DataHash);

    /// <inheritdoc />
    public StageResult Run(StageContext context, string inputModel, string outputModel)
    {
        var clock = Stopwatch.StartNew();
        IReadOnlyList<Data.InputBinding> bindings;
        using (var runner = new OnnxRunner(inputModel, threads: 1))
        {
            bindings = runner.Bind(context.Train, "student");
            if (runner.OutputWidth != context.Classes)
            {
                throw Diagnostics.CompressionException.Error(
                    Diagnostics.DiagnosticCodes.DataSchemaMismatch,
                    $"The student's output '{runner.OutputName}' has {runner.OutputWidth} classes but the teacher has {context.Classes}.",
                    inputModel);
            }
        }

        if (options.EarlyStoppingPatience > 0 && options.ValidationFraction <= 0)
        {
            throw Diagnostics.CompressionException.Error(
                Diagnostics.DiagnosticCodes.RecipeInvalidValue,
                "distill: early_stopping_patience needs a validation set; set validation_fraction above 0.",
                context.Recipe.Path);
        }

        var teacherLogits = options.Alpha > 0 ? context.TeacherTrainLogits : null;
        TorchNativeLoader.EnsureLoaded();
        using var student = TrainableGraph.Import(OnnxModelFile.Load(inputModel), modelPath: inputModel);
        var data = Data.DatasetTraining.ToTrainingSet(context.Train, bindings, teacherLogits, context.Classes);
        TrainingSet? validation = null;
        if (options.ValidationFraction > 0)
        {
            (data, validation) = data.SplitRandom(options.ValidationFraction, options.Seed);
        }

        var checkpoints = CheckpointFolder(context, inputModel, outputModel);
        var result = ClassificationTrainer.Train(
            student,
            data,
            new DistillationLoss(options.Alpha, options.Temperature),
            new TrainingOptions(options.Epochs, options.BatchSize, options.LearningRate, options.Seed)
            {
                Optimizer = options.Optimizer,
                WeightDecay = options.WeightDecay,
                Momentum = options.Optimizer == OptimizerKind.Sgd ? options.Momentum : 0,
                WarmupSteps = options.WarmupSteps,
                WarmupFraction = options.WarmupFraction,
                Schedule = options.Schedule,
                ClipGradNorm = options.ClipGradNorm,
                EarlyStoppingPatience = options.EarlyStoppingPatience,
                EarlyStoppingMinDelta = options.EarlyStoppingMinDelta,
                CheckpointDirectory = checkpoints,
                LogDirectory = options.TensorBoardDirectory is { Length: > 0 } logs ? Path.Combine(context.Recipe.Directory, logs) : null,
            },
            validation,
            new Progress(context, Kind),
            context.CancellationToken);
        OnnxModelFile.Save(student.WriteBack(), outputModel);
        // The output is about to be cached under the same key; the checkpoints only served an interrupted run.
        TryDelete(checkpoints);

        var invariant = CultureInfo.InvariantCulture;
        return new StageResult(
            Kind,
            $"{result.EpochLosses.Count}/{options.Epochs} epochs{(result.ResumedFromEpoch > 0 ? $" (resumed after epoch {result.ResumedFromEpoch})" : "")}, alpha {options.Alpha.ToString(invariant)}, T {options.Temperature.ToString(invariant)}, final loss {result.EpochLosses[^1].ToString("0.0000", invariant)}",
            new Dictionary<string, string>
            {
                ["epochs"] = options.Epochs.ToString(invariant),
                ["alpha"] = options.Alpha.ToString(invariant),
                ["temperature"] = options.Temperature.ToString(invariant),
                ["learning_rate"] = options.LearningRate.ToString(invariant),
                ["batch_size"] = options.BatchSize.ToString(invariant),
                ["train_samples"] = data.Count.ToString(invariant),
                ["optimizer"] = options.Optimizer.ToString().ToLowerInvariant(),
                ["schedule"] = options.Schedule.ToString().ToLowerInvariant(),
                ["weight_decay"] = options.WeightDecay.ToString(invariant),
                ["clip_grad_norm"] = options.ClipGradNorm.ToString(invariant),
                ["steps"] = result.Steps.ToString(invariant),
                ["epochs_run"] = result.EpochLosses.Count.ToString(invariant),
                ["validation_samples"] = (validation?.Count ?? 0).ToString(invariant),
                ["best_validation_accuracy"] = result.BestValidationAccuracy?.ToString("0.0000", invariant) ?? "",
                ["best_epoch"] = result.BestEpoch.ToString(invariant),
                ["stopped_early"] = result.StoppedEarly ? "true" : "false",
                ["resumed_from_epoch"] = result.ResumedFromEpoch.ToString(invariant),
            },
            result.EpochLosses,
            clock.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// The checkpoint folder of this stage run, named by the same key the cache stores its output under, so a
    /// killed run of the same stage, input, options and data resumes from its last epoch.
    /// </summary>
    private string CheckpointFolder(StageContext context, string inputModel, string outputModel)
    {
        var key = new ContentHash().Add("engine", CompressionPipeline.EngineVersion).Add("stage", Kind).Add("input", ModelHash.ComputeFile(inputModel));
        AddToKey(key, context);
        // Without a configured root: the output folder is a temporary folder inside the cache root.
        var root = context.CheckpointRoot
            ?? Path.Combine(Path.GetDirectoryName(Path.GetDirectoryName(Path.GetFullPath(outputModel))!)!, "checkpoints");
        return Path.Combine(root, $"{Kind}-{key.Finish()}");
    }

    private static void TryDelete(string folder)
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
    private sealed class Progress(StageContext context, string stage) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => context.Reporter.Training(stage, value);
    }
}
