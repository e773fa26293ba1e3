using ModelCompression.Diagnostics;
using ModelCompression.Torch.Training;

namespace ModelCompression.Common;

/// <summary>Receives what a pipeline run is doing, for a terminal, a CI log or a test.</summary>
public interface IPipelineReporter
{
    /// <summary>A stage starts (or is found in the cache when <paramref name="cached"/>).</summary>
    void StageStarted(string stage, bool cached);

    /// <summary>Training progress inside a stage.</summary>
    void Training(string stage, TrainingProgress progress);

    /// <summary>A plain informational line.</summary>
    void Info(string message);

    /// <summary>
    /// Progress of a long step that is not training (running the teacher over the data): the fraction done and the
    /// time so far. Reporters that show no progress need not implement it.
    /// </summary>
    void Progress(string task, double fraction, TimeSpan elapsed)
    {
    }

    /// <summary>A warning or error that does not stop the run by itself.</summary>
    void Report(Diagnostic diagnostic);
}

/// <summary>A reporter that discards everything.</summary>
public sealed class NullPipelineReporter : IPipelineReporter
{
    /// <summary>The shared instance.</summary>
    public static NullPipelineReporter Instance { get; } = new();

    /// <inheritdoc />
    public void StageStarted(string stage, bool cached)
    {
    }

    /// <inheritdoc />
    public void Training(string stage, TrainingProgress progress)
    {
    }

    /// <inheritdoc />
    public void Info(string message)
    {
    }

    /// <inheritdoc />
    public void Report(Diagnostic diagnostic)
    {
    }
}

/// <summary>Forwards an <see cref="IProgress{T}"/> fraction to <see cref="IPipelineReporter.Progress"/>, synchronously, with the time since it was made.</summary>
internal sealed class ReporterProgress(IPipelineReporter reporter, string task) : IProgress<double>
{
    private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();

    public void Report(double value) => reporter.Progress(task, value, _clock.Elapsed);
}
