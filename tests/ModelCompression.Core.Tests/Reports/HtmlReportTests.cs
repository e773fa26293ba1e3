using System.Net;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using System.Xml;
using System.Xml.Linq;
using ModelCompression.Reports;

namespace ModelCompression.Core.Tests.Reports;

public sealed partial class HtmlReportTests
{
    private static JsonObject FullReport(string recipePath = "/work/recipes/fashion.compress.yaml") =>
        ReportTestData.WithMeasurements(JsonReport.Build(ReportTestData.Run(recipePath), DateTimeOffset.UtcNow));

    /// <summary>Parses the page as XML: the report is written so that it is well-formed.</summary>
    internal static XDocument ParseXml(string html)
    {
        using var reader = XmlReader.Create(new StringReader(html), new XmlReaderSettings { DtdProcessing = DtdProcessing.Ignore });
        return XDocument.Load(reader);
    }

    /// <summary>The text a reader sees: tags removed, character references decoded, white space collapsed.</summary>
    internal static string VisibleText(string html) =>
        Whitespace().Replace(WebUtility.HtmlDecode(Tags().Replace(StyleElement().Replace(html, " "), " ")), " ");

    [Fact]
    public void The_page_is_well_formed_and_has_every_section()
    {
        var html = HtmlReport.Render(FullReport());

        var document = ParseXml(html);

        Assert.Equal("html", document.Root!.Name.LocalName);
        var sections = document.Descendants("section").Select(s => (string?)s.Attribute("id")).ToList();
        Assert.Equal(["summary", "accuracy-vs-size", "confusion-matrix", "training", "sweep", "gates", "per-class"], sections);
        Assert.Equal("failed", (string?)document.Descendants("header").Single().Attribute("class"));
        Assert.Contains("GATE FAILED", document.Descendants("header").Single().Value, StringComparison.Ordinal);

        // Charts: accuracy-vs-size, confusion matrix, distill loss and validation accuracy, prune loss.
        Assert.Equal(5, document.Descendants("svg").Count());
        Assert.Equal(4, Section(document, "accuracy-vs-size").Descendants("circle").Count());
        Assert.Equal(["teacher", "distill", "prune", "quantize"], Section(document, "accuracy-vs-size").Descendants("text").Where(t => (string?)t.Attribute("class") == "point-label").Select(t => t.Value));
        Assert.Equal(["distill", "prune"], Section(document, "training").Descendants("h3").Select(h => h.Value));
        Assert.Contains("No validation accuracy chart: this stage trained without a validation split.", Section(document, "training").Value, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_accuracy_and_size_of_report_json_appears_in_the_page()
    {
        var report = FullReport();

        var text = VisibleText(HtmlReport.Render(report));

        foreach (var expected in new[] { "91.90 %", "0.407", "87.02 %", "0.204", "86.55 %", "0.103", "86.12 %", "0.0261", "91.36 – 92.43 %", "101,770", "0.210" })
        {
            Assert.Contains(expected, text, StringComparison.Ordinal);
        }

        foreach (var evaluation in report["stages"]!.AsArray().Select(s => s!["evaluation"]!).Prepend(report["teacher"]!))
        {
            Assert.Contains(((double)evaluation["accuracy"]!).ToString("P2", System.Globalization.CultureInfo.InvariantCulture), text, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Confusion_matrix_shows_the_final_models_counts_and_class_indices()
    {
        var report = FullReport();
        var document = ParseXml(HtmlReport.Render(report));
        var section = Section(document, "confusion-matrix");

        Assert.Contains("(quantize)", section.Element("h2")!.Value, StringComparison.Ordinal);
        var cells = section.Descendants("rect").Where(r => (string?)r.Attribute("class") == "cell").ToList();
        Assert.Equal(100, cells.Count);
        var counts = section.Descendants("text").Where(t => (string?)t.Attribute("class") == "cell-count").Select(t => int.Parse(t.Value, System.Globalization.CultureInfo.InvariantCulture)).ToList();
        var expected = ReportTestData.ConfusionMatrix(0.8612).SelectMany(row => row).ToList();
        Assert.Equal(expected, counts);
        Assert.Equal(8612, Enumerable.Range(0, 10).Sum(i => counts[(i * 10) + i]));
        var ticks = section.Descendants("text").Where(t => (string?)t.Attribute("class") == "tick").Select(t => t.Value).ToList();
        Assert.Equal(2, ticks.Count(t => t == "9"));

        // The shade follows the share of the true class: the diagonal (most of its row) is darker than the
        // errors beside it, and an empty cell is the scale's lightest colour.
        Assert.Equal("#f7fbff", Fill(cells[2]));
        Assert.True(Brightness(Fill(cells[0])) < Brightness(Fill(cells[1])), $"{Fill(cells[0])} vs {Fill(cells[1])}");
        Assert.True(Brightness(Fill(cells[1])) < Brightness(Fill(cells[2])), $"{Fill(cells[1])} vs {Fill(cells[2])}");
    }

    [Fact]
    public void Sweep_best_trial_is_highlighted_and_gates_show_p_values()
    {
        var document = ParseXml(HtmlReport.Render(FullReport()));

        var sweepRows = Section(document, "sweep").Descendants("tbody").Single().Elements("tr").ToList();
        Assert.Equal(4, sweepRows.Count);
        Assert.Equal(["", "", "best", ""], sweepRows.Select(r => (string?)r.Attribute("class") ?? string.Empty));
        Assert.Equal(["3", "0.9", "4", "0.001", "87.10 %", "★ best"], sweepRows[2].Elements("td").Select(td => td.Value));
        Assert.Equal(["trial", "alpha", "temperature", "learning rate", "validation accuracy", "kept"], Section(document, "sweep").Descendants("th").Select(th => th.Value));

        var gateRows = Section(document, "gates").Descendants("tbody").Single().Elements("tr").ToList();
        Assert.Equal(["pass", "fail", "pass", "pass"], gateRows.Select(r => (string?)r.Elements("td").ElementAt(4).Attribute("class")));
        Assert.Equal(["17", "18", "19", "20"], gateRows.Select(r => r.Elements("td").ElementAt(1).Value));
        Assert.Equal(["n/a", "n/a", "n/a", "0.21"], gateRows.Select(r => r.Elements("td").ElementAt(6).Value));
        Assert.Equal("0.889", gateRows[1].Elements("td").ElementAt(3).Value);
    }

    [Fact]
    public void Per_class_table_lists_precision_recall_and_support_of_the_final_model()
    {
        var report = FullReport();
        var document = ParseXml(HtmlReport.Render(report));
        var rows = Section(document, "per-class").Descendants("tbody").Single().Elements("tr").ToList();
        var perClass = report["stages"]![2]!["evaluation"]!["per_class"]!.AsArray();

        Assert.Equal(10, rows.Count);
        for (var i = 0; i < rows.Count; i++)
        {
            var cells = rows[i].Elements("td").Select(td => td.Value).ToList();
            Assert.Equal(i.ToString(System.Globalization.CultureInfo.InvariantCulture), cells[0]);
            Assert.Equal(((double)perClass[i]!["precision"]!).ToString("P2", System.Globalization.CultureInfo.InvariantCulture), cells[1]);
            Assert.Equal(((double)perClass[i]!["recall"]!).ToString("P2", System.Globalization.CultureInfo.InvariantCulture), cells[2]);
            Assert.Equal("1,000", cells[4]);
        }
    }

    [Fact]
    public void The_page_is_self_contained()
    {
        var html = HtmlReport.Render(FullReport());

        Assert.DoesNotContain("http", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("<script", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("<link", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("<img", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("@import", html, StringComparison.Ordinal);
        var document = ParseXml(html);
        Assert.DoesNotContain(document.Descendants().Attributes(), a => a.Name.LocalName is "src" or "href");
    }

    [Fact]
    public void Text_from_the_recipe_is_escaped()
    {
        const string Hostile = "/work/<script>alert('x')</script>&\"quoted\".compress.yaml";
        var result = ReportTestData.Run(Hostile);
        result = result with { Gates = [result.Gates[0] with { Text = "accuracy >= <b>0.85</b>", Message = "a < b & c" }] };

        var html = HtmlReport.Render(JsonReport.Build(result, DateTimeOffset.UtcNow));

        Assert.DoesNotContain("<script", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("<b>", html, StringComparison.Ordinal);
        Assert.Contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;quoted&quot;.compress.yaml", html, StringComparison.Ordinal);
        var document = ParseXml(html);
        Assert.Contains(Hostile, document.Descendants("header").Single().Value, StringComparison.Ordinal);
        Assert.Contains("accuracy >= <b>0.85</b>", Section(document, "gates").Value, StringComparison.Ordinal);
        Assert.Contains("a < b & c", Section(document, "gates").Value, StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_data_gives_notes_instead_of_charts()
    {
        // An evaluation without a confusion matrix or per-class metrics, and no stage trained.
        var result = ReportTestData.Run();
        result = result with { Stages = [result.Stages[2]], Gates = [] };

        var document = ParseXml(HtmlReport.Render(JsonReport.Build(result, DateTimeOffset.UtcNow)));

        Assert.Empty(Section(document, "confusion-matrix").Descendants("svg"));
        Assert.Contains("No confusion matrix in this report", Section(document, "confusion-matrix").Value, StringComparison.Ordinal);
        Assert.Contains("No stage trained in this run.", Section(document, "training").Value, StringComparison.Ordinal);
        Assert.Contains("The recipe has no gates.", Section(document, "gates").Value, StringComparison.Ordinal);
        Assert.Contains("No per-class metrics in this report.", Section(document, "per-class").Value, StringComparison.Ordinal);
        Assert.DoesNotContain(document.Descendants("section"), s => (string?)s.Attribute("id") == "sweep");
        Assert.Single(Section(document, "accuracy-vs-size").Descendants("svg"));
        Assert.Equal("passed", (string?)document.Descendants("header").Single().Attribute("class"));
    }

    [Fact]
    public void Without_a_teacher_the_page_has_no_teacher_row_or_point_and_says_so()
    {
        var document = ParseXml(HtmlReport.Render(JsonReport.Build(ReportTestData.Run() with { Teacher = null }, DateTimeOffset.UtcNow)));

        var summary = Section(document, "summary");
        Assert.Equal(["distill", "prune", "quantize"], summary.Descendants("tbody").Single().Elements("tr").Select(r => r.Elements("td").First().Value));
        Assert.Contains(MarkdownReport.NoTeacher, summary.Value, StringComparison.Ordinal);
        var chart = Section(document, "accuracy-vs-size");
        var points = chart.Descendants("circle").Select(c => (string?)c.Attribute("class")).ToList();
        Assert.Equal(["point stage", "point stage", "point final"], points);
        Assert.StartsWith("No teacher; stages in pipeline order", chart.Descendants("figcaption").Single().Value, StringComparison.Ordinal);
    }

    [Fact]
    public void A_confusion_matrix_of_many_classes_is_left_to_report_json()
    {
        var report = JsonReport.Build(ReportTestData.Run(), DateTimeOffset.UtcNow);
        const int Classes = 61;
        report["stages"]![2]!["evaluation"]!["confusion_matrix"] = new JsonArray(
            [.. Enumerable.Range(0, Classes).Select(row => (JsonNode)new JsonArray([.. Enumerable.Range(0, Classes).Select(column => (JsonNode)(row == column ? 5 : 0))]))]);

        var section = Section(ParseXml(HtmlReport.Render(report)), "confusion-matrix");

        Assert.Empty(section.Descendants("svg"));
        Assert.Contains("The confusion matrix has 61 classes; the heat map is drawn for up to 60.", section.Value, StringComparison.Ordinal);
    }

    [Fact]
    public void A_report_with_one_epoch_and_equal_sizes_still_draws_its_charts()
    {
        var result = ReportTestData.Run();
        var distill = result.Stages[0] with
        {
            Result = result.Stages[0].Result with { EpochLosses = [0.7], ValidationAccuracies = [0.8], Sweep = null },
            Evaluation = result.Teacher! with { Name = "distill" },
        };
        result = result with { Stages = [distill] };

        var html = HtmlReport.Render(JsonReport.Build(result, DateTimeOffset.UtcNow));
        var document = ParseXml(html);

        Assert.Equal(2, Section(document, "training").Descendants("svg").Count());
        Assert.DoesNotContain("NaN", html, StringComparison.Ordinal);
        Assert.DoesNotContain("Infinity", html, StringComparison.Ordinal);
        Assert.Equal(2, Section(document, "accuracy-vs-size").Descendants("circle").Count());
    }

    private static XElement Section(XDocument document, string id) =>
        document.Descendants("section").Single(s => (string?)s.Attribute("id") == id);

    private static string Fill(XElement cell) => (string?)cell.Attribute("fill") ?? string.Empty;

    private static int Brightness(string hex) =>
        Convert.ToInt32(hex[1..3], 16) + Convert.ToInt32(hex[3..5], 16) + Convert.ToInt32(hex[5..7], 16);

    [GeneratedRegex(@"<style>.*?</style>", RegexOptions.Singleline)]
    private static partial Regex StyleElement();

    [GeneratedRegex("<[^>]*>")]
    private static partial Regex Tags();

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();
}
