using System.Globalization;
using ModelCompression.Torch.Training;

namespace ModelCompression.Training;

/// <summary>
/// What a training run did, typed: kept with a stage's cached result so that callers (a sweep ranking its trials,
/// the labels-only twin taking its student's steps) read numbers, not report text.
/// </summary>
/// <param name="Steps">Optimizer steps over the whole run.</param>
/// <param name="StepsPerEpoch">Optimizer steps of one epoch.</param>
/// <param name="EpochsRun">Epochs trained (fewer than asked when early stopping ended the run).</param>
/// <param name="BestEpoch">The 1-based epoch with the best validation accuracy; 0 without a validation set.</param>
/// <param name="BestValidationAccuracy">The best validation accuracy; null without a validation set.</param>
/// <param name="StoppedEarly">True when early stopping ended the run before its last epoch.</param>
/// <param name="ResumedFromEpoch">The epoch of the checkpoint the run resumed from; 0 when it started fresh.</param>
/// <param name="TrainSamples">Samples trained on, an unlabelled pool's included.</param>
/// <param name="UnlabelledSamples">Samples of the unlabelled pool among <paramref name="TrainSamples"/>.</param>
/// <param name="ValidationSamples">Samples of the validation set; 0 without one.</param>
public sealed record TrainingOutcome(
    int Steps,
    int StepsPerEpoch,
    int EpochsRun,
    int BestEpoch,
    double? BestValidationAccuracy,
    bool StoppedEarly,
    int ResumedFromEpoch,
    int TrainSamples,
    int UnlabelledSamples,
    int ValidationSamples)
{
    /// <summary>
    /// The best validation accuracy rounded to 4 decimals, the precision report.json shows and a sweep ranks
    /// trials on (so trials equal to that precision tie, and the earlier one wins); null without a validation set.
    /// </summary>
    /// <remarks>
    /// Rounded through the same "0.0000" formatting the report uses rather than <see cref="Math.Round(double, int)"/>:
    /// the two differ where the double lies just beside a midpoint, and a sweep must pick the trial it always picked.
    /// </remarks>
    public double? RoundedBestValidationAccuracy => BestValidationAccuracy is { } best
        ? double.Parse(best.ToString(ValidationAccuracyFormat, CultureInfo.InvariantCulture), CultureInfo.InvariantCulture)
        : null;

    /// <summary>How reports write a validation accuracy (and the precision sweeps rank on).</summary>
    public const string ValidationAccuracyFormat = "0.0000";

    /// <summary>The outcome of <paramref name="result"/> on these sample counts.</summary>
    public static TrainingOutcome Of(TrainingResult result, int trainSamples, int unlabelledSamples, int validationSamples)
    {
        ArgumentNullException.ThrowIfNull(result);
        return new(
            result.Steps,
            result.StepsPerEpoch,
            result.EpochLosses.Count,
            result.BestEpoch,
            result.BestValidationAccuracy,
            result.StoppedEarly,
            result.ResumedFromEpoch,
            trainSamples,
            unlabelledSamples,
            validationSamples);
    }
}
