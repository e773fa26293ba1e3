using System.Text.Json.Nodes;
using ModelCompression.Diagnostics;
using ModelCompression.Recipes;
using ModelCompression.Reports;

namespace ModelCompression.Core.Tests.Reports;

public sealed class ReportWriterTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Writes_exactly_the_formats_the_recipe_lists_and_html_is_a_view_of_report_json()
    {
        var output = _dir.Dir("out");
        var result = ReportTestData.Run(_dir.File("fashion.compress.yaml"), null, "html", "json");

        var written = ReportWriter.Write(result, output);

        Assert.Equal([Path.Join(output, "fashion.student.report.html"), Path.Join(output, "fashion.student.report.json")], written);
        Assert.Equal(
            ["fashion.student.report.html", "fashion.student.report.json"],
            Directory.GetFiles(output).Select(Path.GetFileName).Order(StringComparer.Ordinal));

        // Rendering the report.json that was written gives the very page that was written.
        var json = JsonNode.Parse(File.ReadAllText(written[1]))!;
        Assert.Equal(4, (int)json["schema_version"]!);
        Assert.Equal(HtmlReport.Render(json), File.ReadAllText(written[0]));
    }

    [Fact]
    public void Rewriting_replaces_each_report_whole()
    {
        var output = _dir.Dir("out");
        var path = _dir.File("fashion.compress.yaml");
        ReportWriter.Write(ReportTestData.Run(path, null, "json", "md", "html"), output);
        var passing = ReportTestData.Run(path, "/out/fashion.student.onnx", "json", "md", "html");
        passing = passing with { Gates = [passing.Gates[0]] };

        ReportWriter.Write(passing, output);

        Assert.Equal(3, Directory.GetFiles(output).Length);
        var json = JsonNode.Parse(File.ReadAllText(Path.Join(output, "fashion.student.report.json")))!;
        Assert.True((bool)json["passed"]!);
        Assert.Equal(MarkdownReport.Render(json), File.ReadAllText(Path.Join(output, "fashion.student.report.md")));
        Assert.Equal(HtmlReport.Render(json), File.ReadAllText(Path.Join(output, "fashion.student.report.html")));
    }

    [Fact]
    public void An_unknown_format_is_refused()
    {
        var report = JsonReport.Build(ReportTestData.Run(), DateTimeOffset.UtcNow);

        var e = Assert.Throws<ArgumentOutOfRangeException>(() => ReportWriter.Render(report, "pdf"));

        Assert.Contains("json, md, html", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Recipes_may_ask_for_html_and_an_unknown_format_names_its_line()
    {
        foreach (var name in new[] { "a.gz", "b.gz", "teacher.onnx" })
        {
            File.WriteAllBytes(_dir.File(name), [0]);
        }

        const string Head = "data:\n  format: idx\n  train: { inputs: a.gz, labels: b.gz }\n  test: { inputs: a.gz, labels: b.gz }\n"
            + "teacher: teacher.onnx\nstudent: { architecture: mlp }\nstages:\n  - distill\n";

        var recipe = RecipeLoader.Load(_dir.Write("ok.compress.yaml", Head + "outputs: { report: [json, md, html] }\n"));
        Assert.Equal(["json", "md", "html"], recipe.Outputs.Reports);

        var e = Assert.Throws<CompressionException>(() => RecipeLoader.Load(_dir.Write("bad.compress.yaml", Head + "outputs:\n  report: [html, pdf]\n")));
        var problem = Assert.Single(e.Diagnostics);
        Assert.Equal(DiagnosticCodes.RecipeInvalidValue, problem.Code);
        Assert.Equal(10, problem.Line);
        Assert.Equal("Report formats: json, md, html.", problem.Message);
    }
}
