using System.Globalization;
using System.Text.Json.Nodes;
using System.Xml.Linq;
using ModelCompression.Reports;

namespace ModelCompression.Core.Tests.Reports;

/// <summary>
/// The data's class names label the per-class tables and confusion matrices of report.json, report.md and
/// report.html; without names (numeric labels) the classes are numbered.
/// </summary>
public sealed class ClassNamesInReportsTests
{
    private static readonly string[] Numbers = [.. Enumerable.Range(0, 10).Select(i => i.ToString(CultureInfo.InvariantCulture))];

    private static JsonObject Report(IReadOnlyList<string>? names) =>
        JsonReport.Build(ReportTestData.Measured(names), DateTimeOffset.UtcNow);

    /// <summary>The final (quantize) model's matrix, as the test data makes it.</summary>
    private static int[][] FinalMatrix => ReportTestData.ConfusionMatrix(0.8612);

    [Fact]
    public void Report_json_lists_the_class_names_and_names_every_per_class_entry()
    {
        var json = JsonNode.Parse(ReportWriter.Render(Report(ReportTestData.FashionClasses), "json"))!;

        Assert.Equal(ReportTestData.FashionClasses, json["class_names"]!.AsArray().Select(n => (string)n!));
        var evaluations = json["stages"]!.AsArray().Select(s => s!["evaluation"]!).Prepend(json["teacher"]!).ToList();
        Assert.Equal(4, evaluations.Count);
        foreach (var evaluation in evaluations)
        {
            var perClass = evaluation["per_class"]!.AsArray();
            Assert.Equal(["class", "precision", "recall", "f1", "support", "name"], perClass[0]!.AsObject().Select(p => p.Key));
            Assert.Equal(ReportTestData.FashionClasses, perClass.Select(c => (string)c!["name"]!));
            Assert.Equal(Enumerable.Range(0, 10), perClass.Select(c => (int)c!["class"]!));
            Assert.Equal(10, evaluation["confusion_matrix"]!.AsArray().Count);
        }
    }

