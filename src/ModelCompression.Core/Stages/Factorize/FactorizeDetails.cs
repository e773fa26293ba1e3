namespace ModelCompression.Stages;

/// <summary>What the factorize stage reports (report.json's "details"), in report.json's order.</summary>
public sealed record FactorizeDetails
{
    /// <summary>How ranks were chosen ("energy 0.9", "rank_ratio 0.5", "params_ratio 0.3").</summary>
    [Detail("rule")]
    public required string Rule { get; init; }

    /// <summary>Recovery epochs run (0 when nothing was factorized).</summary>
    [Detail("epochs")]
    public required int Epochs { get; init; }

    /// <summary>Weight of the soft targets during recovery.</summary>
    [Detail("alpha")]
    public required double Alpha { get; init; }

    /// <summary>Whose soft targets recovery learns.</summary>
    [Detail("recovery_teacher")]
    public required RecoveryTeacher RecoveryTeacher { get; init; }

    /// <summary>Softening temperature during recovery.</summary>
    [Detail("temperature")]
    public required double Temperature { get; init; }

    /// <summary>Parameters before.</summary>
    [Detail("parameters_before")]
    public required long ParametersBefore { get; init; }

    /// <summary>Parameters after.</summary>
    [Detail("parameters_after")]
    public required long ParametersAfter { get; init; }

    /// <summary>File size before.</summary>
    [Detail("size_bytes_before")]
    public required long SizeBytesBefore { get; init; }

    /// <summary>File size after.</summary>
    [Detail("size_bytes_after")]
    public required long SizeBytesAfter { get; init; }

    /// <summary>The weights left whole, with why.</summary>
    [Detail("skipped", Separator = "; ")]
    public required IReadOnlyList<string> Skipped { get; init; }

    /// <summary>Each factorized weight's shape, rank and kept energy, as "rank.&lt;node&gt;".</summary>
    public required IReadOnlyDictionary<string, string> Ranks { get; init; }

    /// <summary>Recovery's optimizer steps; null without recovery.</summary>
    [Detail("steps")]
    public long? Steps { get; init; }

    /// <summary>Recovery's last epoch loss; null without recovery.</summary>
    [Detail("final_loss", Format = "0.0000")]
    public double? FinalLoss { get; init; }
}
