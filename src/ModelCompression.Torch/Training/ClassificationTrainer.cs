using System.Diagnostics;
using System.Globalization;
using ModelCompression.Torch.Graph;
using ModelCompression.Torch.Native;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ModelCompression.Torch.Training;

/// <summary>
/// Trains a <see cref="TrainableGraph"/> on a <see cref="TrainingSet"/> for an <see cref="ITrainingObjective"/> (the
/// task's loss and validation score: a classifier with <see cref="DistillationLoss"/>, a regressor with
/// <see cref="RegressionLoss"/>): Adam, AdamW or SGD with
/// momentum, weight decay, warm-up and cosine or linear decay per step, gradient clipping, validation with
/// early stopping, end-of-epoch checkpoints that a killed run resumes from, and TensorBoard logs.
/// On the CPU the same seed, data and options give bit-identical weights, resumed or not.
/// </summary>
public static class ClassificationTrainer
{
    /// <summary>Samples per forward pass when measuring the validation score (no gradients, so it can be larger).</summary>
    private const int ValidationBatchSize = 512;

    /// <summary>Runs the training loop. The graph's parameters are updated in place; the graph ends in eval mode.</summary>
    /// <param name="model">The imported student.</param>
    /// <param name="data">Training samples.</param>
    /// <param name="loss">The objective: soft (teacher) and hard (label) loss, and the validation score.</param>
    /// <param name="options">Optimizer, schedule, checkpoints and logging.</param>
    /// <param name="validation">Labelled samples for the validation score after every epoch; needed for early stopping.</param>
    /// <param name="progress">Receives every step, synchronously.</param>
    /// <param name="cancellationToken">Stops the run between steps; the last checkpoint stays for a later resumption.</param>
    public static TrainingResult Train(
        TrainableGraph model,
        TrainingSet data,
        ITrainingObjective loss,
        TrainingOptions options,
        TrainingSet? validation = null,
        IProgress<TrainingProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(loss);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        CheckData(data, validation, loss, options);
        TorchNativeLoader.EnsureLoaded();

        var profile = StepProfile.Current;
        profile?.Start();
        var clock = Stopwatch.StartNew();
        var names = new TrainableGraphInputs(model.InputNames);
        var count = data.Count;
        var stepsPerEpoch = options.StepsPerEpoch > 0 ? options.StepsPerEpoch : (count + options.BatchSize - 1) / options.BatchSize;
        // An epoch of fixed steps draws full batches from back-to-back shuffled passes; otherwise it is one pass.
        var samplesPerEpoch = options.StepsPerEpoch > 0 ? options.StepsPerEpoch * options.BatchSize : count;
        var totalSteps = stepsPerEpoch * options.Epochs;
        var schedule = LearningRateSchedule.For(options, totalSteps);
        using var hints = data.Hints.Count > 0 ? FeatureHintLoss.Create(model, data, loss.HintWeight, EpochSeed(options.Seed, 0)) : null;
        Parameter[] parameters = [.. model.parameters(), .. hints?.Parameters ?? []];
        // Only checkpoints read the fingerprint and the named state; a run without them does not pay for them.
        var fingerprint = options.CheckpointDirectory is null ? "" : Fingerprint(options, data, validation, loss, model, hints);
        using var optimizer = new ParameterOptimizer(options.Optimizer, parameters, options.LearningRate, options.WeightDecay, options.Momentum);
        List<(string Name, Tensor Value)> trained = options.CheckpointDirectory is null ? [] : [.. TrainingCheckpoint.ModelState(model), .. hints?.State ?? []];

        var state = new TrainingState();
        List<(string Name, Tensor Value)>? best = null;
        try
        {
            var resumedFrom = 0;
            if (options.CheckpointDirectory is { } directory
                && TrainingCheckpoint.TryLoad(directory, fingerprint, trained, TrainingCheckpoint.ModelState(model), optimizer, out var loaded, out best))
            {
                state = loaded;
                resumedFrom = state.Epoch;
            }

            using var log = options.LogDirectory is null ? null : new EventLog(options.LogDirectory);
            var order = new int[samplesPerEpoch];
            var pass = new int[count];
            double? lastValidation = state.ValidationAccuracies.Count > 0 ? state.ValidationAccuracies[^1] : null;
            profile?.Mark(StepPhase.SetUp);
            for (var epoch = state.Epoch + 1; epoch <= options.Epochs && !state.Stopped; epoch++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                // Shuffling and dropout come from (seed, epoch) alone, not from generators advanced over
                // earlier epochs, so a run resumed at any epoch boundary draws exactly what a straight run draws.
                var epochSeed = EpochSeed(options.Seed, epoch);
                torch.manual_seed(epochSeed);
                model.SeedRandom(epochSeed);
                var shuffle = new Random((int)(epochSeed & int.MaxValue));
                for (var filled = 0; filled < samplesPerEpoch; filled += count)
                {
                    for (var i = 0; i < count; i++)
                    {
                        pass[i] = i;
                    }

                    shuffle.Shuffle(pass);
                    pass.AsSpan(0, Math.Min(count, samplesPerEpoch - filled)).CopyTo(order.AsSpan(filled));
                }

                model.train();
                hints?.Train(true);
                var epochLoss = 0.0;
                var epochLearningRate = 0.0;
                var seen = 0;
                for (var start = 0; start < samplesPerEpoch; start += options.BatchSize)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    var size = Math.Min(options.BatchSize, samplesPerEpoch - start);
                    var learningRate = schedule.At(state.Step);
                    optimizer.LearningRate = learningRate;
                    epochLearningRate = learningRate;

                    profile?.Mark(StepPhase.Other);
                    var stepLoss = Step(model, data, names, order.AsSpan(start, size), loss, hints, optimizer, parameters, options.ClipGradNorm, profile);
                    profile?.Mark(StepPhase.Finish);
                    epochLoss += stepLoss * size;
                    seen += size;
                    state.Step++;
                    if (options.AfterOptimizerStep is { } afterStep)
                    {
                        using var noGrad = torch.no_grad();
                        afterStep(state.Step);
                    }

                    log?.Scalar("train/loss", stepLoss, state.Step);
                    log?.Scalar("train/learning_rate", learningRate, state.Step);
                    progress?.Report(new TrainingProgress(epoch, options.Epochs, state.Step, totalSteps, epochLoss / seen, clock.Elapsed, learningRate, lastValidation));
                }

                state.EpochLosses.Add(epochLoss / Math.Max(1, seen));
                log?.Scalar("epoch/train_loss", state.EpochLosses[^1], epoch);
                // The rate of the epoch's last step: with a per-step schedule, where the epoch left it.
                log?.Scalar("epoch/learning_rate", epochLearningRate, epoch);
                if (validation is not null)
                {
                    var (score, validationLoss) = Validate(model, validation, names, loss, withLoss: log is not null, ValidationBatch(validation, options));
                    lastValidation = score;
                    state.ValidationAccuracies.Add(score);
                    log?.Scalar($"epoch/validation_{loss.Validation.Name}", score, epoch);
                    log?.Scalar("epoch/validation_loss", validationLoss!.Value, epoch);
                    if (loss.Validation.Improves(score, state.BestMetric, options.EarlyStoppingMinDelta))
                    {
                        state.BestMetric = score;
                        state.BestEpoch = epoch;
                        state.EpochsWithoutImprovement = 0;
                        best = Snapshot(model, best);
                    }
                    else
                    {
                        state.EpochsWithoutImprovement++;
                        state.Stopped = options.EarlyStoppingPatience > 0 && state.EpochsWithoutImprovement >= options.EarlyStoppingPatience;
                    }
                }

                state.Epoch = epoch;
                log?.Flush();
                if (options.CheckpointDirectory is { } checkpoints)
                {
                    TrainingCheckpoint.Save(checkpoints, fingerprint, state, trained, optimizer, best);
                }
            }

            if (options.RestoreBestWeights && best is not null && state.BestEpoch != state.Epoch)
            {
                Restore(model, best);
            }

            model.eval();
            profile?.Mark(StepPhase.Other);
            return new TrainingResult(state.EpochLosses.ToArray(), clock.Elapsed)
            {
                ValidationAccuracies = state.ValidationAccuracies.ToArray(),
                BestEpoch = state.BestEpoch,
                BestValidationAccuracy = double.IsNaN(state.BestMetric) ? null : state.BestMetric,
                StoppedEarly = state.Stopped && state.Epoch < options.Epochs,
                ResumedFromEpoch = resumedFrom,
                Steps = state.Step,
                StepsPerEpoch = stepsPerEpoch,
            };
        }
        finally
        {
            foreach (var (_, value) in best ?? [])
            {
                value.Dispose();
            }
        }
    }

    /// <summary>Accuracy of <paramref name="model"/>'s first output (argmax) on the labelled <paramref name="data"/>, in eval mode.</summary>
    public static double Accuracy(TrainableGraph model, TrainingSet data)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        if (data.Labels is null)
        {
            throw new ArgumentException("Accuracy needs labels.", nameof(data));
        }

        TorchNativeLoader.EnsureLoaded();
        return Validate(model, data, new TrainableGraphInputs(model.InputNames), new DistillationLoss(0, 1), withLoss: false, ValidationBatchSize).Score;
    }

    /// <summary>
    /// The objective's validation score and (when <paramref name="withLoss"/>) its mean validation loss on the first
    /// output, in eval mode. Only the TensorBoard log reads the loss, so runs without one do not pay for it.
    /// </summary>
    private static (double Score, double? Loss) Validate(TrainableGraph model, TrainingSet data, TrainableGraphInputs names, ITrainingObjective objective, bool withLoss, int batchSize)
    {
        var wasTraining = model.training;
        model.eval();
        var rows = Enumerable.Range(0, data.Count).ToArray();
        var scoreSum = 0.0;
        var lossSum = 0.0;
        using (torch.no_grad())
        {
            for (var start = 0; start < data.Count; start += batchSize)
            {
                using var scope = torch.NewDisposeScope();
                var size = Math.Min(batchSize, data.Count - start);
                var outputs = FirstOutput(model, data.Batch(names, rows.AsSpan(start, size)));
                var (score, loss) = objective.ValidationSums(outputs, data, rows.AsSpan(start, size), withLoss);
                scoreSum += score;
                lossSum += loss;
            }
        }

        model.train(wasTraining);
        var (total, meanLoss) = objective.ValidationResult(scoreSum, lossSum, objective.ValidationCount(data));
        return (total, withLoss ? meanLoss : null);
    }

    /// <summary>One optimizer step; every tensor it makes is freed before it returns.</summary>
    private static double Step(
        TrainableGraph model,
        TrainingSet data,
        TrainableGraphInputs names,
        ReadOnlySpan<int> rows,
        ITrainingObjective loss,
        FeatureHintLoss? hints,
        ParameterOptimizer optimizer,
        Parameter[] parameters,
        double clipGradNorm,
        StepProfile? profile)
    {
        using var scope = torch.NewDisposeScope();
        var inputs = data.Batch(names, rows);
        var targets = loss.Targets(data, rows);
        profile?.Mark(StepPhase.Batch);
        optimizer.ZeroGrad();
        profile?.Mark(StepPhase.Optimizer);
        Tensor value;
        if (hints is null)
        {
            var logits = FirstOutput(model, inputs);
            profile?.Mark(StepPhase.Forward);
            value = loss.Loss(logits, targets);
        }
        else
        {
            var outputs = model.Forward(inputs, hints.StudentTensors);
            profile?.Mark(StepPhase.Forward);
            value = loss.Loss(outputs[model.OutputNames[0]], targets).Plus(hints.Compute(outputs, rows));
        }

        profile?.Mark(StepPhase.Loss);
        value.backward();
        profile?.Mark(StepPhase.Backward);
        if (clipGradNorm > 0)
        {
            torch.nn.utils.clip_grad_norm_(parameters, clipGradNorm);
        }

        optimizer.Step();
        profile?.Mark(StepPhase.Optimizer);
        profile?.CountTensors(scope.DisposablesCount);
        return value.item<float>();
    }

    /// <summary>
    /// Sequences of a decoder give logits [batch, length, vocabulary]: validated at the training batch size, which fits
    /// in memory with gradients, not at <see cref="ValidationBatchSize"/>.
    /// </summary>
    private static int ValidationBatch(TrainingSet validation, TrainingOptions options) =>
        validation.TokenLabels is null ? ValidationBatchSize : options.BatchSize;

    private static Tensor FirstOutput(TrainableGraph model, Dictionary<string, Tensor> inputs) =>
        model.Forward(inputs)[model.OutputNames[0]];

    private static void CheckData(TrainingSet data, TrainingSet? validation, ITrainingObjective loss, TrainingOptions options)
    {
        if (data.Count == 0)
        {
            throw new ArgumentException("The training set is empty.", nameof(data));
        }

        loss.CheckData(data, validation);

        if (options.EarlyStoppingPatience > 0 && validation is null)
        {
            throw new ArgumentException("Early stopping needs a validation set.", nameof(validation));
        }
    }

    /// <summary>A per-epoch seed: a 64-bit mix (splitmix64) of the run seed and the epoch.</summary>
    internal static long EpochSeed(int seed, int epoch)
    {
        var z = unchecked(((ulong)(uint)seed << 32) + (ulong)(uint)epoch + 0x9E3779B97F4A7C15UL);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        return (long)((z ^ (z >> 31)) & long.MaxValue);
    }

    /// <summary>What a checkpoint must agree on to be resumed: everything that shapes the weights' trajectory.</summary>
    private static string Fingerprint(TrainingOptions options, TrainingSet data, TrainingSet? validation, ITrainingObjective loss, TrainableGraph model, FeatureHintLoss? hints)
    {
        var o = options with { CheckpointDirectory = null, LogDirectory = null };
        var parameters = string.Join(";", TrainingCheckpoint.ModelState(model).Select(p => $"{p.Name}:{p.Value.dtype}[{string.Join(",", p.Value.shape)}]"));
        return string.Create(
            CultureInfo.InvariantCulture,
            $"{o.Epochs}|{o.BatchSize}|{o.LearningRate:R}|{o.Seed}|{o.Optimizer}|{o.WeightDecay:R}|{o.Momentum:R}|{o.WarmupSteps}|{o.WarmupFraction:R}|{o.Schedule}|{o.ClipGradNorm:R}|{o.EarlyStoppingPatience}|{o.EarlyStoppingMinDelta:R}|{o.RestoreBestWeights}|steps per epoch {o.StepsPerEpoch}|{loss.Fingerprint}|train {data.Count}|validation {validation?.Count ?? 0}|{parameters}{(hints is null ? "" : "|" + hints.Fingerprint)}{data.SequenceFingerprint}");
    }

    private static List<(string Name, Tensor Value)> Snapshot(TrainableGraph model, List<(string Name, Tensor Value)>? into)
    {
        var current = TrainingCheckpoint.ModelState(model);
        if (into is null)
        {
            return [.. current.Select(p => (p.Name, TrainingCheckpoint.CloneDetached(p.Value)))];
        }

        using var noGrad = torch.no_grad();
        for (var i = 0; i < current.Count; i++)
        {
            into[i].Value.copy_(current[i].Value);
        }

        return into;
    }

    private static void Restore(TrainableGraph model, List<(string Name, Tensor Value)> best)
    {
        var current = TrainingCheckpoint.ModelState(model);
        using var noGrad = torch.no_grad();
        for (var i = 0; i < current.Count; i++)
        {
            current[i].Value.copy_(best[i].Value);
        }
    }
}
