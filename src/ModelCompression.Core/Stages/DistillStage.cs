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
        .Add("options", System.Text.Json.JsonSerializer.Serialize(options))
        .Add("teacher", context.TeacherHash)
        .Add("data", context.DataHash);

    /// <inheritdoc />
    public StageResult Run(StageContext context, string inputModel, string outputModel)
    {
        var clock = Stopwatch.StartNew();
        long[] sampleShape;
        using (var runner = new OnnxRunner(inputModel, threads: 1))
        {
            sampleShape = runner.SampleShapeFor(context.Train);
            if (runner.OutputWidth != context.Classes)
            {
                throw Diagnostics.CompressionException.Error(
                    Diagnostics.DiagnosticCodes.DataSchemaMismatch,
                    $"The student's output '{runner.OutputName}' has {runner.OutputWidth} classes but the teacher has {context.Classes}.",
                    inputModel);
            }
        }

        var teacherLogits = options.Alpha > 0 ? context.TeacherTrainLogits : null;
        TorchNativeLoader.EnsureLoaded();
        using var student = TrainableGraph.Import(OnnxModelFile.Load(inputModel), modelPath: inputModel);
        var data = new TrainingSet(context.Train.Inputs, sampleShape, context.Train.Labels, teacherLogits, context.Classes);
        var result = ClassificationTrainer.Train(
            student,
            data,
            new DistillationLoss(options.Alpha, options.Temperature),
            new TrainingOptions(options.Epochs, options.BatchSize, options.LearningRate, options.Seed),
            new Progress(context, Kind),
            context.CancellationToken);
        OnnxModelFile.Save(student.WriteBack(), outputModel);

        var invariant = CultureInfo.InvariantCulture;
        return new StageResult(
            Kind,
            $"{options.Epochs} epochs, alpha {options.Alpha.ToString(invariant)}, T {options.Temperature.ToString(invariant)}, final loss {result.EpochLosses[^1].ToString("0.0000", invariant)}",
            new Dictionary<string, string>
            {
                ["epochs"] = options.Epochs.ToString(invariant),
                ["alpha"] = options.Alpha.ToString(invariant),
                ["temperature"] = options.Temperature.ToString(invariant),
                ["learning_rate"] = options.LearningRate.ToString(invariant),
                ["batch_size"] = options.BatchSize.ToString(invariant),
                ["train_samples"] = context.Train.Count.ToString(invariant),
            },
            result.EpochLosses,
            clock.Elapsed.TotalSeconds);
    }

    /// <summary>Forwards training progress synchronously (IProgress's default posts to the thread pool).</summary>
    private sealed class Progress(StageContext context, string stage) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => context.Reporter.Training(stage, value);
    }
}
