using System.Globalization;
using System.Net;
using System.Text;

namespace ModelCompression.Reports;

/// <summary>Writes one inline SVG element; every text and attribute value is HTML-encoded.</summary>
internal sealed class SvgWriter
{
    private readonly StringBuilder _text = new();

    /// <summary>Starts an SVG of the given pixel size; <paramref name="label"/> is its accessible name.</summary>
    public SvgWriter(double width, double height, string label) =>
        _text.Append(CultureInfo.InvariantCulture, $"<svg width=\"{N(width)}\" height=\"{N(height)}\" viewBox=\"0 0 {N(width)} {N(height)}\" role=\"img\" aria-label=\"{E(label)}\">");

    public void Line(double x1, double y1, double x2, double y2, string cssClass) =>
        _text.Append(CultureInfo.InvariantCulture, $"<line class=\"{cssClass}\" x1=\"{N(x1)}\" y1=\"{N(y1)}\" x2=\"{N(x2)}\" y2=\"{N(y2)}\"/>");

    /// <summary>A rectangle; <paramref name="tooltip"/> becomes an SVG title the browser shows on hover (no script).</summary>
    public void Rect(double x, double y, double width, double height, string fill, string? tooltip = null, string? cssClass = null)
    {
        var classAttribute = cssClass is null ? string.Empty : $" class=\"{cssClass}\"";
        _text.Append(CultureInfo.InvariantCulture, $"<rect{classAttribute} x=\"{N(x)}\" y=\"{N(y)}\" width=\"{N(width)}\" height=\"{N(height)}\" fill=\"{fill}\"");
        CloseWithTooltip("rect", tooltip);
    }

    public void Circle(double x, double y, double radius, string cssClass, string? tooltip = null)
    {
        _text.Append(CultureInfo.InvariantCulture, $"<circle class=\"{cssClass}\" cx=\"{N(x)}\" cy=\"{N(y)}\" r=\"{N(radius)}\"");
        CloseWithTooltip("circle", tooltip);
    }

    public void Polyline(IEnumerable<(double X, double Y)> points, string cssClass) =>
        _text.Append(CultureInfo.InvariantCulture, $"<polyline class=\"{cssClass}\" points=\"{string.Join(' ', points.Select(p => $"{N(p.X)},{N(p.Y)}"))}\"/>");

    /// <summary>Text at a point; <paramref name="anchor"/> is start, middle or end; <paramref name="rotate"/> turns it about the point.</summary>
    public void Text(double x, double y, string text, string cssClass, string anchor = "start", double rotate = 0, string? fill = null)
    {
        var transform = rotate == 0 ? string.Empty : $" transform=\"rotate({N(rotate)} {N(x)} {N(y)})\"";
        var fillAttribute = fill is null ? string.Empty : $" fill=\"{fill}\"";
        _text.Append(CultureInfo.InvariantCulture, $"<text class=\"{cssClass}\" x=\"{N(x)}\" y=\"{N(y)}\" text-anchor=\"{anchor}\"{transform}{fillAttribute}>{E(text)}</text>");
    }

    /// <summary>A horizontal colour gradient usable as <c>fill="url(#id)"</c>.</summary>
    public void HorizontalGradient(string id, IEnumerable<(double Offset, string Colour)> stops)
    {
        _text.Append(CultureInfo.InvariantCulture, $"<defs><linearGradient id=\"{id}\" x1=\"0\" y1=\"0\" x2=\"1\" y2=\"0\">");
        foreach (var (offset, colour) in stops)
        {
            _text.Append(CultureInfo.InvariantCulture, $"<stop offset=\"{N(offset)}\" stop-color=\"{colour}\"/>");
        }

        _text.Append("</linearGradient></defs>");
    }

    public string Finish() => _text.Append("</svg>").ToString();

    /// <summary>A coordinate or size with at most two decimals.</summary>
    private static string N(double value) => value.ToString("0.##", CultureInfo.InvariantCulture);

    private static string E(string text) => WebUtility.HtmlEncode(text);

    private void CloseWithTooltip(string element, string? tooltip) =>
        _text.Append(tooltip is null ? "/>" : $"><title>{E(tooltip)}</title></{element}>");
}

/// <summary>Maps data values to pixels along one axis and chooses its ticks.</summary>
internal abstract class Scale
{
    protected Scale(double pixelStart, double pixelEnd)
    {
        PixelStart = pixelStart;
        PixelEnd = pixelEnd;
    }

    public double PixelStart { get; }

    public double PixelEnd { get; }

    public abstract IReadOnlyList<double> Ticks { get; }

    public abstract double Map(double value);

