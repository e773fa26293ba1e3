using System.Globalization;
using System.Text.Json;
using ModelCompression.Architectures;
using ModelCompression.Common;
using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;
using ModelCompression.Generation;
using ModelCompression.Onnx;
using ModelCompression.Recipes;
using ModelCompression.Stages;
using ModelCompression.Tasks;
using ModelCompression.Text;

namespace ModelCompression.Pipeline;

/// <summary>
/// Runs a task: generation recipe: reads the conversations, makes the tokenizer and the chat template, builds or loads
/// the decoder student, checks every stage against the teacher and the data before anything trains, evaluates the
/// teacher, runs each stage through the cache (a generate stage's answers become the later stages' training data),
/// trains the labels-only twin beside a distillation, evaluates every output on the test conversations and checks the
/// gates. Publishing (the model and its folder with tokenizer and generation.json) is <c>Runs.CompressionRun</c>'s.
/// </summary>
internal static class GenerationPipeline
{
    /// <summary>The environment variable that, set to 1 or true, makes every endpoint teacher offline (replay only), whatever its recipe says.</summary>
    public const string OfflineVariable = "MODELCOMPRESSION_TEACHER_OFFLINE";

    /// <summary>
    /// <paramref name="endpoint"/>, made offline when <see cref="OfflineVariable"/> says so: CI replays what a trusted
    /// run paid for, with the recipe as it is. Every task's endpoint teacher goes through here.
    /// </summary>
    internal static Teachers.EndpointTeacherOptions OfflineIfForced(Teachers.EndpointTeacherOptions endpoint) =>
        Environment.GetEnvironmentVariable(OfflineVariable) is "1" or "true" ? endpoint with { Offline = true } : endpoint;

    /// <summary>The folder under the cache root that holds an endpoint teacher's answers, one file per request.</summary>
    public const string EndpointAnswersFolder = "endpoint-answers";

    /// <summary>Runs <paramref name="recipe"/> with <paramref name="cache"/>, whose lock on the recipe's outputs the caller holds.</summary>
    internal static PipelineResult Run(Recipe recipe, PipelineOptions options, ArtifactCache cache, CancellationToken cancellationToken)
    {
        var reporter = options.Reporter;
        var settings = recipe.Generation ?? throw new InvalidOperationException("A task: generation recipe has a generation section (the loader gives its defaults).");
        var hashes = CompressionPipeline.OpenCache(cache, reporter);
        var threads = CompressionPipeline.UseThreadsAndProvider(recipe, options);
        var task = GenerationTask.For(settings.Task);

        var data = ChatSplits.Read(recipe.Data);
        reporter.Info($"Conversations: {data.Train.Count} with answers, {data.Pool.Count} prompts without, {data.Test.Count} test{(data.Validation is { } v ? $", {v.Count} validation" : "")}");
        var dataHash = new ContentHash().Add("data", DataHashing.HashData(recipe.Data, hashes)).Add("generation", JsonSerializer.Serialize(settings)).Finish();
        var tokenizer = GenerationTokenizer.Create(settings.TokenizerOptions(recipe.Directory), ChatTemplate.Texts(settings.Template, [.. data.Train, .. data.Pool, .. data.Validation ?? []]));
        var template = new ChatTemplate(settings.Template, tokenizer);
        reporter.Info($"Tokenizer: {tokenizer.Kind.ToString().ToLowerInvariant()}, {tokenizer.VocabularySize} ids");
        var teacher = recipe.HasTeacher ? Teacher(recipe, settings, tokenizer, hashes, cache, data.Test) : null;
        hashes.Save();

        var (modelPath, modelHash) = InitialStudent(recipe, settings, tokenizer, cache, hashes);
        var context = new GenerationContext
        {
            RecipePath = recipe.Path,
            Settings = settings,
            Template = template,
            Train = data.Train,
            Validation = data.Validation,
            Pool = data.Pool,
            DataHash = dataHash,
            Teacher = teacher,
            Threads = threads,
            Reporter = reporter,
            CancellationToken = cancellationToken,
            CheckpointRoot = Path.Combine(cache.Root, "checkpoints"),
        };
        var plan = Plan(recipe, context, modelPath);
        PhaseTrace.Mark("generation plan checked");

        var evaluations = new GenerationEvaluations(cache, settings, dataHash, data.Test, threads, cancellationToken);
        var teacherEvaluation = teacher is null ? null
            : teacher.Endpoint is { } endpoint ? evaluations.OfEndpoint("teacher", teacher.Hash, endpoint, teacher.AnswerCache!, reporter)
            : evaluations.Of("teacher", teacher.Path, teacher.Hash, teacher.Template, teacher.MaxLength(settings), teacher.AnswerTokens(settings), null);
        reporter.Info(teacherEvaluation is null ? "No teacher: the evaluations measure no agreement with one" : $"Teacher: {Brief(task, teacherEvaluation)}");
        var teacherAnswers = teacherEvaluation?.Generation?.Answers;

        var runner = new GenerationStageRunner(cache);
        var stages = new List<StageReport>();
        foreach (var (spec, stage) in plan)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var (inputPath, inputHash) = (modelPath, modelHash);
            var run = runner.Run(context, stage, inputPath, inputHash);
            if (stage is GenerateStage)
            {
                UseTeacherAnswers(context, run.ModelPath);
            }

            (modelPath, modelHash) = (run.ModelPath, hashes.Model(run.ModelPath));
            var evaluation = modelHash != inputHash ? evaluations.Of(stage.Kind, modelPath, modelHash, template, settings.MaxLength, settings.AnswerTokens, teacherAnswers)
                : stages.Count > 0 ? stages[^1].Evaluation with { Name = stage.Kind } // a stage that keeps the model (generate): nothing new to measure
                : recipe.Student.ModelPath is null && plan.Count > 1 ? GenerationEvaluations.Untrained(stage.Kind, modelPath)
                : evaluations.Of(stage.Kind, modelPath, modelHash, template, settings.MaxLength, settings.AnswerTokens, teacherAnswers);
            reporter.Info($"{stage.Kind}: {run.Result.Summary}; {Brief(task, evaluation)}");
            var report = new StageReport(run.Result, run.Cached, evaluation) { Cache = run.Use };
            if (spec.Descriptor.GenerativeLabelsOnlyTwin(spec.Options, run.Result) is { } twinStage)
            {
                var twin = runner.Run(context, twinStage, inputPath, inputHash, "baseline");
                var twinEvaluation = evaluations.Of("baseline", twin.ModelPath, hashes.Model(twin.ModelPath), template, settings.MaxLength, settings.AnswerTokens, teacherAnswers);
                var gain = task.Gain(evaluation, twinEvaluation);
                reporter.Info($"{stage.Kind}: the labels-only twin (gold answers only, {twin.Result.Training?.Steps} steps against {run.Result.Training?.Steps}) reaches {Brief(task, twinEvaluation)}; gain from distillation {(gain is { } g ? g.ToString("+0.0000;-0.0000", CultureInfo.InvariantCulture) : "n/a")} in {task.Headline.Name}");
                report = report with { Baseline = twinEvaluation, BaselineResult = twin.Result, GainFromDistillation = gain };
            }

            stages.Add(report);
            PhaseTrace.Mark($"stage {stage.Kind}");
        }

