using System.Diagnostics;
using System.IO.Compression;
using ModelCompression.Diagnostics;
using NuGet.Common;
using NuGet.Configuration;
using NuGet.Packaging;
using NuGet.Packaging.Core;
using NuGet.Packaging.Signing;
using NuGet.Protocol;
using NuGet.Protocol.Core.Types;
using NuGet.Versioning;

namespace ModelCompression.Torch.Native.Packages;

/// <summary>A package wanted in the NuGet global packages folder.</summary>
/// <param name="Id">The package id, e.g. <c>libtorch-cpu-linux-x64</c>.</param>
/// <param name="Versions">The acceptable versions; the lowest that fits wins, as in <c>dotnet restore</c>.</param>
/// <param name="Remedy">What the user can do when the package cannot be had (appended to MC4005), e.g. the command that fetches it again.</param>
public sealed record NativePackageRequest(string Id, VersionRange Versions, string? Remedy = null);

/// <summary>How far a package download has got.</summary>
/// <param name="PackageId">The package.</param>
/// <param name="Version">Its version.</param>
/// <param name="Received">Bytes received so far.</param>
/// <param name="Total">The package's size in bytes, when the source says it.</param>
/// <param name="Elapsed">Time since the download started.</param>
/// <param name="Source">The package source it comes from.</param>
public readonly record struct DownloadProgress(string PackageId, NuGetVersion Version, long Received, long? Total, TimeSpan Elapsed, string Source);

/// <summary>A package found in, or fetched into, the global packages folder.</summary>
/// <param name="Id">The package id as the request gave it.</param>
/// <param name="Version">The version chosen.</param>
/// <param name="Folder">The package's folder (<c>{packages}/{id}/{version}</c>, lower case, as restore lays it out).</param>
/// <param name="Fetched">True when it was downloaded now; false when it was there already.</param>
/// <param name="Source">The source it was downloaded from (null when it was there already).</param>
/// <param name="PackageBytes">Size of the .nupkg (the download).</param>
/// <param name="Elapsed">Time the fetch took (zero when it was there already).</param>
public sealed record NativePackageResult(string Id, NuGetVersion Version, string Folder, bool Fetched, string? Source, long PackageBytes, TimeSpan Elapsed)
{
    /// <summary>Bytes of everything in <see cref="Folder"/> (the .nupkg included, as <c>du</c> counts it).</summary>
    public long FolderBytes() =>
        Directory.EnumerateFiles(Folder, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
}

/// <summary>
/// Gets a package into the NuGet global packages folder the way <c>dotnet restore</c> does, through NuGet's own
/// client: the user's sources and credentials (the nuget.config hierarchy), the lowest version in the range that
/// a source has, NuGet's extraction (signature checks, the <c>.nupkg.metadata</c> marker written last, a temp
/// folder renamed into place), so that restore and this fetcher share the folder. Generic: a package id and a
/// version range in, a folder out. Two processes fetching at once wait for each other and download once.
/// </summary>
public sealed class NativePackageFetcher
{
    private readonly ISettings _settings;
    private readonly IProgress<DownloadProgress>? _progress;
    private readonly VersionFolderPathResolver _layout;
    private long _lastReported;
    private string _source = string.Empty;

    /// <summary>Creates a fetcher over <paramref name="settings"/> (sources, credentials, signature policy) into <paramref name="globalPackagesFolder"/>.</summary>
    /// <param name="settings">NuGet settings, usually <see cref="Settings.LoadDefaultSettings(string)"/> of the working folder.</param>
    /// <param name="globalPackagesFolder">The global packages folder (<see cref="SettingsUtility.GetGlobalPackagesFolder(ISettings)"/> honours NUGET_PACKAGES).</param>
    /// <param name="progress">Told about the download as it goes; called on the downloading thread.</param>
    public NativePackageFetcher(ISettings settings, string globalPackagesFolder, IProgress<DownloadProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentException.ThrowIfNullOrWhiteSpace(globalPackagesFolder);
        _settings = settings;
        _progress = progress;
        GlobalPackagesFolder = Path.GetFullPath(globalPackagesFolder);
        _layout = new VersionFolderPathResolver(GlobalPackagesFolder);
    }

    /// <summary>The global packages folder this fetcher reads and fills.</summary>
    public string GlobalPackagesFolder { get; }

