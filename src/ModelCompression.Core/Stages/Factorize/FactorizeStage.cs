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

        var details = new FactorizeDetails
        {
            Rule = options.RankRatio > 0 ? $"rank_ratio {options.RankRatio.ToString(Invariant)}"
                : options.ParamsRatio > 0 ? $"params_ratio {options.ParamsRatio.ToString(Invariant)}"
                : $"energy {options.Energy.ToString(Invariant)}",
            Epochs = settings.Epochs,
            Alpha = options.Alpha,
            RecoveryTeacher = options.RecoveryTeacher,
            Temperature = options.Temperature,
            ParametersBefore = ModelStatistics.Parameters(source),
            ParametersAfter = ModelStatistics.Parameters(trained),
            SizeBytesBefore = new FileInfo(inputModel).Length,
            SizeBytesAfter = new FileInfo(outputModel).Length,
            Skipped = report.Skipped,
            // Keys made from the nodes' names.
            Ranks = PruneStage.Entries(report.Factorized, l => $"rank.{l.Node}", l => $"{l.Inputs}x{l.Outputs} -> rank {l.Rank} ({l.KeptEnergy.ToString("P1", Invariant)} energy, {l.ParametersBefore} -> {l.ParametersAfter} weights)"),
            Steps = training?.Steps,
            FinalLoss = training?.EpochLosses[^1],
        };

        var summary = $"{report.Factorized.Count} weights factorized ({string.Join(", ", report.Factorized.Select(l => $"{l.Node} rank {l.Rank}"))}), {report.Skipped.Count} left whole; parameters {details.ParametersBefore} -> {details.ParametersAfter}"
            + (training is null ? ", no recovery training" : $", {training.EpochLosses.Count} recovery epochs (final loss {training.EpochLosses[^1].ToString("0.0000", Invariant)})");
        return new StageResult(Kind, summary, StageDetails.Of(details), training?.EpochLosses, clock.Elapsed.TotalSeconds);
    }
}
