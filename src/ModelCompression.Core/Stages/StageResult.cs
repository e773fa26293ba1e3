using ModelCompression.Training;

namespace ModelCompression.Stages;

/// <summary>What a stage did, kept with its cached output and shown in reports.</summary>
/// <param name="Stage">The stage kind.</param>
/// <param name="Summary">One line for people.</param>
/// <param name="Details">Named facts (options used, counts), as text.</param>
/// <param name="EpochLosses">Training loss per epoch, for stages that train.</param>
/// <param name="Seconds">Wall time of the stage.</param>
/// <param name="ValidationAccuracies">Validation accuracy per epoch, for stages that train with a validation split.</param>
/// <param name="Sweep">Every trial of a sweep, in grid order.</param>
public sealed record StageResult(
    string Stage,
    string Summary,
    IReadOnlyDictionary<string, string> Details,
    IReadOnlyList<double>? EpochLosses,
    double Seconds,
    IReadOnlyList<double>? ValidationAccuracies = null,
    IReadOnlyList<SweepTrial>? Sweep = null)
{
    /// <summary>What training did (steps, epochs, validation, samples), for stages that train through the training flow; null otherwise.</summary>
    public TrainingOutcome? Training { get; init; }
}

/// <summary>One trial of a sweep.</summary>
/// <param name="Trial">1-based trial number in grid order.</param>
/// <param name="Alpha">Weight of the teacher's soft targets.</param>
/// <param name="Temperature">Softening temperature.</param>
/// <param name="LearningRate">Peak learning rate.</param>
/// <param name="ValidationAccuracy">Best validation accuracy of the trial.</param>
/// <param name="Best">Whether this trial continued.</param>
public sealed record SweepTrial(int Trial, double Alpha, double Temperature, double LearningRate, double ValidationAccuracy, bool Best);
