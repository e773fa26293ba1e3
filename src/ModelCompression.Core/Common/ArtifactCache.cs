using System.Text.Json;
using ModelCompression.Diagnostics;

namespace ModelCompression.Common;

/// <summary>
/// The stage cache: a plain folder, one sub-folder per entry (<c>kind-key</c>) holding the entry's files, its
/// <c>result.json</c> and, written last, its <see cref="CacheManifest"/>. An entry appears whole or not at all: it is
/// built in a temporary folder and renamed into place, so an interrupted run never leaves a half entry that a later run
/// would trust. Every entry is checked against its manifest before it is used (once per process): a damaged one is a
/// miss with a warning (MC2098), never a wrong model.
/// <para>
/// Behind the folder there may be a <see cref="RemoteCache"/> (a shared folder or blob storage, which other machines
/// fill): a local miss asks it, and its entry, checked the same way, is copied into the folder; an entry this run builds
/// is uploaded when the remote's mode allows. What each entry came from, and the bytes moved, are counted for the report
/// (<see cref="UseOf"/>, <see cref="Summary"/>). Any kind of entry (stage outputs, teacher logits, an endpoint's
/// answers) goes through <see cref="TryGet"/> and <see cref="Put"/>, and so through both layers.
/// </para>
/// </summary>
public sealed class ArtifactCache
{
    private readonly IPipelineReporter _reporter;
    // Entries checked in this process, with their files' sizes and write times then: while those stay, the entry is
    // trusted without reading it again; any change (a file removed, rewritten, added) checks it again.
    private readonly Dictionary<string, string> _verified = new(StringComparer.Ordinal);
    private readonly Dictionary<string, CacheUse> _uses = new(StringComparer.Ordinal);
    private readonly Dictionary<string, CacheKindCounts> _counts = new(StringComparer.Ordinal);
    private readonly object _gate = new();

    /// <summary>The local cache in <paramref name="root"/> alone.</summary>
    public ArtifactCache(string root)
        : this(root, null, NullPipelineReporter.Instance)
    {
    }

    /// <summary>The local cache in <paramref name="root"/> in front of <paramref name="remote"/> (none when null); warnings go to <paramref name="reporter"/>.</summary>
    public ArtifactCache(string root, RemoteCache? remote, IPipelineReporter reporter)
    {
        ArgumentNullException.ThrowIfNull(reporter);
        Root = Path.GetFullPath(root);
        Remote = remote;
        _reporter = reporter;
    }

    /// <summary>The cache folder.</summary>
    public string Root { get; }

    /// <summary>The remote cache behind the folder, or null.</summary>
    public RemoteCache? Remote { get; }

    /// <summary>
    /// The folder of the entry <paramref name="kind"/>/<paramref name="key"/>, from this folder or else from the remote
    /// cache (copied here), once it has passed its check; null when neither has a whole one.
    /// </summary>
    public string? TryGet(string kind, string key)
    {
        var name = CacheEntryName.Of(kind, key);
        var folder = Path.Combine(Root, name);
        if (Directory.Exists(folder) && Trusted(folder, kind, key, Root))
        {
            Touch(folder);
            Record(kind, name, new CacheUse(CacheSource.Local, 0, 0));
            return folder;
        }

        return Remote is null ? null : FetchFromRemote(kind, key, name);
    }

    /// <summary>
    /// Builds an entry: <paramref name="produce"/> writes its files into a fresh temporary folder, which then
    /// becomes the entry (with its result and manifest), and is uploaded when the remote cache takes uploads. A failure
    /// removes the temporary folder and leaves the cache as it was. When another writer made the entry meanwhile, its
    /// entry is kept and returned.
    /// </summary>
    public string Put<TResult>(string kind, string key, Func<string, TResult> produce)
    {
        var name = CacheEntryName.Of(kind, key);
        Directory.CreateDirectory(Root);
        var final = Path.Combine(Root, name);
        var temporary = NewTemporary(kind, key);
        try
        {
            var result = produce(temporary);
            File.WriteAllText(Path.Combine(temporary, ResultFile), JsonSerializer.Serialize(result, JsonOptions));
            // The manifest is written last: its presence marks the entry complete, its hashes make it checkable.
            CacheManifest.Write(temporary, kind, key);
            FolderCacheStore.Adopt(Root, kind, key, temporary);
            Verified(final);
            var uploaded = Remote?.Publish(kind, key, final);
            Record(kind, name, new CacheUse(CacheSource.Built, 0, uploaded?.Bytes ?? 0));
            return final;
        }
        finally
        {
            FolderCacheStore.TryDelete(temporary);
        }
    }

    /// <summary>Where this run got the entry <paramref name="kind"/>/<paramref name="key"/> and the bytes it moved; null when it did not ask for it.</summary>
    public CacheUse? UseOf(string kind, string key)
    {
        lock (_gate)
        {
            return _uses.GetValueOrDefault(CacheEntryName.Of(kind, key));
        }
    }

    /// <summary>What this run took from and gave to each layer, by kind of entry.</summary>
    public CacheSummary Summary()
    {
        lock (_gate)
        {
            var kinds = _counts.OrderBy(c => c.Key, StringComparer.Ordinal)
                .Select(c => new CacheKindStatistics(c.Key, c.Value.Local, c.Value.Remote, c.Value.Built, c.Value.Damaged, c.Value.BytesDown, c.Value.BytesUp))
                .ToList();
            return new CacheSummary(Root, Remote?.Store.Location, Remote is null ? RemoteCacheMode.Off : Remote.Mode, Remote?.Available ?? false, kinds);
        }
    }

