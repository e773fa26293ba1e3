using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;

namespace ModelCompression.Common;

/// <summary>
/// Cache entries in an Azure Blob Storage container, under a prefix. An entry <c>kind-key</c> is the blob
/// <c>prefix/kind-key/manifest.json</c> and its files under <c>prefix/kind-key/UPLOAD/</c>, where UPLOAD names one
/// writer's upload (the manifest blob's metadata says which). A writer uploads its files under its own upload name,
/// then creates the manifest only if none exists (If-None-Match: *), so racing writers never mix their files: the first
/// manifest wins, and the loser removes its upload and succeeds. A copy that failed its check is replaced only while
/// its manifest is the one seen (If-Match on its ETag), and its old upload is then removed.
/// </summary>
public sealed class BlobCacheStore : ICacheStore
{
    private const string UploadMetadata = "upload";

    private readonly BlobContainerClient _container;
    private readonly string _prefix;
    private bool _containerChecked;

    /// <summary>A store in <paramref name="container"/> under <paramref name="prefix"/> ("" for the container's root).</summary>
    /// <param name="container">The container, with its credential.</param>
    /// <param name="prefix">The folder inside the container, without slashes at either end.</param>
    /// <param name="location">What messages call the store (a URL without any credential).</param>
    public BlobCacheStore(BlobContainerClient container, string prefix, string location)
    {
        ArgumentNullException.ThrowIfNull(container);
        ArgumentNullException.ThrowIfNull(prefix);
        _container = container;
        _prefix = prefix.Trim('/').Length == 0 ? string.Empty : prefix.Trim('/') + "/";
        Location = location;
    }

    /// <inheritdoc />
    public string Location { get; }

    /// <inheritdoc />
    public CacheFetch Fetch(string kind, string key, string destination, CancellationToken cancellationToken = default) => Guard(cancellationToken, () =>
    {
        var entry = EntryPrefix(kind, key);
        BlobDownloadResult manifest;
        try
        {
            manifest = _container.GetBlobClient(entry + CacheManifest.FileName).DownloadContent(cancellationToken).Value;
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return CacheFetch.NotFound;
        }

        var manifestBytes = manifest.Content.ToArray();
        File.WriteAllBytes(Path.Combine(destination, CacheManifest.FileName), manifestBytes);
        long bytes = manifestBytes.Length;
        var version = manifest.Details.ETag.ToString();
        if (CacheManifest.Parse(manifestBytes, out _) is not { } parsed || !manifest.Details.Metadata.TryGetValue(UploadMetadata, out var upload))
        {
            // The check will say what is wrong with it; the version lets a rebuild replace it.
            return new CacheFetch(true, bytes, version);
        }

        foreach (var file in parsed.Files)
        {
            var target = Path.Combine(destination, file.Path);
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            try
            {
                _container.GetBlobClient($"{entry}{upload}/{file.Path}").DownloadTo(target, cancellationToken);
                bytes += new FileInfo(target).Length;
            }
            catch (RequestFailedException e) when (e.Status == 404)
            {
                // Left out: the check names the missing file.
                File.Delete(target);
            }
        }

        return new CacheFetch(true, bytes, version);
    });

    /// <inheritdoc />
    public CachePublish Publish(string kind, string key, string source, string? replacing, CancellationToken cancellationToken = default) => Guard(cancellationToken, () =>
    {
        EnsureContainer(cancellationToken);
        var entry = EntryPrefix(kind, key);
        var manifestBytes = File.ReadAllBytes(Path.Combine(source, CacheManifest.FileName));
        var manifest = CacheManifest.Parse(manifestBytes, out var problem) ?? throw new InvalidOperationException($"{source} has no valid manifest: {problem}.");
        var upload = $"{DateTime.UtcNow:yyyyMMddHHmmss}-{Guid.NewGuid():N}";
        long bytes = 0;
        foreach (var file in manifest.Files)
        {
            var path = Path.Combine(source, file.Path);
            _container.GetBlobClient($"{entry}{upload}/{file.Path}").Upload(path, overwrite: true, cancellationToken);
            bytes += file.Length;
        }

        var conditions = replacing is null ? new BlobRequestConditions { IfNoneMatch = ETag.All } : new BlobRequestConditions { IfMatch = new ETag(replacing) };
        var replaced = replacing is null ? null : UploadOf(entry, cancellationToken);
        try
        {
            _container.GetBlobClient(entry + CacheManifest.FileName).Upload(
                new BinaryData(manifestBytes),
                new BlobUploadOptions { Conditions = conditions, Metadata = new Dictionary<string, string> { [UploadMetadata] = upload } },
                cancellationToken);
        }
        catch (RequestFailedException e) when (e.Status is 409 or 412)
        {
            // Another writer's manifest came first (or replaced the damaged one first): theirs stays, ours goes.
            DeleteUpload(entry, upload, cancellationToken);
            return new CachePublish(false, bytes);
        }

        if (replaced is not null && replaced != upload)
        {
            DeleteUpload(entry, replaced, cancellationToken);
        }

        return new CachePublish(true, bytes + manifestBytes.Length);
    });

