using System.Diagnostics;
using System.Globalization;
using ModelCompression.Common;
using ModelCompression.Diagnostics;
using ModelCompression.Factorization;
using ModelCompression.Onnx;
using ModelCompression.Pruning;

namespace ModelCompression.Stages;

/// <summary>
/// Splits large MatMul/Gemm weights into two low-rank factors by truncated SVD (rank by kept energy or a
/// parameter budget; weights that would not shrink stay whole), then fine-tunes the factors, optionally with the
/// teacher's soft targets. The output is accepted only after <see cref="TransformedModelCheck"/> passes.
/// </summary>
public sealed class FactorizeStage(FactorizeOptions options) : IStage
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    /// <inheritdoc />
    public string Kind => "factorize";

    /// <inheritdoc />
    public void AddToKey(ContentHash key, StageContext context) => StageCatalog.Get(Kind).AddToKey(key, options, context);

    /// <inheritdoc />
    public StageResult Run(StageContext context, string inputModel, string outputModel)
    {
        var clock = Stopwatch.StartNew();
        var source = OnnxModelFile.Load(inputModel);
        var rank = new RankChoice(options.Energy, options.RankRatio, options.ParamsRatio);
        var (factorized, report) = LowRankFactorizer.Factorize(source, rank, new NameFilter(options.Exclude));
        if (report.Factorized.Count == 0)
        {
            context.Reporter.Report(Diagnostic.Warning(
                DiagnosticCodes.NothingToTransform,
                $"factorize: no weight shrinks at this rank ({string.Join("; ", report.Skipped)}); the model stays as it was.",
                inputModel));
        }

        var settings = options.Recovery(report.Factorized.Count == 0 ? 0 : options.Epochs);
        var (trained, training, _) = RecoveryTraining.Run(this, context, inputModel, factorized, settings);
        OnnxModelFile.Save(trained, outputModel);
        TransformedModelCheck.Verify(outputModel, context, Kind);

        var details = new Dictionary<string, string>
        {
            ["rule"] = options.RankRatio > 0 ? $"rank_ratio {options.RankRatio.ToString(Invariant)}"
                : options.ParamsRatio > 0 ? $"params_ratio {options.ParamsRatio.ToString(Invariant)}"
                : $"energy {options.Energy.ToString(Invariant)}",
            ["epochs"] = settings.Epochs.ToString(Invariant),
            ["alpha"] = options.Alpha.ToString(Invariant),
            ["recovery_teacher"] = options.RecoveryTeacher.ToString().ToLowerInvariant(),
            ["temperature"] = options.Temperature.ToString(Invariant),
            ["parameters_before"] = ModelStatistics.Parameters(source).ToString(Invariant),
            ["parameters_after"] = ModelStatistics.Parameters(trained).ToString(Invariant),
            ["size_bytes_before"] = new FileInfo(inputModel).Length.ToString(Invariant),
            ["size_bytes_after"] = new FileInfo(outputModel).Length.ToString(Invariant),
            ["skipped"] = string.Join("; ", report.Skipped),
        };
        foreach (var layer in report.Factorized)
        {
            details[$"rank.{layer.Node}"] = $"{layer.Inputs}x{layer.Outputs} -> rank {layer.Rank} ({layer.KeptEnergy.ToString("P1", Invariant)} energy, {layer.ParametersBefore} -> {layer.ParametersAfter} weights)";
        }

        if (training is not null)
        {
            details["steps"] = training.Steps.ToString(Invariant);
            details["final_loss"] = training.EpochLosses[^1].ToString("0.0000", Invariant);
        }

        var summary = $"{report.Factorized.Count} weights factorized ({string.Join(", ", report.Factorized.Select(l => $"{l.Node} rank {l.Rank}"))}), {report.Skipped.Count} left whole; parameters {details["parameters_before"]} -> {details["parameters_after"]}"
            + (training is null ? ", no recovery training" : $", {training.EpochLosses.Count} recovery epochs (final loss {details["final_loss"]})");
        return new StageResult(Kind, summary, details, training?.EpochLosses, clock.Elapsed.TotalSeconds);
    }
}