    /// <summary>The user's NuGet settings as restore in <paramref name="workingDirectory"/> would read them.</summary>
    /// <exception cref="CompressionException">MC4005: a nuget.config cannot be read.</exception>
    public static ISettings LoadSettings(string workingDirectory)
    {
        try
        {
            return Settings.LoadDefaultSettings(workingDirectory);
        }
        catch (NuGetConfigurationException e)
        {
            throw CompressionException.Error(DiagnosticCodes.NativePackageUnavailable, $"The NuGet configuration cannot be read: {e.Message}");
        }
    }

    /// <summary>The newest-fitting complete copy already in the global packages folder, or null. Never touches the network.</summary>
    public NativePackageResult? FindInstalled(NativePackageRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var idFolder = Path.Combine(GlobalPackagesFolder, request.Id.ToLowerInvariant());
        if (!Directory.Exists(idFolder))
        {
            return null;
        }

        // Only folders with .nupkg.metadata count: restore writes it last, so a folder without it is an
        // interrupted extraction, whatever files it holds.
        var complete = Directory.EnumerateDirectories(idFolder)
            .Select(d => NuGetVersion.TryParse(Path.GetFileName(d), out var v) ? v : null)
            .OfType<NuGetVersion>()
            .Where(v => File.Exists(_layout.GetNupkgMetadataPath(request.Id, v)))
            .ToList();
        var best = request.Versions.FindBestMatch(complete);
        if (best is null)
        {
            return null;
        }

        var nupkg = new FileInfo(_layout.GetPackageFilePath(request.Id, best));
        return new NativePackageResult(request.Id, best, _layout.GetInstallPath(request.Id, best), false, null, nupkg.Exists ? nupkg.Length : 0, TimeSpan.Zero);
    }

    /// <summary>Returns the installed package, fetching it from the configured sources first when it is missing.</summary>
    /// <exception cref="CompressionException">
    /// MC4005: no source has a fitting version (each source tried is named with what it said); MC4006: the
    /// downloaded package is corrupt or incomplete (nothing of it is left in the packages folder).
    /// </exception>
    public async Task<NativePackageResult> EnsureAsync(NativePackageRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (FindInstalled(request) is { } installed)
        {
            return installed;
        }

        Directory.CreateDirectory(GlobalPackagesFolder);
        // NuGet's cross-process lock (a lock file in its scratch folder, keyed by this path): a second process
        // waits here, then finds the package the first one installed instead of downloading it again.
        var lockKey = Path.Combine(GlobalPackagesFolder, request.Id.ToLowerInvariant() + ".modelcompression-fetch");
        return await ConcurrencyUtilities.ExecuteWithFileLockedAsync(
            lockKey,
            async token => FindInstalled(request) ?? await FetchAsync(request, token).ConfigureAwait(false),
            cancellationToken).ConfigureAwait(false);
    }

