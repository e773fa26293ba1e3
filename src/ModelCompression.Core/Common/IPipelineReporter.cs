using ModelCompression.Diagnostics;

namespace ModelCompression.Common;

/// <summary>Receives what a pipeline run is doing, for a terminal, a CI log or a test.</summary>
public interface IPipelineReporter
{
    /// <summary>A stage starts (or is found in the cache when <paramref name="cached"/>).</summary>
    void StageStarted(string stage, bool cached);

    /// <summary>Training progress inside a stage.</summary>
    void Training(string stage, TrainingProgressInfo progress);

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

/// <summary>
/// Where a stage's training is, for progress display: the engine's own record of it, so that front ends need no
/// training library's types.
/// </summary>
/// <param name="Epoch">1-based epoch.</param>
/// <param name="Epochs">Total epochs.</param>
/// <param name="Step">Steps done so far over the whole run.</param>
/// <param name="TotalSteps">Steps the whole run takes.</param>
/// <param name="Loss">Mean loss of the current epoch so far.</param>
/// <param name="Elapsed">Time since the run (or its resumption) started.</param>
/// <param name="LearningRate">The learning rate of the last step.</param>
/// <param name="ValidationAccuracy">
/// The task's validation score after the last finished epoch (classification: accuracy; regression: RMSE); null
/// without a validation set.
/// </param>
/// <param name="ValidationMetric">What <paramref name="ValidationAccuracy"/> is: "accuracy" (a share) or the task's score name ("rmse").</param>
public sealed record TrainingProgressInfo(
    int Epoch,
    int Epochs,
    int Step,
    int TotalSteps,
    double Loss,
    TimeSpan Elapsed,
    double LearningRate,
    double? ValidationAccuracy,
    string ValidationMetric = "accuracy")
{
    /// <summary>The share of the run's steps done, 0 to 1.</summary>
    public double Fraction => (double)Step / TotalSteps;

    /// <summary>Time left at the pace so far; zero before the first step.</summary>
    public TimeSpan Eta => Step > 0 ? TimeSpan.FromSeconds(Elapsed.TotalSeconds / Fraction * (1 - Fraction)) : TimeSpan.Zero;
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
    public void Training(string stage, TrainingProgressInfo progress)
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

/// <summary>
/// Forwards (done, total) counts to <see cref="IPipelineReporter.Progress"/> as a fraction, synchronously, with the time
/// since it was made; <paramref name="task"/> gets the total (e.g. "the teacher answers {0} prompts").
/// </summary>
internal sealed class ReporterCountProgress(IPipelineReporter reporter, string task) : IProgress<(int Done, int Total)>
{
    private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();

    public void Report((int Done, int Total) value)
    {
        if (value.Total > 0)
        {
            reporter.Progress(string.Format(System.Globalization.CultureInfo.InvariantCulture, task, value.Total), value.Done / (double)value.Total, _clock.Elapsed);
        }
    }
}
