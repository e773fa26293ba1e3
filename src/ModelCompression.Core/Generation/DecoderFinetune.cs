using ModelCompression.Diagnostics;
using ModelCompression.Onnx.Proto;
using ModelCompression.Torch.Training;
using ModelCompression.Training;

namespace ModelCompression.Generation;

/// <summary>
/// Fine-tuning a decoder on chat data: gold answers (fine-tuning), gold and teacher answers (sequence-level
/// distillation), with the teacher's token distributions on top (token-level distillation, <see cref="TeacherTokens"/>).
/// </summary>
/// <param name="Name">Who trains, for messages ("finetune", "distill").</param>
/// <param name="Model">The decoder, in the <see cref="Onnx.DecoderConvention"/>.</param>
/// <param name="ModelPath">The file <paramref name="Model"/> came from (named in messages; external data is read beside it).</param>
/// <param name="Train">The training rows.</param>
/// <param name="Objective">Masked next-token cross-entropy, with kd_ratio and temperature of token-level distillation.</param>
/// <param name="Settings">Budget, optimizer, schedule, validation (perplexity, lower is better) and early stopping.</param>
public sealed record DecoderFinetuneJob(string Name, ModelProto Model, string ModelPath, ChatTrainingSet Train, LanguageModelObjective Objective, TrainingSettings Settings)
{
    /// <summary>A validation split of chat records (rendered with the same template); it wins over <see cref="TrainingSettings.ValidationFraction"/>.</summary>
    public ChatTrainingSet? Validation { get; init; }

    /// <summary>The teacher's distributions over <see cref="Train"/>'s rows (<see cref="TeacherTokenCache.Write"/>); needed when kd_ratio is above 0.</summary>
    public TeacherTokens? Teacher { get; init; }

    /// <summary>The folder of the resumable checkpoint, named by the caller's cache key; null keeps none.</summary>
    public string? CheckpointFolder { get; init; }

    /// <summary>The TensorBoard folder; null writes none.</summary>
    public string? LogDirectory { get; init; }

    /// <summary>Progress of the run; null for none.</summary>
    public IProgress<TrainingProgress>? Progress { get; init; }

    /// <summary>Receives one-line messages for people; null for none.</summary>
    public Action<string>? Info { get; init; }
}

/// <summary>
/// Trains a decoder on a <see cref="ChatTrainingSet"/> through the one training flow (<see cref="TrainingFlow"/>):
/// the job's graph imported into TorchSharp, trained with <see cref="LanguageModelObjective"/> (validation perplexity,
/// the best epoch kept) and written back as the same graph, so the result keeps its cache inputs and outputs and
/// <see cref="Generator"/> runs it at once.
/// </summary>
public static class DecoderFinetune
{
    /// <summary>
    /// Checks the model against the convention (MC2080) and the data's vocabulary (MC2085, when the graph fixes the
    /// logits' width), then trains. The written-back graph is checked against the same signature it had.
    /// </summary>
    public static TrainedModel Run(DecoderFinetuneJob job, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(job);
        var signature = CheckModel(job.Model, job.ModelPath, job.Train.Vocabulary);
        CheckLength(signature, job.ModelPath, job.Train);
        if (job.Validation is { } validation)
        {
            CheckLength(signature, job.ModelPath, validation);
        }

        var train = job.Train.ToTrainingSet(job.Teacher);
        var flow = new TrainingJob(job.Name, job.Model, job.ModelPath, train, job.Objective, job.Settings)
        {
            Validation = job.Validation?.ToTrainingSet(),
            CheckpointFolder = job.CheckpointFolder,
            LogDirectory = job.LogDirectory,
            Progress = job.Progress,
            Info = job.Info,
        };
        var parts = string.Join(", ", job.Train.Parts.Select(p => $"{p.Sequences} {p.Origin} sequences ({p.TrainedTokens} trained tokens)"));
        job.Info?.Invoke($"{job.Name}: {parts}{(job.Teacher is { } t ? $", teacher tokens {t.Form}{(t.K > 0 ? $" k {t.K}" : "")}, kd_ratio {job.Objective.KdRatio}" : "")}");
        var trained = TrainingFlow.Run(flow, cancellationToken);
        if (DecoderSignature.Read(trained.Model, job.ModelPath) != signature)
        {
            throw new InvalidOperationException($"Training changed the decoder signature of '{job.ModelPath}'.");
        }

        return trained;
    }

    /// <summary>MC2086 when <paramref name="data"/>'s trained sequences reach past the decoder's position table (when the graph fixes one).</summary>
    internal static void CheckLength(DecoderSignature signature, string modelPath, ChatTrainingSet data)
    {
        var longest = data.LongestTrainedPrefix;
        if (signature.MaxPositions is { } positions && longest > positions)
        {
            throw CompressionException.Error(
                DiagnosticCodes.DecoderSequenceTooLong,
                $"The decoder '{modelPath}' has {positions} positions but chat sequences are trained up to {longest} tokens: lower max_length to {positions} or less, or use a decoder with more positions.",
                modelPath);
        }
    }

    /// <summary>The decoder's signature; MC2080 when <paramref name="model"/> is not in the convention, MC2085 when its logits are not <paramref name="vocabulary"/> wide.</summary>
    internal static DecoderSignature CheckModel(ModelProto model, string modelPath, int vocabulary)
    {
        ArgumentNullException.ThrowIfNull(model);
        var signature = DecoderSignature.Read(model, modelPath);
        if (signature.Vocabulary is { } width && width != vocabulary)
        {
            throw CompressionException.Error(
                DiagnosticCodes.DecoderVocabularyMismatch,
                $"The decoder '{modelPath}' has logits over {width} tokens but its tokenizer has {vocabulary}: the model and the tokenizer do not belong together.",
                modelPath);
        }

        return signature;
    }
}
