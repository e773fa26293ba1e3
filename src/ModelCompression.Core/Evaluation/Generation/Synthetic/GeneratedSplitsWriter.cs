using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace ModelCompression.Evaluation;

/// <summary>
/// Writes generated splits as JSONL in the OpenAI chat fine-tuning format: one <c>{"messages": [...]}</c> object per
/// line, with an optional system turn, the user turn and, in labelled splits only, the assistant turn. The bytes are a
/// function of the examples alone (UTF-8 without BOM, '\n' line ends, fixed key order, fixed escaping), so a seeded
/// generator gives byte-identical files on every machine.
/// </summary>
public static class GeneratedSplitsWriter
{
    /// <summary>The file names of the splits, in the order <see cref="WriteSplits"/> writes them.</summary>
    public static readonly IReadOnlyList<string> SplitFiles = ["train.jsonl", "pool.jsonl", "validation.jsonl", "test.jsonl"];

    // Relaxed escaping keeps '<', '&' and non-ASCII letters readable in the committed fixtures; it is still valid JSON.
    private static readonly JsonWriterOptions Options = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, Indented = false };

    /// <summary>
    /// Writes train.jsonl (labelled), pool.jsonl (prompts only), validation.jsonl and test.jsonl (labelled) into
    /// <paramref name="folder"/>, creating it when needed; returns the paths written.
    /// </summary>
    public static IReadOnlyList<string> WriteSplits(string folder, GeneratedSplits splits, string? system = null)
    {
        ArgumentNullException.ThrowIfNull(splits);
        Directory.CreateDirectory(folder);
        (IReadOnlyList<GeneratedExample> Examples, bool Labelled)[] parts =
            [(splits.Train, true), (splits.Pool, false), (splits.Validation, true), (splits.Test, true)];
        var paths = new List<string>();
        for (var i = 0; i < parts.Length; i++)
        {
            var path = Path.Join(folder, SplitFiles[i]);
            File.WriteAllBytes(path, Encode(parts[i].Examples, parts[i].Labelled, system));
            paths.Add(path);
        }

        return paths;
    }

    /// <summary>The JSONL bytes of <paramref name="examples"/>: with the assistant turn when <paramref name="labelled"/>, without it otherwise.</summary>
    public static byte[] Encode(IEnumerable<GeneratedExample> examples, bool labelled, string? system = null)
    {
        ArgumentNullException.ThrowIfNull(examples);
        using var stream = new MemoryStream();
        foreach (var example in examples)
        {
            using (var writer = new Utf8JsonWriter(stream, Options))
            {
                writer.WriteStartObject();
                writer.WriteStartArray("messages");
                if (system is not null)
                {
                    Message(writer, "system", system);
                }

                Message(writer, "user", example.Prompt);
                if (labelled)
                {
                    Message(writer, "assistant", example.Answer);
                }

                writer.WriteEndArray();
                writer.WriteEndObject();
            }

            stream.WriteByte((byte)'\n');
        }

        return stream.ToArray();
    }

    /// <summary>Reads back what <see cref="Encode"/> wrote: per line, the (role, content) pairs of its messages.</summary>
    public static IReadOnlyList<IReadOnlyList<(string Role, string Content)>> Decode(byte[] jsonl)
    {
        ArgumentNullException.ThrowIfNull(jsonl);
        var records = new List<IReadOnlyList<(string, string)>>();
        foreach (var line in Encoding.UTF8.GetString(jsonl).Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            using var document = JsonDocument.Parse(line);
            records.Add([.. document.RootElement.GetProperty("messages").EnumerateArray()
                .Select(m => (m.GetProperty("role").GetString()!, m.GetProperty("content").GetString()!))]);
        }

        return records;
    }

    private static void Message(Utf8JsonWriter writer, string role, string content)
    {
        writer.WriteStartObject();
        writer.WriteString("role", role);
        writer.WriteString("content", content);
        writer.WriteEndObject();
    }
}
