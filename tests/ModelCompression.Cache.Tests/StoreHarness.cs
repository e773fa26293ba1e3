using System.Security.Cryptography;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using ModelCompression.Common;

namespace ModelCompression.Cache.Tests;

/// <summary>A store the tests use: where it is, and the variable its credential is in (set in this process and given to child processes).</summary>
/// <param name="Location">What a recipe or command line names it by.</param>
/// <param name="Variable">The credential's variable; null for a folder.</param>
public sealed record StoreRef(string Location, string? Variable)
{
    public RemoteCacheOptions Options(RemoteCacheMode mode) => new(Location, mode, Variable);

    /// <summary>The command line's options naming this store in <paramref name="mode"/>.</summary>
    public string[] Arguments(string mode) =>
        Variable is null ? ["--remote-cache", Location, "--remote-cache-mode", mode] : ["--remote-cache", Location, "--remote-cache-mode", mode, "--remote-cache-credential-env", Variable];
}

/// <summary>
/// One kind of store under the same scenarios: a shared folder, or blob storage in Azurite. Besides making stores it does
/// what only someone with direct access can: list everything stored, damage a file in place, copy a store, take one down.
/// It also runs machine A once (a cold run that fills a store), which several scenarios start from.
/// </summary>
public abstract class StoreHarness : IDisposable
{
    private readonly Lazy<MachineA> _golden;

    protected StoreHarness() => _golden = new(RunMachineA);

    public TempDir Dir { get; } = new();

    /// <summary>Variables a child process needs (the credential of every store this harness made).</summary>
    public Dictionary<string, string> Environment { get; } = [];

    /// <summary>A store filled by one cold read-write run of <see cref="TinyRecipe"/> through the CLI.</summary>
    public MachineA Golden => _golden.Value;

    /// <summary>A new, empty store.</summary>
    public abstract StoreRef NewStore(string name);

    /// <summary>A new, empty store that <paramref name="takeDown"/> makes unreachable (a share unmounted, the service stopped).</summary>
    public abstract StoreRef NewStoreToTakeDown(string name, out Action takeDown);

    /// <summary>The store object a run would use.</summary>
    public ICacheStore Open(StoreRef store) =>
        new RemoteCacheSettings(store.Location, RemoteCacheMode.ReadWrite, store.Variable ?? RemoteCacheOptions.DefaultCredentialVariable).Open(new RecordingReporter(), out _)
        ?? throw new InvalidOperationException($"{store.Location} does not open.");

    /// <summary>Everything stored, one line per file or blob with its size and content hash (and a blob's ETag): equal snapshots mean nothing was written.</summary>
    public abstract IReadOnlyList<string> Snapshot(StoreRef store);

    /// <summary>Flips one byte in the middle of <paramref name="file"/> of the entry of <paramref name="kind"/> (the only one of its kind) where it is stored.</summary>
    public abstract void Damage(StoreRef store, string kind, string file);

    /// <summary>A new store holding a copy of everything in <paramref name="source"/>.</summary>
    public abstract StoreRef Copy(StoreRef source, string name);

    /// <summary>
    /// The uploads (writer folders) that blobs of <paramref name="kind"/>'s entries sit under, by entry; empty for a
    /// folder store, which has none.
    /// </summary>
    public virtual IReadOnlyDictionary<string, int> UploadsPerEntry(StoreRef store) => new Dictionary<string, int>();

    public virtual void Dispose()
    {
        foreach (var variable in Environment.Keys)
        {
            System.Environment.SetEnvironmentVariable(variable, null);
        }

        Dir.Dispose();
        GC.SuppressFinalize(this);
    }

    protected static string Hash(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes))[..16];

    private MachineA RunMachineA()
    {
        var store = NewStore("golden");
        var folder = Dir.Dir("machine-a");
        var recipe = TinyRecipe.Write(folder);
        var run = CompressCli.Run(folder, Environment, ["run", recipe, "--cache", Path.Join(folder, "cache"), "--output", Path.Join(folder, "out"), "--threads", "1", .. store.Arguments("read-write")]);
        return new MachineA(store, folder, run);
    }
}

/// <summary>Machine A's cold run: the store it filled, its folder (cache/ and out/ inside) and what the CLI printed.</summary>
public sealed record MachineA(StoreRef Store, string Folder, CompressCli.Result Run)
{
    public string Cache => Path.Join(Folder, "cache");

    public string Student => Path.Join(Folder, "out", TinyRecipe.ModelName);

    public string Report => Path.Join(Folder, "out", "tiny.student.report.json");
}

/// <summary>Shared folders: a folder of the test's temp folder stands for the network share every machine mounts.</summary>
public sealed class FolderHarness : StoreHarness
{
    public override StoreRef NewStore(string name) => new(Dir.Dir($"share-{name}"), null);

    public override StoreRef NewStoreToTakeDown(string name, out Action takeDown)
    {
        var store = NewStore(name);
        // Unmounted: the path is gone. (Renamed, not deleted, so a test can look at what was written before.)
        takeDown = () => Directory.Move(store.Location, store.Location + "-unmounted");
        return store;
    }

