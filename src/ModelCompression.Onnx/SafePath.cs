namespace ModelCompression.Onnx;

/// <summary>
/// Resolves paths the way the operating system will when the file is opened — following every symbolic link,
/// in the file name and in each folder on the way — without opening anything. External data locations come
/// from the model file, which may not be trusted, so a location is only accepted when every step of its real
/// path stays inside the model's folder.
/// </summary>
internal static class SafePath
{
    private const int MaxLinkHops = 40;

    private static readonly StringComparison PathComparison =
        OperatingSystem.IsWindows() || OperatingSystem.IsMacOS() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;

    /// <summary>The real path of an absolute path: symlinks resolved, "." and ".." applied to real folders.</summary>
    public static string RealPath(string absolutePath)
    {
        var hops = 0;
        return RealPath(absolutePath, ref hops);
    }

    /// <summary>
    /// Resolves <paramref name="relativeSegments"/> under <paramref name="realRoot"/> (itself a real path). Returns
    /// the real path of the result, or null with <paramref name="escapedTo"/> set to the first real path on the way
    /// that is outside the root.
    /// </summary>
    public static string? ResolveInside(string realRoot, IReadOnlyList<string> relativeSegments, out string? escapedTo)
    {
        escapedTo = null;
        var hops = 0;
        var current = realRoot;
        foreach (var segment in relativeSegments)
        {
            current = Step(current, segment, ref hops);
            if (!IsInside(current, realRoot))
            {
                escapedTo = current;
                return null;
            }
        }

        return current;
    }

    /// <summary>True when <paramref name="path"/> is <paramref name="root"/> or below it (both real, absolute).</summary>
    public static bool IsInside(string path, string root)
    {
        var trimmed = Path.TrimEndingDirectorySeparator(root);
        if (string.Equals(path, trimmed, PathComparison) || string.Equals(path, root, PathComparison))
        {
            return true;
        }

        // A root that is a volume root ("/", "C:\") keeps its separator after trimming.
        var prefix = Path.EndsInDirectorySeparator(trimmed) ? trimmed : trimmed + Path.DirectorySeparatorChar;
        return path.StartsWith(prefix, PathComparison);
    }

    private static string RealPath(string absolutePath, ref int hops)
    {
        var root = Path.GetPathRoot(absolutePath) ?? throw new ArgumentException("An absolute path is needed.", nameof(absolutePath));
        var current = root;
        foreach (var segment in absolutePath[root.Length..].Split(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar))
        {
            current = Step(current, segment, ref hops);
        }

        return current;
    }

    private static string Step(string current, string segment, ref int hops)
    {
        if (segment is "" or ".")
        {
            return current;
        }

        if (segment == "..")
        {
            // current is always a real path, so its parent is what the OS means by "..".
            return Path.GetDirectoryName(current) ?? current;
        }

        var next = Path.Join(current, segment);
        var target = LinkTarget(next);
        if (target is null)
        {
            return next;
        }

        if (++hops > MaxLinkHops)
        {
            throw new IOException($"Too many levels of symbolic links at '{next}'.");
        }

        var absoluteTarget = Path.IsPathRooted(target) ? target : Path.Join(current, target);
        return RealPath(absoluteTarget, ref hops);
    }

    /// <summary>The target of a symbolic link (read with lstat/readlink: the target is never opened), or null.</summary>
    private static string? LinkTarget(string path)
    {
        try
        {
            return new FileInfo(path).LinkTarget;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Cannot be inspected: treat as a plain name. Opening it later fails and is reported then.
            return null;
        }
    }
}
