using System.Diagnostics;
using ModelCompression.Torch.Graph;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelCompression.Torch.Training;

/// <summary>Inputs, labels and (for distillation) teacher logits, all held in memory, row-major.</summary>
/// <param name="Inputs">Samples, <see cref="SampleShape"/> elements each.</param>
/// <param name="SampleShape">The shape of one sample as the student's input wants it (no batch axis).</param>
/// <param name="Labels">Class labels, one per sample; null for unlabelled data.</param>
/// <param name="TeacherLogits">Teacher logits, <see cref="Classes"/> per sample; null when not distilling.</param>
/// <param name="Classes">Number of classes.</param>
public sealed record TrainingSet(float[] Inputs, long[] SampleShape, long[]? Labels, float[]? TeacherLogits, int Classes)
{
    /// <summary>The number of samples.</summary>
    public int Count => Inputs.Length / (int)SampleShape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>Options of one training run.</summary>
/// <param name="Epochs">Passes over the training set.</param>
/// <param name="BatchSize">Samples per optimizer step.</param>
/// <param name="LearningRate">Adam learning rate.</param>
/// <param name="Seed">Seeds weight init order, dropout and shuffling: same seed and data, same weights.</param>
public sealed record TrainingOptions(int Epochs, int BatchSize, double LearningRate, int Seed);

/// <summary>Where a training run is, for progress display.</summary>
/// <param name="Epoch">1-based epoch.</param>
/// <param name="Epochs">Total epochs.</param>
/// <param name="Step">Steps done so far over the whole run.</param>
/// <param name="TotalSteps">Steps the whole run takes.</param>
/// <param name="Loss">Mean loss of the current epoch so far.</param>
/// <param name="Elapsed">Time since the run started.</param>
public sealed record TrainingProgress(int Epoch, int Epochs, int Step, int TotalSteps, double Loss, TimeSpan Elapsed);

/// <summary>What a training run did.</summary>
/// <param name="EpochLosses">Mean training loss of each epoch.</param>
/// <param name="Duration">Wall time.</param>
public sealed record TrainingResult(IReadOnlyList<double> EpochLosses, TimeSpan Duration);

/// <summary>Trains a <see cref="TrainableGraph"/> classifier with Adam on a <see cref="TrainingSet"/>.</summary>
public static class ClassificationTrainer
{
    /// <summary>Runs the training loop. The graph's parameters are updated in place.</summary>
    public static TrainingResult Train(
        TrainableGraph model,
        TrainingSet data,
        DistillationLoss loss,
        TrainingOptions options,
        IProgress<TrainingProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        torch.manual_seed(options.Seed);
        var random = new Random(options.Seed);
        var count = data.Count;
        var sampleSize = (int)data.SampleShape.Aggregate(1L, (a, b) => a * b);
        var stepsPerEpoch = (count + options.BatchSize - 1) / options.BatchSize;
        var totalSteps = stepsPerEpoch * options.Epochs;
        var clock = Stopwatch.StartNew();
        var losses = new List<double>();
        var order = Enumerable.Range(0, count).ToArray();
        var batchInputs = new float[options.BatchSize * sampleSize];
        var batchLabels = new long[options.BatchSize];
        var batchTeacher = new float[options.BatchSize * data.Classes];

        using var optimizer = torch.optim.Adam(model.parameters(), options.LearningRate);
        model.train();
        var step = 0;
        for (var epoch = 1; epoch <= options.Epochs; epoch++)
        {
            random.Shuffle(order);
            var epochLoss = 0.0;
            var seen = 0;
            for (var start = 0; start < count; start += options.BatchSize)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var size = Math.Min(options.BatchSize, count - start);
                for (var i = 0; i < size; i++)
                {
                    var row = order[start + i];
                    Array.Copy(data.Inputs, (long)row * sampleSize, batchInputs, (long)i * sampleSize, sampleSize);
                    if (data.Labels is not null)
                    {
                        batchLabels[i] = data.Labels[row];
                    }

                    if (data.TeacherLogits is not null)
                    {
                        Array.Copy(data.TeacherLogits, (long)row * data.Classes, batchTeacher, (long)i * data.Classes, data.Classes);
                    }
                }

                // Every tensor made in a step is freed at its end; only parameters and optimizer state live on.
                using (torch.NewDisposeScope())
                {
                    long[] shape = [size, .. data.SampleShape];
                    var x = torch.tensor(batchInputs.AsSpan(0, size * sampleSize).ToArray(), shape);
                    var y = data.Labels is null ? null : torch.tensor(batchLabels.AsSpan(0, size).ToArray(), [size]);
                    var t = data.TeacherLogits is null ? null : torch.tensor(batchTeacher.AsSpan(0, size * data.Classes).ToArray(), [size, data.Classes]);
                    optimizer.zero_grad();
                    var value = loss.Compute(model.Forward(x), y, t);
                    value.backward();
                    optimizer.step();
                    epochLoss += value.item<float>() * size;
                    seen += size;
                }

                step++;
                progress?.Report(new TrainingProgress(epoch, options.Epochs, step, totalSteps, epochLoss / seen, clock.Elapsed));
            }

            losses.Add(epochLoss / Math.Max(1, seen));
        }

        model.eval();
        return new TrainingResult(losses, clock.Elapsed);
    }
}