        if (stages.Count == 0)
        {
            // No stage trains: the student as given (or built) is what the gates judge.
            stages.Add(new StageReport(new StageResult("student", "the student as given", new Dictionary<string, string>(), null, 0), true, evaluations.Of("student", modelPath, modelHash, template, settings.MaxLength, settings.AnswerTokens, teacherAnswers)));
        }

        var gates = CompressionPipeline.CheckGates(recipe, stages[^1].Evaluation, teacherEvaluation, () => [.. Enumerable.Repeat(1L, data.Test.Count)], dataHash, reporter);
        hashes.Save();
        return new PipelineResult(recipe, teacherEvaluation, stages, gates, null, [], dataHash)
        {
            FinalModel = modelPath,
            Generative = new GenerativeOutput(tokenizer, settings.Template, new GenerationOptions { MaxNewTokens = settings.AnswerTokens }, settings.MaxLength),
        };
    }

    /// <summary>
    /// The plan: every stage made and checked before anything runs: a stage that needs the teacher's answers has a
    /// generate stage before it, token-level distillation has a teacher of the student's tokenizer, the teacher's and the
    /// student's vocabularies fit the tokenizers. All problems are reported together.
    /// </summary>
    private static List<(StageSpec Spec, IGenerativeStage Stage)> Plan(Recipe recipe, GenerationContext context, string studentPath)
    {
        var problems = new List<Diagnostic>();
        var stages = new List<(StageSpec, IGenerativeStage)>();
        var generated = false;
        foreach (var spec in recipe.Stages)
        {
            if (spec.Descriptor.CreateGenerative(spec.Options, spec.Site) is not { } stage)
            {
                continue;
            }

            if (spec.Options is TrainingStageOptions { InitFromTeacher: true } && context.Teacher is { Endpoint: null, SharesTokenizer: false })
            {
                // The loader refuses tokenizers of another kind; one of the same kind built from other text shows here.
                problems.Add(spec.Site.Error(
                    DiagnosticCodes.RecipeInvalidValue,
                    $"{spec.Kind}: init_from_teacher copies the teacher's token embedding row by token id, and the teacher's tokenizer differs from the student's (built from other text): leave init_from_teacher out, or give the student the teacher's tokenizer.",
                    "init_from_teacher"));
            }

            if (stage is DecoderDistillStage distill)
            {
                if (distill.Check(context, spec.Site) is { } problem)
                {
                    problems.Add(problem);
                }
                else if (distill.NeedsTeacherAnswers(context) && !generated)
                {
                    problems.Add(spec.Site.Error(DiagnosticCodes.RecipeInvalidValue, context.Teacher is { Endpoint: not null }
                        ? "distill learns from an endpoint teacher's answers (and, with alpha above 0, the top_logprobs kept with them), and no generate stage comes before it: add '- generate' before distill."
                        : "distill with alpha 0 learns from the teacher's answers only, and no generate stage comes before it: add '- generate' before distill, or set alpha above 0 for token-level distillation."));
                }
            }

            generated |= stage is GenerateStage;
            stages.Add((spec, stage));
        }

        CheckVocabulary(studentPath, context.Template.Tokenizer, "student", problems);
        if (context.Teacher is { Endpoint: null } teacher)
        {
            CheckVocabulary(teacher.Path, teacher.Template.Tokenizer, "teacher", problems);
        }

        if (problems.Count > 0)
        {
            throw new CompressionException(problems);
        }

        return stages;
    }

    /// <summary>
    /// MC2085 when a decoder's logits are narrower than its tokenizer's ids, or, for a vocabulary built from this
    /// recipe's data (character, compact), of another width: such a model was trained with another vocabulary (a
    /// teacher given as its bare .onnx file rather than the folder that holds its tokenizer). Exports of fixed
    /// vocabularies may pad their logits, so only those may be wider. MC2080 when it is no decoder of the convention.
    /// </summary>
    private static void CheckVocabulary(string modelPath, GenerationTokenizer tokenizer, string who, List<Diagnostic> problems)
    {
        var signature = DecoderSignature.Read(OnnxModelFile.Load(modelPath), modelPath);
        var builtFromData = tokenizer.Kind == GenerationTokenizerKind.Character || tokenizer.CompactVocabulary is not null;
        if (signature.Vocabulary is { } width && (width < tokenizer.VocabularySize || (builtFromData && width != tokenizer.VocabularySize)))
        {
            var kind = tokenizer.Kind.ToString().ToLowerInvariant() + (tokenizer.CompactVocabulary is null ? "" : " (compact)");
            var hint = File.Exists(Path.Combine(Path.GetDirectoryName(modelPath)!, GenerationTokenizer.DefaultFileName))
                ? ""
                : $" A model this tool published carries its tokenizer in its folder: name that folder's model.onnx (with {GenerationTokenizer.DefaultFileName} beside it) rather than the bare .onnx file.";
            problems.Add(Diagnostic.Error(
                DiagnosticCodes.DecoderVocabularyMismatch,
                $"The {who} '{modelPath}' has logits over {width} tokens but its {kind} tokenizer has {tokenizer.VocabularySize} ids: the model and the tokenizer do not belong together.{hint}",
                modelPath));
        }
    }

    /// <summary>The kept teacher answers a generate stage wrote beside its output become the context's training data.</summary>
    private static void UseTeacherAnswers(GenerationContext context, string stageOutput)
    {
        var file = Path.Combine(Path.GetDirectoryName(stageOutput)!, GenerateStage.AnswersFile);
        var set = TeacherAnswers.Read(file);
        context.TeacherAnswers = set.Kept;
        var tokens = Path.Combine(Path.GetDirectoryName(stageOutput)!, Teachers.EndpointAnswerTokens.FileName);
        var hash = new ContentHash().AddFile("answers", file);
        if (File.Exists(tokens))
        {
            context.TeacherAnswerTokens = Teachers.EndpointAnswerTokens.Read(tokens, file, set.Answers.Count);
            hash.AddFile("tokens", tokens);
        }
        else
        {
            context.TeacherAnswerTokens = null;
        }

        context.TeacherAnswersHash = hash.Finish();
    }

    /// <summary>
    /// The teacher: its file, hash, and its own tokenizer when a tokenizer.compress.json lies beside it (a generative
    /// model folder), else the student's; token-level distillation needs the two to be the same. An endpoint teacher
    /// answers as text: its hash is that of the requests its test answers take (model, messages, settings: never the
    /// URL or the key), and its answers are cached one file per request under the cache's endpoint-answers folder,
    /// which outlives stage entries so that a run killed mid-pool resumes without asking anything twice.
    /// </summary>
    private static GenerationTeacher Teacher(Recipe recipe, GenerationSettings settings, GenerationTokenizer student, HashMemo hashes, ArtifactCache cache, IReadOnlyList<ChatRecord> test)
    {
        if (recipe.EndpointTeacher is { } given)
        {
            var endpoint = OfflineIfForced(given);
            var requests = Teachers.EndpointTeacher.Requests([.. test.Select(r => r with { Messages = r.Prompt })], settings.Task, endpoint);
            var hash = new ContentHash().Add("endpoint-requests", string.Join('\n', requests.Select(r => r.Key))).Finish();
            // Declared, and checked on the generate stage's probe request: the endpoint's tokens are the student's.
            return new GenerationTeacher(recipe.Teacher, hash, new ChatTemplate(settings.Template, student), SharesTokenizer: endpoint is { SharesTokenizer: true, TopLogprobs: > 0 })
            {
                Endpoint = endpoint,
                AnswerCache = Path.Combine(cache.Root, EndpointAnswersFolder),
            };
        }

        var path = recipe.Teacher;
        var folder = Path.GetDirectoryName(path)!;
        var ownFile = Path.Combine(folder, GenerationTokenizer.DefaultFileName);
        var tokenizer = File.Exists(ownFile) ? GenerationTokenizer.Load(ownFile) : student;
        var shares = ReferenceEquals(tokenizer, student) || TeacherTokenCache.Description(tokenizer) == TeacherTokenCache.Description(student);
        var config = Path.Combine(folder, GenerationConfig.FileName);
        return new GenerationTeacher(path, hashes.Model(path), new ChatTemplate(settings.Template, tokenizer), shares)
        {
            OwnAnswerTokens = !shares && File.Exists(config) ? GenerationConfig.Load(config).MaxNewTokens : null,
        };
    }

    /// <summary>The student file, or the built-in decoder for the tokenizer's vocabulary and the settings' length (cached).</summary>
    private static (string Path, string Hash) InitialStudent(Recipe recipe, GenerationSettings settings, GenerationTokenizer tokenizer, ArtifactCache cache, HashMemo hashes)
    {
        if (recipe.Student.ModelPath is { } file)
        {
            return (file, hashes.Model(file));
        }

        var inputs = new ArchitectureInputs([settings.MaxLength], tokenizer.VocabularySize, tokenizer.VocabularySize);
        var modelPath = StudentFactory.BuiltIn(recipe, cache, inputs, "this tokenizer", $"{tokenizer.VocabularySize} token ids and {settings.MaxLength} positions");
        return (modelPath, hashes.Model(modelPath));
    }

    /// <summary>An evaluation as the log lines give it: the task's metrics, then the size.</summary>
    private static string Brief(ITask task, ModelEvaluation evaluation) =>
        $"{task.Describe(evaluation)}, {evaluation.SizeMb.ToString("0.###", CultureInfo.InvariantCulture)} MB";
}

