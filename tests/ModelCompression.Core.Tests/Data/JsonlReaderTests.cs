using ModelCompression.Data;
using ModelCompression.Diagnostics;

namespace ModelCompression.Core.Tests.Data;

public sealed class JsonlReaderTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Reads_text_and_labels_with_their_lines_skipping_blank_lines()
    {
        var path = _dir.Write("mails.jsonl", """
            {"body": "win money", "y": "spam", "id": 1}

            {"body": "see you at \"noon\"", "y": 0}
            {"y": "ham", "body": "ünïcode ok"}
            """);

        var read = JsonlReader.Read(path, "body", "y", labelled: true);

        Assert.Equal(["win money", "see you at \"noon\"", "ünïcode ok"], read.Values);
        Assert.Equal((string[])["spam", "0", "ham"], read.Labels!.Values.Select(v => v ?? "(missing)"));
        Assert.Equal([1, 3, 4], read.Lines);
    }

    [Fact]
    public void Unlabelled_reads_ignore_labels_even_when_absent()
    {
        var path = _dir.Write("pool.jsonl", "{\"text\": \"a\"}\n{\"text\": \"b\", \"label\": \"x\"}\n");

        var read = JsonlReader.Read(path, "text", "label", labelled: false);

        Assert.Equal(["a", "b"], read.Values);
        Assert.Null(read.Labels);
    }

    [Fact]
    public void Bad_lines_are_reported_together_with_file_and_line()
    {
        var path = _dir.Write("bad.jsonl", """
            {"text": "fine", "label": 1}
            {"text": "broken", "label": 1
            ["an", "array"]
            {"label": 1}
            {"text": 42, "label": 1}
            {"text": "no label"}
            {"text": "null label", "label": null}
            {"text": "fraction", "label": 1.5}
            {"text": "fine", "label": "ham"}
            """);

        var e = Assert.Throws<CompressionException>(() => JsonlReader.Read(path, "text", "label", labelled: true));

        var d = Assert.Single(e.Diagnostics);
        Assert.Equal((DiagnosticCodes.DataBadRows, path, 2), (d.Code, d.File, d.Line));
        Assert.Contains("7 bad rows", d.Message, StringComparison.Ordinal);
        Assert.Contains($"{path}:2: not valid JSON", d.Message, StringComparison.Ordinal);
        Assert.Contains($"{path}:3: a JSON array, not an object", d.Message, StringComparison.Ordinal);
        Assert.Contains($"{path}:4: no \"text\" field", d.Message, StringComparison.Ordinal);
        Assert.Contains($"{path}:5: \"text\" is a number, not a string", d.Message, StringComparison.Ordinal);
        Assert.Contains($"{path}:6: no \"label\" label", d.Message, StringComparison.Ordinal);
        Assert.Contains($"{path}:7: no \"label\" label", d.Message, StringComparison.Ordinal);
        Assert.Contains($"{path}:8: label \"label\" is 1.5", d.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_empty_file_is_MC2021()
    {
        var path = _dir.Write("empty.jsonl", "\n\n");

        var e = Assert.Throws<CompressionException>(() => JsonlReader.Read(path, "text", "label", labelled: true));

        Assert.Equal((DiagnosticCodes.DataUnreadable, path), (e.Code, e.Diagnostics[0].File));
    }
}
