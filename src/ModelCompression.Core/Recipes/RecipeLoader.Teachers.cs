using ModelCompression.Diagnostics;
using ModelCompression.Generation;
using ModelCompression.Stages;
using ModelCompression.Tasks;
using ModelCompression.Teachers;
using YamlDotNet.RepresentationModel;

namespace ModelCompression.Recipes;

/// <summary>What a recipe's teacher can give its task and stages: checked at load time, each refusal at its line.</summary>
public static partial class RecipeLoader
{
    /// <summary>
    /// Token-level distillation (distill with alpha above 0) and init_from_teacher (which copies the token embedding,
    /// row by token id) need the teacher's tokenizer to be the student's. A teacher that carries its own (a
    /// tokenizer.compress.json beside it) of another kind than the recipe's, or with a compact vocabulary the recipe's
    /// lacks (or the reverse), cannot be: said here, at load time, at each such stage's line. Tokenizers of one kind
    /// built from different text (character, compact) are compared when the run has made the student's, still before
    /// anything trains.
    /// </summary>
    private static void CheckTeacherTokenizer(YamlSource source, GenerationSettings settings, List<StageSpec> stages, List<TeacherSpec>? teachers)
    {
        if (teachers is not [{ Endpoint: null } teacher, ..]
            || Path.Combine(Path.GetDirectoryName(teacher.Path)!, Text.GenerationTokenizer.DefaultFileName) is not { } file
            || !File.Exists(file)
            || !stages.Any(NeedsTeacherTokens))
        {
            return;
        }

        Text.GenerationTokenizer own;
        try
        {
            own = Text.GenerationTokenizer.Load(file);
        }
        catch (CompressionException e)
        {
            source.Problems.AddRange(e.Diagnostics);
            return;
        }

        var compact = own.CompactVocabulary is not null;
        if (own.Kind == settings.Tokenizer && compact == settings.CompactVocabulary)
        {
            return;
        }

        var theirs = $"{own.Kind.ToString().ToLowerInvariant()}{(compact ? ", compact" : "")}";
        var ours = $"{settings.Tokenizer.ToString().ToLowerInvariant()}{(settings.CompactVocabulary ? ", compact" : "")}";
        foreach (var stage in stages.Where(NeedsTeacherTokens))
        {
            var (key, message) = stage.Options is DistillOptions { Alpha: > 0 }
                ? ("alpha", $"Stage 'distill': the teacher's tokenizer ({theirs}, {file}) is not the student's ({ours}), so only sequence-level distillation applies (the student learns the teacher's answers as text): set alpha: 0 and put a generate stage before it, or give the student the teacher's tokenizer.")
                : ("init_from_teacher", $"Stage '{stage.Kind}': init_from_teacher copies the teacher's token embedding row by token id, and the teacher's tokenizer ({theirs}, {file}) is not the student's ({ours}): leave init_from_teacher out, or give the student the teacher's tokenizer.");
            source.Problems.Add(Diagnostic.Error(DiagnosticCodes.RecipeInvalidValue, message, source.File, stage.OptionLines.TryGetValue(key, out var line) ? line : stage.Line, 1));
        }
    }

    /// <summary>Whether a stage reads the teacher by token id: token-level distillation, or starting from its weights.</summary>
    private static bool NeedsTeacherTokens(StageSpec stage) => stage.Options is DistillOptions { Alpha: > 0 } or TrainingStageOptions { InitFromTeacher: true };