    private async Task<NativePackageResult> FetchAsync(NativePackageRequest request, CancellationToken token)
    {
        var stopwatch = Stopwatch.StartNew();
        var logger = new CollectingLogger();
        var sources = new PackageSourceProvider(_settings).LoadPackageSources().Where(s => s.IsEnabled).ToList();
        var tried = new List<string>();
        if (sources.Count == 0)
        {
            tried.Add("no package sources are configured (or all are disabled) in the nuget.config files");
        }

        // Package source mapping, as restore applies it: only the sources the id is mapped to may serve it.
        var mapping = PackageSourceMapping.GetPackageSourceMapping(_settings);
        if (mapping.IsEnabled)
        {
            var allowed = mapping.GetConfiguredPackageSources(request.Id);
            var unmapped = sources.Where(s => !allowed.Contains(s.Name, StringComparer.OrdinalIgnoreCase)).ToList();
            tried.AddRange(unmapped.Select(s => $"{s.Source}: skipped, packageSourceMapping does not map {request.Id} to '{s.Name}'"));
            sources = sources.Except(unmapped).ToList();
        }

        using var cache = new SourceCacheContext { NoCache = true, DirectDownload = true };
        var offers = new List<(SourceRepository Repository, FindPackageByIdResource Resource, NuGetVersion Version)>();
        foreach (var source in sources)
        {
            logger.Clear();
            try
            {
                var repository = Repository.Factory.GetCoreV3(source);
                var resource = await repository.GetResourceAsync<FindPackageByIdResource>(token).ConfigureAwait(false);
                if (resource is null)
                {
                    tried.Add($"{source.Source}: not a package source NuGet can read{logger.Problems()}");
                    continue;
                }

                var versions = (await resource.GetAllVersionsAsync(request.Id, cache, logger, token).ConfigureAwait(false)).ToList();
                var best = request.Versions.FindBestMatch(versions);
                if (best is null)
                {
                    tried.Add(versions.Count == 0
                        ? $"{source.Source}: has no package {request.Id}{logger.Problems()}"
                        : $"{source.Source}: has {request.Id} {string.Join(", ", versions.OrderDescending().Take(5))}{(versions.Count > 5 ? ", ..." : string.Empty)} but none in {Describe(request.Versions)}");
                    continue;
                }

                offers.Add((repository, resource, best));
            }
            catch (Exception e) when (e is InvalidDataException or PackagingException)
            {
                // A folder feed opens its packages to list them: a damaged .nupkg there fails the listing.
                throw Corrupt(new PackageIdentity(request.Id, null), source.Source, Flatten(e));
            }
            catch (Exception e) when (e is FatalProtocolException or HttpRequestException or IOException or UnauthorizedAccessException or InvalidOperationException or ArgumentException)
            {
                tried.Add($"{source.Source}: {Flatten(e)}{logger.Problems()}");
            }
        }

        var chosen = request.Versions.FindBestMatch(offers.Select(o => o.Version));
        if (chosen is null)
        {
            throw Unavailable(request, tried);
        }

        // Sources in nuget.config order; the first that has the chosen version serves it.
        var offer = offers.First(o => o.Version == chosen);
        var identity = new PackageIdentity(request.Id, chosen);
        var temp = Path.Combine(Path.GetTempPath(), $"modelcompression-fetch-{request.Id.ToLowerInvariant()}.{chosen.ToNormalizedString()}.{Guid.NewGuid():N}.nupkg");
        try
        {
            long bytes;
            try
            {
                bytes = await DownloadAsync(offer.Repository, offer.Resource, identity, temp, cache, logger, token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is FatalProtocolException or HttpRequestException or IOException or UnauthorizedAccessException)
            {
                tried.Add($"{offer.Repository.PackageSource.Source}: listed {request.Id} {chosen}, but the download failed: {Flatten(e)}{logger.Problems()}");
                throw Unavailable(request, tried);
            }

            CheckArchive(identity, temp, offer.Repository.PackageSource.Source);
            await InstallAsync(identity, temp, offer.Repository.PackageSource.Source, logger, token).ConfigureAwait(false);
            return new NativePackageResult(request.Id, chosen, _layout.GetInstallPath(request.Id, chosen), true, offer.Repository.PackageSource.Source, bytes, stopwatch.Elapsed);
        }
        finally
        {
            try
            {
                File.Delete(temp);
            }
            catch (IOException)
            {
                // A temp file; the OS cleans its temp folder.
            }
        }
    }

    private async Task<long> DownloadAsync(SourceRepository repository, FindPackageByIdResource resource, PackageIdentity identity, string path, SourceCacheContext cache, CollectingLogger logger, CancellationToken token)
    {
        await using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true);
        var stopwatch = Stopwatch.StartNew();
        _source = repository.PackageSource.Source;
        _lastReported = 0;
        Report(identity, 0, null, stopwatch, force: true);
        if (repository.PackageSource.IsHttp && await PackageUrlAsync(repository, identity, token).ConfigureAwait(false) is { } url)
        {
            // NuGet's HTTP pipeline (credentials, proxy, retries) with the response in hand: its Content-Length
            // gives the percentage, which FindPackageByIdResource's copy, buffered to its cache first, cannot.
            var http = await repository.GetResourceAsync<HttpSourceResource>(token).ConfigureAwait(false)
                ?? throw new FatalProtocolException($"{repository.PackageSource.Source}: NuGet has no HTTP client for this source.");
            return await http.HttpSource.ProcessResponseAsync(
                new HttpSourceRequest(url, logger),
                async response =>
                {
                    if (!response.IsSuccessStatusCode)
                    {
                        throw new FatalProtocolException($"GET {url}: {(int)response.StatusCode} {response.ReasonPhrase}");
                    }

                    var total = response.Content.Headers.ContentLength;
                    await using var body = await response.Content.ReadAsStreamAsync(token).ConfigureAwait(false);
                    return await CopyAsync(body, file, identity, total, stopwatch, token).ConfigureAwait(false);
                },
                logger,
                token).ConfigureAwait(false);
        }

        // Folder feeds (and v2 feeds): NuGet's own copy into a counting stream.
        long? size = repository.PackageSource.IsLocal ? LocalPackageSize(repository.PackageSource.Source, identity, logger, token) : null;
        await using var counting = new CountingStream(file, received => Report(identity, received, size, stopwatch));
        if (!await resource.CopyNupkgToStreamAsync(identity.Id, identity.Version, counting, cache, logger, token).ConfigureAwait(false))
        {
            throw new FatalProtocolException($"{identity.Id} {identity.Version} disappeared from the source while it was being fetched.");
        }

        Report(identity, counting.Position, counting.Position, stopwatch, force: true);
        return counting.Position;
    }

