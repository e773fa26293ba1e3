using ModelCompression.Pipeline;

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

/// <summary>What a stage did, kept with its cached output and shown in reports.</summary>
/// <param name="Stage">The stage kind.</param>
/// <param name="Summary">One line for people.</param>
/// <param name="Details">Named facts (options used, counts), as text.</param>
/// <param name="EpochLosses">Training loss per epoch, for stages that train.</param>
/// <param name="Seconds">Wall time of the stage.</param>
/// <param name="ValidationAccuracies">Accuracy on the validation split after each epoch, for stages that train with one.</param>
/// <param name="Sweep">Every trial of a hyper-parameter sweep, for stages that ran one.</param>
public sealed record StageResult(
    string Stage,
    string Summary,
    IReadOnlyDictionary<string, string> Details,
    IReadOnlyList<double>? EpochLosses,
    double Seconds,
    IReadOnlyList<double>? ValidationAccuracies = null,
    IReadOnlyList<SweepTrial>? Sweep = null);

/// <summary>One trial of a distillation hyper-parameter sweep.</summary>
/// <param name="Trial">The trial's number, from 1.</param>
/// <param name="Alpha">Weight of the soft-target loss against the hard-label loss.</param>
/// <param name="Temperature">Softmax temperature of the soft targets.</param>
/// <param name="LearningRate">The optimizer's peak learning rate.</param>
/// <param name="ValidationAccuracy">The trial's accuracy on the validation split.</param>
/// <param name="Best">True for the trial whose settings the stage kept.</param>
public sealed record SweepTrial(int Trial, double Alpha, double Temperature, double LearningRate, double ValidationAccuracy, bool Best);
