using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
using ModelCompression.Diagnostics;

namespace ModelCompression.Build;

/// <summary>
/// Runs a project's compression recipes. Each recipe has its own state folder (its outputs, the files it read,
/// its stamp) and its own up-to-date check; the recipes that are out of date run together in ONE engine process
/// (<c>dotnet-compress run --recipes</c>), so libtorch loads once per build, and none starts when all are up to date.
/// libtorch, 600 MB of native code that cannot be unloaded, never loads into an MSBuild node. The engine prints
/// diagnostics in MSBuild's canonical form, so they surface as real errors and warnings with the recipe's file and line.
/// </summary>
public sealed class CompressModel : ToolTask
{
    /// <summary>The file in a state folder whose content is the settings the outputs depend on (and marks the folder as ours).</summary>
    internal const string SettingsFileName = "settings";

    /// <summary>What the engine's one-line result of each recipe starts with (its RecipeSummary.Prefix).</summary>
    internal const string SummaryPrefix = "Summary: ";

    /// <summary>
    /// The recipe files (the project's <c>CompressModel</c> items). Their metadata <c>GateFailuresAsWarnings</c>,
    /// <c>CacheDirectory</c>, <c>Threads</c>, <c>PublishReports</c>, <c>RemoteCache</c>, <c>RemoteCacheMode</c> and
    /// <c>RemoteCacheCredentialEnv</c> override the project's <c>CompressModel*</c> properties for that recipe.
    /// </summary>
    public ITaskItem[] Recipes { get; set; } = [];

    /// <summary>The folder holding one state folder per recipe; state folders of recipes no longer listed are deleted.</summary>
    [Required]
    public string StateDirectory { get; set; } = string.Empty;

    /// <summary>The project's folder: a recipe's state folder is named after its path relative to it.</summary>
    [Required]
    public string ProjectDirectory { get; set; } = string.Empty;

    /// <summary>The project file, where errors about its items point (the task's own node is the package's targets file).</summary>
    public string? ProjectFile { get; set; }

    /// <summary>The engine's entry assembly (dotnet-compress.dll).</summary>
    [Required]
    public string EnginePath { get; set; } = string.Empty;

    /// <summary>The stage cache folder of recipes without their own <c>CacheDirectory</c>.</summary>
    [Required]
    public string CacheDirectory { get; set; } = string.Empty;

    /// <summary>Files every recipe's outputs depend on (the engine, these build files): a newer one makes every recipe run.</summary>
    public ITaskItem[] AdditionalInputs { get; set; } = [];

    /// <summary>The folder holding libtorch's shared libraries; found in <see cref="PackageFolders"/> when not set.</summary>
    public string? LibTorchDirectory { get; set; }

    /// <summary>The NuGet package folders of the build (global packages folder and fallback folders).</summary>
    public string[] PackageFolders { get; set; } = [];

    /// <summary>The libtorch package as "id/version", looked for in <see cref="PackageFolders"/>.</summary>
    public string LibTorchPackage { get; set; } = "libtorch-cpu-linux-x64/2.10.0";

    /// <summary>Report broken gates as warnings instead of errors (the model is still not replaced), for recipes without their own.</summary>
    public bool GateFailuresAsWarnings { get; set; }

    /// <summary>Threads for libtorch and ONNX Runtime (CompressModelThreads); 0 lets the engine take the CPUs the build may use.</summary>
    public int Threads { get; set; }

    /// <summary>Whether reports go to the output and publish folders with the model (CompressModelPublishReports), for recipes without their own.</summary>
    public bool PublishReports { get; set; }

    /// <summary>MSBuild's <c>_MSBUILDTLENABLED</c>: "1" when the terminal logger draws the build's output.</summary>
    public string? TerminalLoggerEnabled { get; set; }

    /// <summary>Where the engine runs the teacher (CompressModelExecutionProvider: cpu or cuda); empty leaves it to each recipe.</summary>
    public string? ExecutionProvider { get; set; }

    /// <summary>The remote stage cache (CompressModelRemoteCache: a shared folder, relative to the project, or a blob URL), for recipes without their own; empty leaves it to the recipe.</summary>
    public string? RemoteCache { get; set; }

    /// <summary>What runs may do with the remote cache (CompressModelRemoteCacheMode: read, read-write or off), for recipes without their own; empty leaves it to the recipe.</summary>
    public string? RemoteCacheMode { get; set; }

    /// <summary>The name of the environment variable holding the remote cache's credential (CompressModelRemoteCacheCredentialEnv); empty leaves it to the recipe.</summary>
    public string? RemoteCacheCredentialEnv { get; set; }