    private static async Task<string?> PackageUrlAsync(SourceRepository repository, PackageIdentity identity, CancellationToken token)
    {
        var index = await repository.GetResourceAsync<ServiceIndexResourceV3>(token).ConfigureAwait(false);
        var baseAddress = index?.GetServiceEntryUri(ServiceTypes.PackageBaseAddress);
        if (baseAddress is null)
        {
            return null;
        }

        // The flat container layout of the NuGet v3 protocol: lower-case id and normalized version.
        var id = identity.Id.ToLowerInvariant();
        var version = identity.Version.ToNormalizedString().ToLowerInvariant();
        return $"{baseAddress.AbsoluteUri.TrimEnd('/')}/{id}/{version}/{id}.{version}.nupkg";
    }

    private static long? LocalPackageSize(string source, PackageIdentity identity, ILogger logger, CancellationToken token)
    {
        var info = LocalFolderUtility.GetPackageV3(source, identity, logger) ?? LocalFolderUtility.GetPackageV2(source, identity, logger, token);
        return info is null ? null : new FileInfo(info.Path).Length;
    }

    private async Task<long> CopyAsync(Stream from, Stream to, PackageIdentity identity, long? total, Stopwatch stopwatch, CancellationToken token)
    {
        var buffer = new byte[1 << 16];
        long received = 0;
        int read;
        while ((read = await from.ReadAsync(buffer, token).ConfigureAwait(false)) > 0)
        {
            await to.WriteAsync(buffer.AsMemory(0, read), token).ConfigureAwait(false);
            received += read;
            Report(identity, received, total, stopwatch);
        }

        if (total is { } expected && received != expected)
        {
            throw new IOException($"the connection closed after {received} of {expected} bytes");
        }

        Report(identity, received, total ?? received, stopwatch, force: true);
        return received;
    }

    private void Report(PackageIdentity identity, long received, long? total, Stopwatch stopwatch, bool force = false)
    {
        // Reports are cheap for the receiver to drop, but not free: one per 256 KB is plenty for a bar.
        if (_progress is null || (!force && received - _lastReported < 256 * 1024))
        {
            return;
        }

        _lastReported = received;
        _progress.Report(new DownloadProgress(identity.Id, identity.Version, received, total, stopwatch.Elapsed, _source));
    }

    private static void CheckArchive(PackageIdentity identity, string path, string source)
    {
        try
        {
            using (var reader = new PackageArchiveReader(path))
            {
                var actual = reader.GetIdentity();
                if (!string.Equals(actual.Id, identity.Id, StringComparison.OrdinalIgnoreCase) || actual.Version != identity.Version)
                {
                    throw Corrupt(identity, source, $"it declares itself {actual.Id} {actual.Version}");
                }
            }

            // Zip readers do not check the CRC-32 of what they inflate, and incompressible data (most of a native
            // library) is stored as it is: flipped bits would be installed as they are. Check every entry.
            using var archive = ZipFile.OpenRead(path);
            var buffer = new byte[1 << 16];
            foreach (var entry in archive.Entries)
            {
                var crc = new System.IO.Hashing.Crc32();
                using var stream = entry.Open();
                int read;
                while ((read = stream.Read(buffer)) > 0)
                {
                    crc.Append(buffer.AsSpan(0, read));
                }

                if (crc.GetCurrentHashAsUInt32() != entry.Crc32)
                {
                    throw Corrupt(identity, source, $"the CRC-32 of {entry.FullName} does not match the archive's");
                }
            }
        }
        catch (Exception e) when (e is InvalidDataException or PackagingException or IOException or System.Xml.XmlException)
        {
            throw Corrupt(identity, source, Flatten(e));
        }
    }

