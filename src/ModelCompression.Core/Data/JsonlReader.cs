using System.Globalization;
using System.Text.Json;
using ModelCompression.Diagnostics;

namespace ModelCompression.Data;

/// <summary>
/// Reads JSON Lines of text samples: one object per line with a text field and (for labelled data) a label
/// field holding a class number or a class name. Bad JSON, a missing or non-text text field, and a missing
/// label are reported together with file:line (MC2022); blank lines are skipped.
/// </summary>
public static class JsonlReader
{
    /// <summary>What a JSONL file held.</summary>
    internal sealed record Texts(string[] Values, RawLabels? Labels, int[] Lines);

    internal static Texts Read(string path, string textField, string labelField, bool labelled, LabelKind kind = LabelKind.Classes)
    {
        IEnumerable<string> lines;
        try
        {
            lines = File.ReadLines(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw Unreadable(path, e.Message);
        }

        var bad = new BadRows();
        var texts = new List<string>();
        var labels = new List<string?>();
        var rowLines = new List<int>();
        var number = 0;
        try
        {
            foreach (var line in lines)
            {
                number++;
                if (line.Trim().Length == 0)
                {
                    continue;
                }

                var where = $"{path}:{number}";
                JsonDocument document;
                try
                {
                    document = JsonDocument.Parse(line);
                }
                catch (JsonException e)
                {
                    bad.Add(path, number, where, $"not valid JSON ({e.Message.Split(" Path:")[0].TrimEnd('.')})");
                    continue;
                }

                using (document)
                {
                    if (document.RootElement.ValueKind != JsonValueKind.Object)
                    {
                        bad.Add(path, number, where, $"a JSON {document.RootElement.ValueKind.ToString().ToLowerInvariant()}, not an object");
                        continue;
                    }

                    if (!document.RootElement.TryGetProperty(textField, out var text) || text.ValueKind != JsonValueKind.String)
                    {
                        bad.Add(path, number, where, text.ValueKind == JsonValueKind.Undefined ? $"no \"{textField}\" field" : $"\"{textField}\" is a {text.ValueKind.ToString().ToLowerInvariant()}, not a string");
                        continue;
                    }

                    string? label = null;
                    if (labelled)
                    {
                        if (!document.RootElement.TryGetProperty(labelField, out var value) || value.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined)
                        {
                            bad.Add(path, number, where, $"no \"{labelField}\" label");
                            continue;
                        }

                        label = value.ValueKind switch
                        {
                            JsonValueKind.String => value.GetString(),
                            JsonValueKind.Number when value.TryGetInt64(out var n) => n.ToString(CultureInfo.InvariantCulture),
                            // A regression target is any number; the loader parses the text as a float.
                            JsonValueKind.Number when kind == LabelKind.Values => value.GetRawText(),
                            _ => null,
                        };
                        if (string.IsNullOrEmpty(label))
                        {
                            bad.Add(path, number, where, $"label \"{labelField}\" is {value.GetRawText()}; {(kind == LabelKind.Values ? "a number is needed" : "a class number or a class name is needed")}");
                            continue;
                        }
                    }

                    texts.Add(text.GetString()!);
                    labels.Add(label);
                    rowLines.Add(number);
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw Unreadable(path, e.Message);
        }

        bad.ThrowIfAny(DiagnosticCodes.DataBadRows, $"JSONL data '{path}' has bad rows");
        if (texts.Count == 0)
        {
            throw Unreadable(path, "it holds no samples");
        }

        var lineArray = rowLines.ToArray();
        return new Texts([.. texts], labelled ? new RawLabels(path, [.. labels], lineArray) : null, lineArray);
    }

    private static CompressionException Unreadable(string path, string why) =>
        CompressionException.Error(DiagnosticCodes.DataUnreadable, $"Cannot read JSONL data '{path}': {why}.", path);
}