    /// <inheritdoc />
    public IReadOnlyList<CacheStoreEntry> List(CancellationToken cancellationToken = default) => Guard(cancellationToken, () =>
    {
        var sizes = new Dictionary<string, long>(StringComparer.Ordinal);
        var manifests = new Dictionary<string, DateTimeOffset>(StringComparer.Ordinal);
        try
        {
            foreach (var blob in _container.GetBlobs(BlobTraits.None, BlobStates.None, _prefix, cancellationToken))
            {
                var relative = blob.Name[_prefix.Length..];
                var slash = relative.IndexOf('/', StringComparison.Ordinal);
                if (slash <= 0)
                {
                    continue;
                }

                var name = relative[..slash];
                sizes[name] = sizes.GetValueOrDefault(name) + (blob.Properties.ContentLength ?? 0);
                if (relative[(slash + 1)..] == CacheManifest.FileName)
                {
                    manifests[name] = blob.Properties.LastModified ?? DateTimeOffset.MinValue;
                }
            }
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return [];
        }

        var entries = new List<CacheStoreEntry>();
        foreach (var (name, published) in manifests)
        {
            if (CacheEntryName.TryParse(name, out var kind, out var key))
            {
                entries.Add(new CacheStoreEntry(kind, key, sizes[name], published));
            }
        }

        return entries;
    });

    /// <inheritdoc />
    public void Delete(string kind, string key, CancellationToken cancellationToken = default) => Guard(cancellationToken, () =>
    {
        var entry = EntryPrefix(kind, key);
        // The manifest first: from then on readers see no entry, not a damaged one.
        _container.GetBlobClient(entry + CacheManifest.FileName).DeleteIfExists(cancellationToken: cancellationToken);
        foreach (var blob in _container.GetBlobs(BlobTraits.None, BlobStates.None, entry, cancellationToken))
        {
            _container.GetBlobClient(blob.Name).DeleteIfExists(cancellationToken: cancellationToken);
        }

        return true;
    });

    private string EntryPrefix(string kind, string key) => $"{_prefix}{CacheEntryName.Of(kind, key)}/";

    /// <summary>The upload the entry's manifest names now, or null.</summary>
    private string? UploadOf(string entry, CancellationToken cancellationToken)
    {
        try
        {
            var properties = _container.GetBlobClient(entry + CacheManifest.FileName).GetProperties(cancellationToken: cancellationToken).Value;
            return properties.Metadata.TryGetValue(UploadMetadata, out var upload) ? upload : null;
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return null;
        }
    }

    private void DeleteUpload(string entry, string upload, CancellationToken cancellationToken)
    {
        foreach (var blob in _container.GetBlobs(BlobTraits.None, BlobStates.None, $"{entry}{upload}/", cancellationToken))
        {
            _container.GetBlobClient(blob.Name).DeleteIfExists(cancellationToken: cancellationToken);
        }
    }

    /// <summary>A writer's first upload creates the container when its credential may (a container-scoped SAS may not: it must exist).</summary>
    private void EnsureContainer(CancellationToken cancellationToken)
    {
        if (_containerChecked)
        {
            return;
        }

        try
        {
            _container.CreateIfNotExists(cancellationToken: cancellationToken);
        }
        catch (RequestFailedException e) when (e.Status == 403)
        {
            // Not allowed to create containers: the uploads say whether it exists.
        }

        _containerChecked = true;
    }

    /// <summary>
    /// Runs a store operation; a failure of the service or the network becomes <see cref="CacheStoreUnavailableException"/>
    /// with the status and error code only: Azure's own messages carry request details that are not ours to print.
    /// </summary>
    private T Guard<T>(CancellationToken cancellationToken, Func<T> operation)
    {
        try
        {
            return operation();
        }
        catch (RequestFailedException e)
        {
            throw new CacheStoreUnavailableException(
                e.Status == 0
                    ? $"The blob container {Location} cannot be reached ({e.InnerException?.GetType().Name ?? "no response"}: {e.InnerException?.Message ?? e.ErrorCode})"
                    : $"The blob container {Location} refused a request: HTTP {e.Status}{(e.ErrorCode is { Length: > 0 } code ? $" {code}" : string.Empty)}",
                e);
        }
        catch (AggregateException e) when (e.InnerExceptions.All(i => i is RequestFailedException or HttpRequestException or IOException))
        {
            throw new CacheStoreUnavailableException($"The blob container {Location} cannot be reached ({e.InnerExceptions[^1].Message})", e);
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            // Azure's client says a request that ran past its network timeout was cancelled; nobody cancelled the run.
            throw new CacheStoreUnavailableException($"The blob container {Location} did not answer in time ({e.Message})", e);
        }
        catch (Exception e) when (e is HttpRequestException or IOException and not FileNotFoundException and not DirectoryNotFoundException)
        {
            throw new CacheStoreUnavailableException($"The blob container {Location} cannot be reached ({e.Message})", e);
        }
    }
}