    /// <summary>How old a killed run's temporary folder must be before a later run removes it.</summary>
    public static readonly TimeSpan StaleAfter = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Removes the temporary folders that killed runs left (a kill skips <see cref="Put"/>'s clean-up): those last
    /// written over <see cref="StaleAfter"/> ago whose process (the id in the folder's name) is not running here.
    /// A concurrent run's live folder is kept even when old: its process is running. Damaged entries that were moved
    /// aside and could not be removed then go too once as old. Returns the folders removed.
    /// </summary>
    public IReadOnlyList<string> RemoveStaleTemporaries()
    {
        if (!Directory.Exists(Root))
        {
            return [];
        }

        var removed = new List<string>();
        var leftovers = Directory.EnumerateDirectories(Root, $"{TemporaryPrefix}*").Concat(Directory.EnumerateDirectories(Root, $"{FolderCacheStore.TrashPrefix}*"));
        foreach (var folder in leftovers)
        {
            var temporary = Path.GetFileName(folder).StartsWith(TemporaryPrefix, StringComparison.Ordinal);
            if (DateTime.UtcNow - Directory.GetLastWriteTimeUtc(folder) < StaleAfter || (temporary && OwnerMayBeRunning(Path.GetFileName(folder))))
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

    /// <summary>Whether the entry folder <paramref name="folder"/> passes its check (once per process); a damaged one is warned about (MC2098).</summary>
    private bool Trusted(string folder, string kind, string key, string where)
    {
        var current = Stamps(folder);
        lock (_gate)
        {
            if (_verified.TryGetValue(folder, out var stamps) && stamps == current)
            {
                return true;
            }
        }

        if (CacheManifest.Problem(folder, kind, key) is { } problem)
        {
            // Without a manifest the folder is an old engine's or an unfinished one: replaced quietly, as always.
            if (File.Exists(Path.Combine(folder, CacheManifest.FileName)))
            {
                CountDamaged(kind);
                _reporter.Report(Diagnostic.Warning(DiagnosticCodes.CacheEntryDamaged, $"The cache entry {Path.GetFileName(folder)} in {where} is damaged: {problem}. It is not used; it is made again.", folder));
            }

            return false;
        }

        Verified(folder);
        return true;
    }

    /// <summary>Copies the entry from the remote cache into this folder once it passes its check; null when the remote lacks a whole one.</summary>
    private string? FetchFromRemote(string kind, string key, string name)
    {
        Directory.CreateDirectory(Root);
        var temporary = NewTemporary(kind, key);
        try
        {
            if (Remote!.Fetch(kind, key, temporary) is not { } fetched)
            {
                return null;
            }

            if (CacheManifest.Problem(temporary, kind, key) is { } problem)
            {
                CountDamaged(kind);
                var replaced = Remote.Writable ? " here and replaced there" : " here";
                _reporter.Report(Diagnostic.Warning(DiagnosticCodes.CacheEntryDamaged, $"The remote cache's entry {name} ({Remote.Store.Location}) is damaged: {problem}. It is not used; it is made again{replaced}."));
                Remote.Damaged(kind, key, fetched.Version);
                return null;
            }

            var final = Path.Combine(Root, name);
            FolderCacheStore.Adopt(Root, kind, key, temporary);
            Verified(final);
            Record(kind, name, new CacheUse(CacheSource.Remote, fetched.Bytes, 0));
            return final;
        }
        finally
        {
            FolderCacheStore.TryDelete(temporary);
        }
    }

    /// <summary>The sizes and write times of every file of <paramref name="folder"/>, as one string; empty when it is gone.</summary>
    private static string Stamps(string folder)
    {
        if (!Directory.Exists(folder))
        {
            return string.Empty;
        }

        var files = new DirectoryInfo(folder).EnumerateFiles("*", SearchOption.AllDirectories).OrderBy(f => f.FullName, StringComparer.Ordinal);
        return string.Join('\n', files.Select(f => $"{f.FullName} {f.Length} {f.LastWriteTimeUtc.Ticks}"));
    }

    private void Verified(string folder)
    {
        var stamps = Stamps(folder);
        lock (_gate)
        {
            _verified[folder] = stamps;
        }
    }

    private string NewTemporary(string kind, string key)
    {
        var temporary = Path.Combine(Root, $"{TemporaryPrefix}{kind}-{key}-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(temporary);
        return temporary;
    }

    /// <summary>Marks the entry used now, for <c>cache prune</c>'s least-recently-used order; a read-only folder keeps its time.</summary>
    private static void Touch(string folder)
    {
        try
        {
            Directory.SetLastWriteTimeUtc(folder, DateTime.UtcNow);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Only the prune order suffers.
        }
    }

    private void Record(string kind, string name, CacheUse use)
    {
        lock (_gate)
        {
            _uses[name] = use;
            var counts = _counts.TryGetValue(kind, out var known) ? known : _counts[kind] = new CacheKindCounts();
            counts.Add(use);
        }
    }

    private void CountDamaged(string kind)
    {
        lock (_gate)
        {
            (_counts.TryGetValue(kind, out var known) ? known : _counts[kind] = new CacheKindCounts()).Damaged++;
        }
    }

    /// <summary>One kind's running counts.</summary>
    private sealed class CacheKindCounts
    {
        public int Local { get; set; }

        public int Remote { get; set; }

        public int Built { get; set; }

        public int Damaged { get; set; }

        public long BytesDown { get; set; }

        public long BytesUp { get; set; }

        public void Add(CacheUse use)
        {
            switch (use.Source)
            {
                case CacheSource.Local:
                    Local++;
                    break;
                case CacheSource.Remote:
                    Remote++;
                    break;
                default:
                    Built++;
                    break;
            }

            BytesDown += use.BytesDown;
            BytesUp += use.BytesUp;
        }
    }
}
