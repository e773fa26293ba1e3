using System.Diagnostics;
using System.Globalization;
using ModelCompression.Common;
using ModelCompression.Diagnostics;

namespace ModelCompression.Stages;

/// <summary>
/// Distils the student once per point of a grid over alpha, temperature and learning rate (what people tune by
/// hand), each trial cached as a distill stage of its own so a changed grid re-runs only new points; the trial
/// with the best validation accuracy continues, and every trial is listed in the report. Feature hints, when
/// given, apply to every trial.
/// </summary>
/// <param name="options">The grid and the training options every trial shares.</param>
/// <param name="recipeLine">The stage's line in the recipe, for errors about its options found once the models are known.</param>
public sealed class SweepStage(SweepOptions options, int recipeLine = 0) : IStage
{
    /// <inheritdoc />
    public string Kind => "sweep";

    /// <inheritdoc />
    public void AddToKey(ContentHash key, StageContext context) => key
        .Add("options", System.Text.Json.JsonSerializer.Serialize(options with { TensorBoardDirectory = null }))
        .Add("teacher", context.TeacherHash)
        .Add("data", context.DataHash);

    /// <inheritdoc />
    public StageResult Run(StageContext context, string inputModel, string outputModel)
    {
        var clock = Stopwatch.StartNew();
        var trials = options.Trials();
        var runs = new List<(DistillOptions Options, CachedStageRun Run, double Accuracy)>();
        foreach (var (trial, number) in trials.Select((t, i) => (t, i + 1)))
        {
            context.CancellationToken.ThrowIfCancellationRequested();
            context.Reporter.Info(string.Create(
                CultureInfo.InvariantCulture,
                $"sweep: trial {number}/{trials.Count}: alpha {trial.Alpha}, T {trial.Temperature}, learning rate {trial.LearningRate}"));
            var run = context.RunStage(new DistillStage(trial, recipeLine), inputModel);
            // Ranked at the report's 4 decimals, as sweeps always were: trials that equal to that precision tie.
            var accuracy = run.Result.Training?.RoundedBestValidationAccuracy
                ?? throw new InvalidOperationException($"sweep: trial {number} has no validation accuracy.");
            runs.Add((trial, run, accuracy));
        }

        // Ties go to the earlier trial, so the choice does not depend on anything but the grid's order. The task says
        // which way the score improves (classification's accuracy up, regression's RMSE down).
        var score = context.Task.ValidationScore;
        var best = runs.Select((r, i) => (r, i)).MaxBy(x => (score.HigherIsBetter ? x.r.Accuracy : -x.r.Accuracy, -x.i)).i;
        File.Copy(runs[best].Run.ModelPath, outputModel);
        var table = runs.Select((r, i) => new SweepTrial(i + 1, r.Options.Alpha, r.Options.Temperature, r.Options.LearningRate, r.Accuracy, i == best)).ToList();
        var winner = runs[best];
        var invariant = CultureInfo.InvariantCulture;
        var details = StageDetails.Of(new SweepDetails(winner.Run.Result.Details, trials.Count, best + 1));
        return new StageResult(
            Kind,
            string.Create(invariant, $"{trials.Count} trials; best alpha {winner.Options.Alpha}, T {winner.Options.Temperature}, learning rate {winner.Options.LearningRate} ({ValidationText(score.Name, winner.Accuracy)})"),
            details,
            winner.Run.Result.EpochLosses,
            clock.Elapsed.TotalSeconds,
            winner.Run.Result.ValidationAccuracies,
            table)
        {
            Training = winner.Run.Result.Training,
        };
    }

    /// <summary>The winner's validation score as the summary gives it: "validation accuracy 91.20 %", "validation rmse 55.61".</summary>
    private static string ValidationText(string metric, double value) =>
        metric == "accuracy" ? string.Create(CultureInfo.InvariantCulture, $"validation accuracy {value:P2}") : string.Create(CultureInfo.InvariantCulture, $"validation {metric} {value:G4}");

    /// <summary>A sweep's details: the winning trial's, then the grid's size and the winner's number.</summary>
    /// <param name="Winner">The winning trial's details, as its distill run reported them.</param>
    /// <param name="Trials">Trials run.</param>
    /// <param name="BestTrial">The 1-based number of the winning trial.</param>
    private sealed record SweepDetails(
        IReadOnlyDictionary<string, string> Winner,
        [property: Detail("trials")] int Trials,
        [property: Detail("best_trial")] int BestTrial);
}
