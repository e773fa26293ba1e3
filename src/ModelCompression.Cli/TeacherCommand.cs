using System.CommandLine;
using ModelCompression.Common;
using ModelCompression.Runs;

namespace ModelCompression.Cli;

/// <summary>
/// `dotnet compress teacher`: an endpoint teacher's work outside a run. `requests` writes what a run would ask as a
/// batch-API file (OpenAI, Azure OpenAI global batch, `vllm run-batch`), `results` reads the batch's output back into
/// the answer cache, `export` writes the distilled data set (gold and teacher answers) as chat fine-tuning JSONL, or for
/// a classifying endpoint teacher the texts with the classes it named, as the recipe's JSONL.
/// </summary>
internal static class TeacherCommand
{
    /// <summary>The command with its three subcommands.</summary>
    public static Command Create()
    {
        var recipe = new Argument<FileInfo>("recipe") { Description = "A recipe whose teacher is an endpoint (task: generation, or task: classification of text)." };
        var cache = new Option<DirectoryInfo?>("--cache") { Description = "The run's cache folder, whose endpoint-answers folder holds the answers (default: the recipe's, as 'run' uses)." };

        var requestsOut = new Option<FileInfo>("--out", "-o") { Description = "The batch requests file to write (JSON Lines).", Required = true };
        var requests = new Command("requests", "Write the requests a run would send that the answer cache lacks (the generate stage's prompts and the test prompts; for classification, every test, training and unlabelled text) as a batch-API JSONL file.") { recipe, cache, requestsOut };
        requests.SetAction(parse => CompressCommand.Guard(() =>
        {
            var recipePath = parse.GetValue(recipe)!.FullName;
            var count = EndpointTeacherJobs.WriteRequests(recipePath, CacheOf(parse.GetValue(cache), recipePath), parse.GetValue(requestsOut)!.FullName);
            Console.WriteLine($"{count} request{(count == 1 ? "" : "s")} written to {parse.GetValue(requestsOut)!.FullName}");
            return ExitCodes.Ok;
        }));

        var results = new Argument<FileInfo>("results") { Description = "The batch's output file (JSON Lines: custom_id, response.body)." };
        var sent = new Option<FileInfo>("--requests") { Description = "The requests file the batch was made from.", Required = true };
        var import = new Command("results", "Read a batch's output file into the answer cache; a run then replays the answers (offline too).") { recipe, results, sent, cache };
        import.SetAction(parse => CompressCommand.Guard(() =>
        {
            var recipePath = parse.GetValue(recipe)!.FullName;
            var imported = EndpointTeacherJobs.ImportResults(recipePath, CacheOf(parse.GetValue(cache), recipePath), parse.GetValue(results)!.FullName, parse.GetValue(sent)!.FullName);
            Console.WriteLine($"{imported.Imported} of {imported.Lines} results cached" + (imported.ErrorCount > 0 ? $"; not cached: {string.Join(", ", imported.Errors.Select(e => $"{e.Value} {e.Key}"))}" : ""));
            return imported.ErrorCount > 0 ? ExitCodes.Error : ExitCodes.Ok;
        }));

        var dataOut = new Option<FileInfo>("--out", "-o") { Description = "The chat fine-tuning JSONL file to write.", Required = true };
        var export = new Command("export", "Write the distilled data set (the gold training conversations, then the teacher's kept answers, from the answer cache, sending nothing) as chat fine-tuning JSONL, to train a student elsewhere; for classification, the labelled training texts, then the unlabelled texts with the class the teacher named, as the recipe's JSONL.") { recipe, cache, dataOut };
        export.SetAction(parse => CompressCommand.Guard(() =>
        {
            var recipePath = parse.GetValue(recipe)!.FullName;
            var (gold, teacher) = EndpointTeacherJobs.ExportData(recipePath, CacheOf(parse.GetValue(cache), recipePath), parse.GetValue(dataOut)!.FullName);
            Console.WriteLine($"{gold + teacher} records ({gold} gold, {teacher} from the teacher) written to {parse.GetValue(dataOut)!.FullName}");
            return ExitCodes.Ok;
        }));

        return new Command("teacher", "An endpoint teacher's answers outside a run: batch requests and results files, and the distilled data set.") { requests, import, export };
    }

    private static string CacheOf(DirectoryInfo? given, string recipePath) => given?.FullName ?? ArtifactCache.DefaultRoot(recipePath);
}
