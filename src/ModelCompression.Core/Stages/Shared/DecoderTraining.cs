using System.Globalization;
using ModelCompression.Generation;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Torch.Training;
using ModelCompression.Training;

namespace ModelCompression.Stages;

/// <summary>What the decoder stages (finetune, distill, the twin) share: one training job over chat rows, and its result.</summary>
internal static class DecoderTraining
{
    /// <summary>
    /// The training rows of a stage that learns from the teacher's answers: the gold conversations, then the teacher's
    /// answers of an earlier generate stage (none before one), rendered with the student's template.
    /// </summary>
    public static ChatTrainingSet GoldAndTeacherRows(GenerationContext context)
    {
        var maxLength = context.Settings.MaxLength;
        var train = ChatTrainingSet.Render(context.Train, context.Template, maxLength);
        return context.TeacherAnswers.Count > 0
            ? train.Concat(ChatTrainingSet.Render(context.TeacherAnswers, context.Template, maxLength, origin: "teacher"))
            : train;
    }

    /// <summary>
    /// Trains <paramref name="inputModel"/> (or <paramref name="initial"/>, its graph with other weights: from the teacher,
    /// or pruned) on <paramref name="train"/> through the one training flow.
    /// </summary>
    public static TrainedModel Run(string kind, GenerationContext context, string inputModel, ChatTrainingSet train, LanguageModelObjective objective, TrainingSettings options, TeacherTokens? teacher, ModelProto? initial = null)
    {
        foreach (var warning in train.Warnings)
        {
            context.Reporter.Report(warning);
        }

        var validation = context.Validation is { Count: > 0 } records ? ChatTrainingSet.Render(records, context.Template, context.Settings.MaxLength) : null;
        var job = new DecoderFinetuneJob(kind, initial ?? OnnxModelFile.Load(inputModel), inputModel, train, objective, options)
        {
            Validation = validation,
            Teacher = teacher,
            CheckpointFolder = context.CheckpointFolder(kind),
            LogDirectory = options.TensorBoardDirectory is { Length: > 0 } logs ? Path.Combine(context.RecipeDirectory, logs) : null,
            Progress = context.TrainingReporter(kind),
            Info = context.Reporter.Info,
        };
        return DecoderFinetune.Run(job, context.CancellationToken);
    }

    /// <summary>
    /// The student at <paramref name="studentPath"/>, or with init_from_teacher a copy whose layers start from the teacher's as the layer map
    /// says (embedding, tied head, positions and final norm by name); MC2076/MC2077 when the map or the weights do not fit.
    /// </summary>
    public static (ModelProto Model, int Copied) StartFromTeacher(string kind, GenerationContext context, string studentPath, TrainingStageOptions options)
    {
        var student = OnnxModelFile.Load(studentPath);
        if (!options.InitFromTeacher)
        {
            return (student, 0);
        }

        var teacher = context.RequireTeacher(kind);
        var (initial, copied) = DecoderTeacherInitialization.Apply(student, OnnxModelFile.Load(teacher.Path), options.LayerMap, studentPath, teacher.Path);
        context.Reporter.Info($"{kind}: {copied.Count} of {initial.Graph.Initializer.Count} initializers start from the teacher's{(options.LayerMap.Length > 0 ? $" (layer map [{string.Join(", ", options.LayerMap)}])" : "")}");
        return (initial, copied.Count);
    }

    /// <summary>The stage result of a decoder training run: summary line, details, losses and the training outcome.</summary>
    public static StageResult Result(string kind, TrainingSettings options, ChatTrainingSet train, TrainedModel trained, string? distillation, TimeSpan elapsed)
    {
        var invariant = CultureInfo.InvariantCulture;
        var result = trained.Result;
        var parts = string.Join(" + ", train.Parts.Select(p => $"{p.Sequences} {p.Origin}"));
        var summary = $"{result.EpochLosses.Count}/{options.Epochs} epochs"
            + (result.ResumedFromEpoch > 0 ? $" (resumed after epoch {result.ResumedFromEpoch})" : "")
            + $" on {parts} conversations ({train.TrainedTokens} answer tokens)"
            + (distillation is null ? ", gold answers only" : $", {distillation}")
            + $", final loss {result.EpochLosses[^1].ToString("0.0000", invariant)}";
        var details = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["epochs"] = result.EpochLosses.Count.ToString(invariant),
            ["steps"] = trained.Outcome.Steps.ToString(invariant),
            ["steps_per_epoch"] = trained.Outcome.StepsPerEpoch.ToString(invariant),
            ["learning_rate"] = options.LearningRate.ToString(invariant),
            ["batch_size"] = options.BatchSize.ToString(invariant),
            ["answer_tokens"] = train.TrainedTokens.ToString(invariant),
            ["distillation"] = distillation ?? "none (gold answers only)",
        };
        foreach (var part in train.Parts)
        {
            details[$"conversations.{part.Origin}"] = part.Sequences.ToString(invariant);
            details[$"dropped_too_long.{part.Origin}"] = part.Dropped.ToString(invariant);
        }

        return new StageResult(kind, summary, details, result.EpochLosses, elapsed.TotalSeconds, result.ValidationAccuracies.Count > 0 ? result.ValidationAccuracies : null)
        {
            Training = trained.Outcome,
        };
    }
}
