using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace ModelCompression.Common;

/// <summary>
/// What a stage cache entry holds, written into it (<see cref="FileName"/>) as the last step of making it: the engine
/// that made it, its kind and key, and every other file of the entry with its size and SHA-256. An entry is trusted
/// only while it matches its manifest (<see cref="Problem"/>), wherever it was read from: a file flipped, cut short,
/// removed or added, a manifest that does not parse, names another entry or another engine, all make the entry a miss.
/// The manifest is the same file in the local folder, a shared folder and blob storage, so an entry moves between
/// them unchanged and is checked the same way everywhere.
/// </summary>
/// <param name="Format">The manifest's own format (<see cref="CurrentFormat"/>).</param>
/// <param name="Engine">The engine version that made the entry (<see cref="EngineInfo.Version"/>); another engine's entry is a miss.</param>
/// <param name="Kind">The entry's kind ("distill", "teacher-logits", …).</param>
/// <param name="Key">The entry's cache key.</param>
/// <param name="CreatedUtc">When the entry was made.</param>
/// <param name="Files">Every file of the entry but the manifest, sorted by path.</param>
public sealed record CacheManifest(int Format, string Engine, string Kind, string Key, DateTimeOffset CreatedUtc, IReadOnlyList<CacheFile> Files)
{
    /// <summary>The manifest's file name inside an entry.</summary>
    public const string FileName = "manifest.json";

    /// <summary>The format this engine writes and reads; bumped when a manifest's meaning changes.</summary>
    public const int CurrentFormat = 1;

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    // What a path inside an entry may be: '/'-separated names of letters, digits, '.', '_' and '-', none of them "."
    // or "..". A manifest from a shared store is input like any other: a path that climbs out of the entry is refused.
    private static readonly Regex SafePath = new(@"^(?!.*(^|/)\.{1,2}(/|$))[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", RegexOptions.CultureInvariant);

    /// <summary>The bytes of the entry's files, the manifest left out.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public long Bytes => Files.Sum(f => f.Length);

    /// <summary>
    /// Describes the files of the entry folder <paramref name="folder"/> (of <paramref name="kind"/> and
    /// <paramref name="key"/>) and writes the manifest into it.
    /// </summary>
    public static CacheManifest Write(string folder, string kind, string key)
    {
        var files = EntryFiles(folder).Select(relative => Describe(folder, relative)).ToList();
        var manifest = new CacheManifest(CurrentFormat, EngineInfo.Version, kind, key, DateTimeOffset.UtcNow, files);
        File.WriteAllBytes(Path.Combine(folder, FileName), manifest.ToJson());
        return manifest;
    }

    /// <summary>The manifest as the bytes of its file.</summary>
    public byte[] ToJson() => JsonSerializer.SerializeToUtf8Bytes(this, Json);

    /// <summary>
    /// The manifest in <paramref name="bytes"/>, or null with the reason in <paramref name="problem"/> when it does
    /// not parse or names a file outside its entry.
    /// </summary>
    public static CacheManifest? Parse(byte[] bytes, out string? problem)
    {
        CacheManifest? manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<CacheManifest>(bytes, Json);
        }
        catch (JsonException e)
        {
            problem = $"its {FileName} is not a manifest ({e.Message})";
            return null;
        }

        if (manifest is not { Engine: not null, Kind: not null, Key: not null, Files: not null } || manifest.Files.Any(f => f?.Path is null || f.Sha256 is null))
        {
            problem = $"its {FileName} lacks fields a manifest has";
            return null;
        }

        if (manifest.Files.FirstOrDefault(f => !SafePath.IsMatch(f.Path) || f.Path == FileName) is { } unsafePath)
        {
            problem = $"its {FileName} names '{unsafePath.Path}', which is not a file inside the entry";
            return null;
        }

        problem = null;
        return manifest;
    }

    /// <summary>Reads the manifest of the entry folder <paramref name="folder"/>; null with the reason when it is missing or unreadable.</summary>
    public static CacheManifest? Read(string folder, out string? problem)
    {
        var path = Path.Combine(folder, FileName);
        if (!File.Exists(path))
        {
            problem = $"it has no {FileName}";
            return null;
        }

        return Parse(File.ReadAllBytes(path), out problem);
    }

    /// <summary>
    /// Why the entry folder <paramref name="folder"/> cannot be trusted as the entry <paramref name="kind"/>/<paramref name="key"/>
    /// of this engine, in a few words ("model.onnx has 1234 bytes, its manifest says 5678"); null when every file
    /// matches the manifest, no other file is there, and the manifest is this engine's and names this entry.
    /// </summary>
    public static string? Problem(string folder, string kind, string key)
    {
        if (Read(folder, out var problem) is not { } manifest)
        {
            return problem;
        }

        if (manifest.Format != CurrentFormat)
        {
            return $"its manifest is of format {manifest.Format}, this engine reads {CurrentFormat}";
        }

        if (manifest.Engine != EngineInfo.Version)
        {
            return $"it was made by engine {manifest.Engine}, this is {EngineInfo.Version}";
        }

        if (manifest.Kind != kind || manifest.Key != key)
        {
            return $"its manifest names the entry {manifest.Kind}-{manifest.Key}";
        }

        var expected = manifest.Files.ToDictionary(f => f.Path, StringComparer.Ordinal);
        foreach (var relative in EntryFiles(folder))
        {
            if (!expected.Remove(relative, out var file))
            {
                return $"{relative} is not in its manifest";
            }

            var actual = Describe(folder, relative);
            if (actual.Length != file.Length)
            {
                return $"{relative} has {actual.Length} bytes, its manifest says {file.Length}";
            }

            if (!string.Equals(actual.Sha256, file.Sha256, StringComparison.OrdinalIgnoreCase))
            {
                return $"{relative} does not have the SHA-256 its manifest gives";
            }
        }

        return expected.Count == 0 ? null : $"{expected.Keys.Order(StringComparer.Ordinal).First()} is missing";
    }

    /// <summary>Every file under <paramref name="folder"/> but the manifest, as sorted '/'-separated relative paths.</summary>
    internal static IEnumerable<string> EntryFiles(string folder) =>
        Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(folder, f).Replace(Path.DirectorySeparatorChar, '/'))
            .Where(f => f != FileName)
            .Order(StringComparer.Ordinal);

    private static CacheFile Describe(string folder, string relative)
    {
        using var stream = File.OpenRead(Path.Combine(folder, relative));
        var length = stream.Length;
        return new CacheFile(relative, length, Convert.ToHexStringLower(SHA256.HashData(stream)));
    }
}

/// <summary>One file of a cache entry as its manifest lists it.</summary>
/// <param name="Path">The '/'-separated path inside the entry.</param>
/// <param name="Length">Its size in bytes.</param>
/// <param name="Sha256">Its SHA-256, lowercase hex.</param>
public sealed record CacheFile(string Path, long Length, string Sha256);