    public override IReadOnlyList<string> Snapshot(StoreRef store) =>
    [
        .. Directory.EnumerateFileSystemEntries(store.Location, "*", SearchOption.AllDirectories)
            .Order(StringComparer.Ordinal)
            .Select(path => File.Exists(path)
                ? $"{Path.GetRelativePath(store.Location, path)} {new FileInfo(path).Length} {Hash(File.ReadAllBytes(path))} {File.GetLastWriteTimeUtc(path).Ticks}"
                : $"{Path.GetRelativePath(store.Location, path)}/"),
    ];

    public override void Damage(StoreRef store, string kind, string file)
    {
        var path = Path.Join(Assert.Single(Directory.GetDirectories(store.Location, $"{kind}-*")), file);
        var bytes = File.ReadAllBytes(path);
        bytes[bytes.Length / 2] ^= 0x5A;
        File.WriteAllBytes(path, bytes);
    }

    public override StoreRef Copy(StoreRef source, string name)
    {
        var copy = NewStore(name);
        foreach (var file in Directory.EnumerateFiles(source.Location, "*", SearchOption.AllDirectories))
        {
            var target = Path.Join(copy.Location, Path.GetRelativePath(source.Location, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }

        return copy;
    }
}

/// <summary>Blob storage: Azurite, one instance for the class (and a second one for the test that stops it), one prefix per store.</summary>
public sealed class AzuriteHarness : StoreHarness
{
    private const string ContainerName = "fleet";

    private readonly Azurite _azurite = new();
    private readonly List<Azurite> _others = [];
    private readonly string _variable = $"MC_TEST_AZURITE_{Guid.NewGuid():N}";

    public AzuriteHarness()
    {
        Use(_variable, _azurite);
        _azurite.Container(ContainerName);
    }

    public Azurite Azurite => _azurite;

    public string ConnectionString => _azurite.ConnectionString;

    public BlobContainerClient Container => new(_azurite.ConnectionString, ContainerName);

    public override StoreRef NewStore(string name) => new($"azure://{ContainerName}/{name}-{Guid.NewGuid():N}", _variable);

    public override StoreRef NewStoreToTakeDown(string name, out Action takeDown)
    {
        var azurite = new Azurite();
        _others.Add(azurite);
        azurite.Container(ContainerName);
        var variable = $"MC_TEST_AZURITE_{Guid.NewGuid():N}";
        Use(variable, azurite);
        takeDown = azurite.Stop;
        return new StoreRef($"azure://{ContainerName}/{name}", variable);
    }

    public override IReadOnlyList<string> Snapshot(StoreRef store) =>
    [
        .. Container.GetBlobs(BlobTraits.Metadata, BlobStates.None, Prefix(store), default)
            .Select(b => $"{b.Name} {b.Properties.ContentLength} {b.Properties.ETag} {string.Join(",", b.Metadata.Select(m => $"{m.Key}={m.Value}"))}")
            .Order(StringComparer.Ordinal),
    ];

    public override void Damage(StoreRef store, string kind, string file)
    {
        var blob = Assert.Single(Container.GetBlobs(BlobTraits.None, BlobStates.None, Prefix(store) + kind + "-", default), b => b.Name.EndsWith("/" + file, StringComparison.Ordinal));
        var client = Container.GetBlobClient(blob.Name);
        var bytes = client.DownloadContent().Value.Content.ToArray();
        bytes[bytes.Length / 2] ^= 0x5A;
        // In place: same name, same length, same upload; only the content is wrong.
        client.Upload(new BinaryData(bytes), overwrite: true);
    }

    public override StoreRef Copy(StoreRef source, string name)
    {
        var copy = NewStore(name);
        foreach (var blob in Container.GetBlobs(BlobTraits.Metadata, BlobStates.None, Prefix(source), default))
        {
            var content = Container.GetBlobClient(blob.Name).DownloadContent().Value.Content;
            Container.GetBlobClient(Prefix(copy) + blob.Name[Prefix(source).Length..])
                .Upload(content, new BlobUploadOptions { Metadata = blob.Metadata });
        }

        return copy;
    }

    public override IReadOnlyDictionary<string, int> UploadsPerEntry(StoreRef store)
    {
        var prefix = Prefix(store);
        return Container.GetBlobs(BlobTraits.None, BlobStates.None, prefix, default)
            .Select(b => b.Name[prefix.Length..].Split('/'))
            .Where(parts => parts.Length > 2)
            .GroupBy(parts => parts[0])
            .ToDictionary(g => g.Key, g => g.Select(parts => parts[1]).Distinct().Count());
    }

    public override void Dispose()
    {
        _azurite.Dispose();
        foreach (var other in _others)
        {
            other.Dispose();
        }

        base.Dispose();
    }

    private static string Prefix(StoreRef store) => store.Location[$"azure://{ContainerName}/".Length..] + "/";

    private void Use(string variable, Azurite azurite)
    {
        System.Environment.SetEnvironmentVariable(variable, azurite.ConnectionString);
        Environment[variable] = azurite.ConnectionString;
    }
}