    /// <summary>
    /// An endpoint teacher gives answers as text (the generate stage), never logits or weights: init_from_teacher and
    /// recovery training on the teacher's soft targets are refused at their lines, and token-level distillation (distill
    /// alpha above 0) unless the teacher is declared to share the student's tokenizer (its top_logprobs then teach).
    /// </summary>
    private static void CheckEndpointTeacher(YamlSource source, List<StageSpec> stages, List<TeacherSpec>? teachers)
    {
        if (teachers is not [{ Endpoint: { } endpoint }, ..])
        {
            return;
        }

        var sampling = new[] { "temperature", "top_k", "top_p", "samples_per_prompt", "max_new_tokens", "seed" };
        foreach (var stage in stages)
        {
            if (stage.Options is GenerateOptions && sampling.FirstOrDefault(stage.OptionLines.ContainsKey) is { } given)
            {
                source.Problems.Add(Diagnostic.Error(DiagnosticCodes.RecipeInvalidValue, $"Stage 'generate': {given} is the local teacher's; an endpoint teacher samples as the teacher mapping says (temperature, top_p, max_tokens, samples_per_prompt, seed there).", source.File, stage.OptionLines[given], 1));
            }

            var (key, why) = stage.Options switch
            {
                DistillOptions { Alpha: > 0 } when !endpoint.SharesTokenizer => ("alpha", "token-level distillation (alpha above 0) learns the teacher's token distributions, and this endpoint teacher gives answers as text: set alpha: 0 (sequence-level, after a generate stage), or, when the endpoint's model tokenizes as the student does, declare it in the teacher mapping with shares_tokenizer: true and top_logprobs: N"),
                DistillOptions when stage.OptionLines.ContainsKey("teacher_top_k") => ("teacher_top_k", "teacher_top_k is how many of a local teacher's tokens are kept; an endpoint teacher's are the top_logprobs it gives (set top_logprobs in the teacher mapping)"),
                TrainingStageOptions { InitFromTeacher: true } => ("init_from_teacher", "init_from_teacher copies the teacher's weights, and an endpoint teacher has none here"),
                RecoveryOptions { ReadsTeacher: true } => ("alpha", "recovery training with alpha above 0 learns the teacher's soft targets, and an endpoint teacher gives answers as text: set alpha: 0 or recovery_teacher: dense"),
                _ => (null, null),
            };
            if (why is not null)
            {
                source.Problems.Add(Diagnostic.Error(DiagnosticCodes.RecipeInvalidValue, $"Stage '{stage.Kind}': {why}.", source.File, stage.OptionLines.TryGetValue(key!, out var line) ? line : stage.Line, 1));
            }
        }
    }

    /// <summary>
    /// An endpoint teacher outside task: generation names a class for each text (Teachers.EndpointLabeler): it needs
    /// task: classification of text data (a 'text' section), and cannot give what needs its weights or graph
    /// (init_from_teacher, hints) or settings of generation (samples_per_prompt, chain_of_thought, shares_tokenizer,
    /// keep_duplicates, a prompt_template without {labels}). Each refusal is MC2079 at its line. Class names (not numbers)
    /// are checked when the data is read.
    /// </summary>
    private static void CheckEndpointClassifier(YamlSource source, ITask task, Data.DataSpec? data, List<StageSpec> stages, EndpointTeacherOptions endpoint, YamlNode teacherNode)
    {
        if (task is not ClassificationTask || data is { Text: null })
        {
            source.Error(
                DiagnosticCodes.EndpointTeacherCannotClassify,
                $"An endpoint teacher answers with text: task: generation learns its answers, and task: classification of text data (format: jsonl with a 'text' section and class names as labels) learns the class it names for each text; {(task is ClassificationTask ? "this data is not text" : $"task {task.Name} cannot use it")}. Give 'teacher:' an ONNX file, or use it with text classification or generation.",
                teacherNode);
            return;
        }

        foreach (var (key, problem) in EndpointLabeler.Problems(endpoint))
        {
            source.Error(DiagnosticCodes.EndpointTeacherCannotClassify, $"{RecipeKeys.Teacher.Name}.{key}: {problem}", LineNode(teacherNode, key) ?? teacherNode);
        }

        foreach (var stage in stages)
        {
            var (key, why) = stage.Options switch
            {
                TrainingStageOptions { InitFromTeacher: true } => ("init_from_teacher", "init_from_teacher copies the teacher's weights, and a teacher behind an endpoint has none here"),
                DistillingOptions { Hints.Length: > 0 } => ("hints", "hints match the teacher's intermediate tensors, and a teacher behind an endpoint gives class names only; remove the hints"),
                GenerateOptions => ("generate", "the generate stage is for task: generation; a classifying endpoint teacher is asked by the stages that learn its soft targets (distill)"),
                _ => (null, null),
            };
            if (why is not null)
            {
                source.Problems.Add(Diagnostic.Error(DiagnosticCodes.EndpointTeacherCannotClassify, $"Stage '{stage.Kind}': {why}.", source.File, stage.OptionLines.TryGetValue(key!, out var line) ? line : stage.Line, 1));
            }
        }
    }
}
