namespace ModelCompression.Stages;

/// <summary>
/// What the prune stage reports (report.json's "details"): the options it ran with, what each method did, and the
/// model's size before and after. A property a method does not use stays null and is left out. The order is report.json's.
/// </summary>
public sealed record PruneDetails
{
    /// <summary>What was removed.</summary>
    [Detail("method")]
    public required PruneMethod Method { get; init; }

    /// <summary>Recovery epochs asked for.</summary>
    [Detail("recovery_epochs")]
    public required int RecoveryEpochs { get; init; }

    /// <summary>Weight of the soft targets during recovery.</summary>
    [Detail("alpha")]
    public required double Alpha { get; init; }

    /// <summary>Softening temperature during recovery.</summary>
    [Detail("temperature")]
    public required double Temperature { get; init; }

    /// <summary>Whose soft targets recovery learns.</summary>
    [Detail("recovery_teacher")]
    public required RecoveryTeacher RecoveryTeacher { get; init; }

    /// <summary>How structured (or head) pruning ranked the units.</summary>
    [Detail("criterion")]
    public UnitCriterion? Criterion { get; init; }

    /// <summary>The fraction of each layer's units removed (structured and heads, which report it before what they skipped).</summary>
    [Detail("target_sparsity")]
    public double? UnitTargetSparsity { get; init; }

    /// <summary>The weights or layers left alone, with why.</summary>
    [Detail("skipped", Separator = "; ")]
    public IReadOnlyList<string>? Skipped { get; init; }

    /// <summary>Recovery steps over which the cubic schedule reaches the target.</summary>
    [Detail("ramp_steps")]
    public long? RampSteps { get; init; }

    /// <summary>Steps between mask updates of the cubic schedule.</summary>
    [Detail("mask_update_every")]
    public long? MaskUpdateEvery { get; init; }

    /// <summary>Each pruned weight's measured sparsity, as "sparsity.&lt;weight&gt;".</summary>
    public IReadOnlyDictionary<string, string>? WeightSparsity { get; init; }

    /// <summary>Zeros over all pruned weights.</summary>
    [Detail("sparsity_overall", Format = "0.0000")]
    public double? SparsityOverall { get; init; }

    /// <summary>Each shrunk layer's units before and after, as "units.&lt;layer&gt;" (or "heads.&lt;block&gt;").</summary>
    public IReadOnlyDictionary<string, string>? Units { get; init; }

    /// <summary>What the pruning buys in speed, plainly.</summary>
    [Detail("speed")]
    public string? Speed { get; init; }

    /// <summary>N:M's pattern.</summary>
    [Detail("pattern")]
    public string? Pattern { get; init; }

    /// <summary>Magnitude pruning's target sparsity.</summary>
    [Detail("target_sparsity")]
    public double? TargetSparsity { get; init; }

    /// <summary>Magnitude pruning's ranking scope.</summary>
    [Detail("scope")]
    public PruneScope? Scope { get; init; }

    /// <summary>Magnitude pruning's schedule.</summary>
    [Detail("schedule")]
    public string? Schedule { get; init; }

    /// <summary>The encoder layers removed.</summary>
    [Detail("layers_dropped")]
    public IReadOnlyList<int>? LayersDropped { get; init; }

    /// <summary>The encoder layers kept.</summary>
    [Detail("layers_kept")]
    public IReadOnlyList<int>? LayersKept { get; init; }

    /// <summary>Parameters before.</summary>
    [Detail("parameters_before")]
    public long ParametersBefore { get; init; }

    /// <summary>Parameters after.</summary>
    [Detail("parameters_after")]
    public long ParametersAfter { get; init; }

    /// <summary>Non-zero parameters before.</summary>
    [Detail("nonzero_parameters_before")]
    public long NonZeroParametersBefore { get; init; }

    /// <summary>Non-zero parameters after.</summary>
    [Detail("nonzero_parameters_after")]
    public long NonZeroParametersAfter { get; init; }

    /// <summary>File size before.</summary>
    [Detail("size_bytes_before")]
    public long SizeBytesBefore { get; init; }

    /// <summary>File size after.</summary>
    [Detail("size_bytes_after")]
    public long SizeBytesAfter { get; init; }

    /// <summary>Compressed size before.</summary>
    [Detail("compressed_bytes_before")]
    public long CompressedBytesBefore { get; init; }

    /// <summary>Compressed size after.</summary>
    [Detail("compressed_bytes_after")]
    public long CompressedBytesAfter { get; init; }

    /// <summary>Recovery's optimizer steps; null without recovery.</summary>
    [Detail("steps")]
    public long? Steps { get; init; }

    /// <summary>Recovery's last epoch loss; null without recovery.</summary>
    [Detail("final_loss", Format = "0.0000")]
    public double? FinalLoss { get; init; }
}
