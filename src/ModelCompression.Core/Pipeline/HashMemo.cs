using System.Text.Json;
using ModelCompression.Common;

namespace ModelCompression.Pipeline;

/// <summary>
/// Content hashes of input files (teachers, students, data) remembered between runs in one small file inside the
/// cache, so a run with nothing to do does not read every byte of its inputs again. An entry holds, for each file
/// the hash was computed from, its full path, size and last-write time (UTC ticks); any difference, a missing file
/// or an unreadable memo recomputes. A file written within <see cref="RacyWindow"/> of the hash is not remembered
/// for later runs: a second write in the same timestamp tick with the same size could not be told apart.
/// Concurrent runs each write the memo whole through a rename, so a reader sees one run's memo or another's; an
/// entry lost to the other writer only costs a recomputation.
/// </summary>
public sealed class HashMemo
{
    /// <summary>The memo's file name inside the cache folder.</summary>
    public const string FileName = "hash-memo.json";

    /// <summary>How recent a file's last write may be for its hash to be trusted later.</summary>
    public static readonly TimeSpan RacyWindow = TimeSpan.FromSeconds(2);

    // Bump when an entry's meaning changes, so an old memo is ignored instead of trusted.
    private const int Version = 1;

    private readonly string _path;
    private readonly Dictionary<string, Entry> _entries;
    private readonly HashSet<string> _processOnly = new(StringComparer.Ordinal);
    private bool _changed;

    private HashMemo(string path, Dictionary<string, Entry> entries)
    {
        _path = path;
        _entries = entries;
    }

    /// <summary>Reads the memo of the cache folder <paramref name="cacheRoot"/>; a missing or unreadable memo is an empty one.</summary>
    public static HashMemo Load(string cacheRoot)
    {
        var path = Path.Combine(Path.GetFullPath(cacheRoot), FileName);
        var entries = new Dictionary<string, Entry>(StringComparer.Ordinal);
        try
        {
            if (File.Exists(path)
                && JsonSerializer.Deserialize<MemoFile>(File.ReadAllBytes(path)) is { Version: Version, Entries: { } stored })
            {
                foreach (var (key, entry) in stored)
                {
                    if (entry is { Hash: { Length: > 0 }, Files: { Count: > 0 } })
                    {
                        entries[key] = entry;
                    }
                }
            }
        }
        catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException or NotSupportedException)
        {
            // A damaged memo is only a lost shortcut: every hash is recomputed and the memo rewritten.
            entries.Clear();
        }

        return new HashMemo(path, entries);
    }

    /// <summary>The remembered hash of <paramref name="key"/> when every file it was computed from is unchanged, else null.</summary>
    public string? TryGet(string key) =>
        _entries.TryGetValue(key, out var known) && known.Files.All(f => Stamp.Of(f.Path) == f) ? known.Hash : null;

    /// <summary>
    /// The hash that <paramref name="compute"/> gives for <paramref name="key"/>, taken from the memo when every file
    /// it was computed from is unchanged (a file written just before its hash is trusted by this process only). <paramref name="compute"/> returns the hash and every file it read (the
    /// first of which is usually the one the key names).
    /// </summary>
    public string Get(string key, Func<(string Hash, IReadOnlyList<string> Files)> compute)
    {
        if (TryGet(key) is { } remembered)
        {
            return remembered;
        }

        // A file last written after the hash began (or just before) may hold bytes the hash did not see: not remembered.
        var started = DateTime.UtcNow;
        var (hash, files) = compute();
        var stamps = files.Select(f => Stamp.Of(Path.GetFullPath(f))).ToList();
        _entries[key] = new Entry(hash, stamps);
        _changed = true;
        if (stamps.All(s => s.Length >= 0 && started - new DateTime(s.WrittenTicks, DateTimeKind.Utc) > RacyWindow))
        {
            _processOnly.Remove(key);
        }
        else
        {
            // Good for this process (a sweep hashes its input once, not once per trial), not for later runs.
            _processOnly.Add(key);
        }

        return hash;
    }

    /// <summary>A model file's hash (<see cref="Onnx.ModelHash"/>), computed again only when it or one of its external data files changed.</summary>
    public string Model(string path) =>
        Get(ModelKey(path), () => (Onnx.ModelHash.ComputeFile(path, out var files), files));

    /// <summary>The memo key of a model file's hash.</summary>
    public static string ModelKey(string path) => $"model {Path.GetFullPath(path)}";

    /// <summary>Writes the memo if it changed (whole, through a rename). A failure to write only loses the shortcut.</summary>
    public void Save()
    {
        if (!_changed)
        {
            return;
        }

        try
        {
            var lasting = _entries.Where(e => !_processOnly.Contains(e.Key)).ToDictionary(e => e.Key, e => e.Value, StringComparer.Ordinal);
            AtomicFile.WriteAllText(_path, JsonSerializer.Serialize(new MemoFile(Version, lasting)));
            _changed = false;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A read-only cache still works; the next run hashes again.
        }
    }

    /// <summary>A file as the memo saw it; a missing file has length -1 and never matches a stored stamp.</summary>
    internal sealed record Stamp(string Path, long Length, long WrittenTicks)
    {
        public static Stamp Of(string path)
        {
            var file = new FileInfo(path);
            return file.Exists ? new Stamp(path, file.Length, file.LastWriteTimeUtc.Ticks) : new Stamp(path, -1, 0);
        }
    }

    internal sealed record Entry(string Hash, IReadOnlyList<Stamp> Files);

    private sealed record MemoFile(int Version, Dictionary<string, Entry> Entries);
}
