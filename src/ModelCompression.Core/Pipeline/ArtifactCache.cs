using System.Text.Json;

namespace ModelCompression.Pipeline;

/// <summary>
/// A plain folder of stage results, one sub-folder per cache key, holding <c>model.onnx</c> and
/// <c>result.json</c>. An entry appears whole or not at all: it is built in a temporary folder and renamed
/// into place, so an interrupted run never leaves a half entry that a later run would trust.
/// </summary>
public sealed class ArtifactCache(string root)
{
    /// <summary>The cache folder.</summary>
    public string Root { get; } = Path.GetFullPath(root);

    /// <summary>The entry folder of <paramref name="key"/> if it is complete, else null.</summary>
    public string? TryGet(string kind, string key)
    {
        var folder = EntryFolder(kind, key);
        return File.Exists(Path.Combine(folder, ResultFile)) ? folder : null;
    }

    /// <summary>
    /// Builds an entry: <paramref name="produce"/> writes its files into a fresh temporary folder, which then
    /// becomes the entry. A failure removes the temporary folder and leaves the cache as it was.
    /// </summary>
    public string Put<TResult>(string kind, string key, Func<string, TResult> produce)
    {
        Directory.CreateDirectory(Root);
        var final = EntryFolder(kind, key);
        var temporary = Path.Combine(Root, $".tmp-{kind}-{key}-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(temporary);
        try
        {
            var result = produce(temporary);
            // result.json is written last: its presence marks the entry complete.
            File.WriteAllText(Path.Combine(temporary, ResultFile), JsonSerializer.Serialize(result, JsonOptions));
            if (Directory.Exists(final))
            {
                // An incomplete leftover from a killed run (no result.json): replace it.
                Directory.Delete(final, recursive: true);
            }

            Directory.Move(temporary, final);
            return final;
        }
        finally
        {
            if (Directory.Exists(temporary))
            {
                Directory.Delete(temporary, recursive: true);
            }
        }
    }

    /// <summary>Reads the result of a complete entry.</summary>
    public static TResult ReadResult<TResult>(string entryFolder) =>
        JsonSerializer.Deserialize<TResult>(File.ReadAllText(Path.Combine(entryFolder, ResultFile)), JsonOptions)
        ?? throw new InvalidDataException($"Empty cache result in {entryFolder}.");

    /// <summary>File name of an entry's result.</summary>
    public const string ResultFile = "result.json";

    /// <summary>File name of an entry's model.</summary>
    public const string ModelFile = "model.onnx";

    internal static JsonSerializerOptions JsonOptions { get; } = new() { WriteIndented = true };

    private string EntryFolder(string kind, string key) => Path.Combine(Root, $"{kind}-{key}");
}