/// <summary>What a generative run publishes beside the model: its tokenizer, chat template and generation defaults.</summary>
/// <param name="Tokenizer">The student's tokenizer.</param>
/// <param name="Template">The chat template.</param>
/// <param name="Generation">The generation defaults written to generation.json.</param>
/// <param name="ContextLength">Prompt and answer tokens together.</param>
public sealed record GenerativeOutput(GenerationTokenizer Tokenizer, ChatTemplateOptions Template, GenerationOptions Generation, int ContextLength);

/// <summary>The conversations of a chat data section, split as a generation run uses them.</summary>
/// <param name="Train">Training conversations that end on a gold answer.</param>
/// <param name="Pool">Prompts without an answer: the unlabelled file and training conversations that end on a user turn.</param>
/// <param name="Validation">The validation conversations, when given.</param>
/// <param name="Test">The test conversations (each ends on its gold answer).</param>
internal sealed record ChatSplits(IReadOnlyList<ChatRecord> Train, IReadOnlyList<ChatRecord> Pool, IReadOnlyList<ChatRecord>? Validation, IReadOnlyList<ChatRecord> Test)
{
    /// <summary>Reads every split's file (MC2021/MC2022 with file and line for bad files and records).</summary>
    public static ChatSplits Read(Data.DataSpec spec)
    {
        var train = ChatReader.Read(spec.Train.Inputs);
        var test = spec.Test.Inputs == spec.Train.Inputs ? train : ChatReader.Read(spec.Test.Inputs);
        var validation = spec.Validation is { } v ? ChatReader.Read(v.Inputs).Labelled : null;
        var unlabelled = spec.Unlabelled is { } u ? ChatReader.Read(u.Inputs) : null;
        IEnumerable<ChatRecord> pool = train.Unlabelled;
        if (unlabelled is not null)
        {
            pool = pool.Concat(unlabelled.Unlabelled).Concat(unlabelled.Labelled.Select(r => r with { Messages = r.Prompt }));
        }

        return new ChatSplits(train.Labelled, [.. pool], validation, [.. test.Labelled, .. test.Unlabelled]);
    }
}
