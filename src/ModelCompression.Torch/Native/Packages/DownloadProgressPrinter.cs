using System.Globalization;

namespace ModelCompression.Torch.Native.Packages;

/// <summary>
/// Shows a package download: on a terminal one line rewritten in place (percent, MB, speed, time left), in a log
/// or a pipe a plain line at each tenth (each 16 MB when the size is unknown) and at the end.
/// </summary>
/// <param name="output">Where the lines go.</param>
/// <param name="interactive">True for a terminal (the line is rewritten with a carriage return).</param>
public sealed class DownloadProgressPrinter(TextWriter output, bool interactive) : IProgress<DownloadProgress>
{
    // Decimal megabytes, as package galleries show sizes.
    private const double MB = 1_000_000;
    private const long UnknownSizeStep = 16_000_000;

    private TimeSpan _lastRedraw = TimeSpan.FromSeconds(-1);
    private long _lastStep = -1;
    private int _width;
    private bool _done;
    private bool _started;

    /// <inheritdoc/>
    public void Report(DownloadProgress value)
    {
        var complete = value.Total is { } total && value.Received >= total;
        if (_done)
        {
            return;
        }

        if (!_started)
        {
            _started = true;
            output.WriteLine($"Fetching {value.PackageId} {value.Version} from {value.Source}");
            if (value.Received == 0)
            {
                output.Flush();
                return;
            }
        }

        if (interactive)
        {
            // A redraw per 100 ms of the download: faster only flickers and costs the terminal.
            if (!complete && value.Elapsed - _lastRedraw < TimeSpan.FromMilliseconds(100))
            {
                return;
            }

            _lastRedraw = value.Elapsed;
            var line = Describe(value);
            output.Write('\r' + line.PadRight(_width));
            _width = Math.Max(_width, line.Length);
            if (complete)
            {
                output.WriteLine();
            }
        }
        else
        {
            var step = value.Total is { } size && size > 0 ? value.Received * 10 / size : value.Received / UnknownSizeStep;
            if (step == _lastStep && !complete)
            {
                return;
            }

            _lastStep = step;
            output.WriteLine(Describe(value));
        }

        _done = complete;
        output.Flush();
    }

    /// <summary>One progress line, e.g. "libtorch-cpu-linux-x64 2.10.0: 45% of 128.2 MB (57.7 MB), 20.1 MB/s, 3 s left".</summary>
    public static string Describe(DownloadProgress value)
    {
        var seconds = value.Elapsed.TotalSeconds;
        var rate = seconds > 0 ? value.Received / MB / seconds : 0;
        var received = value.Received / MB;
        if (value.Total is not { } total || total <= 0)
        {
            return string.Create(CultureInfo.InvariantCulture, $"{value.PackageId} {value.Version}: {received:F1} MB, {rate:F1} MB/s");
        }

        var fraction = Math.Min(1.0, (double)value.Received / total);
        var text = string.Create(CultureInfo.InvariantCulture, $"{value.PackageId} {value.Version}: {fraction * 100,3:F0}% of {total / MB:F1} MB ({received:F1} MB), {rate:F1} MB/s");
        if (fraction >= 1)
        {
            return text + string.Create(CultureInfo.InvariantCulture, $", done in {seconds:F1} s");
        }

        return fraction > 0 && seconds > 0
            ? text + string.Create(CultureInfo.InvariantCulture, $", {Math.Ceiling(seconds / fraction * (1 - fraction)):F0} s left")
            : text;
    }
}