    public abstract string Label(double tick);

    /// <summary>
    /// A linear axis over [<paramref name="min"/>, <paramref name="max"/>] widened to round ticks (1, 2 or 5
    /// times a power of ten), so tick labels are short and evenly spaced.
    /// </summary>
    public static LinearScale Linear(double min, double max, double pixelStart, double pixelEnd, TickFormat format, double? floor = null, double? ceiling = null)
    {
        if (!(max > min))
        {
            var pad = min == 0 ? 1 : Math.Abs(min) * 0.05;
            (min, max) = (min - pad, max + pad);
        }

        var step = NiceStep((max - min) / 5);
        if (format == TickFormat.Integer)
        {
            step = Math.Max(1, Math.Round(step));
        }

        var low = Math.Floor((min / step) + 1e-9) * step;
        var high = Math.Ceiling((max / step) - 1e-9) * step;
        low = floor is { } f ? Math.Max(low, f) : low;
        high = ceiling is { } c ? Math.Min(high, c) : high;
        return new LinearScale(low, high, step, pixelStart, pixelEnd, format);
    }

    /// <summary>A log10 axis from the decade below <paramref name="min"/> to the decade above <paramref name="max"/> (both positive).</summary>
    public static LogScale Log(double min, double max, double pixelStart, double pixelEnd)
    {
        var low = Math.Floor(Math.Log10(min));
        var high = Math.Max(Math.Ceiling(Math.Log10(max)), low + 1);
        return new LogScale(low, high, pixelStart, pixelEnd);
    }

    /// <summary>The round step (1, 2 or 5 times a power of ten) nearest above <paramref name="rough"/>.</summary>
    private static double NiceStep(double rough)
    {
        var magnitude = Math.Pow(10, Math.Floor(Math.Log10(rough)));
        var normalized = rough / magnitude;
        var nice = normalized <= 1 ? 1 : normalized <= 2 ? 2 : normalized <= 5 ? 5 : 10;
        return nice * magnitude;
    }
}

/// <summary>How an axis writes its tick labels.</summary>
internal enum TickFormat
{
    /// <summary>Plain decimals, as many as the step needs.</summary>
    Number,

    /// <summary>Fractions written as percentages.</summary>
    Percent,

    /// <summary>Whole numbers (epochs).</summary>
    Integer,
}

/// <summary>A linear axis with round ticks.</summary>
internal sealed class LinearScale(double min, double max, double step, double pixelStart, double pixelEnd, TickFormat format) : Scale(pixelStart, pixelEnd)
{
    public override IReadOnlyList<double> Ticks { get; } =
        [.. Enumerable.Range(0, (int)Math.Round((max - min) / step) + 1).Select(i => Math.Round(min + (i * step), 12)).Where(t => t >= min - 1e-12 && t <= max + 1e-12)];

    public override double Map(double value) => PixelStart + ((value - min) / (max - min) * (PixelEnd - PixelStart));

    public override string Label(double tick)
    {
        var invariant = CultureInfo.InvariantCulture;
        return format switch
        {
            TickFormat.Percent => (tick * 100).ToString("F" + Decimals(step * 100).ToString(invariant), invariant) + " %",
            TickFormat.Integer => tick.ToString("0", invariant),
            _ => tick.ToString("F" + Decimals(step).ToString(invariant), invariant),
        };
    }

    private static int Decimals(double step) => Math.Clamp(-(int)Math.Floor(Math.Log10(step) + 1e-9), 0, 10);
}

/// <summary>A log10 axis over whole decades, ticks at 1, 2 and 5 times each power of ten.</summary>
internal sealed class LogScale(double lowExponent, double highExponent, double pixelStart, double pixelEnd) : Scale(pixelStart, pixelEnd)
{
    public override IReadOnlyList<double> Ticks { get; } = [.. DecadeTicks(lowExponent, highExponent)];

    public override double Map(double value) =>
        PixelStart + ((Math.Log10(value) - lowExponent) / (highExponent - lowExponent) * (PixelEnd - PixelStart));

    public override string Label(double tick) => tick.ToString("G4", CultureInfo.InvariantCulture);

    private static IEnumerable<double> DecadeTicks(double low, double high)
    {
        // Beyond four decades the 2 and 5 ticks crowd the axis.
        double[] multiples = high - low > 4 ? [1] : [1, 2, 5];
        for (var exponent = low; exponent <= high; exponent++)
        {
            foreach (var multiple in multiples)
            {
                var tick = multiple * Math.Pow(10, exponent);
                if (Math.Log10(tick) <= high + 1e-9)
                {
                    yield return tick;
                }
            }
        }
    }
}
