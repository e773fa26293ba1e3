namespace ModelCompression.Common;

/// <summary>Where a run got a cache entry.</summary>
public enum CacheSource
{
    /// <summary>The local cache folder had it.</summary>
    Local,

    /// <summary>The remote cache had it; it was copied into the local folder.</summary>
    Remote,

    /// <summary>Neither had it (or theirs was damaged): this run made it.</summary>
    Built,
}

/// <summary>How a run got one cache entry.</summary>
/// <param name="Source">Where from.</param>
/// <param name="BytesDown">Bytes fetched from the remote cache.</param>
/// <param name="BytesUp">Bytes uploaded to the remote cache (an entry this run built, in read-write mode).</param>
public sealed record CacheUse(CacheSource Source, long BytesDown, long BytesUp);

/// <summary>One kind of entry's share of a run's cache use.</summary>
/// <param name="Kind">The kind ("distill", "evaluate", "teacher-logits", …).</param>
/// <param name="LocalHits">Entries the local folder had.</param>
/// <param name="RemoteHits">Entries copied from the remote cache.</param>
/// <param name="Built">Entries the run made.</param>
/// <param name="Damaged">Entries that failed their check (local or remote) and were made again.</param>
/// <param name="BytesDown">Bytes fetched from the remote cache.</param>
/// <param name="BytesUp">Bytes uploaded to it.</param>
public sealed record CacheKindStatistics(string Kind, int LocalHits, int RemoteHits, int Built, int Damaged, long BytesDown, long BytesUp);

/// <summary>A run's cache use: the folder, the remote cache (if any) and what came from where, by kind.</summary>
/// <param name="Folder">The local cache folder.</param>
/// <param name="Remote">Where the remote cache is (never a credential); null without one.</param>
/// <param name="Mode">What the run could do with it.</param>
/// <param name="RemoteAvailable">False when the remote cache failed during the run (the run went on locally) or there is none.</param>
/// <param name="Kinds">Counts by kind of entry, sorted by kind.</param>
public sealed record CacheSummary(string Folder, string? Remote, RemoteCacheMode Mode, bool RemoteAvailable, IReadOnlyList<CacheKindStatistics> Kinds)
{
    /// <summary>The counts of every kind together.</summary>
    public CacheKindStatistics Total => new(
        "all",
        Kinds.Sum(k => k.LocalHits),
        Kinds.Sum(k => k.RemoteHits),
        Kinds.Sum(k => k.Built),
        Kinds.Sum(k => k.Damaged),
        Kinds.Sum(k => k.BytesDown),
        Kinds.Sum(k => k.BytesUp));

    /// <summary>
    /// The run's cache use in one line: "Cache: 3 local hits, 9 remote hits (1.93 MB down), 0 built; 0 B uploaded". A hit
    /// is a lookup: an entry asked for twice counts twice.
    /// </summary>
    public string Describe()
    {
        var total = Total;
        var remote = Remote is null ? string.Empty : $", {Count(total.RemoteHits, "remote hit")} ({Size(total.BytesDown)} down)";
        var uploaded = Remote is null ? string.Empty
            : Mode == RemoteCacheMode.ReadWrite ? $"; {Size(total.BytesUp)} uploaded"
            : "; nothing uploaded (read-only)";
        var damaged = total.Damaged > 0 ? $"; {total.Damaged} damaged, made again" : string.Empty;
        var failed = Remote is not null && !RemoteAvailable ? "; the remote cache failed during the run" : string.Empty;
        return $"Cache: {Count(total.LocalHits, "local hit")}{remote}, {total.Built} built{uploaded}{damaged}{failed}";
    }

    /// <summary>"1 local hit", "3 local hits".</summary>
    public static string Count(int count, string noun) => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{count} {noun}{(count == 1 ? string.Empty : "s")}");

    /// <summary>A size in bytes as people read it, in powers of 1000 (as report sizes are): "0 B", "12.3 kB", "4.56 MB".</summary>
    public static string Size(long bytes)
    {
        string[] units = ["B", "kB", "MB", "GB", "TB"];
        var value = (double)bytes;
        var unit = 0;
        while (value >= 1000 && unit < units.Length - 1)
        {
            value /= 1000;
            unit++;
        }

        return unit == 0 ? $"{bytes} B" : string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{value:0.##} {units[unit]}");
    }
}
