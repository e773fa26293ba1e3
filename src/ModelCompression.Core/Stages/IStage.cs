using ModelCompression.Common;

namespace ModelCompression.Stages;

/// <summary>
/// One pipeline step: a pure function from an input model (and the run's data) to a new model file.
/// It never changes its input; its output is cached under a key of everything it depends on.
/// </summary>
public interface IStage
{
    /// <summary>The stage kind as written in recipes ("distill").</summary>
    string Kind { get; }

    /// <summary>Adds what the output depends on, beyond the input model's hash, to the cache key.</summary>
    void AddToKey(ContentHash key, StageContext context);

    /// <summary>Reads <paramref name="inputModel"/>, writes <paramref name="outputModel"/>.</summary>
    StageResult Run(StageContext context, string inputModel, string outputModel);
}
