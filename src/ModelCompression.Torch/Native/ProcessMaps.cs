using System.Runtime.InteropServices;

namespace ModelCompression.Torch.Native;

/// <summary>The files mapped into this process (Linux <c>/proc/self/maps</c>), and real paths for comparing with them.</summary>
internal static class ProcessMaps
{
    /// <summary>Distinct paths of mapped files (empty where /proc is not available).</summary>
    public static IReadOnlyList<string> MappedFiles()
    {
        const string maps = "/proc/self/maps";
        if (!File.Exists(maps))
        {
            return [];
        }

        var result = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var line in File.ReadLines(maps))
        {
            // address perms offset dev inode path (the path may contain spaces; pseudo entries start with '[').
            var parts = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 6 && parts[5].StartsWith('/'))
            {
                var path = parts[5].Trim();
                if (seen.Add(path))
                {
                    result.Add(path);
                }
            }
        }

        return result;
    }

    /// <summary>Mapped files whose file name starts with <paramref name="prefix"/> (e.g. <c>libstdc++.so</c>).</summary>
    public static IReadOnlyList<string> MappedFilesNamed(string prefix) =>
        MappedFiles().Where(p => System.IO.Path.GetFileName(p).StartsWith(prefix, StringComparison.Ordinal)).ToList();

    /// <summary>The canonical path (symbolic links resolved), as /proc/self/maps shows it; the input when that fails.</summary>
    public static string RealPath(string path)
    {
        var resolved = realpath(path, IntPtr.Zero);
        if (resolved == IntPtr.Zero)
        {
            return System.IO.Path.GetFullPath(path);
        }

        try
        {
            return Marshal.PtrToStringUTF8(resolved) ?? path;
        }
        finally
        {
            free(resolved);
        }
    }

    // DllImport rather than LibraryImport: the source generator would need unsafe code enabled for the project.
    [DllImport("libc", CharSet = CharSet.Ansi, ExactSpelling = true)]
    private static extern IntPtr realpath(string path, IntPtr resolvedPath);

    [DllImport("libc", ExactSpelling = true)]
    private static extern void free(IntPtr pointer);
}