    private async Task InstallAsync(PackageIdentity identity, string nupkg, string source, CollectingLogger logger, CancellationToken token)
    {
        var context = new PackageExtractionContext(PackageSaveMode.Defaultv3, XmlDocFileSaveMode.None, ClientPolicyContext.GetClientPolicy(_settings, logger), logger);
        var installPath = _layout.GetInstallPath(identity.Id, identity.Version);
        try
        {
            // Restore's own extraction: files go to a temp folder that is renamed into place, .nupkg.metadata last.
            await PackageExtractor.InstallFromSourceAsync(
                source,
                identity,
                async destination =>
                {
                    await using var file = File.OpenRead(nupkg);
                    await file.CopyToAsync(destination, token).ConfigureAwait(false);
                },
                _layout,
                context,
                token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is InvalidDataException or PackagingException or IOException or SignatureException or UnauthorizedAccessException)
        {
            RemoveIncomplete(identity, installPath);
            throw Corrupt(identity, source, Flatten(e) + logger.Problems());
        }

        if (!File.Exists(_layout.GetNupkgMetadataPath(identity.Id, identity.Version)))
        {
            RemoveIncomplete(identity, installPath);
            throw Corrupt(identity, source, $"NuGet's extraction did not complete{logger.Problems()}");
        }
    }

    private void RemoveIncomplete(PackageIdentity identity, string installPath)
    {
        // Under our lock, and without .nupkg.metadata nothing counts the folder as installed; removing it keeps a
        // later reader of the bare files (an older tool, a person) from taking half a package for a whole one.
        if (Directory.Exists(installPath) && !File.Exists(_layout.GetNupkgMetadataPath(identity.Id, identity.Version)))
        {
            Directory.Delete(installPath, recursive: true);
        }
    }

    private CompressionException Unavailable(NativePackageRequest request, List<string> tried)
    {
        var message = $"{request.Id} {Describe(request.Versions)} is not in the NuGet packages folder ({GlobalPackagesFolder}) and could not be fetched. "
            + $"Sources tried: {string.Join("; ", tried.Select((t, i) => $"[{i + 1}] {t}"))}."
            + (request.Remedy is null ? string.Empty : $" To fix: {request.Remedy}");
        return CompressionException.Error(DiagnosticCodes.NativePackageUnavailable, message);
    }

    private static CompressionException Corrupt(PackageIdentity identity, string source, string why) =>
        CompressionException.Error(
            DiagnosticCodes.NativePackageCorrupt,
            $"The package {identity.Id}{(identity.HasVersion ? " " + identity.Version : string.Empty)} fetched from {source} is corrupt or incomplete ({why}); nothing of it was installed. "
            + "Fetch it again (run the command again); if it fails the same way, the copy on that source is damaged: replace it there or use another source.");

    // "2.10.0" for an exact version, "[2.0.0, 3.0.0)" for a range.
    private static string Describe(VersionRange range) =>
        range is { HasLowerAndUpperBounds: true, IsMinInclusive: true, IsMaxInclusive: true } && range.MinVersion == range.MaxVersion
            ? range.MinVersion!.ToNormalizedString()
            : range.ToNormalizedString();

    private static string Flatten(Exception e)
    {
        var parts = new List<string>();
        for (var current = e; current is not null; current = current.InnerException)
        {
            if (parts.Count == 0 || !parts[^1].Contains(current.Message, StringComparison.Ordinal))
            {
                parts.Add(current.Message.TrimEnd('.'));
            }
        }

        return string.Join(": ", parts);
    }

    /// <summary>Keeps NuGet's warnings and errors so a failure can say what the source said.</summary>
    private sealed class CollectingLogger : LoggerBase
    {
        private readonly List<string> _messages = [];

        public void Clear()
        {
            lock (_messages)
            {
                _messages.Clear();
            }
        }

        public string Problems()
        {
            lock (_messages)
            {
                return _messages.Count == 0 ? string.Empty : $" ({string.Join(" ", _messages.Distinct(StringComparer.Ordinal))})";
            }
        }

        public override void Log(ILogMessage message)
        {
            if (message.Level >= LogLevel.Warning)
            {
                lock (_messages)
                {
                    _messages.Add(message.Message);
                }
            }
        }

        public override Task LogAsync(ILogMessage message)
        {
            Log(message);
            return Task.CompletedTask;
        }
    }

    /// <summary>A write-only pass-through that counts what NuGet writes into it.</summary>
    private sealed class CountingStream(Stream inner, Action<long> written) : Stream
    {
        private long _position;

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => _position;

        public override long Position
        {
            get => _position;
            set => throw new NotSupportedException();
        }

        public override void Flush() => inner.Flush();

        public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count)
        {
            inner.Write(buffer, offset, count);
            Advance(count);
        }

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            await inner.WriteAsync(buffer, cancellationToken).ConfigureAwait(false);
            Advance(buffer.Length);
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        private void Advance(int count)
        {
            _position += count;
            written(_position);
        }
    }
}
