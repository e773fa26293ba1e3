using System.Globalization;

namespace ModelCompression.Reports;

/// <summary>A labelled point of a scatter chart.</summary>
/// <param name="Label">Shown next to the point.</param>
/// <param name="X">Horizontal value.</param>
/// <param name="Y">Vertical value.</param>
/// <param name="Kind">"teacher", "stage" or "final": chooses the marker's colour.</param>
/// <param name="Tooltip">Shown on hover.</param>
internal sealed record ChartPoint(string Label, double X, double Y, string Kind, string Tooltip);

/// <summary>The report's charts as inline SVG: no script, no external resource.</summary>
internal static class Charts
{
    private const double LabelHeight = 14;

    /// <summary>Approximate width of a 12 px label character, to keep point labels from overlapping.</summary>
    private const double LabelCharWidth = 7;

    /// <summary>Approximate width of an 11 px tick label character, to size the margins class names need.</summary>
    private const double TickCharWidth = 6.5;

    /// <summary>Longer class names are cut for tick labels, so one long name does not squeeze the heat map off the page.</summary>
    private const int MaxTickChars = 18;

    /// <summary>
    /// The headline metric (vertical; accuracy unless <paramref name="metric"/> says otherwise) against model size (horizontal) for the teacher and each stage, joined in
    /// pipeline order. The size axis is logarithmic when sizes span a factor of ten or more (a quantized
    /// student next to its teacher), linear from zero otherwise.
    /// </summary>
    /// <param name="points">One per model.</param>
    /// <param name="metric">The vertical axis's metric title.</param>
    /// <param name="fraction">True for a fraction in [0, 1] drawn as percentages; false for a plain number (an error, from zero up).</param>
    public static string AccuracyVsSize(IReadOnlyList<ChartPoint> points, string metric = "accuracy", bool fraction = true)
    {
        const double Width = 760, Height = 400, Left = 70, Right = 160, Top = 20, Bottom = 56;
        var minSize = points.Min(p => p.X);
        var maxSize = points.Max(p => p.X);
        Scale x = minSize > 0 && maxSize / minSize >= 10
            ? Scale.Log(minSize, maxSize, Left, Width - Right)
            : Scale.Linear(0, maxSize * 1.05, Left, Width - Right, TickFormat.Number, floor: 0);
        var y = fraction
            ? Scale.Linear(points.Min(p => p.Y) - 0.01, points.Max(p => p.Y) + 0.01, Height - Bottom, Top, TickFormat.Percent, floor: 0, ceiling: 1)
            : Scale.Linear(0, points.Max(p => p.Y) * 1.05, Height - Bottom, Top, TickFormat.Number, floor: 0);

        var svg = new SvgWriter(Width, Height, $"{char.ToUpperInvariant(metric[0])}{metric[1..]} against model size");
        Axes(svg, x, y, x is LogScale ? "model size (MB, log scale)" : "model size (MB)", metric);
        svg.Polyline(points.Select(p => (x.Map(p.X), y.Map(p.Y))), "trajectory");
        var placed = new List<(double X, double Y, double Width)>();
        foreach (var point in points)
        {
            var px = x.Map(point.X);
            var py = y.Map(point.Y);
            svg.Circle(px, py, point.Kind == "final" ? 7 : 5, "point " + point.Kind, point.Tooltip);
            var (labelX, labelY) = PlaceLabel(placed, px + 10, py + 4, point.Label.Length * LabelCharWidth);
            svg.Text(labelX, labelY, point.Label, "point-label");
        }

        return svg.Finish();
    }

