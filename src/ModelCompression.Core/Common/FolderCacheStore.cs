namespace ModelCompression.Common;

/// <summary>
/// Cache entries in a folder, one sub-folder per entry (<c>kind-key</c>), laid out as in the local cache: the store of a
/// shared folder on a network file system that many machines read and write. No lock is held across machines: an
/// entry is copied into a temporary folder of the store and renamed into place (<see cref="Adopt"/>), which a file
/// server does atomically, so a reader sees the whole entry or none. When two writers race, one rename wins; the other
/// finds the entry there, checks it, and drops its own copy. The folder must exist (a share that is not mounted is not
/// quietly replaced by an empty local folder).
/// </summary>
/// <param name="root">The shared folder.</param>
public sealed class FolderCacheStore(string root) : ICacheStore
{
    /// <summary>What temporary folders (an entry being copied in) are named from; a killed writer's are removed by <c>cache prune</c>.</summary>
    public const string TemporaryPrefix = ".tmp-";

    /// <summary>What an entry moved aside (damaged, or being deleted) is renamed to before it is removed.</summary>
    public const string TrashPrefix = ".trash-";

    /// <summary>The folder.</summary>
    public string Root { get; } = Path.GetFullPath(root);

    /// <inheritdoc />
    public string Location => Root;

    /// <inheritdoc />
    public CacheFetch Fetch(string kind, string key, string destination, CancellationToken cancellationToken = default)
    {
        var entry = Path.Combine(RequireRoot(), CacheEntryName.Of(kind, key));
        try
        {
            var manifestPath = Path.Combine(entry, CacheManifest.FileName);
            if (!File.Exists(manifestPath))
            {
                return CacheFetch.NotFound;
            }

            var manifestBytes = File.ReadAllBytes(manifestPath);
            File.WriteAllBytes(Path.Combine(destination, CacheManifest.FileName), manifestBytes);
            long bytes = manifestBytes.Length;
            foreach (var file in CacheManifest.Parse(manifestBytes, out _)?.Files ?? [])
            {
                cancellationToken.ThrowIfCancellationRequested();
                var source = Path.Combine(entry, file.Path);
                if (File.Exists(source))
                {
                    var target = Path.Combine(destination, file.Path);
                    Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                    File.Copy(source, target);
                    bytes += new FileInfo(target).Length;
                }
            }

            return new CacheFetch(true, bytes, null);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Another writer replacing a damaged entry under this reader shows up as a vanished file: a miss this time.
            if (!Directory.Exists(Root))
            {
                throw Unavailable(e);
            }

            return CacheFetch.NotFound;
        }
    }

