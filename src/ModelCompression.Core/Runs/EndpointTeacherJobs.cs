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
/// data set (gold answers and the teacher's kept answers) written as chat fine-tuning JSON Lines.
/// </summary>
public static class EndpointTeacherJobs
{
    /// <summary>
    /// Writes the requests of <paramref name="recipePath"/>'s endpoint teacher that the answer cache under
    /// <paramref name="cacheRoot"/> lacks to <paramref name="path"/> (OpenAI/Azure batch JSON Lines); returns how many.
    /// </summary>
    public static int WriteRequests(string recipePath, string cacheRoot, string path)
    {
        var (recipe, endpoint, splits) = Load(recipePath);
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
    /// what is missing). Returns (gold, teacher) line counts.
    /// </summary>
    public static (int Gold, int Teacher) ExportData(string recipePath, string cacheRoot, string path)
    {
        var (recipe, endpoint, splits) = Load(recipePath);
        var answered = EndpointTeacher.Answer(GeneratePrompts(recipe, splits), recipe.Generation!.Task, endpoint with { Offline = true }, AnswerCache(cacheRoot));
        var teacher = answered.Answers.Kept;
        Common.AtomicFile.WriteAllText(path, string.Concat(splits.Train.Concat(teacher).Select(r => Line(r) + "\n")));
        return (splits.Train.Count, teacher.Count);
    }

    private static (Recipe Recipe, EndpointTeacherOptions Endpoint, ChatSplits Splits) Load(string recipePath)
    {
        var recipe = RecipeLoader.Load(recipePath);
        if (recipe.EndpointTeacher is not { } endpoint)
        {
            throw CompressionException.Error(DiagnosticCodes.RecipeInvalidValue, $"The recipe '{recipePath}' has no endpoint teacher (teacher: {{ endpoint: …, model: … }}); batch files and exports are an endpoint teacher's.", recipePath);
        }

        return (recipe, endpoint, ChatSplits.Read(recipe.Data));
    }

    /// <summary>The prompts the recipe's generate stage asks (all of them when it has several generate stages).</summary>
    private static List<ChatRecord> GeneratePrompts(Recipe recipe, ChatSplits splits) => Distinct(recipe.Stages
        .Select(s => s.Options)
        .OfType<GenerateOptions>()
        .SelectMany(o => o.SelectPrompts(splits.Pool, splits.Train)));

    private static List<ChatRecord> Distinct(IEnumerable<ChatRecord> prompts) =>
        [.. prompts.DistinctBy(r => string.Join('\u0000', r.Messages.Select(m => $"{m.Role}\u0001{m.Content}")))];

    private static string AnswerCache(string cacheRoot) => Path.Combine(Path.GetFullPath(cacheRoot), GenerationPipeline.EndpointAnswersFolder);

    /// <summary>One conversation in OpenAI's chat fine-tuning format.</summary>
    private static string Line(ChatRecord record) => JsonSerializer.Serialize(new
    {
        messages = record.Messages.Select(m => new { role = m.Role.ToString().ToLowerInvariant(), content = m.Content }),
    });
}