    /// <summary>One value per epoch (loss or validation accuracy) as a line with a marker per epoch.</summary>
    public static string PerEpoch(IReadOnlyList<double> values, string title, bool percent)
    {
        const double Width = 460, Height = 260, Left = 64, Right = 16, Top = 16, Bottom = 48;
        var x = Scale.Linear(1, Math.Max(values.Count, 2), Left, Width - Right, TickFormat.Integer, floor: 1);
        var y = percent
            ? Scale.Linear(values.Min() - 0.005, values.Max() + 0.005, Height - Bottom, Top, TickFormat.Percent, floor: 0, ceiling: 1)
            : Scale.Linear(Math.Min(0, values.Min()), values.Max(), Height - Bottom, Top, TickFormat.Number);
        var svg = new SvgWriter(Width, Height, title);
        Axes(svg, x, y, "epoch", title);
        var points = values.Select((v, i) => (X: x.Map(i + 1), Y: y.Map(v))).ToList();
        svg.Polyline(points, "curve");
        for (var i = 0; i < points.Count; i++)
        {
            var text = percent ? ReportFormat.Percent(values[i]) : ReportFormat.Plain(values[i]);
            svg.Circle(points[i].X, points[i].Y, 3, "curve-point", $"epoch {(i + 1).ToString(CultureInfo.InvariantCulture)}: {text}");
        }

        return svg.Finish();
    }

    /// <summary>
    /// A confusion matrix as a heat map: rows are true classes, columns predicted ones, each cell shaded by
    /// its share of the true class (so a rare class's errors are as visible as a common one's), with its
    /// count written in when the cells are large enough to hold it. Classes are labelled with
    /// <paramref name="names"/> (the predicted ones turned upright, the margins as wide as the longest) or by number.
    /// </summary>
    public static string ConfusionMatrix(IReadOnlyList<IReadOnlyList<double>> counts, IReadOnlyList<string>? names = null)
    {
        var classes = counts.Count;
        var cell = Math.Clamp(Math.Floor(480.0 / classes), 6, 44);
        var showCounts = cell >= 24;
        const double LegendGap = 36, LegendHeight = 14;
        string Label(int i) => ReportJson.ClassLabel(names, i);
        string Tick(int i) => names is null ? Label(i) : Shorten(Label(i));
        var tickWidth = names is null ? 0 : Enumerable.Range(0, classes).Max(i => Tick(i).Length) * TickCharWidth;
        double left = Math.Max(64, 34 + tickWidth), top = names is null ? 40 : 28 + tickWidth;
        var size = cell * classes;
        var width = Math.Max(left + size + 16, left + 260);
        var height = top + size + LegendGap + LegendHeight + 40;
        var svg = new SvgWriter(width, height, "Confusion matrix");
        svg.HorizontalGradient("heat", HeatStops.Select(s => (s.Offset, Hex(s.Rgb))));

        var labelEvery = (int)Math.Ceiling(14 / cell);
        svg.Text(left + (size / 2), 14, "predicted class", "axis-title", "middle");
        svg.Text(16, top + (size / 2), "true class", "axis-title", "middle", rotate: -90);
        for (var i = 0; i < classes; i++)
        {
            if (i % labelEvery == 0)
            {
                var tick = Tick(i);
                if (names is null)
                {
                    svg.Text(left + ((i + 0.5) * cell), top - 6, tick, "tick", "middle");
                }
                else
                {
                    svg.Text(left + ((i + 0.5) * cell) + 4, top - 6, tick, "tick", rotate: -90);
                }

                svg.Text(left - 6, top + ((i + 0.5) * cell) + 4, tick, "tick", "end");
            }
        }

        for (var row = 0; row < classes; row++)
        {
            var total = counts[row].Sum();
            for (var column = 0; column < classes; column++)
            {
                var count = counts[row][column];
                var share = total > 0 ? count / total : 0;
                var countText = count.ToString("0", CultureInfo.InvariantCulture);
                var tooltip = $"true {Label(row)}, predicted {Label(column)}: {countText} ({ReportFormat.Percent(share)} of class {Label(row)})";
                var (x, y) = (left + (column * cell), top + (row * cell));
                svg.Rect(x, y, cell, cell, Hex(Heat(share)), tooltip, "cell");
                if (showCounts)
                {
                    svg.Text(x + (cell / 2), y + (cell / 2) + 4, countText, "cell-count", "middle", fill: share > 0.5 ? "#ffffff" : "#111827");
                }
            }
        }

        var legendTop = top + size + LegendGap;
        svg.Rect(left, legendTop, 200, LegendHeight, "url(#heat)", cssClass: "legend");
        svg.Text(left, legendTop + LegendHeight + 14, "0 %", "tick");
        svg.Text(left + 200, legendTop + LegendHeight + 14, "100 % of the true class", "tick", "end");
        return svg.Finish();
    }

