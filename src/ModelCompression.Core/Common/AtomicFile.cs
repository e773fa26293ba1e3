namespace ModelCompression.Common;

/// <summary>Writes files so that a reader sees the old file or the new one, never a half-written one.</summary>
public static class AtomicFile
{
    /// <summary>Copies <paramref name="source"/> over <paramref name="destination"/> via a temporary file and a rename.</summary>
    public static void Copy(string source, string destination) =>
        Write(destination, temporary => File.Copy(source, temporary, overwrite: true));

    /// <summary>Writes text via a temporary file and a rename.</summary>
    public static void WriteAllText(string destination, string contents) =>
        Write(destination, temporary => File.WriteAllText(temporary, contents));

    private static void Write(string destination, Action<string> write)
    {
        var folder = Path.GetDirectoryName(Path.GetFullPath(destination))!;
        Directory.CreateDirectory(folder);
        var temporary = Path.Combine(folder, $".{Path.GetFileName(destination)}.{Guid.NewGuid():N}.tmp");
        try
        {
            write(temporary);
            File.Move(temporary, destination, overwrite: true);
        }
        finally
        {
            File.Delete(temporary);
        }
    }
}
