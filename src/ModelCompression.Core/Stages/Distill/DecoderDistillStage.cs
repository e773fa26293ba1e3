using System.Diagnostics;
using System.Globalization;
using ModelCompression.Common;
using ModelCompression.Diagnostics;
using ModelCompression.Generation;
using ModelCompression.Onnx;
using ModelCompression.Torch.Training;
using ModelCompression.Training;

namespace ModelCompression.Stages;

/// <summary>
/// distill for task: generation. Sequence-level: the decoder is fine-tuned on the gold answers plus the teacher's answers
/// (written by an earlier generate stage). Token-level, when alpha is above 0 and the teacher shares the student's
/// tokenizer: at every answer token the loss is (1 - alpha) cross-entropy + alpha T² forward KL to the teacher's
/// distribution (torchtune's kd_ratio), the teacher run once over the training rows and its log-probabilities kept on
/// disk (fp16 over the whole vocabulary, or its top k renormalised) rather than recomputed every epoch. An endpoint
/// teacher declared to share the student's tokenizer teaches through the top_logprobs kept with its answers instead.
/// </summary>
/// <param name="options">The stage's options.</param>
public sealed class DecoderDistillStage(DistillOptions options) : IGenerativeStage
{
    /// <inheritdoc />
    public string Kind => "distill";

    /// <summary>Whether the run is token-level with <paramref name="context"/>'s teacher (alpha above 0 and a shared tokenizer).</summary>
    private bool TokenLevel(GenerationContext context) => options.Alpha > 0 && context.Teacher is { SharesTokenizer: true };

