using System.Text.Json;
using ModelCompression.Diagnostics;
using ModelCompression.Pipeline;
using ModelCompression.Recipes;
using ModelCompression.Stages;
using ModelCompression.Teachers;
using ModelCompression.Text;

namespace ModelCompression.Runs;

/// <summary>
/// An endpoint teacher's work outside a run, for scale-out and for training elsewhere: the requests a recipe's run
/// would send (its generate stage's prompts and the test prompts of the teacher's row) written as a batch-API file,
/// a batch's results read back into the answer cache (a run then replays them, offline if asked), and the distilled
/// data set (gold answers and the teacher's kept answers) written as chat fine-tuning JSON Lines. For a classifying
/// endpoint teacher (task: classification of text) the requests are one per text of the test, training and unlabelled
/// splits, and the data set is the recipe's own JSONL: the labelled training texts, then the unlabelled texts with the
/// class the teacher named.
/// </summary>
public static class EndpointTeacherJobs
{
    /// <summary>
    /// Writes the requests of <paramref name="recipePath"/>'s endpoint teacher that the answer cache under
    /// <paramref name="cacheRoot"/> lacks to <paramref name="path"/> (OpenAI/Azure batch JSON Lines); returns how many.
    /// </summary>
    public static int WriteRequests(string recipePath, string cacheRoot, string path)
    {
        var (recipe, endpoint) = Load(recipePath);
        if (recipe.Generation is null)
        {
            var texts = ClassificationTexts(recipe);
            return EndpointBatch.WriteRequests(EndpointLabeler.Requests([.. texts.Test, .. texts.Train.Select(t => t.Text), .. texts.Unlabelled], texts.Names, endpoint), AnswerCache(cacheRoot), path);
        }

        var splits = ChatSplits.Read(recipe.Data);
        var prompts = Distinct([.. splits.Test.Select(r => r with { Messages = r.Prompt }), .. GeneratePrompts(recipe, splits)]);
        return EndpointBatch.WriteRequests(prompts, recipe.Generation!.Task, endpoint, AnswerCache(cacheRoot), path);
    }

    /// <summary>Reads a batch's results file (with the requests file it answered) into the answer cache under <paramref name="cacheRoot"/>.</summary>
    public static EndpointBatchImport ImportResults(string recipePath, string cacheRoot, string resultsPath, string requestsPath)
    {
        _ = Load(recipePath);
        return EndpointBatch.ImportResults(resultsPath, requestsPath, AnswerCache(cacheRoot));
    }

    /// <summary>
    /// Writes the distilled data set to <paramref name="path"/>: the gold training conversations, then the teacher's kept
    /// answers to the generate stage's prompts, replayed from the answer cache (offline: nothing is sent; MC2091 lists
    /// what is missing). Returns (gold, teacher) line counts. For a classifying teacher, JSON Lines of the recipe's text
    /// and label fields: every training text with its label, then every unlabelled text the teacher named a class for.
    /// </summary>
    public static (int Gold, int Teacher) ExportData(string recipePath, string cacheRoot, string path)
    {
        var (recipe, endpoint) = Load(recipePath);
        if (recipe.Generation is null)
        {
            return ExportLabels(recipe, endpoint, cacheRoot, path);
        }

        var splits = ChatSplits.Read(recipe.Data);
        var answered = EndpointTeacher.Answer(GeneratePrompts(recipe, splits), recipe.Generation!.Task, endpoint with { Offline = true }, AnswerCache(cacheRoot));
        var teacher = answered.Answers.Kept;
        Common.AtomicFile.WriteAllText(path, string.Concat(splits.Train.Concat(teacher).Select(r => Line(r) + "\n")));
        return (splits.Train.Count, teacher.Count);
    }