    /// <summary>The dotnet host to run the engine with; defaults to the one running this build.</summary>
    public string? DotnetHost { get; set; }

    /// <summary>
    /// Every recipe's current outputs (model, data description, reports), with the recipe as <c>Recipe</c> metadata and
    /// <c>CompressModelPublish</c> "true" for those that go to the output folder: the model and data description always, reports when asked.
    /// </summary>
    [Output]
    public ITaskItem[] OutputFiles { get; private set; } = [];

    /// <summary>The bookkeeping files of the state folders, for FileWrites.</summary>
    [Output]
    public ITaskItem[] StateFiles { get; private set; } = [];

    /// <summary>The engine's line before each recipe of a list: "Recipe 1/2: /full/path.yaml".</summary>
    private static readonly System.Text.RegularExpressions.Regex RecipeStarted = new(@"^Recipe (\d+/\d+): (.+)$");

    private readonly List<string> _summaries = [];
    private string? _libTorchProblem;
    private string? _recipeList;
    private TerminalStatus? _status;
    private string _currentRecipe = string.Empty;

    /// <inheritdoc />
    protected override string ToolName => "dotnet";

    /// <summary>Progress lines show at normal verbosity: training takes minutes and people want to see it move.</summary>
    protected override MessageImportance StandardOutputLoggingImportance => MessageImportance.High;

    /// <inheritdoc />
    protected override string GenerateFullPathToTool() =>
        !string.IsNullOrEmpty(DotnetHost) ? DotnetHost!
        : Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host
        : "dotnet";

    /// <inheritdoc />
    protected override bool ValidateParameters()
    {
        // Log every problem, then fail once, so a user fixes them all in one go.
        var valid = true;
        if (!File.Exists(EnginePath))
        {
            Log.LogError(null, DiagnosticCodes.EngineMissing, null, null, 0, 0, 0, 0, "The compression engine '{0}' is missing: the ModelCompression.Build package is incomplete. Clear it from the NuGet packages folder and restore again.", EnginePath);
            valid = false;
        }

        if (LibTorchDirectory is null || !Directory.Exists(LibTorchDirectory))
        {
            Log.LogError(null, DiagnosticCodes.TorchNativeLoadFailed, null, null, 0, 0, 0, 0, _libTorchProblem ?? $"libtorch folder '{LibTorchDirectory}' (CompressModelLibTorchDirectory) does not exist.");
            valid = false;
        }

        return valid;
    }

    /// <inheritdoc />
    protected override string GenerateCommandLineCommands()
    {
        var builder = new CommandLineBuilder();
        builder.AppendSwitch("exec");
        builder.AppendFileNameIfNotNull(EnginePath);
        builder.AppendSwitch("run");
        builder.AppendSwitchIfNotNull("--recipes ", _recipeList);
        if (!string.IsNullOrWhiteSpace(ExecutionProvider))
        {
            builder.AppendSwitchIfNotNull("--execution-provider ", ExecutionProvider!.Trim());
        }

        return builder.ToString();
    }

    /// <inheritdoc />
    public override bool Execute()
    {
        // Relative to the project, not to whatever folder the MSBuild node runs in.
        StateDirectory = Path.GetFullPath(StateDirectory, ProjectDirectory);
        var projectFile = string.IsNullOrEmpty(ProjectFile) ? ProjectDirectory : ProjectFile!;
        var remote = RemoteCacheSettings.Read(RemoteCache, RemoteCacheMode, RemoteCacheCredentialEnv, ProjectDirectory, "CompressModelRemoteCache", projectFile, Log);
        if (remote is null)
        {
            return false;
        }

        var defaults = new RecipeSettings(GateFailuresAsWarnings, Path.GetFullPath(CacheDirectory, ProjectDirectory), Threads, PublishReports) { Remote = remote };
        var recipes = new List<RecipeState>();
        var valid = true;
        foreach (var item in Recipes.GroupBy(r => r.GetMetadata("FullPath"), StringComparer.Ordinal).Select(g => g.First()))
        {
            var settings = RecipeSettings.Read(item, defaults, ProjectDirectory, projectFile, Log);
            var state = new RecipeState(item.GetMetadata("FullPath"), StateDirectory, ProjectDirectory, settings ?? defaults);
            if (!File.Exists(state.Recipe))
            {
                Log.LogError(null, DiagnosticCodes.RecipeFileNotFound, null, item.ItemSpec, 0, 0, 0, 0, "Recipe '{0}' does not exist.", state.Recipe);
                valid = false;
            }

            valid &= settings is not null;
            recipes.Add(state);
        }

        DeleteStateOfRemovedRecipes(recipes);
        if (!valid)
        {
            return false;
        }

        var additional = AdditionalInputs.Select(i => i.GetMetadata("FullPath")).ToList();
        var outOfDate = new List<RecipeState>();
        foreach (var recipe in recipes)
        {
            recipe.WriteSettingsWhenChanged();
            if (recipe.WhyOutOfDate(additional) is { } reason)
            {
                Log.LogMessage(MessageImportance.High, "{0}: runs ({1}).", recipe.Recipe, reason);
                outOfDate.Add(recipe);
            }
            else
            {
                Log.LogMessage(MessageImportance.Normal, "{0}: up to date.", recipe.Recipe);
                recipe.RemoveOutputsNotInStamp(Log);
            }
        }

        var succeeded = true;
        if (outOfDate.Count == 0)
        {
            Log.LogMessage(MessageImportance.Normal, "All {0} recipe(s) are up to date: the engine is not started.", recipes.Count);
        }
        else
        {
            succeeded = RunEngine(outOfDate);
            foreach (var recipe in outOfDate)
            {
                // Only a run with every gate passed writes the stamp (and so its list of outputs); after a
                // failed one the last good outputs stay as they were.
                recipe.RemoveOutputsNotInStamp(Log);
            }
        }

        StateFiles = [.. recipes.SelectMany(r => r.BookkeepingFiles).Concat(_recipeList is null ? [] : [_recipeList]).Select(f => new TaskItem(f))];
        return CollectOutputs(recipes) && succeeded && !Log.HasLoggedErrors;
    }

