using System.Diagnostics;
using System.Globalization;
using ModelCompression.Common;
using ModelCompression.Diagnostics;
using ModelCompression.Inference;
using ModelCompression.Onnx.Proto;
using ModelCompression.Onnx;
using ModelCompression.Pruning;
using ModelCompression.Torch.Training;

namespace ModelCompression.Stages;

/// <summary>
/// Prunes the student — unstructured magnitude (per tensor or global, cubic schedule during recovery), N:M,
/// structured neurons and channels, attention heads, or whole transformer layers — then fine-tunes it (optionally with the
/// teacher's soft targets) while pruned weights stay zero. The output is accepted only after
/// <see cref="TransformedModelCheck"/> passes. The report gives sparsity, parameters and compressed size; it
/// claims no speed for zeros that dense kernels still multiply.
/// </summary>
/// <param name="options">The stage's options.</param>
/// <param name="site">Where the recipe writes the stage, for errors found once the model is known.</param>
public sealed class PruneStage(PruneOptions options, StageSite? site = null) : IStage
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    /// <inheritdoc />
    public string Kind => "prune";

    /// <inheritdoc />
    public void AddToKey(ContentHash key, StageContext context) => StageCatalog.Get(Kind).AddToKey(key, options, context);

    /// <inheritdoc />
    public StageResult Run(StageContext context, string inputModel, string outputModel)
    {
        var clock = Stopwatch.StartNew();
        var source = OnnxModelFile.Load(inputModel);
        var head = new PruneDetails
        {
            Method = options.Method,
            RecoveryEpochs = options.RecoveryEpochs,
            Alpha = options.Alpha,
            Temperature = options.Temperature,
            RecoveryTeacher = options.RecoveryTeacher,
        };
        var settings = options.Recovery(options.RecoveryEpochs);
        var (pruned, training, what, details) = options.Method switch
        {
            PruneMethod.Magnitude or PruneMethod.NM => Unstructured(context, inputModel, source, settings, head),
            PruneMethod.Structured => Structured(context, inputModel, source, settings, head, StructureFinder.Find(source, new NameFilter(options.Exclude)), "units", "layers"),
            PruneMethod.Heads => Structured(context, inputModel, source, settings, head, AttentionHeadFinder.Find(source, new NameFilter(options.Exclude)), "heads", "attention blocks"),
            _ => Layers(context, inputModel, source, settings, head),
        };

        OnnxModelFile.Save(pruned, outputModel);
        TransformedModelCheck.Verify(outputModel, context, Kind);

        var (parametersBefore, parametersAfter) = (ModelStatistics.Parameters(source), ModelStatistics.Parameters(pruned));
        var (nonZeroBefore, nonZeroAfter) = (ModelStatistics.NonZeroParameters(source), ModelStatistics.NonZeroParameters(pruned));
        var (compressedBefore, compressedAfter) = (ModelStatistics.CompressedBytes(inputModel), ModelStatistics.CompressedBytes(outputModel));
        details = details with
        {
            ParametersBefore = parametersBefore,
            ParametersAfter = parametersAfter,
            NonZeroParametersBefore = nonZeroBefore,
            NonZeroParametersAfter = nonZeroAfter,
            SizeBytesBefore = new FileInfo(inputModel).Length,
            SizeBytesAfter = new FileInfo(outputModel).Length,
            CompressedBytesBefore = compressedBefore,
            CompressedBytesAfter = compressedAfter,
            Steps = training?.Steps,
            FinalLoss = training?.EpochLosses[^1],
        };
        var summary = $"{what}; parameters {parametersBefore} -> {parametersAfter} (non-zero {nonZeroBefore} -> {nonZeroAfter}), compressed {Kb(compressedBefore)} -> {Kb(compressedAfter)} KB"
            + (training is null ? ", no recovery training" : $", {training.EpochLosses.Count} recovery epochs (final loss {training.EpochLosses[^1].ToString("0.0000", Invariant)})");
        return new StageResult(Kind, summary, StageDetails.Of(details), training?.EpochLosses, clock.Elapsed.TotalSeconds);
    }

    private (ModelProto Model, TrainingResult? Training, string What, PruneDetails Details) Unstructured(
        StageContext context, string inputModel, ModelProto source, RecoverySettings settings, PruneDetails details)
    {
        var weights = PrunableWeights.Find(source, new NameFilter(options.Exclude), out var skippedWeights).ToList();
        var skipped = skippedWeights.ToList();
        var nm = options.Method == PruneMethod.NM;
        if (nm)
        {
            foreach (var weight in weights.Where(w => !FitsNOfM(w)).ToList())
            {
                skipped.Add($"{weight.Node} ({weight.OpType}): {(weight.ReductionAxis < 0 ? "N:M applies to MatMul/Gemm weights" : $"{weight.Dims[weight.ReductionAxis]} inputs are not a multiple of {options.M}")}");
                weights.Remove(weight);
            }
        }

        details = details with { Skipped = skipped };
        if (weights.Count == 0)
        {
            context.Reporter.Report(Diagnostic.Warning(DiagnosticCodes.NothingToTransform, $"prune: no weight to prune ({string.Join("; ", skipped)}); the model stays as it was.", inputModel));
            return (source, null, "nothing pruned", details);
        }

        var target = nm ? (double)(options.M - options.N) / options.M : options.Sparsity;
        bool[][] MasksFor(IReadOnlyList<float[]> values, double sparsity) =>
            nm ? [.. weights.Select((w, i) => MagnitudeMasks.NOfM(values[i], (int)w.Dims[0], (int)w.Dims[1], w.ReductionAxis, options.N, options.M))]
            : options.Scope == PruneScope.Global ? MagnitudeMasks.Global(values, sparsity)
            : [.. values.Select(v => MagnitudeMasks.Layer(v, sparsity))];

        ModelProto pruned;
        TrainingResult? training;
        if (options.RecoveryEpochs == 0)
        {
            pruned = source.Clone();
            var tensors = weights.Select(w => pruned.Graph.Initializer.Single(i => i.Name == w.Initializer)).ToList();
            var values = tensors.Select(TensorData.ToFloats).ToList();
            var masks = MasksFor(values, target);
            for (var i = 0; i < tensors.Count; i++)
            {
                MagnitudeMasks.Apply(values[i], masks[i]);
                var index = pruned.Graph.Initializer.IndexOf(tensors[i]);
                pruned.Graph.Initializer[index] = TensorData.FromFloats(tensors[i].Name, values[i], [.. tensors[i].Dims]);
            }

            training = null;
        }
        else
        {
            Func<long, double> sparsityAt = _ => target;
            if (!nm && options.Schedule == SparsitySchedule.Cubic)
            {
                var steps = settings.Steps(context.Train.Count);
                var schedule = new CubicSparsitySchedule(options.InitialSparsity, options.Sparsity, Math.Max(1, (long)Math.Round(steps * options.RampFraction, MidpointRounding.AwayFromZero)));
                sparsityAt = schedule.At;
                details = details with { RampSteps = schedule.RampSteps, MaskUpdateEvery = schedule.UpdateEvery };
            }

            MaskedWeights? masked = null;
            try
            {
                (pruned, training, _) = RecoveryTraining.Run(this, context, inputModel, source, settings, graph =>
                {
                    var parameters = graph.ParametersByName;
                    masked = new MaskedWeights([.. weights.Select(w => parameters[w.Initializer])], MasksFor, sparsityAt);
                    masked.Enforce(sparsityAt(0));
                    return masked.AfterStep;
                });
            }
            finally
            {
                masked?.Dispose();
            }
        }

        // Measured on the written weights, not taken from the masks: this is what the file holds.
        var layers = ModelStatistics.Sparsity(pruned, weights.Select(w => w.Initializer));
        var overall = (double)layers.Sum(l => l.Zeros) / layers.Sum(l => l.Count);
        details = details with
        {
            // Keys made from the weights' names; the value is a fraction as every sparsity in the report.
            WeightSparsity = Entries(layers, l => $"sparsity.{l.Weight}", l => l.Sparsity.ToString("0.0000", Invariant)),
            SparsityOverall = overall,
            Speed = nm
                ? $"no speed-up claimed: {options.N}:{options.M} runs faster only on hardware with sparse kernels for it (e.g. sparse tensor cores); ONNX Runtime's CPU kernels multiply the zeros"
                : "no speed-up claimed: dense kernels multiply the zeros; only the compressed size shrinks",
            Pattern = nm ? $"{options.N}:{options.M}" : null,
            TargetSparsity = nm ? null : options.Sparsity,
            Scope = nm ? null : options.Scope,
            Schedule = nm ? null : options.RecoveryEpochs == 0 ? "oneshot (no recovery)" : options.Schedule.ToString().ToLowerInvariant(),
        };

        var what = nm
            ? $"{options.N}:{options.M} on {layers.Count} weights ({overall.ToString("P1", Invariant)} zero)"
            : $"magnitude ({options.Scope.ToString().ToLowerInvariant()}) on {layers.Count} weights: {overall.ToString("P1", Invariant)} zero";
        return (pruned, training, what + "; no speed-up claimed", details);
    }

    private bool FitsNOfM(PrunableWeight weight) =>
        weight.ReductionAxis >= 0 && weight.Dims.Length == 2 && weight.Dims[weight.ReductionAxis] % options.M == 0;

    /// <summary>
    /// Removes the lowest-scoring <see cref="PruneOptions.Sparsity"/> of every structure's units (neurons and channels,
    /// or attention heads), then trains to recover.
    /// </summary>
    private (ModelProto Model, TrainingResult? Training, string What, PruneDetails Details) Structured(
        StageContext context,
        string inputModel,
        ModelProto source,
        RecoverySettings settings,
        PruneDetails details,
        (IReadOnlyList<PrunableStructure> Structures, IReadOnlyList<SkippedLayer> Skipped) found,
        string units,
        string layers)
    {
        var (structures, skipped) = found;
        foreach (var layer in skipped.Where(s => !s.Expected))
        {
            context.Reporter.Report(Diagnostic.Warning(
                DiagnosticCodes.StructureNotPrunable,
                $"prune: layer '{layer.Node}' ({layer.OpType}) keeps all its {units}: {layer.Reason}.",
                inputModel));
        }

        details = details with
        {
            Criterion = options.Criterion,
            UnitTargetSparsity = options.Sparsity,
            Skipped = [.. skipped.Select(s => $"{s.Node} ({s.OpType}): {s.Reason}")],
        };
        if (structures.Count == 0)
        {
            context.Reporter.Report(Diagnostic.Warning(DiagnosticCodes.NothingToTransform, $"prune: no {units} can be removed from any of the model's {layers}; the model stays as it was.", inputModel));
            return (source, null, "nothing pruned", details);
        }

        var scores = options.Criterion == UnitCriterion.Taylor
            ? TaylorScores.Compute(source, structures, ScoringData(context, inputModel), new DistillationLoss(options.Alpha, options.Temperature), options.TaylorBatches, options.BatchSize, options.Seed)
            : [.. structures.Select(s => StructuredPruner.L2Scores(source, s))];
        var plan = structures.Select((s, i) => new PrunedStructure(s, StructuredPruner.KeepHighest(scores[i], options.Sparsity))).ToList();
        var shrunk = StructuredPruner.Apply(source, plan);
        var (trained, training, _) = RecoveryTraining.Run(this, context, inputModel, shrunk, settings);
        details = details with
        {
            // Keys made from the layers' names.
            Units = Entries(plan, p => $"{units}.{p.Structure.Producer}", p => $"{p.Structure.Units} -> {p.Kept.Length}"),
            Speed = "the layers are smaller dense layers; the evaluation's latency shows what that buys",
        };
        var total = plan.Sum(p => p.Structure.Units);
        var keptUnits = plan.Sum(p => p.Kept.Length);
        return (trained, training, $"{Name(options.Method)} ({Name(options.Criterion)}): {keptUnits} of {total} {units} kept in {plan.Count} {layers}", details);
    }

    private ScoringData ScoringData(StageContext context, string inputModel)
    {
        long[] sampleShape;
        using (var runner = new OnnxRunner(inputModel, threads: 1))
        {
            sampleShape = runner.SampleShapeFor(context.Train);
        }

        var labels = context.Train.Labels ?? throw new CompressionException(Site(context).Error(DiagnosticCodes.DataSchemaMismatch, PruneDescriptor.TaylorNeedsLabels, "criterion"));
        return new ScoringData(context.Train.Inputs, sampleShape, labels, RecoveryTraining.SoftTargetLogits(context, inputModel, options.Recovery(options.RecoveryEpochs)), context.Classes);
    }

    private (ModelProto Model, TrainingResult? Training, string What, PruneDetails Details) Layers(
        StageContext context, string inputModel, ModelProto source, RecoverySettings settings, PruneDetails details)
    {
        var layers = TransformerLayerDropper.Layers(source);
        var drop = options.LayersToDrop.Length > 0 ? options.LayersToDrop : [.. layers.Where(l => !options.KeepLayers.Contains(l))];
        // The plan checked these already unless an earlier stage changed the graph.
        if (PruneDescriptor.LayerProblems(options, layers, Site(context)).ToList() is { Count: > 0 } problems)
        {
            throw new CompressionException(problems);
        }

        var shrunk = TransformerLayerDropper.Drop(source, drop, inputModel);
        var (trained, training, _) = RecoveryTraining.Run(this, context, inputModel, shrunk, settings);
        var kept = layers.Except(drop).ToList();
        return (trained, training, $"layers: kept {kept.Count} of {layers.Count} encoder layers ({string.Join(", ", kept)})", details with { LayersDropped = [.. drop.Order()], LayersKept = kept });
    }

    /// <summary>Where errors point: the recipe's line of the stage (or of an option), or the recipe file alone.</summary>
    private StageSite Site(StageContext context) => site ?? StageSite.None with { RecipePath = context.RecipePath };

    /// <summary>Data-named detail entries in order; a key seen again keeps its place and takes the later value.</summary>
    internal static Dictionary<string, string> Entries<T>(IEnumerable<T> items, Func<T, string> key, Func<T, string> value)
    {
        var entries = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var item in items)
        {
            entries[key(item)] = value(item);
        }

        return entries;
    }

    private static string Name(Enum choice) => choice.ToString().ToLowerInvariant();

    private static string Kb(long bytes) => (bytes / 1024.0).ToString("0.0", Invariant);
}
