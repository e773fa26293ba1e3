using ModelCompression.Diagnostics;

namespace ModelCompression.Common;

/// <summary>
/// A remote store as one run uses it, behind the local cache (<see cref="ArtifactCache"/>): lookups that the local cache
/// misses, uploads of what the run builds when the mode allows. The first failure of the store is one warning (MC4020),
/// after which the run goes on with its local cache alone; a missing entry is remembered, so it is asked for once.
/// </summary>
public sealed class RemoteCache
{
    private readonly IPipelineReporter _reporter;
    private readonly SecretRedactor _redactor;
    private readonly HashSet<string> _absent = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string?> _damaged = new(StringComparer.Ordinal);
    private readonly object _gate = new();

    /// <summary>The run's use of <paramref name="store"/> in <paramref name="mode"/>, warning through <paramref name="reporter"/>.</summary>
    public RemoteCache(ICacheStore store, RemoteCacheMode mode, IPipelineReporter reporter, SecretRedactor? redactor = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(reporter);
        Store = store;
        Mode = mode;
        _reporter = reporter;
        _redactor = redactor ?? SecretRedactor.None;
    }

    /// <summary>The store.</summary>
    public ICacheStore Store { get; }

    /// <summary>What the run may do with it.</summary>
    public RemoteCacheMode Mode { get; }

    /// <summary>False once the store has failed in this run: from then on it is not asked again.</summary>
    public bool Available { get; private set; } = true;

    /// <summary>Whether what the run builds is uploaded.</summary>
    public bool Writable => Mode == RemoteCacheMode.ReadWrite && Available;

    /// <summary>
    /// Opens the remote cache <paramref name="settings"/> name for a run (null when there is none, or after a warning
    /// when its credential is missing or malformed).
    /// </summary>
    public static RemoteCache? Open(RemoteCacheSettings? settings, IPipelineReporter reporter)
    {
        if (settings is null || settings.Mode == RemoteCacheMode.Off)
        {
            return null;
        }

        return settings.Open(reporter, out var redactor) is { } store ? new RemoteCache(store, settings.Mode, reporter, redactor) : null;
    }

    /// <summary>Fetches the entry into the empty folder <paramref name="destination"/>; null when the store lacks it or failed (warned).</summary>
    internal CacheFetch? Fetch(string kind, string key, string destination)
    {
        var name = CacheEntryName.Of(kind, key);
        lock (_gate)
        {
            if (!Available || _absent.Contains(name))
            {
                return null;
            }
        }

        var fetched = Try(() => Store.Fetch(kind, key, destination));
        if (fetched is { Found: false })
        {
            lock (_gate)
            {
                _absent.Add(name);
            }

            return null;
        }

        return fetched;
    }

    /// <summary>Notes that the store's copy of the entry (<paramref name="version"/>) failed its check: a rebuild replaces it.</summary>
    internal void Damaged(string kind, string key, string? version)
    {
        lock (_gate)
        {
            _damaged[CacheEntryName.Of(kind, key)] = version;
        }
    }

    /// <summary>Uploads the complete local entry <paramref name="folder"/> when the run may write; null when it may not or the store failed (warned).</summary>
    internal CachePublish? Publish(string kind, string key, string folder)
    {
        if (!Writable)
        {
            return null;
        }

        string? replacing;
        lock (_gate)
        {
            _damaged.TryGetValue(CacheEntryName.Of(kind, key), out replacing);
        }

        return Try(() => Store.Publish(kind, key, folder, replacing));
    }

    private T? Try<T>(Func<T> operation)
        where T : class
    {
        try
        {
            return operation();
        }
        catch (CacheStoreUnavailableException e)
        {
            lock (_gate)
            {
                if (!Available)
                {
                    return null;
                }

                Available = false;
            }

            var upload = Mode == RemoteCacheMode.ReadWrite ? " and uploads nothing" : string.Empty;
            _reporter.Report(Diagnostic.Warning(
                DiagnosticCodes.RemoteCacheUnavailable,
                $"{_redactor.Redact(e.Message)}. This run goes on with its local cache only{upload}."));
            return null;
        }
    }
}
