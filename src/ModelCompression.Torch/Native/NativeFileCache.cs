using System.Security.Cryptography;

namespace ModelCompression.Torch.Native;

/// <summary>
/// Writes generated native files (the weak-version copy of libLibTorchSharp.so) into a per-user cache folder,
/// once and atomically: each file lives under a folder named by the hash of its content, is written to a temp
/// file and renamed into place, and an existing file is used only when its bytes are exactly the expected ones.
/// Many threads or processes may materialise the same file at once; all end with one valid file.
/// </summary>
internal static class NativeFileCache
{
    private static readonly TimeSpan _staleTempAge = TimeSpan.FromHours(1);

    /// <summary>The folder a file with this content goes to, below <paramref name="cacheRoot"/>.</summary>
    public static string PathFor(string cacheRoot, string fileName, ReadOnlySpan<byte> content) =>
        System.IO.Path.Combine(cacheRoot, ContentHash(content), fileName);

    /// <summary>First 16 bytes of SHA-256, as lower-case hex.</summary>
    public static string ContentHash(ReadOnlySpan<byte> content) =>
        Convert.ToHexStringLower(SHA256.HashData(content))[..32];

    /// <summary>
    /// Returns the path of a file holding exactly <paramref name="content"/>, writing it when it is missing or
    /// wrong. <paramref name="reused"/> says whether an existing valid file was found.
    /// </summary>
    /// <exception cref="IOException">The file cannot be written, or does not hold the content after writing.</exception>
    public static string Materialize(string cacheRoot, string fileName, byte[] content, out bool reused)
    {
        var path = PathFor(cacheRoot, fileName, content);
        var dir = System.IO.Path.GetDirectoryName(path)!;
        if (HasContent(path, content))
        {
            reused = true;
            return path;
        }

        reused = false;
        Directory.CreateDirectory(dir);
        RemoveStaleTemps(dir, fileName);
        var temp = System.IO.Path.Combine(dir, $".{fileName}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                stream.Write(content);
                stream.Flush(flushToDisk: true);
            }

            // rename(2) replaces atomically: readers see the old file or the complete new one, never a part.
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            TryDelete(temp);
        }

        if (!HasContent(path, content))
        {
            throw new IOException($"The file '{path}' does not hold the expected content after it was written.");
        }

        return path;
    }

    /// <summary>Whether <paramref name="path"/> exists and holds exactly <paramref name="content"/>.</summary>
    public static bool HasContent(string path, ReadOnlySpan<byte> content)
    {
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists || info.Length != content.Length)
            {
                return false;
            }

            return File.ReadAllBytes(path).AsSpan().SequenceEqual(content);
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static void RemoveStaleTemps(string dir, string fileName)
    {
        // Temps of crashed processes; a live writer's temp is young (it is renamed within milliseconds).
        foreach (var file in Directory.EnumerateFiles(dir, $".{fileName}.*.tmp"))
        {
            if (DateTime.UtcNow - File.GetLastWriteTimeUtc(file) > _staleTempAge)
            {
                TryDelete(file);
            }
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