    /// <inheritdoc />
    public void AddToKey(ContentHash key, GenerationContext context)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(context);
        key.Add("options", System.Text.Json.JsonSerializer.Serialize(options with { TensorBoardDirectory = null }, options.GetType()))
            .Add("max_length", context.Settings.MaxLength.ToString(CultureInfo.InvariantCulture))
            .Add("teacher_answers", context.TeacherAnswersHash)
            .Add("teacher", context.Teacher?.Hash ?? "none")
            .Add("token_level", TokenLevel(context) ? "yes" : "no");
        context.AddDataToKey(key);
    }

    /// <inheritdoc />
    public StageResult Run(GenerationContext context, string inputModel, string outputModel)
    {
        ArgumentNullException.ThrowIfNull(context);
        var clock = Stopwatch.StartNew();
        var train = DecoderTraining.GoldAndTeacherRows(context);

        var invariant = CultureInfo.InvariantCulture;
        var (initial, _) = DecoderTraining.StartFromTeacher(Kind, context, inputModel, options);
        if (!TokenLevel(context))
        {
            var trained = DecoderTraining.Run(Kind, context, inputModel, train, new LanguageModelObjective(0), options, teacher: null, initial);
            OnnxModelFile.Save(trained.Model, outputModel);
            return DecoderTraining.Result(Kind, options, train, trained, $"sequence-level ({context.TeacherAnswers.Count} teacher answers)", clock.Elapsed);
        }

        var teacher = context.RequireTeacher(Kind);
        if (teacher.Endpoint is { } endpoint)
        {
            return FromEndpointTokens(context, inputModel, outputModel, train, initial, endpoint, clock);
        }

        var form = options.TeacherTopK > 0 ? TeacherTokenForm.TopK : TeacherTokenForm.Full;
        // The store is the run's own scratch file: it lives beside the output while training and is removed after,
        // so the cache entry keeps only the model (the entry is the cache of this whole run).
        var storePath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(outputModel))!, "teacher-tokens.tmp");
        try
        {
            context.Reporter.Info($"{Kind}: the teacher's token distributions over {train.Count} conversations ({(form == TeacherTokenForm.Full ? "full vocabulary, fp16" : $"top {options.TeacherTopK}, renormalised")})");
            using (var session = DecoderSession.Open(teacher.Path, context.Threads))
            {
                TeacherTokenCache.Write(session, train, storePath, form, options.TeacherTopK, context.Settings.BatchSize, context.CancellationToken);
            }

            TrainedModel trained;
            using (var store = TeacherTokenStore.Open(storePath))
            {
                trained = DecoderTraining.Run(Kind, context, inputModel, train, new LanguageModelObjective(options.Alpha, options.Temperature), options, TeacherTokens.Of(store), initial);
            }

            OnnxModelFile.Save(trained.Model, outputModel);
            var how = $"token-level, alpha {options.Alpha.ToString(invariant)}, T {options.Temperature.ToString(invariant)}, teacher {(form == TeacherTokenForm.Full ? "full distribution (fp16)" : $"top {options.TeacherTopK} (renormalised)")}, {context.TeacherAnswers.Count} teacher answers";
            return DecoderTraining.Result(Kind, options, train, trained, how, clock.Elapsed);
        }
        finally
        {
            File.Delete(storePath);
        }
    }

    /// <summary>
    /// Token-level distillation from an endpoint teacher's top_logprobs, kept with its answers by the generate stage: the
    /// store holds, at each answer token that aligns with the student's tokens, the chosen token and its alternatives
    /// (k = top_logprobs + 1), and the label elsewhere (<see cref="Teachers.EndpointTeacherTokens"/>).
    /// </summary>
    private StageResult FromEndpointTokens(GenerationContext context, string inputModel, string outputModel, ChatTrainingSet train, Onnx.Proto.ModelProto initial, Teachers.EndpointTeacherOptions endpoint, Stopwatch clock)
    {
        var tokens = context.TeacherAnswerTokens
            ?? throw new InvalidOperationException("A token-level distill from an endpoint teacher runs after a generate stage that kept the answers' tokens; the plan check should have refused this recipe.");
        var invariant = CultureInfo.InvariantCulture;
        var k = endpoint.TopLogprobs + 1;
        var storePath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(outputModel))!, "teacher-tokens.tmp");
        try
        {
            var coverage = Teachers.EndpointTeacherTokens.Write(train, context.TeacherAnswers, tokens, new Teachers.EndpointTokenAlignment(context.Template.Tokenizer), storePath, k, context.CancellationToken);
            var share = coverage.LabelledTokens == 0 ? 0 : coverage.TeacherTokens / (double)coverage.LabelledTokens;
            context.Reporter.Info($"{Kind}: the endpoint's top_logprobs teach {coverage.TeacherTokens} of {coverage.LabelledTokens} answer tokens ({share.ToString("P0", invariant)}); {coverage.AlignedTurns} of {coverage.Turns} teacher answers align with the student's tokens");
            if (coverage.Turns > 0 && coverage.AlignedTurns * 2 < coverage.Turns)
            {
                context.Reporter.Report(Diagnostic.Warning(
                    DiagnosticCodes.EndpointTokenizerMismatch,
                    $"distill: only {coverage.AlignedTurns} of the endpoint teacher's {coverage.Turns} answers are in the student's tokens one for one, so most answer tokens learn their label alone: check that the endpoint's model really shares the student's tokenizer (teacher.shares_tokenizer).",
                    context.RecipePath));
            }

            TrainedModel trained;
            using (var store = TeacherTokenStore.Open(storePath))
            {
                trained = DecoderTraining.Run(Kind, context, inputModel, train, new LanguageModelObjective(options.Alpha, options.Temperature), options, TeacherTokens.Of(store), initial);
            }

            OnnxModelFile.Save(trained.Model, outputModel);
            var how = $"token-level from the endpoint's top_logprobs ({endpoint.TopLogprobs}), alpha {options.Alpha.ToString(invariant)}, T {options.Temperature.ToString(invariant)}, {coverage.AlignedTurns} of {coverage.Turns} teacher answers aligned";
            var result = DecoderTraining.Result(Kind, options, train, trained, how, clock.Elapsed);
            var details = new Dictionary<string, string>(result.Details, StringComparer.Ordinal)
            {
                ["endpoint_tokens.answers"] = coverage.Turns.ToString(invariant),
                ["endpoint_tokens.aligned"] = coverage.AlignedTurns.ToString(invariant),
                ["endpoint_tokens.taught"] = coverage.TeacherTokens.ToString(invariant),
                ["endpoint_tokens.labelled"] = coverage.LabelledTokens.ToString(invariant),
                ["endpoint_tokens.unmapped_alternatives"] = coverage.UnmappedAlternatives.ToString(invariant),
            };
            return result with { Details = details };
        }
        finally
        {
            File.Delete(storePath);
        }
    }

    /// <summary>
    /// Whether the stage needs a generate stage before it: it learns from the teacher's answers alone (alpha 0), or its
    /// teacher is an endpoint, whose answers (and the tokens kept with them) are all it has to learn from.
    /// </summary>
    public bool NeedsTeacherAnswers(GenerationContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return options.Alpha == 0 || context.Teacher is { Endpoint: not null };
    }

    /// <summary>
    /// The run-time check of a token-level distill with <paramref name="context"/>'s teacher, before anything trains:
    /// alpha above 0 with a teacher whose tokenizer differs from the student's is an error (only sequence-level
    /// distillation applies); null when there is no problem.
    /// </summary>
    public Diagnostic? Check(GenerationContext context, StageSite site)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(site);
        if (options.Alpha > 0 && context.Teacher is { SharesTokenizer: false })
        {
            return site.Error(
                DiagnosticCodes.RecipeInvalidValue,
                $"distill: the teacher's tokenizer differs from the student's, so only sequence-level distillation applies (training on the teacher's answers); set alpha: 0, or give the student the teacher's tokenizer for token-level distillation (alpha {options.Alpha.ToString(CultureInfo.InvariantCulture)}).",
                "alpha");
        }

        return null;
    }
}
