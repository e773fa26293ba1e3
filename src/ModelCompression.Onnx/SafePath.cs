namespace ModelCompression.Onnx;

/// <summary>
/// Resolves paths the way the operating system will when the file is opened — following every symbolic link,
/// in the file name and in each folder on the way — without opening anything. External data locations come
/// from the model file, which may not be trusted, so a location is only accepted when every step of its real
/// path stays inside the model's folder; where it would leave, it is refused from its text alone, so a hostile
/// model cannot make the engine probe paths outside the folder.
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
    /// the real path of the result, or null with <paramref name="escapedTo"/> set to where the path leads outside the
    /// root. Nothing outside the root is ever looked at: a symbolic link's target is judged by its text, and the walk
    /// stops at the first step that would leave the root for anything but one of the root's own folders (which are
    /// real folders: the root is a real path). So an outside target is neither opened nor stat()ed nor read as a link.
    /// </summary>
    public static string? ResolveInside(string realRoot, IReadOnlyList<string> relativeSegments, out string? escapedTo)
    {
        var hops = 0;
        var result = Walk(realRoot, realRoot, relativeSegments, ref hops, out escapedTo);
        if (result is not null && !IsInside(result, realRoot))
        {
            // Ended on one of the root's own folders: a folder above the model's.
            escapedTo = result;
            return null;
        }

        return result;
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

    /// <summary>
    /// Applies <paramref name="segments"/> from <paramref name="start"/> (a real path inside <paramref name="root"/>
    /// or one of its folders), following links inside the root only; null when a step leaves it.
    /// </summary>
    private static string? Walk(string root, string start, IReadOnlyList<string> segments, ref int hops, out string? escapedTo)
    {
        escapedTo = null;
        var current = start;
        for (var i = 0; i < segments.Count; i++)
        {
            var segment = segments[i];
            if (segment is "" or ".")
            {
                continue;
            }

            if (segment == "..")
            {
                // current is always a real path, so its parent is what the OS means by "..".
                current = Path.GetDirectoryName(current) ?? current;
                continue;
            }

            var next = Path.Join(current, segment);
            if (!IsInside(next, root))
            {
                if (IsInside(root, next))
                {
                    // A folder on the root's own real path: not a link, nothing to look at.
                    current = next;
                    continue;
                }

                escapedTo = Path.Join([next, .. segments.Skip(i + 1)]);
                return null;
            }

            var target = LinkTarget(next);
            if (target is null)
            {
                current = next;
                continue;
            }

            if (++hops > MaxLinkHops)
            {
                throw new IOException($"Too many levels of symbolic links at '{next}'.");
            }

            var absolute = Path.IsPathRooted(target);
            var linkStart = absolute ? Path.GetPathRoot(target)! : current;
            var resolved = Walk(root, linkStart, SplitSegments(absolute ? target[linkStart.Length..] : target), ref hops, out escapedTo);
            if (resolved is null)
            {
                escapedTo = Path.Join([escapedTo!, .. segments.Skip(i + 1)]);
                return null;
            }

            current = resolved;
        }

        return current;
    }

    private static string[] SplitSegments(string path) => path.Split(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar);

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
