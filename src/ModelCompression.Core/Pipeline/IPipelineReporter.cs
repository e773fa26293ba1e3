using ModelCompression.Diagnostics;
using ModelCompression.Torch.Training;

namespace ModelCompression.Pipeline;

/// <summary>Receives what a pipeline run is doing, for a terminal, a CI log or a test.</summary>
public interface IPipelineReporter
{
    /// <summary>A stage starts (or is found in the cache when <paramref name="cached"/>).</summary>
    void StageStarted(string stage, bool cached);

    /// <summary>Training progress inside a stage.</summary>
    void Training(string stage, TrainingProgress progress);

    /// <summary>A plain informational line.</summary>
    void Info(string message);

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
