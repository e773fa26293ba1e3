using System.Diagnostics;
using System.Globalization;
using ModelCompression.Common;
using ModelCompression.Generation;
using ModelCompression.Onnx;
using ModelCompression.Torch.Training;
using ModelCompression.Training;

namespace ModelCompression.Stages;

/// <summary>
/// finetune (and the labels-only twin of distill) for task: generation: the decoder trained on the gold answers of the
/// training conversations, loss only on assistant tokens (<see cref="DecoderFinetune"/>), validated by perplexity on the
/// recipe's validation conversations (or a carved fraction), the best epoch kept.
/// </summary>
/// <param name="options">The stage's options (the twin: the distill run's budget, its steps per epoch).</param>
/// <param name="kind">The stage kind this run reports as ("finetune").</param>
public sealed class DecoderFinetuneStage(FinetuneOptions options, string kind = "finetune") : IGenerativeStage
{
    /// <inheritdoc />
    public string Kind => kind;

    /// <summary>The labels-only twin of a distill run: the same budget, seed and steps per epoch on the gold answers alone.</summary>
    public static DecoderFinetuneStage LabelsOnlyTwin(DistillOptions distill, StageResult student)
    {
        ArgumentNullException.ThrowIfNull(distill);
        var outcome = student?.Training ?? throw new ArgumentException("The distill run has no training outcome.", nameof(student));
        return new DecoderFinetuneStage(new FinetuneOptions(distill) { TensorBoardDirectory = null, StepsPerEpoch = outcome.StepsPerEpoch });
    }

    /// <inheritdoc />
    public void AddToKey(ContentHash key, GenerationContext context)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(context);
        key.Add("options", System.Text.Json.JsonSerializer.Serialize(options with { TensorBoardDirectory = null }, options.GetType()))
            .Add("max_length", context.Settings.MaxLength.ToString(CultureInfo.InvariantCulture))
            .Add("teacher", options.InitFromTeacher ? context.RequireTeacher(Kind).Hash : "none");
        context.AddDataToKey(key);
    }

    /// <inheritdoc />
    public StageResult Run(GenerationContext context, string inputModel, string outputModel)
    {
        ArgumentNullException.ThrowIfNull(context);
        var clock = Stopwatch.StartNew();
        var train = ChatTrainingSet.Render(context.Train, context.Template, context.Settings.MaxLength);
        var (initial, copied) = DecoderTraining.StartFromTeacher(Kind, context, inputModel, options);
        var trained = DecoderTraining.Run(Kind, context, inputModel, train, new LanguageModelObjective(0), options, teacher: null, initial);
        OnnxModelFile.Save(trained.Model, outputModel);
        var result = DecoderTraining.Result(Kind, options, train, trained, null, clock.Elapsed);
        return copied > 0 ? result with { Details = new Dictionary<string, string>(result.Details) { ["initializers_from_teacher"] = copied.ToString(CultureInfo.InvariantCulture) } } : result;
    }
}