    /// <summary>A class name short enough for a tick label; the cells' tooltips have it whole.</summary>
    private static string Shorten(string name) =>
        name.Length <= MaxTickChars ? name : string.Concat(name.AsSpan(0, MaxTickChars - 1), "…");

    /// <summary>Colour stops from white through blue to dark navy; enough contrast for counts on top.</summary>
    private static readonly (double Offset, (int R, int G, int B) Rgb)[] HeatStops =
        [(0, (247, 251, 255)), (0.5, (66, 146, 198)), (1, (8, 48, 107))];

    private static (int R, int G, int B) Heat(double share)
    {
        share = Math.Clamp(share, 0, 1);
        for (var i = 1; i < HeatStops.Length; i++)
        {
            if (share <= HeatStops[i].Offset)
            {
                var (low, high) = (HeatStops[i - 1], HeatStops[i]);
                var t = (share - low.Offset) / (high.Offset - low.Offset);
                return (Mix(low.Rgb.R, high.Rgb.R, t), Mix(low.Rgb.G, high.Rgb.G, t), Mix(low.Rgb.B, high.Rgb.B, t));
            }
        }

        return HeatStops[^1].Rgb;
    }

    private static int Mix(int a, int b, double t) => (int)Math.Round(a + ((b - a) * t));

    private static string Hex((int R, int G, int B) rgb) => $"#{rgb.R:x2}{rgb.G:x2}{rgb.B:x2}";

    /// <summary>Grid lines, ticks with labels and axis titles of a plot area bounded by the two scales.</summary>
    private static void Axes(SvgWriter svg, Scale x, Scale y, string xTitle, string yTitle)
    {
        foreach (var tick in y.Ticks)
        {
            var py = y.Map(tick);
            svg.Line(x.PixelStart, py, x.PixelEnd, py, "grid");
            svg.Text(x.PixelStart - 6, py + 4, y.Label(tick), "tick", "end");
        }

        foreach (var tick in x.Ticks)
        {
            var px = x.Map(tick);
            svg.Line(px, y.PixelStart, px, y.PixelEnd, "grid");
            svg.Line(px, y.PixelStart, px, y.PixelStart + 5, "axis");
            svg.Text(px, y.PixelStart + 18, x.Label(tick), "tick", "middle");
        }

        svg.Line(x.PixelStart, y.PixelStart, x.PixelEnd, y.PixelStart, "axis");
        svg.Line(x.PixelStart, y.PixelStart, x.PixelStart, y.PixelEnd, "axis");
        svg.Text((x.PixelStart + x.PixelEnd) / 2, y.PixelStart + 40, xTitle, "axis-title", "middle");
        svg.Text(16, (y.PixelStart + y.PixelEnd) / 2, yTitle, "axis-title", "middle", rotate: -90);
    }

    /// <summary>The first free slot for a label, trying below and above the preferred position in turn.</summary>
    private static (double X, double Y) PlaceLabel(List<(double X, double Y, double Width)> placed, double x, double y, double width)
    {
        double[] offsets = [0, LabelHeight, -LabelHeight, 2 * LabelHeight, -2 * LabelHeight, 3 * LabelHeight];
        var chosen = y;
        foreach (var offset in offsets)
        {
            var candidate = y + offset;
            if (!placed.Any(p => Math.Abs(p.Y - candidate) < LabelHeight && x < p.X + p.Width && p.X < x + width))
            {
                chosen = candidate;
                break;
            }
        }

        placed.Add((x, chosen, width));
        return (x, chosen);
    }
}