    [Fact]
    public void Report_json_without_names_has_null_names()
    {
        var json = JsonNode.Parse(ReportWriter.Render(Report(null), "json"))!;

        Assert.True(json.AsObject().ContainsKey("class_names"));
        Assert.Null(json["class_names"]);
        var perClass = json["stages"]![2]!["evaluation"]!["per_class"]!.AsArray();
        Assert.All(perClass, c => Assert.True(c!.AsObject().ContainsKey("name") && c["name"] is null));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Report_md_has_the_final_models_per_class_table_and_confusion_matrix_by_class(bool named)
    {
        var report = Report(named ? ReportTestData.FashionClasses : null);
        var labels = named ? ReportTestData.FashionClasses : Numbers;

        var lines = MarkdownReport.Render(report).Split('\n');

        Assert.Contains("<details><summary>Per class: the final model (quantize)</summary>", lines);
        var perClass = report["stages"]![2]!["evaluation"]!["per_class"]!.AsArray();
        var header = Array.IndexOf(lines, "| class | precision | recall | F1 | support |");
        Assert.True(header > 0);
        Assert.Equal("|---|---:|---:|---:|---:|", lines[header + 1]);
        for (var i = 0; i < 10; i++)
        {
            var precision = ((double)perClass[i]!["precision"]!).ToString("P2", CultureInfo.InvariantCulture);
            var recall = ((double)perClass[i]!["recall"]!).ToString("P2", CultureInfo.InvariantCulture);
            var f1 = ((double)perClass[i]!["f1"]!).ToString("P2", CultureInfo.InvariantCulture);
            Assert.Equal($"| {labels[i]} | {precision} | {recall} | {f1} | 1,000 |", lines[header + 2 + i]);
        }

        var matrix = Array.IndexOf(lines, $"| true ↓ predicted → | {string.Join(" | ", labels)} |");
        Assert.True(matrix > header, "the confusion matrix's header row, columns by class");
        Assert.Equal("|---|" + string.Concat(Enumerable.Repeat("---:|", 10)), lines[matrix + 1]);
        for (var row = 0; row < 10; row++)
        {
            Assert.Equal($"| {labels[row]} | {string.Join(" | ", FinalMatrix[row].Select(c => c.ToString("N0", CultureInfo.InvariantCulture)))} |", lines[matrix + 2 + row]);
        }

        Assert.Equal("</details>", lines[matrix + 13]);
    }

    [Fact]
    public void Report_md_leaves_a_wide_confusion_matrix_to_report_json()
    {
        var report = Report(null);
        const int Classes = 21;
        report["stages"]![2]!["evaluation"]!["confusion_matrix"] = new JsonArray(
            [.. Enumerable.Range(0, Classes).Select(row => (JsonNode)new JsonArray([.. Enumerable.Range(0, Classes).Select(column => (JsonNode)(row == column ? 5 : 0))]))]);

        var markdown = MarkdownReport.Render(report);

        Assert.Contains("The confusion matrix has 21 classes; report.json holds every count.", markdown, StringComparison.Ordinal);
        Assert.DoesNotContain("| true ↓ predicted →", markdown, StringComparison.Ordinal);
        Assert.Contains("| class | precision | recall | F1 | support |", markdown, StringComparison.Ordinal);
    }

    [Fact]
    public void The_terminals_summary_leaves_the_per_class_section_to_the_files()
    {
        var result = ReportTestData.Measured(ReportTestData.FashionClasses);

        var printed = ReportWriter.Markdown(result);

        Assert.DoesNotContain("<details>", printed, StringComparison.Ordinal);
        Assert.DoesNotContain("T-shirt/top", printed, StringComparison.Ordinal);
        var file = MarkdownReport.Render(JsonReport.Build(result, DateTimeOffset.UtcNow));
        Assert.StartsWith(printed, file, StringComparison.Ordinal);
        Assert.Contains("| T-shirt/top |", file, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Report_html_labels_the_confusion_matrix_and_per_class_table_by_class(bool named)
    {
        var labels = named ? ReportTestData.FashionClasses : Numbers;
        var document = HtmlReportTests.ParseXml(HtmlReport.Render(Report(named ? ReportTestData.FashionClasses : null)));

        var matrix = Section(document, "confusion-matrix");
        var ticks = matrix.Descendants("text").Where(t => (string?)t.Attribute("class") == "tick" && !t.Value.Contains('%', StringComparison.Ordinal)).Select(t => t.Value).ToList();
        // Each class twice, a column (predicted) then a row (true) label.
        Assert.Equal(labels.SelectMany(l => new[] { l, l }), ticks);
        var cells = matrix.Descendants("rect").Where(r => (string?)r.Attribute("class") == "cell").ToList();
        Assert.Equal(100, cells.Count);
        // Row 0's errors go to classes 1 and 3 (the test data's pattern): named in the tooltip.
        Assert.Equal($"true {labels[0]}, predicted {labels[3]}: {FinalMatrix[0][3]} ({(FinalMatrix[0][3] / 1000.0).ToString("P2", CultureInfo.InvariantCulture)} of class {labels[0]})", cells[3].Element("title")!.Value);

        var rows = Section(document, "per-class").Descendants("tbody").Single().Elements("tr").ToList();
        Assert.Equal(labels, rows.Select(r => r.Elements("td").First().Value));
        Assert.Equal(named ? "class 6" : null, (string?)rows[6].Elements("td").First().Attribute("title"));
        Assert.Equal(named ? null : "num", (string?)rows[6].Elements("td").First().Attribute("class"));
    }

    [Fact]
    public void Report_html_shortens_a_long_class_name_on_the_axes_and_keeps_it_whole_in_the_tooltips()
    {
        string[] names = [.. ReportTestData.FashionClasses[..9], "Ankle boot (leather, waterproof)"];
        var document = HtmlReportTests.ParseXml(HtmlReport.Render(Report(names)));

        var matrix = Section(document, "confusion-matrix");
        var ticks = matrix.Descendants("text").Where(t => (string?)t.Attribute("class") == "tick").Select(t => t.Value).ToList();
        Assert.Equal(2, ticks.Count(t => t == "Ankle boot (leath…"));
        Assert.DoesNotContain(names[9], ticks);
        var cells = matrix.Descendants("rect").Where(r => (string?)r.Attribute("class") == "cell").ToList();
        Assert.StartsWith($"true {names[9]}, predicted {names[0]}: ", cells[90].Element("title")!.Value, StringComparison.Ordinal);
        // The row labels end 6 px left of the matrix and, at most 18 characters of about 6.5 px, start inside the picture.
        var rowTick = matrix.Descendants("text").Last(t => t.Value == "Ankle boot (leath…");
        Assert.True(double.Parse((string)rowTick.Attribute("x")!, CultureInfo.InvariantCulture) - (18 * 6.5) >= 16);
        Assert.Equal("Ankle boot (leather, waterproof)", Section(document, "per-class").Descendants("tbody").Single().Elements("tr").Last().Elements("td").First().Value);
    }

    private static XElement Section(XDocument document, string id) =>
        document.Descendants("section").Single(s => (string?)s.Attribute("id") == id);
}
