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
        var details = new Dictionary<string, string>
        {
            ["method"] = Name(options.Method),
            ["recovery_epochs"] = options.RecoveryEpochs.ToString(Invariant),
            ["alpha"] = options.Alpha.ToString(Invariant),
            ["temperature"] = options.Temperature.ToString(Invariant),
            ["recovery_teacher"] = options.RecoveryTeacher.ToString().ToLowerInvariant(),
        };
        var settings = options.Recovery(options.RecoveryEpochs);
        var (pruned, training, what) = options.Method switch
        {
            PruneMethod.Magnitude or PruneMethod.NM => Unstructured(context, inputModel, outputModel, source, settings, details),
            PruneMethod.Structured => Structured(context, inputModel, source, settings, details, StructureFinder.Find(source, new NameFilter(options.Exclude)), "units", "layers"),
            PruneMethod.Heads => Structured(context, inputModel, source, settings, details, AttentionHeadFinder.Find(source, new NameFilter(options.Exclude)), "heads", "attention blocks"),
            _ => Layers(context, inputModel, outputModel, source, settings, details),
        };

        OnnxModelFile.Save(pruned, outputModel);
        TransformedModelCheck.Verify(outputModel, context, Kind);

        var (parametersBefore, parametersAfter) = (ModelStatistics.Parameters(source), ModelStatistics.Parameters(pruned));
        var (nonZeroBefore, nonZeroAfter) = (ModelStatistics.NonZeroParameters(source), ModelStatistics.NonZeroParameters(pruned));
        var (compressedBefore, compressedAfter) = (ModelStatistics.CompressedBytes(inputModel), ModelStatistics.CompressedBytes(outputModel));
        details["parameters_before"] = parametersBefore.ToString(Invariant);
        details["parameters_after"] = parametersAfter.ToString(Invariant);
        details["nonzero_parameters_before"] = nonZeroBefore.ToString(Invariant);
        details["nonzero_parameters_after"] = nonZeroAfter.ToString(Invariant);
        details["size_bytes_before"] = new FileInfo(inputModel).Length.ToString(Invariant);
        details["size_bytes_after"] = new FileInfo(outputModel).Length.ToString(Invariant);
        details["compressed_bytes_before"] = compressedBefore.ToString(Invariant);
        details["compressed_bytes_after"] = compressedAfter.ToString(Invariant);
        if (training is not null)
        {
            details["steps"] = training.Steps.ToString(Invariant);
            details["final_loss"] = training.EpochLosses[^1].ToString("0.0000", Invariant);
        }

        var summary = $"{what}; parameters {parametersBefore} -> {parametersAfter} (non-zero {nonZeroBefore} -> {nonZeroAfter}), compressed {Kb(compressedBefore)} -> {Kb(compressedAfter)} KB"
            + (training is null ? ", no recovery training" : $", {training.EpochLosses.Count} recovery epochs (final loss {training.EpochLosses[^1].ToString("0.0000", Invariant)})");
        return new StageResult(Kind, summary, details, training?.EpochLosses, clock.Elapsed.TotalSeconds);
    }

    private (ModelProto Model, TrainingResult? Training, string What) Unstructured(
        StageContext context, string inputModel, string outputModel, ModelProto source, RecoverySettings settings, Dictionary<string, string> details)
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

        details["skipped"] = string.Join("; ", skipped);
        if (weights.Count == 0)
        {
            context.Reporter.Report(Diagnostic.Warning(DiagnosticCodes.NothingToTransform, $"prune: no weight to prune ({string.Join("; ", skipped)}); the model stays as it was.", inputModel));
            return (source, null, "nothing pruned");
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
                details["ramp_steps"] = schedule.RampSteps.ToString(Invariant);
                details["mask_update_every"] = schedule.UpdateEvery.ToString(Invariant);
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
        foreach (var layer in layers)
        {
            details[$"sparsity.{layer.Weight}"] = layer.Sparsity.ToString("0.0000", Invariant);
        }

        var overall = (double)layers.Sum(l => l.Zeros) / layers.Sum(l => l.Count);
        details["sparsity_overall"] = overall.ToString("0.0000", Invariant);
        details["speed"] = nm
            ? $"no speed-up claimed: {options.N}:{options.M} runs faster only on hardware with sparse kernels for it (e.g. sparse tensor cores); ONNX Runtime's CPU kernels multiply the zeros"
            : "no speed-up claimed: dense kernels multiply the zeros; only the compressed size shrinks";
        if (nm)
        {
            details["pattern"] = $"{options.N}:{options.M}";
        }
        else
        {
            details["target_sparsity"] = options.Sparsity.ToString(Invariant);
            details["scope"] = options.Scope.ToString().ToLowerInvariant();
            details["schedule"] = options.RecoveryEpochs == 0 ? "oneshot (no recovery)" : options.Schedule.ToString().ToLowerInvariant();
        }

        var what = nm
            ? $"{options.N}:{options.M} on {layers.Count} weights ({overall.ToString("P1", Invariant)} zero)"
            : $"magnitude ({options.Scope.ToString().ToLowerInvariant()}) on {layers.Count} weights: {overall.ToString("P1", Invariant)} zero";
        return (pruned, training, what + "; no speed-up claimed");
    }

    private bool FitsNOfM(PrunableWeight weight) =>
        weight.ReductionAxis >= 0 && weight.Dims.Length == 2 && weight.Dims[weight.ReductionAxis] % options.M == 0;

    /// <summary>
    /// Removes the lowest-scoring <see cref="PruneOptions.Sparsity"/> of every structure's units (neurons and channels,
    /// or attention heads), then trains to recover.
    /// </summary>
    private (ModelProto Model, TrainingResult? Training, string What) Structured(
        StageContext context,
        string inputModel,
        ModelProto source,
        RecoverySettings settings,
        Dictionary<string, string> details,
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

        details["criterion"] = options.Criterion.ToString().ToLowerInvariant();
        details["target_sparsity"] = options.Sparsity.ToString(Invariant);
        details["skipped"] = string.Join("; ", skipped.Select(s => $"{s.Node} ({s.OpType}): {s.Reason}"));
        if (structures.Count == 0)
        {
            context.Reporter.Report(Diagnostic.Warning(DiagnosticCodes.NothingToTransform, $"prune: no {units} can be removed from any of the model's {layers}; the model stays as it was.", inputModel));
            return (source, null, "nothing pruned");
        }

        var scores = options.Criterion == UnitCriterion.Taylor
            ? TaylorScores.Compute(source, structures, ScoringData(context, inputModel), new DistillationLoss(options.Alpha, options.Temperature), options.TaylorBatches, options.BatchSize, options.Seed)
            : [.. structures.Select(s => StructuredPruner.L2Scores(source, s))];
        var plan = structures.Select((s, i) => new PrunedStructure(s, StructuredPruner.KeepHighest(scores[i], options.Sparsity))).ToList();
        foreach (var (structure, kept) in plan)
        {
            details[$"{units}.{structure.Producer}"] = $"{structure.Units} -> {kept.Length}";
        }

        var shrunk = StructuredPruner.Apply(source, plan);
        var (trained, training, _) = RecoveryTraining.Run(this, context, inputModel, shrunk, settings);
        details["speed"] = "the layers are smaller dense layers; the evaluation's latency shows what that buys";
        var total = plan.Sum(p => p.Structure.Units);
        var keptUnits = plan.Sum(p => p.Kept.Length);
        return (trained, training, $"{Name(options.Method)} ({details["criterion"]}): {keptUnits} of {total} {units} kept in {plan.Count} {layers}");
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

    private (ModelProto Model, TrainingResult? Training, string What) Layers(
        StageContext context, string inputModel, string outputModel, ModelProto source, RecoverySettings settings, Dictionary<string, string> details)
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
        details["layers_dropped"] = string.Join(", ", drop.Order());
        details["layers_kept"] = string.Join(", ", kept);
        return (trained, training, $"layers: kept {kept.Count} of {layers.Count} encoder layers ({string.Join(", ", kept)})");
    }

    /// <summary>Where errors point: the recipe's line of the stage (or of an option), or the recipe file alone.</summary>
    private StageSite Site(StageContext context) => site ?? StageSite.None with { RecipePath = context.RecipePath };

    private static string Name(PruneMethod method) => method.ToString().ToLowerInvariant();

    private static string Kb(long bytes) => (bytes / 1024.0).ToString("0.0", Invariant);
}