    private static (Recipe Recipe, EndpointTeacherOptions Endpoint) Load(string recipePath)
    {
        var recipe = RecipeLoader.Load(recipePath);
        if (recipe.EndpointTeacher is not { } endpoint)
        {
            throw CompressionException.Error(DiagnosticCodes.RecipeInvalidValue, $"The recipe '{recipePath}' has no endpoint teacher (teacher: {{ endpoint: …, model: … }}); batch files and exports are an endpoint teacher's.", recipePath);
        }

        return (recipe, endpoint);
    }

    /// <summary>The unlabelled texts with the class the teacher named (offline: from the answer cache), after the labelled training texts.</summary>
    private static (int Gold, int Teacher) ExportLabels(Recipe recipe, EndpointTeacherOptions endpoint, string cacheRoot, string path)
    {
        var texts = ClassificationTexts(recipe);
        var labels = EndpointLabeler.Label(texts.Unlabelled, texts.Names, endpoint with { Offline = true }, AnswerCache(cacheRoot));
        var (textField, labelField) = (recipe.Data.Text!.Field, recipe.Data.Text.LabelField);
        string Line(string text, int label) => JsonSerializer.Serialize(new Dictionary<string, string> { [textField] = text, [labelField] = texts.Names[label] });
        var gold = texts.Train.Select(t => Line(t.Text.Text, t.Label)).ToList();
        var teacher = texts.Unlabelled.Select((t, i) => labels.Labels[i] < 0 ? null : Line(t.Text, labels.Labels[i])).OfType<string>().ToList();
        Common.AtomicFile.WriteAllText(path, string.Concat(gold.Concat(teacher).Select(l => l + "\n")));
        return (gold.Count, teacher.Count);
    }

    /// <summary>A classification recipe's texts (read as a run reads them, carved splits included) and class names.</summary>
    private static ClassifiedTexts ClassificationTexts(Recipe recipe)
    {
        var task = Tasks.TaskCatalog.Get(recipe.Task) as Tasks.IPredictionTask;
        using var data = Data.DataLoader.Load(recipe.Data, task?.Labels ?? Data.LabelKind.Classes, keepTexts: true);
        var names = data.Description.LabelNames;
        _ = EndpointTeacherOutputs.CheckClasses(names, (recipe.Data.File ?? recipe.Data.Train).Inputs);
        var train = EndpointTeacherOutputs.TextsOf(data.Train).Select((t, i) => (t, (int)data.Train.Labels![i])).ToList();
        return new ClassifiedTexts(names!, train, data.Unlabelled is { } pool ? EndpointTeacherOutputs.TextsOf(pool) : [], EndpointTeacherOutputs.TextsOf(data.Test));
    }

    /// <summary>The prompts the recipe's generate stage asks (all of them when it has several generate stages).</summary>
    private static List<ChatRecord> GeneratePrompts(Recipe recipe, ChatSplits splits) => Distinct(recipe.Stages
        .Select(s => s.Options)
        .OfType<GenerateOptions>()
        .SelectMany(o => o.SelectPrompts(splits.Pool, splits.Train)));

    private static List<ChatRecord> Distinct(IEnumerable<ChatRecord> prompts) =>
        [.. prompts.DistinctBy(r => string.Join('\u0000', r.Messages.Select(m => $"{m.Role}\u0001{m.Content}")))];

    /// <summary>A classification recipe's texts: the labelled training texts, the unlabelled ones, the test ones, and the class names.</summary>
    private sealed record ClassifiedTexts(IReadOnlyList<string> Names, IReadOnlyList<(TextToLabel Text, int Label)> Train, IReadOnlyList<TextToLabel> Unlabelled, IReadOnlyList<TextToLabel> Test);

    private static string AnswerCache(string cacheRoot) => Path.Combine(Path.GetFullPath(cacheRoot), GenerationPipeline.EndpointAnswersFolder);

    /// <summary>One conversation in OpenAI's chat fine-tuning format.</summary>
    private static string Line(ChatRecord record) => JsonSerializer.Serialize(new
    {
        messages = record.Messages.Select(m => new { role = m.Role.ToString().ToLowerInvariant(), content = m.Content }),
    });
}
