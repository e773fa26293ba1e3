using System.Text.RegularExpressions;

namespace ModelCompression.Common;

/// <summary>
/// A place that keeps stage cache entries for other machines: a shared folder (<see cref="FolderCacheStore"/>) or a blob
/// container (<see cref="BlobCacheStore"/>). An entry is a folder of files named by its kind and key, with its
/// <see cref="CacheManifest"/>; a store moves entries whole and checks nothing itself: <see cref="ArtifactCache"/>
/// checks what it fetches against the manifest before any of it is used, and a store only ever publishes entries that
/// passed that check where they were made. Whatever kind of entry a caller keeps (models, teacher logits, an
/// endpoint's answers), it goes through the same five operations.
/// <para>
/// A store that cannot be reached throws <see cref="CacheStoreUnavailableException"/>; the callers of a run turn that
/// into one warning and go on with the local cache alone.
/// </para>
/// </summary>
public interface ICacheStore
{
    /// <summary>Where the store is, for messages: a folder or a container URL, never a credential.</summary>
    string Location { get; }

    /// <summary>
    /// Copies the entry <paramref name="kind"/>/<paramref name="key"/> into the empty folder <paramref name="destination"/>:
    /// its manifest, and the files the manifest lists (a file the store lacks is left out, for the check to find). Not
    /// found when the store has no manifest for it.
    /// </summary>
    CacheFetch Fetch(string kind, string key, string destination, CancellationToken cancellationToken = default);

    /// <summary>
    /// Publishes the complete entry folder <paramref name="source"/> (manifest included). When the store already has the
    /// entry, the first writer's stays and this is <see cref="CachePublish.Published"/> false, not a failure: racing
    /// writers both succeed and one entry remains. <paramref name="replacing"/> is the <see cref="CacheFetch.Version"/> of
    /// a copy that failed its check: that one is replaced, unless another writer replaced it first.
    /// </summary>
    CachePublish Publish(string kind, string key, string source, string? replacing, CancellationToken cancellationToken = default);

    /// <summary>Every complete entry of the store (those with a manifest).</summary>
    IReadOnlyList<CacheStoreEntry> List(CancellationToken cancellationToken = default);

    /// <summary>Removes the entry <paramref name="kind"/>/<paramref name="key"/>, manifest first, so no reader meets half of it as whole.</summary>
    void Delete(string kind, string key, CancellationToken cancellationToken = default);
}

/// <summary>What a fetch found.</summary>
/// <param name="Found">Whether the store had a manifest for the entry.</param>
/// <param name="Bytes">Bytes copied.</param>
/// <param name="Version">
/// What names this copy in the store (a blob's ETag), for <see cref="ICacheStore.Publish"/>'s <c>replacing</c> when the
/// copy fails its check; null where the store needs none (a folder is checked again when a publish meets it).
/// </param>
public sealed record CacheFetch(bool Found, long Bytes, string? Version)
{
    /// <summary>The store has no such entry.</summary>
    public static CacheFetch NotFound { get; } = new(false, 0, null);
}

/// <summary>What a publish did.</summary>
/// <param name="Published">True when this entry is now the store's; false when the store kept one it already had.</param>
/// <param name="Bytes">Bytes sent to the store.</param>
public sealed record CachePublish(bool Published, long Bytes);

/// <summary>An entry as a store lists it.</summary>
/// <param name="Kind">Its kind.</param>
/// <param name="Key">Its key.</param>
/// <param name="Bytes">Its size in the store.</param>
/// <param name="LastUsedUtc">When it was last published (a local cache: last used).</param>
public sealed record CacheStoreEntry(string Kind, string Key, long Bytes, DateTimeOffset LastUsedUtc);

/// <summary>A store cannot be reached or refused a request; the message names the store, never a credential.</summary>
public sealed class CacheStoreUnavailableException : Exception
{
    /// <summary>A store failure with <paramref name="message"/>.</summary>
    public CacheStoreUnavailableException(string message)
        : base(message)
    {
    }

    /// <summary>A store failure with <paramref name="message"/>, caused by <paramref name="inner"/>.</summary>
    public CacheStoreUnavailableException(string message, Exception inner)
        : base(message, inner)
    {
    }

    /// <summary>A store failure with no message.</summary>
    public CacheStoreUnavailableException()
    {
    }
}

/// <summary>How entries are named in every store: <c>kind-key</c>, the same folder name as in the local cache.</summary>
public static partial class CacheEntryName
{
    /// <summary>The name of the entry <paramref name="kind"/>/<paramref name="key"/>, after checking both can name a folder.</summary>
    public static string Of(string kind, string key)
    {
        if (!KindPattern().IsMatch(kind))
        {
            throw new ArgumentException($"A cache kind is lowercase letters, digits and '-', not '{kind}'.", nameof(kind));
        }

        if (!KeyPattern().IsMatch(key))
        {
            throw new ArgumentException($"A cache key is 1 to 128 lowercase letters and digits, not '{key}'.", nameof(key));
        }

        return $"{kind}-{key}";
    }

    /// <summary>The kind and key an entry's name holds; false for a name that is not an entry's (a temporary folder, the locks).</summary>
    public static bool TryParse(string name, out string kind, out string key)
    {
        var dash = name.LastIndexOf('-');
        (kind, key) = dash > 0 ? (name[..dash], name[(dash + 1)..]) : (string.Empty, string.Empty);
        return dash > 0 && KindPattern().IsMatch(kind) && KeyPattern().IsMatch(key);
    }

    [GeneratedRegex("^[a-z0-9]+(-[a-z0-9]+)*$", RegexOptions.CultureInvariant)]
    private static partial Regex KindPattern();

    [GeneratedRegex("^[0-9a-z]{1,128}$", RegexOptions.CultureInvariant)]
    private static partial Regex KeyPattern();
}
