using System.CommandLine;
using System.CommandLine.Parsing;
using ModelCompression.Diagnostics;
using ModelCompression.Recipes;

namespace ModelCompression.Cli;

/// <summary>One recipe to run, with where its results go.</summary>
/// <param name="Recipe">The recipe file (full path).</param>
/// <param name="CacheDirectory">The stage cache; null for the recipe's folder under the user's cache (<c>ArtifactCache.DefaultRoot</c>).</param>
/// <param name="OutputDirectory">Where the model and reports go; null for the recipe's folder.</param>
/// <param name="DependencyFile">Where to list the files the recipe reads; null for nowhere.</param>
/// <param name="StampFile">Deleted when the run starts, written (listing the files written) when every gate passed; null for none.</param>
/// <param name="GateFailuresAsWarnings">This recipe's gate mode when its line sets one; null for the command's.</param>
/// <param name="Threads">This recipe's thread count when its line sets one; null for the command's.</param>
internal sealed record RecipeRun(string Recipe, string? CacheDirectory, string? OutputDirectory, string? DependencyFile, string? StampFile, bool? GateFailuresAsWarnings = null, int? Threads = null)
{
    /// <summary>The remote cache settings the command line (and this recipe's line) gives, over the recipe's 'cache'; null when it gives none.</summary>
    public Common.RemoteCacheOptions? RemoteCache { get; init; }
}

/// <summary>
/// The options one recipe's run takes. The same definitions serve `run recipe.yaml …` and each line of a
/// `run --recipes` file, so a line reads exactly like a single-recipe command line.
/// </summary>
internal sealed class RecipeRunOptions
{
    public Option<DirectoryInfo?> Cache { get; } = new("--cache") { Description = "Cache folder for stage results (default: one per recipe under $XDG_CACHE_HOME/modelcompression, else ~/.cache/modelcompression)." };

    public Option<DirectoryInfo?> Output { get; } = new("--output", "-o") { Description = "Folder for the model and reports (default: the recipe's folder)." };

    public Option<FileInfo?> DependencyFile { get; } = new("--dependency-file") { Description = "Write the list of files the recipe reads here, one per line (for incremental builds)." };

    public Option<FileInfo?> StampFile { get; } = new("--stamp-file")
    {
        Description = "Deleted when the run starts; written when it succeeds with every gate passed, listing the files it wrote (for incremental builds).",
    };

    /// <summary>--remote-cache, --remote-cache-mode and --remote-cache-credential-env.</summary>
    public RemoteCacheCommandLine Remote { get; } = new();

    /// <summary>
    /// The run that <paramref name="parse"/> asks for on <paramref name="recipe"/>; <paramref name="defaultCache"/> and
    /// <paramref name="defaultRemote"/> are the command's, for what the line does not set.
    /// </summary>
    public RecipeRun Bind(ParseResult parse, FileInfo recipe, string? defaultCache = null, Common.RemoteCacheOptions? defaultRemote = null) => new(
        recipe.FullName,
        parse.GetValue(Cache)?.FullName ?? defaultCache,
        parse.GetValue(Output)?.FullName,
        parse.GetValue(DependencyFile)?.FullName,
        parse.GetValue(StampFile)?.FullName)
    {
        RemoteCache = Remote.Bind(parse, defaultRemote),
    };
}

/// <summary>Reads the file of `run --recipes`: one recipe per line with its own options; blank lines and # comments are skipped.</summary>
internal static class RecipeList
{
    /// <summary>
    /// Loads every recipe of <paramref name="runs"/> (the recipe loader's checks, nothing trained) and prints every
    /// recipe's problems to stderr (and, under <c>--json</c>, into <paramref name="output"/>'s document), so that a later recipe's mistakes are not hidden behind an
    /// earlier recipe's run or failure. True when all load.
    /// </summary>
    public static bool CheckAll(IReadOnlyList<RecipeRun> runs, RunOutput output)
    {
        var failed = 0;
        var checks = new List<(RecipeRun Run, IReadOnlyList<Diagnostic> Errors)>();
        foreach (var run in runs)
        {
            try
            {
                RecipeLoader.Load(run.Recipe);
                checks.Add((run, []));
            }
            catch (CompressionException e)
            {
                failed++;
                checks.Add((run, e.Diagnostics));
                foreach (var diagnostic in e.Diagnostics)
                {
                    Console.Error.WriteLine(diagnostic);
                }
            }
        }

        if (failed > 0)
        {
            Console.Error.WriteLine($"{failed} of {runs.Count} recipe(s) have errors: none was run.");

            // Under --json the document lists every recipe with its errors; none ran, so each ends with an error.
            foreach (var (run, errors) in checks)
            {
                output.Begin(run.Recipe);
                foreach (var diagnostic in errors)
                {
                    output.Record(diagnostic);
                }

                output.End(ExitCodes.Error);
            }
        }

        return failed == 0;
    }

    /// <summary>
    /// The runs <paramref name="path"/> lists, or null after printing every problem (usage errors naming the file
    /// and line). Relative paths are taken from the current folder, as on the command line.
    /// </summary>
    public static IReadOnlyList<RecipeRun>? Read(string path, string? defaultCache, Common.RemoteCacheOptions? defaultRemote = null)
    {
        if (!File.Exists(path))
        {
            Console.Error.WriteLine(Diagnostic.Error(DiagnosticCodes.UsageError, $"The recipe list '{path}' does not exist.", path));
            return null;
        }

        var options = new RecipeRunOptions();
        var recipe = new Argument<FileInfo>("recipe") { Description = "The recipe file (YAML)." };
        // A line may set its own gate mode and threads (an MSBuild item's metadata); absent, the command's apply.
        var gatesAsWarnings = new Option<bool>("--gate-failures-as-warnings");
        var threads = CompressCommand.ThreadsOption();
        var line = new Command("run") { recipe, options.Cache, options.Output, options.DependencyFile, options.StampFile, gatesAsWarnings, threads };
        foreach (var option in options.Remote.All)
        {
            line.Add(option);
        }

        CommandLineUsage.Configure(line);
        var runs = new List<RecipeRun>();
        var valid = true;
        var lines = File.ReadAllLines(path);
        for (var i = 0; i < lines.Length; i++)
        {
            var text = lines[i].Trim();
            if (text.Length == 0 || text.StartsWith('#'))
            {
                continue;
            }

            var parse = line.Parse([.. CommandLineParser.SplitCommandLine(text)]);
            var problems = CommandLineUsage.Problems(parse);
            foreach (var problem in problems)
            {
                Console.Error.WriteLine(Diagnostic.Error(DiagnosticCodes.UsageError, problem, path, i + 1));
                valid = false;
            }

            if (problems.Count == 0)
            {
                runs.Add(options.Bind(parse, parse.GetValue(recipe)!, defaultCache, defaultRemote) with
                {
                    GateFailuresAsWarnings = parse.GetResult(gatesAsWarnings) is null ? null : parse.GetValue(gatesAsWarnings),
                    Threads = parse.GetResult(threads) is null ? null : parse.GetValue(threads),
                });
            }
        }

        if (valid && runs.Count == 0)
        {
            Console.Error.WriteLine(Diagnostic.Error(DiagnosticCodes.UsageError, $"The recipe list '{path}' names no recipe.", path));
            valid = false;
        }

        return valid ? runs : null;
    }
}
