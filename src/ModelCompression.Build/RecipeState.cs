using System.Security.Cryptography;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

namespace ModelCompression.Build;

/// <summary>
/// One recipe's state folder: <c>out/</c> holds exactly its current outputs, <c>inputs</c> lists the files its
/// last run read, <c>stamp</c> (written by the engine only after a run with every gate passed) lists the files that
/// run wrote, and <c>settings</c> holds the build settings its outputs depend on.
/// </summary>
internal sealed class RecipeState
{
    /// <summary>The state of <paramref name="recipe"/> (a full path) under <paramref name="stateDirectory"/>, built with <paramref name="settings"/>.</summary>
    public RecipeState(string recipe, string stateDirectory, string projectDirectory, RecipeSettings settings)
    {
        Recipe = recipe;
        Settings = settings;
        Folder = Path.GetFullPath(Path.Combine(stateDirectory, FolderName(recipe, projectDirectory)));
    }

    /// <summary>The recipe's build settings (its item's metadata over the project's properties).</summary>
    public RecipeSettings Settings { get; }

    /// <summary>The recipe file (full path).</summary>
    public string Recipe { get; }

    /// <summary>The state folder (full path).</summary>
    public string Folder { get; }

    /// <summary>Where the engine writes the model and reports.</summary>
    public string OutputDirectory => Path.Combine(Folder, "out");

    /// <summary>The files the last run read, one per line (written by the engine).</summary>
    public string DependencyFile => Path.Combine(Folder, "inputs");

    /// <summary>The files the last successful run wrote, one per line (written by the engine).</summary>
    public string StampFile => Path.Combine(Folder, "stamp");

    /// <summary>The build settings the outputs depend on.</summary>
    public string SettingsFile => Path.Combine(Folder, CompressModel.SettingsFileName);

    /// <summary>The files of the state folder other than the outputs.</summary>
    public IEnumerable<string> BookkeepingFiles => [DependencyFile, StampFile, SettingsFile];

    /// <summary>
    /// The recipe's file name (readable in obj/) and a hash of its path relative to the project: two
    /// <c>model.compress.yaml</c> in different folders get different folders.
    /// </summary>
    public static string FolderName(string recipe, string projectDirectory)
    {
        var relative = Path.GetRelativePath(projectDirectory, recipe).Replace('\\', '/');
        var hash = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(relative)), 0, 4).ToLowerInvariant();
        return $"{Path.GetFileName(recipe)}-{hash}";
    }

    /// <summary>
    /// Writes the settings the outputs depend on only when they differ from the file's, so that its time says when
    /// they last changed: a change makes this recipe, and no other, out of date.
    /// </summary>
    public void WriteSettingsWhenChanged()
    {
        var settings = Settings.StateText;
        if (File.Exists(SettingsFile) && File.ReadAllText(SettingsFile) == settings)
        {
            return;
        }

        Directory.CreateDirectory(Folder);
        File.WriteAllText(SettingsFile, settings);
    }

    /// <summary>Why the recipe must run, or null when its stamp is newer than every input and its outputs are all there.</summary>
    public string? WhyOutOfDate(IEnumerable<string> additionalInputs)
    {
        if (!File.Exists(StampFile))
        {
            return "no run with every gate passed since it last ran or changed";
        }

        if (!File.Exists(DependencyFile))
        {
            return "the list of files it reads is missing";
        }

        var stamp = File.GetLastWriteTimeUtc(StampFile);
        var inputs = new[] { Recipe, SettingsFile }
            .Concat(ReadLines(DependencyFile))
            .Concat(additionalInputs);
        foreach (var input in inputs)
        {
            if (!File.Exists(input))
            {
                return $"'{input}' is missing";
            }

            if (File.GetLastWriteTimeUtc(input) > stamp)
            {
                return $"'{input}' is newer than its last run";
            }
        }

        return ReadLines(StampFile).FirstOrDefault(f => !File.Exists(f)) is { } gone ? $"its output '{gone}' is missing" : null;
    }

    /// <summary>
    /// Deletes what an earlier run left in <c>out/</c> that the last successful run did not write (a renamed
    /// model, a report format no longer asked for). Without a stamp (a failed or gate-broken last run) nothing is
    /// deleted: the last good outputs stay.
    /// </summary>
    public void RemoveOutputsNotInStamp(TaskLoggingHelper log)
    {
        if (!File.Exists(StampFile))
        {
            return;
        }

        var written = ReadLines(StampFile).Select(Path.GetFullPath).ToHashSet(StringComparer.Ordinal);
        foreach (var file in CurrentOutputs().Where(f => !written.Contains(f)))
        {
            log.LogMessage(MessageImportance.Normal, "Removing '{0}': the last run of {1} did not write it.", file, Recipe);
            File.Delete(file);
        }
    }

    /// <summary>Whether <paramref name="file"/> is one of the engine's reports (<c>&lt;model&gt;.report.json|md|html</c>).</summary>
    public static bool IsReport(string file)
    {
        var name = Path.GetFileName(file);
        return name.EndsWith(".report.json", StringComparison.OrdinalIgnoreCase)
            || name.EndsWith(".report.md", StringComparison.OrdinalIgnoreCase)
            || name.EndsWith(".report.html", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>The files in <c>out/</c>, less the engine's hidden lock and temporary files.</summary>
    public IEnumerable<string> CurrentOutputs() => Directory.Exists(OutputDirectory)
        ? Directory.EnumerateFiles(OutputDirectory, "*", SearchOption.AllDirectories).Select(Path.GetFullPath)
            .Where(f => !Path.GetRelativePath(Path.GetFullPath(OutputDirectory), f).Split(Path.DirectorySeparatorChar).Any(part => part.StartsWith('.'))).Order(StringComparer.Ordinal).ToList()
        : [];

    private static IEnumerable<string> ReadLines(string path) =>
        File.ReadAllLines(path).Select(l => l.Trim()).Where(l => l.Length > 0);
}