    /// <summary>Runs the engine once over <paramref name="recipes"/>, listed with their own options in a file it reads.</summary>
    private bool RunEngine(IReadOnlyList<RecipeState> recipes)
    {
        var list = new StringBuilder();
        foreach (var recipe in recipes)
        {
            var line = new CommandLineBuilder();
            line.AppendFileNameIfNotNull(recipe.Recipe);
            line.AppendSwitchIfNotNull("--output ", recipe.OutputDirectory);
            line.AppendSwitchIfNotNull("--cache ", recipe.Settings.CacheDirectory);
            line.AppendSwitchIfNotNull("--dependency-file ", recipe.DependencyFile);
            line.AppendSwitchIfNotNull("--stamp-file ", recipe.StampFile);
            if (recipe.Settings.Threads > 0)
            {
                line.AppendSwitch($"--threads {recipe.Settings.Threads.ToString(System.Globalization.CultureInfo.InvariantCulture)}");
            }

            if (recipe.Settings.GateFailuresAsWarnings)
            {
                line.AppendSwitch("--gate-failures-as-warnings");
            }

            // The variable's name goes on the line, never its value: the engine reads the credential itself.
            line.AppendSwitchIfNotNull("--remote-cache ", recipe.Settings.Remote.Location);
            line.AppendSwitchIfNotNull("--remote-cache-mode ", recipe.Settings.Remote.Mode);
            line.AppendSwitchIfNotNull("--remote-cache-credential-env ", recipe.Settings.Remote.CredentialVariable);

            list.Append(line).Append('\n');
        }

        Directory.CreateDirectory(StateDirectory);
        _recipeList = Path.Combine(StateDirectory, "recipes.rsp");
        File.WriteAllText(_recipeList, list.ToString());

        ResolveLibTorchDirectory();
        var variables = new List<string>(EnvironmentVariables ?? []);
        if (!string.IsNullOrEmpty(LibTorchDirectory))
        {
            variables.Add($"MODELCOMPRESSION_LIBTORCH_DIR={LibTorchDirectory}");
        }

        // Plain progress lines, not a redrawn terminal line: MSBuild logs line by line.
        variables.Add("CI=true");
        // ONNX Runtime's telemetry off from the engine process's first instruction (the engine turns it off too).
        variables.Add("ORT_DISABLE_TELEMETRY=1");
        // Where restore put packages (a nuget.config may move the global folder and add fallback folders): the engine
        // looks there for ONNX Runtime's GPU build when a recipe asks for CUDA.
        variables.Add($"MODELCOMPRESSION_PACKAGE_FOLDERS={string.Join(";", PackageFolders.Where(f => !string.IsNullOrWhiteSpace(f)))}");
        EnvironmentVariables = [.. variables];
        _status = TerminalStatus.TryCreate(TerminalLoggerEnabled);
        try
        {
            return base.Execute();
        }
        finally
        {
            _status?.Clear();
            _status?.PrintAtExit(_summaries);
        }
    }