    /// <inheritdoc />
    public CachePublish Publish(string kind, string key, string source, string? replacing, CancellationToken cancellationToken = default)
    {
        var store = RequireRoot();
        var name = CacheEntryName.Of(kind, key);
        var final = Path.Combine(store, name);
        if (File.Exists(Path.Combine(final, CacheManifest.FileName)) && CacheManifest.Problem(final, kind, key) is null)
        {
            return new CachePublish(false, 0);
        }

        var temporary = Path.Combine(store, $"{TemporaryPrefix}{name}-{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            CopyFolder(source, temporary, cancellationToken);
            var bytes = Directory.EnumerateFiles(temporary, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
            return new CachePublish(Adopt(store, kind, key, temporary), bytes);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw Unavailable(e);
        }
        finally
        {
            TryDelete(temporary);
        }
    }

    /// <inheritdoc />
    public IReadOnlyList<CacheStoreEntry> List(CancellationToken cancellationToken = default) => ListFolder(RequireRoot());

    /// <inheritdoc />
    public void Delete(string kind, string key, CancellationToken cancellationToken = default) =>
        DeleteEntry(RequireRoot(), CacheEntryName.Of(kind, key));

    /// <summary>
    /// Removes the temporary and moved-aside folders that stopped writers left, when last written over
    /// <paramref name="olderThan"/> ago (a younger one may belong to a writer still copying, on any machine).
    /// </summary>
    public IReadOnlyList<string> RemoveLeftovers(TimeSpan olderThan)
    {
        var removed = new List<string>();
        foreach (var folder in Directory.EnumerateDirectories(RequireRoot()).Where(f => Path.GetFileName(f).StartsWith(TemporaryPrefix, StringComparison.Ordinal) || Path.GetFileName(f).StartsWith(TrashPrefix, StringComparison.Ordinal)))
        {
            if (DateTime.UtcNow - Directory.GetLastWriteTimeUtc(folder) > olderThan)
            {
                TryDelete(folder);
                removed.Add(folder);
            }
        }

        return removed;
    }

    /// <summary>
    /// Makes the complete entry folder <paramref name="temporary"/> (inside <paramref name="store"/>) the entry
    /// <paramref name="kind"/>/<paramref name="key"/> by renaming it. True when it became the entry; false when a valid
    /// entry was already there (kept, and <paramref name="temporary"/> left for the caller to remove). A damaged or
    /// incomplete entry in the way is renamed aside and removed first. The local cache publishes through here too.
    /// </summary>
    public static bool Adopt(string store, string kind, string key, string temporary)
    {
        var name = CacheEntryName.Of(kind, key);
        var final = Path.Combine(store, name);
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                // A rename onto a folder that exists fails (it is never empty: an entry has its manifest), so of two
                // writers exactly one wins, on one machine or on a file server.
                Directory.Move(temporary, final);
                return true;
            }
            catch (IOException) when (Directory.Exists(final) && attempt < 5)
            {
                if (CacheManifest.Problem(final, kind, key) is null)
                {
                    return false;
                }

                // A damaged entry (or one another writer is replacing right now): out of the way, then try again.
                DeleteEntry(store, name);
            }
        }
    }

    /// <summary>
    /// The complete entries of the folder <paramref name="store"/>: folders named as entries holding a manifest, with
    /// their bytes and last write time (a local cache touches an entry when a run uses it).
    /// </summary>
    public static IReadOnlyList<CacheStoreEntry> ListFolder(string store)
    {
        if (!Directory.Exists(store))
        {
            return [];
        }

        var entries = new List<CacheStoreEntry>();
        foreach (var folder in Directory.EnumerateDirectories(store))
        {
            if (!CacheEntryName.TryParse(Path.GetFileName(folder), out var kind, out var key) || !File.Exists(Path.Combine(folder, CacheManifest.FileName)))
            {
                continue;
            }

            try
            {
                var bytes = Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
                entries.Add(new CacheStoreEntry(kind, key, bytes, new DateTimeOffset(Directory.GetLastWriteTimeUtc(folder), TimeSpan.Zero)));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Removed while listed (a prune or a replacement elsewhere): not an entry any more.
            }
        }

        return entries;
    }

    /// <summary>Removes the entry folder <paramref name="name"/> of <paramref name="store"/>: renamed aside first, so no reader meets it half removed.</summary>
    public static void DeleteEntry(string store, string name)
    {
        var aside = Path.Combine(store, $"{TrashPrefix}{name}-{Guid.NewGuid():N}");
        try
        {
            Directory.Move(Path.Combine(store, name), aside);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Gone already (another writer moved it first), or not ours to move: nothing to remove.
            return;
        }

        TryDelete(aside);
    }

    /// <summary>Removes <paramref name="folder"/> if it is there; a failure leaves it for <c>cache prune</c>.</summary>
    internal static void TryDelete(string folder)
    {
        try
        {
            if (Directory.Exists(folder))
            {
                Directory.Delete(folder, recursive: true);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Left behind: harmless (not an entry's name), and cache prune removes it.
        }
    }

    private static void CopyFolder(string source, string destination, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(destination);
        foreach (var file in Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var target = Path.Combine(destination, Path.GetRelativePath(source, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
    }

    private string RequireRoot() =>
        Directory.Exists(Root) ? Root : throw new CacheStoreUnavailableException($"The shared cache folder {Root} does not exist (a share not mounted?)");

    private CacheStoreUnavailableException Unavailable(Exception e) => new($"The shared cache folder {Root} failed: {e.Message}", e);
}
