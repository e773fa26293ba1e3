using ModelCompression.Common;

namespace ModelCompression.Stages;

/// <summary>Options of the factorize stage.</summary>
public sealed record FactorizeOptions : RecoveryOptions, ICheckedOptions
{
    /// <summary>Fraction of Σσ² the kept singular values must hold.</summary>
    [Option("energy", "Rank by kept energy: the smallest rank whose singular values hold this fraction of the weight's squared norm.", Min = 0, MinExclusive = true, Max = 1)]
    public double Energy { get; init; } = 0.9;

    /// <summary>Rank as a fraction of min(m, n); wins over energy.</summary>
    [Option("rank_ratio", "When above 0: rank = ceil(rank_ratio x min(m, n)) instead of the energy rule.", Min = 0, Max = 1)]
    public double RankRatio { get; init; }

    /// <summary>Parameter budget per weight as a fraction of m x n; wins over energy.</summary>
    [Option("params_ratio", "When above 0: the largest rank whose two factors hold at most this fraction of the weight's m x n parameters, instead of the energy rule.", Min = 0, Max = 1)]
    public double ParamsRatio { get; init; }

    /// <summary>Weights or nodes left alone.</summary>
    [Option("exclude", "Comma-separated initializer or node names left whole; * and ? are wildcards, e.g. \"classifier.*\".")]
    public string? Exclude { get; init; }

    /// <summary>Recovery training epochs (0 for none).</summary>
    [Option("epochs", "Epochs of recovery training after factorizing; 0 for none.", Min = 0, Max = 10000)]
    public int Epochs { get; init; } = 2;

    /// <summary>Problems that the value ranges alone do not catch, each in one sentence.</summary>
    public IReadOnlyList<string> Validate() =>
        RankRatio > 0 && ParamsRatio > 0 ? ["give rank_ratio or params_ratio, not both"] : [];
}
