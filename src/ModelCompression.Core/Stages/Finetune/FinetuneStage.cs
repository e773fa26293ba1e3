using System.Diagnostics;
using ModelCompression.Common;
using ModelCompression.Onnx;
using ModelCompression.Torch.Training;
using ModelCompression.Training;

namespace ModelCompression.Stages;

/// <summary>
/// Trains the student on the labels alone (cross-entropy): how a built-in architecture becomes a first student or
/// a teacher, and what a distilled student is compared with (its labels-only twin). The model is imported into
/// TorchSharp, trained, and the same graph is written back with the trained weights.
/// </summary>
/// <param name="options">The stage's options.</param>
public sealed class FinetuneStage(FinetuneOptions options) : IStage
{
    private static readonly DistillationLoss LabelsOnly = new(0, 1);

    /// <inheritdoc />
    public string Kind => "finetune";

    /// <summary>
    /// The labels-only twin of a distill run: the same student, budget, optimizer, schedule and seed on the labels
    /// alone. A student that also learned from an unlabelled pool took more steps per epoch than a pass over the
    /// labels: the twin takes as many, cycling over the labels, or the gain would partly be the pool's extra steps.
    /// </summary>
    /// <param name="distill">The distill stage's options.</param>
    /// <param name="student">What the distill run did.</param>
    public static FinetuneStage LabelsOnlyTwin(DistillOptions distill, StageResult student)
    {
        ArgumentNullException.ThrowIfNull(distill);
        var outcome = student?.Training ?? throw new ArgumentException("The distill run has no training outcome.", nameof(student));
        return new FinetuneStage(new FinetuneOptions(distill)
        {
            TensorBoardDirectory = null,
            StepsPerEpoch = outcome.UnlabelledSamples > 0 ? outcome.StepsPerEpoch : 0,
        });
    }

    /// <inheritdoc />
    public void AddToKey(ContentHash key, StageContext context)
    {
        // Where the TensorBoard logs go does not change the model.
        key.Add("options", System.Text.Json.JsonSerializer.Serialize(options with { TensorBoardDirectory = null }, options.GetType()))
            .Add("data", context.DataHash);
        if (options.InitFromTeacher)
        {
            key.Add("teacher", context.TeacherHash);
        }
    }

    /// <inheritdoc />
    public StageResult Run(StageContext context, string inputModel, string outputModel)
    {
        var clock = Stopwatch.StartNew();
        var bindings = StageTraining.BindStudent(context, inputModel);
        var (initial, copied) = StageTraining.StartFromTeacher(Kind, context, OnnxModelFile.Load(inputModel), options);
        var train = Data.DatasetTraining.ToTrainingSet(context.Train, bindings, null, context.Classes);
        var job = StageTraining.Job(this, context, inputModel, initial, train, context.Task.Objective(LabelsOnly.Alpha, LabelsOnly.Temperature), options) with
        {
            // The recipe's own validation split wins over carving one out of the training data.
            Validation = context.Validation is { } given ? Data.DatasetTraining.ToTrainingSet(given, bindings, null, context.Classes) : null,
        };
        var trained = TrainingFlow.Run(job, context.CancellationToken);
        OnnxModelFile.Save(trained.Model, outputModel);
        return StageTraining.Result(Kind, options, LabelsOnly, trained, copied, [], clock.Elapsed);
    }
}
