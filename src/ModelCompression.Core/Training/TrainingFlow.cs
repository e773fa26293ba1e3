using ModelCompression.Onnx.Proto;
using ModelCompression.Torch.Graph;
using ModelCompression.Torch.Native;
using ModelCompression.Torch.Training;

namespace ModelCompression.Training;

/// <summary>What one training run needs; the caller (a stage's adapter) has bound the data and run the teachers.</summary>
/// <param name="Name">Who trains, for messages ("distill", "prune").</param>
/// <param name="Model">The graph to train.</param>
/// <param name="ModelPath">The file <paramref name="Model"/> came from (external data is read beside it).</param>
/// <param name="Train">The labelled training samples, with the teacher's targets where the loss reads them.</param>
/// <param name="Loss">The loss (the task's training objective).</param>
/// <param name="Settings">Budget, optimizer, schedule, validation and logs.</param>
public sealed record TrainingJob(string Name, ModelProto Model, string ModelPath, TrainingSet Train, ITrainingObjective Loss, TrainingSettings Settings)
{
    /// <summary>How the graph is imported (values a hint loss reads); null for the defaults.</summary>
    public TrainableGraphOptions? GraphOptions { get; init; }

    /// <summary>The recipe's own validation split: it wins over carving <see cref="TrainingSettings.ValidationFraction"/> out of <see cref="Train"/>.</summary>
    public TrainingSet? Validation { get; init; }

    /// <summary>An unlabelled pool trained on besides <see cref="Train"/> (after any validation is carved out of it); null for none.</summary>
    public TrainingSet? Unlabelled { get; init; }

    /// <summary>The folder of the resumable checkpoint, named by the caller's cache key; null keeps none.</summary>
    public string? CheckpointFolder { get; init; }

    /// <summary>The TensorBoard folder, resolved against the recipe; null writes none.</summary>
    public string? LogDirectory { get; init; }

    /// <summary>Given the imported graph, the action to run after every optimizer step (pruning masks); null for none.</summary>
    public Func<TrainableGraph, Action<long>>? AfterStep { get; init; }

    /// <summary>Progress of the run; null for none.</summary>
    public IProgress<TrainingProgress>? Progress { get; init; }

    /// <summary>Receives one-line messages for people; null for none.</summary>
    public Action<string>? Info { get; init; }
}

/// <summary>What a training run gave: the trained graph, the trainer's result and its typed outcome.</summary>
/// <param name="Model">The same graph with the trained initializers.</param>
/// <param name="Result">The trainer's result (losses and validation accuracies per epoch).</param>
/// <param name="Outcome">Steps, epochs, validation and sample counts.</param>
public sealed record TrainedModel(ModelProto Model, TrainingResult Result, TrainingOutcome Outcome);

/// <summary>
/// The one training flow of finetune, distill, sweep trials and prune/factorize recovery: import the graph into
/// TorchSharp, make the validation set, add the unlabelled pool, train with checkpoints, progress and TensorBoard,
/// and write the same graph back. It knows nothing of stages: an adapter builds the job from a stage's context.
/// </summary>
public static class TrainingFlow
{
    /// <summary>Trains <see cref="TrainingJob.Model"/> as <paramref name="job"/> says.</summary>
    public static TrainedModel Run(TrainingJob job, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(job);
        TorchNativeLoader.EnsureLoaded();
        using var graph = TrainableGraph.Import(job.Model, job.GraphOptions, modelPath: job.ModelPath);
        var data = job.Train;
        var validation = job.Validation;
        if (validation is null && job.Settings.ValidationFraction > 0)
        {
            // Carved before the pool joins, so the validation samples are labelled ones, and the same seed holds
            // out the same samples with or without a pool.
            (data, validation) = data.SplitRandom(job.Settings.ValidationFraction, job.Settings.Seed);
        }

        var labelled = data.Count;
        if (job.Unlabelled is { } pool)
        {
            data = data.WithUnlabelled(pool);
            job.Info?.Invoke($"{job.Name}: {labelled} labelled and {data.Count - labelled} unlabelled training samples");
        }

        var result = ClassificationTrainer.Train(
            graph,
            data,
            job.Loss,
            job.Settings.ToTrainingOptions(job.CheckpointFolder, job.LogDirectory, job.AfterStep?.Invoke(graph)),
            validation,
            job.Progress,
            cancellationToken);
        var trained = graph.WriteBack();
        if (job.CheckpointFolder is { } checkpoints)
        {
            // The output is about to be cached under the same key; the checkpoints only served an interrupted run.
            TryDelete(checkpoints);
        }

        return new TrainedModel(trained, result, TrainingOutcome.Of(result, data.Count, data.Count - labelled, validation?.Count ?? 0));
    }

    /// <summary>Removes a finished run's checkpoints.</summary>
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
}