    /// <summary>
    /// Logs each line of the engine's output (diagnostics as errors and warnings, the rest as messages); the
    /// summary line of each recipe is kept, and under the terminal logger the latest line is shown live.
    /// </summary>
    protected override void LogEventsFromTextOutput(string singleLine, MessageImportance messageImportance)
    {
        base.LogEventsFromTextOutput(singleLine, messageImportance);
        var line = singleLine.Trim();
        if (line.StartsWith(SummaryPrefix, StringComparison.Ordinal))
        {
            _summaries.Add(line);
            _status?.Show(line);
        }
        else if (RecipeStarted.Match(line) is { Success: true } started)
        {
            _currentRecipe = $"[{started.Groups[1].Value} {Path.GetFileName(started.Groups[2].Value)}] ";
            _status?.Show(_currentRecipe);
        }
        else if (line.Length > 0 && line[0] is not ('|' or '#' or '-'))
        {
            // The report's markdown (tables, headings, lists) is for the log; progress and outcome lines are the status.
            _status?.Show(_currentRecipe + line);
        }
    }

    /// <summary>
    /// The current outputs of every recipe, as content for the app's output folder. Two recipes writing a file
    /// of the same name would overwrite each other there: that is an error naming both.
    /// </summary>
    private bool CollectOutputs(IReadOnlyList<RecipeState> recipes)
    {
        var outputs = new List<ITaskItem>();
        var owners = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var valid = true;
        foreach (var recipe in recipes)
        {
            foreach (var file in recipe.CurrentOutputs())
            {
                // A generative student's folder keeps its layout in the output folder (student/model.onnx, ...).
                var name = Path.GetRelativePath(Path.GetFullPath(recipe.OutputDirectory), file);
                var publish = recipe.Settings.PublishReports || !RecipeState.IsReport(file);
                if (!publish)
                {
                    // Still an output of the build (FileWrites), so incremental clean leaves it in obj/.
                    outputs.Add(new TaskItem(file, new Dictionary<string, string> { ["Recipe"] = recipe.Recipe, ["CompressModelPublish"] = "false" }));
                    continue;
                }

                if (owners.TryGetValue(name, out var other))
                {
                    Log.LogError(null, DiagnosticCodes.OutputNameClash, null, recipe.Recipe, 0, 0, 0, 0, "Recipes '{0}' and '{1}' both write '{2}' to the output folder, where one would overwrite the other: give one of them another 'outputs: {{ model: … }}' name.", other, recipe.Recipe, name);
                    valid = false;
                    continue;
                }

                owners[name] = recipe.Recipe;
                outputs.Add(new TaskItem(file, new Dictionary<string, string> { ["Recipe"] = recipe.Recipe, ["CompressModelPublish"] = "true", ["CompressModelTargetPath"] = name }));
            }
        }

        OutputFiles = [.. outputs];
        return valid;
    }

    /// <summary>
    /// Deletes the state folders (and so the outputs) of recipes no longer in the project, so nothing of theirs
    /// is shipped. Only folders holding our settings file are touched.
    /// </summary>
    private void DeleteStateOfRemovedRecipes(IReadOnlyList<RecipeState> recipes)
    {
        if (!Directory.Exists(StateDirectory))
        {
            return;
        }

        var current = recipes.Select(r => r.Folder).ToHashSet(StringComparer.Ordinal);
        foreach (var folder in Directory.EnumerateDirectories(StateDirectory))
        {
            var full = Path.GetFullPath(folder);
            if (!current.Contains(full) && File.Exists(Path.Combine(full, SettingsFileName)))
            {
                Log.LogMessage(MessageImportance.Normal, "Removing '{0}': its recipe is no longer in the project.", full);
                Directory.Delete(full, recursive: true);
            }
        }
    }

    /// <summary>
    /// Unless set, finds libtorch in the build's NuGet package folders, where the package's dependency on it
    /// was restored (the global packages folder or a fallback folder).
    /// </summary>
    private void ResolveLibTorchDirectory()
    {
        if (!string.IsNullOrEmpty(LibTorchDirectory))
        {
            return;
        }

        var candidates = PackageFolders
            .Where(f => !string.IsNullOrWhiteSpace(f))
            .Select(f => Path.Combine(f.Trim(), LibTorchPackage, "runtimes", "linux-x64", "native"))
            .ToList();
        LibTorchDirectory = candidates.FirstOrDefault(Directory.Exists);
        if (LibTorchDirectory is null)
        {
            _libTorchProblem = $"libtorch ({LibTorchPackage}) was not found in the NuGet package folders: {(candidates.Count == 0 ? "(none)" : string.Join(", ", candidates))}. Run 'dotnet restore', or set CompressModelLibTorchDirectory to a folder holding libtorch_cpu.so.";
        }
    }
}
