using System.Diagnostics;
using System.Globalization;
using ModelCompression.Common;
using ModelCompression.Diagnostics;

namespace ModelCompression.Cli;

/// <summary>
/// Shows a run's progress (training, and the teacher's runs over the data): on a terminal, one line updated in
/// place with percent, loss and ETA; in a CI log or a pipe (or under MSBuild), plain lines at each tenth of a
/// stage and at each epoch's end. Quiet (<c>--quiet</c>) shows diagnostics and warnings only.
/// </summary>
internal sealed class ConsoleReporter(TextWriter output, TextWriter errors, bool interactive, bool quiet = false) : IPipelineReporter
{
    private readonly Stopwatch _sinceLastLine = Stopwatch.StartNew();
    private int _lastTenth = -1;
    private int _lastEpoch;
    private string? _lastTask;
    private bool _lineOpen;

    /// <summary>Called with every diagnostic reported, after it is written (for <c>--json</c>'s record of the run).</summary>
    public Action<Diagnostic>? Recorded { get; init; }

    /// <summary>True when stdout is a terminal and this is not a CI job.</summary>
    public static bool IsInteractive =>
        !Console.IsOutputRedirected && string.IsNullOrEmpty(Environment.GetEnvironmentVariable("CI"));

    public void StageStarted(string stage, bool cached)
    {
        if (quiet)
        {
            return;
        }

        _lastTenth = -1;
        _lastEpoch = 0;
        WriteLine(cached ? $"{stage}: up to date (cached)" : $"{stage}: running");
    }

    public void Training(string stage, TrainingProgressInfo progress)
    {
        if (quiet)
        {
            return;
        }

        var (fraction, eta) = (progress.Fraction, progress.Eta);
        var validation = progress.ValidationAccuracy switch
        {
            null => string.Empty,
            { } accuracy when progress.ValidationMetric == "accuracy" => string.Create(CultureInfo.InvariantCulture, $" val {accuracy:P1}"),
            { } score => string.Create(CultureInfo.InvariantCulture, $" val {progress.ValidationMetric} {score:G4}"),
        };
        var line = string.Create(
            CultureInfo.InvariantCulture,
            $"{stage}: epoch {progress.Epoch}/{progress.Epochs} {fraction,4:P0} loss {progress.Loss:0.0000} lr {progress.LearningRate:0.###e0}{validation} ETA {eta:hh\\:mm\\:ss}");
        if (interactive)
        {
            // Redraw at most ~10 times a second.
            if (_sinceLastLine.ElapsedMilliseconds > 100 || progress.Step == progress.TotalSteps)
            {
                output.Write($"\r{line,-99}");
                _lineOpen = true;
                _sinceLastLine.Restart();
            }

            return;
        }

        var tenth = (int)(fraction * 10);
        var epochDone = progress.Epoch != _lastEpoch && _lastEpoch != 0;
        if (tenth != _lastTenth || epochDone)
        {
            _lastTenth = tenth;
            output.WriteLine(line);
        }

        _lastEpoch = progress.Epoch;
    }

    public void Progress(string task, double fraction, TimeSpan elapsed)
    {
        if (quiet)
        {
            return;
        }

        var eta = fraction > 0 ? TimeSpan.FromSeconds(elapsed.TotalSeconds / fraction * (1 - fraction)) : TimeSpan.Zero;
        var line = string.Create(CultureInfo.InvariantCulture, $"{task}: {fraction,4:P0} ETA {eta:hh\\:mm\\:ss}");
        if (task != _lastTask)
        {
            _lastTask = task;
            _lastTenth = -1;
        }

        if (interactive)
        {
            if (_sinceLastLine.ElapsedMilliseconds > 100 || fraction >= 1)
            {
                output.Write($"\r{line,-99}");
                _lineOpen = true;
                _sinceLastLine.Restart();
            }

            return;
        }

        var tenth = (int)(fraction * 10);
        if (tenth != _lastTenth)
        {
            _lastTenth = tenth;
            output.WriteLine(line);
        }
    }

    public void Info(string message)
    {
        // The engine's few warnings that carry no code still reach a quiet run.
        if (!quiet || message.StartsWith("Warning", StringComparison.Ordinal))
        {
            WriteLine(message);
        }
    }

    public void Report(Diagnostic diagnostic)
    {
        CloseLine();
        errors.WriteLine(diagnostic.ToString());
        Recorded?.Invoke(diagnostic);
    }

    private void WriteLine(string text)
    {
        CloseLine();
        output.WriteLine(text);
    }

    private void CloseLine()
    {
        if (_lineOpen)
        {
            output.WriteLine();
            _lineOpen = false;
        }
    }
}
