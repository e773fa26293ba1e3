using System.Globalization;
using ModelCompression.Evaluation;
using ModelCompression.Stages;

namespace ModelCompression.Pipeline;

/// <summary>A labels-only twin as trained (or taken from the cache) and evaluated.</summary>
/// <param name="Evaluation">The twin's evaluation.</param>
/// <param name="Result">How it was trained (its optimizer steps in the training outcome).</param>
/// <param name="Gain">What the teacher added over the twin, as the task measures it (classification: accuracy points).</param>
internal sealed record TwinRun(ModelEvaluation Evaluation, StageResult Result, double? Gain);

/// <summary>
/// The seeds' comparison: a distilled student's labels-only twin (the same student, budget and seed on the labels
/// alone), trained and evaluated beside it, so the report can say what the teacher added.
/// </summary>
internal sealed class LabelsOnlyTwin(StageRunner runner, StageContext context, Evaluations evaluations, HashMemo hashes)
{
    /// <summary>
    /// The twin of the stage <paramref name="descriptor"/> describes, with <paramref name="options"/>, whose run on
    /// <paramref name="inputPath"/> gave <paramref name="student"/> (evaluated as <paramref name="studentEvaluation"/>);
    /// null when the stage has none (the descriptor says: for distill, alpha 0 or baseline: false means none).
    /// </summary>
    public TwinRun? For(IStageDescriptor descriptor, object options, CachedStageRun student, ModelEvaluation studentEvaluation, string inputPath, string inputHash)
    {
        if (descriptor.LabelsOnlyTwin(options, student.Result) is not { } stage)
        {
            return null;
        }

        var twin = runner.Run(context, stage, inputPath, inputHash, "baseline");
        var evaluation = evaluations.Of("baseline", twin.ModelPath, hashes.Model(twin.ModelPath));
        var gain = context.Task.Gain(studentEvaluation, evaluation);
        context.Reporter.Info($"{descriptor.Kind}: {Summary(studentEvaluation, student.Result, evaluation, twin.Result, gain ?? double.NaN)}");
        return new TwinRun(evaluation, twin.Result, gain);
    }

    /// <summary>
    /// The log line of a twin: its accuracy, the <paramref name="gain"/> (the task's), and both step counts, said
    /// plainly when they differ (early stopping may end either run sooner; each stops on its own validation accuracy).
    /// </summary>
    internal static string Summary(ModelEvaluation student, StageResult studentRun, ModelEvaluation twin, StageResult twinRun, double gain)
    {
        var (studentSteps, twinSteps) = (studentRun.Training?.Steps, twinRun.Training?.Steps);
        var steps = studentSteps == twinSteps
            ? $"both {studentSteps} optimizer steps"
            : $"{twinSteps} optimizer steps against the student's {studentSteps}, not the same budget: {StoppedEarly("the twin", twinRun)}{StoppedEarly("the student", studentRun)}".TrimEnd(' ', ';', ':');
        return string.Create(
            CultureInfo.InvariantCulture,
            $"the labels-only twin reaches {twin.Accuracy:P2} ({steps}); gain from distillation {gain * 100:+0.00;-0.00} points{(gain <= 0 ? " (distillation did not help this student)" : "")}");

        static string StoppedEarly(string who, StageResult run) =>
            run.Training is { StoppedEarly: true } outcome ? $"early stopping ended {who} after epoch {outcome.EpochsRun}; " : "";
    }
}
