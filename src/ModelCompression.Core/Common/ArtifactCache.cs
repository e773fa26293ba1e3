using System.Text.Json;

namespace ModelCompression.Common;

/// <summary>
/// A plain folder of stage results, one sub-folder per cache key, holding <c>model.onnx</c> and
/// <c>result.json</c>. An entry appears whole or not at all: it is built in a temporary folder and renamed
/// into place, so an interrupted run never leaves a half entry that a later run would trust.
/// </summary>
public sealed class ArtifactCache(string root)
{
    /// <summary>The cache folder.</summary>
    public string Root { get; } = Path.GetFullPath(root);

    /// <summary>The entry folder of <paramref name="key"/> if it is complete, else null.</summary>
    public string? TryGet(string kind, string key)
    {
        var folder = EntryFolder(kind, key);
        return File.Exists(Path.Combine(folder, ResultFile)) ? folder : null;
    }

    /// <summary>
    /// Builds an entry: <paramref name="produce"/> writes its files into a fresh temporary folder, which then
    /// becomes the entry. A failure removes the temporary folder and leaves the cache as it was.
    /// </summary>
    public string Put<TResult>(string kind, string key, Func<string, TResult> produce)
    {
        Directory.CreateDirectory(Root);
        var final = EntryFolder(kind, key);
        var temporary = Path.Combine(Root, $"{TemporaryPrefix}{kind}-{key}-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(temporary);
        try
        {
            var result = produce(temporary);
            // result.json is written last: its presence marks the entry complete.
            File.WriteAllText(Path.Combine(temporary, ResultFile), JsonSerializer.Serialize(result, JsonOptions));
            if (Directory.Exists(final))
            {
                // An incomplete leftover from a killed run (no result.json): replace it.
                Directory.Delete(final, recursive: true);
            }

            Directory.Move(temporary, final);
            return final;
        }
        finally
        {
            if (Directory.Exists(temporary))
            {
                Directory.Delete(temporary, recursive: true);
            }
        }
    }

    /// <summary>How old a killed run's temporary folder must be before a later run removes it.</summary>
    public static readonly TimeSpan StaleAfter = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Removes the temporary folders that killed runs left (a kill skips <see cref="Put"/>'s clean-up): those last
    /// written over <see cref="StaleAfter"/> ago whose process (the id in the folder's name) is not running here.
    /// A concurrent run's live folder is kept even when old: its process is running. Returns the folders removed.
    /// </summary>
    public IReadOnlyList<string> RemoveStaleTemporaries()
    {
        if (!Directory.Exists(Root))
        {
            return [];
        }

        var removed = new List<string>();
        foreach (var folder in Directory.EnumerateDirectories(Root, $"{TemporaryPrefix}*"))
        {
            if (DateTime.UtcNow - Directory.GetLastWriteTimeUtc(folder) < StaleAfter || OwnerMayBeRunning(Path.GetFileName(folder)))
            {
                continue;
            }

            try
            {
                Directory.Delete(folder, recursive: true);
                removed.Add(folder);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Another run removed it first, or it is not ours to remove: either way not this run's problem.
            }
        }

        return removed;
    }

    /// <summary>The file whose lock serialises runs writing <paramref name="outputModel"/> through this cache.</summary>
    /// <remarks>
    /// It lives in the cache, where leaving it is harmless: deleting a lock file on release would let a waiter lock
    /// the old, unlinked file while a newcomer locks a new one, and next to the outputs it would litter the source tree.
    /// </remarks>
    public string LockFile(string outputModel) =>
        Path.Combine(Root, "locks", $"{Path.GetFileName(outputModel)}-{new ContentHash().Add("output", Path.GetFullPath(outputModel)).Finish()[..16]}.lock");

    /// <summary>
    /// The cache folder a command-line run of <paramref name="recipePath"/> uses when none is given: under the user's
    /// cache folder (<c>$XDG_CACHE_HOME</c>, else <c>~/.cache</c>; the local application data folder on Windows),
    /// one folder per recipe, named by the recipe's file name and a hash of its full path. Nothing lands in the
    /// source tree.
    /// </summary>
    public static string DefaultRoot(string recipePath)
    {
        var full = Path.GetFullPath(recipePath);
        var userCache = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg && Path.IsPathRooted(xdg)
            ? xdg
            : OperatingSystem.IsWindows()
                ? Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData)
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        var name = Path.GetFileNameWithoutExtension(full).Replace(".compress", string.Empty, StringComparison.Ordinal);
        return Path.Combine(userCache, "modelcompression", $"{name}-{new ContentHash().Add("recipe", full).Finish()[..16]}");
    }

    /// <summary>Reads the result of a complete entry.</summary>
    public static TResult ReadResult<TResult>(string entryFolder) =>
        JsonSerializer.Deserialize<TResult>(File.ReadAllText(Path.Combine(entryFolder, ResultFile)), JsonOptions)
        ?? throw new InvalidDataException($"Empty cache result in {entryFolder}.");

    /// <summary>File name of an entry's result.</summary>
    public const string ResultFile = "result.json";

    /// <summary>File name of an entry's model.</summary>
    public const string ModelFile = "model.onnx";

    internal static JsonSerializerOptions JsonOptions { get; } = new() { WriteIndented = true };

    private const string TemporaryPrefix = ".tmp-";

    /// <summary>
    /// Whether the process that made the temporary folder <paramref name="name"/> (".tmp-kind-key-PID-guid") may still
    /// be running. When the name holds no process id, or one that is running (perhaps a later process with a reused
    /// id), the answer is yes: keeping a dead run's folder costs disk, removing a live run's would break it.
    /// </summary>
    private static bool OwnerMayBeRunning(string name)
    {
        var parts = name.Split('-');
        if (parts.Length < 3 || !int.TryParse(parts[^2], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var pid))
        {
            return true;
        }

        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false; // no such process
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    private string EntryFolder(string kind, string key) => Path.Combine(Root, $"{kind}-{key}");
}
