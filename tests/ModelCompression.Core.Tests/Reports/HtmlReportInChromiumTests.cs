using System.Text.Json.Nodes;
using ModelCompression.Reports;

namespace ModelCompression.Core.Tests.Reports;

/// <summary>
/// The acceptance check: report.html opens in a real browser (headless Chromium) and the rendered
/// page shows the numbers of report.json. Fails, never skips, when Chromium is missing.
/// </summary>
[Trait("Category", "Slow")] // starts headless Chromium
public sealed class HtmlReportInChromiumTests : IDisposable
{
    private const int Width = 1280;
    private const int Height = 2400;

    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void The_html_report_renders_in_headless_chromium_with_the_numbers_of_report_json()
    {
        var chromium = HeadlessChromium.Find(_dir.Path);
        var output = _dir.Dir("out");
        var written = ReportWriter.Write(ReportTestData.Run(_dir.File("fashion.compress.yaml"), null, "json", "html"), output);
        var (jsonFile, htmlFile) = (written[0], written[1]);

        // The schema-v2 measurements the evaluation does not produce on its own yet (confusion matrix,
        // per-class metrics, interval, latency) are added to report.json, and the page re-rendered from it.
        var report = ReportTestData.WithMeasurements(JsonNode.Parse(File.ReadAllText(jsonFile))!.AsObject());
        File.WriteAllText(jsonFile, ReportWriter.Render(report, "json"));
        var html = ReportWriter.Render(JsonNode.Parse(File.ReadAllText(jsonFile))!, "html");
        File.WriteAllText(htmlFile, html);

        var dom = chromium.DumpDom(htmlFile);
        var text = HtmlReportTests.VisibleText(dom);
        Assert.Contains("GATE FAILED", text, StringComparison.Ordinal);
        foreach (var expected in new[] { "91.90 %", "0.407", "87.02 %", "0.204", "86.55 %", "0.103", "86.12 %", "0.0261", "85.58 – 86.65 %" })
        {
            Assert.Contains(expected, text, StringComparison.Ordinal);
        }

        var evaluations = report["stages"]!.AsArray().Select(s => s!["evaluation"]!).Prepend(report["teacher"]!).ToList();
        foreach (var evaluation in evaluations)
        {
            Assert.Contains(((double)evaluation["accuracy"]!).ToString("P2", System.Globalization.CultureInfo.InvariantCulture), text, StringComparison.Ordinal);
            Assert.Contains(ReportFormat.Significant((double)evaluation["size_mb"]!), text, StringComparison.Ordinal);
        }

        foreach (var gate in report["gates"]!.AsArray())
        {
            Assert.Contains((string)gate!["message"]!, text, StringComparison.Ordinal);
        }

        // The browser parsed the inline SVG charts: scatter, heat map, three training curves.
        Assert.Equal(5, System.Text.RegularExpressions.Regex.Count(dom, "<svg "));

        var screenshot = _dir.File("report.png");
        chromium.Screenshot(htmlFile, screenshot, Width, Height);
        Assert.True(File.Exists(screenshot), "chromium wrote no screenshot");
        var png = File.ReadAllBytes(screenshot);
        Assert.Equal((Width, Height), PngImage.ReadSize(png));
        var image = PngImage.Decode(png);

        // The failed-run header is drawn in its red, and the page is not a blank single colour.
        Assert.True(Near(image.Pixel(4, 4), (0xb9, 0x1c, 0x1c), 2), $"header pixel {image.Pixel(4, 4)}");
        var colours = new HashSet<(byte, byte, byte)>();
        var white = 0;
        var samples = 0;
        for (var y = 0; y < Height; y += 7)
        {
            for (var x = 0; x < Width; x += 7)
            {
                var pixel = image.Pixel(x, y);
                colours.Add(pixel);
                white += pixel == (255, 255, 255) ? 1 : 0;
                samples++;
            }
        }

        Assert.True(colours.Count >= 50, $"only {colours.Count} distinct colours in the screenshot");
        Assert.True(white < samples * 0.97, $"{white} of {samples} sampled pixels are white");

        // The heat map's diagonal cell of class 0 is on screen in the colour the page gave it.
        var diagonalFill = System.Xml.Linq.XDocument.Parse(html[html.IndexOf("<html", StringComparison.Ordinal)..])
            .Descendants("rect").First(r => (string?)r.Attribute("class") == "cell").Attribute("fill")!.Value;
        var target = (Convert.ToByte(diagonalFill[1..3], 16), Convert.ToByte(diagonalFill[3..5], 16), Convert.ToByte(diagonalFill[5..7], 16));
        Assert.True(Found(image, target), $"no pixel of the heat map colour {diagonalFill} in the screenshot");
    }

    private static bool Near((byte R, byte G, byte B) pixel, (int R, int G, int B) expected, int tolerance) =>
        Math.Abs(pixel.R - expected.R) <= tolerance && Math.Abs(pixel.G - expected.G) <= tolerance && Math.Abs(pixel.B - expected.B) <= tolerance;

    private static bool Found(PngImage image, (byte R, byte G, byte B) colour)
    {
        for (var y = 0; y < image.Height; y++)
        {
            for (var x = 0; x < image.Width; x++)
            {
                if (Near(image.Pixel(x, y), colour, 2))
                {
                    return true;
                }
            }
        }

        return false;
    }
}
