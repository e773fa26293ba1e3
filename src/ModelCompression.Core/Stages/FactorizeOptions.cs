using ModelCompression.Recipes;

namespace ModelCompression.Stages;

/// <summary>Options of the factorize stage.</summary>
public sealed record FactorizeOptions : ICheckedOptions
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

    /// <summary>Samples per optimizer step during recovery.</summary>
    [Option("batch_size", "Samples per optimizer step during recovery.", Min = 1, Max = 1 << 20)]
    public int BatchSize { get; init; } = 128;

    /// <summary>Adam learning rate during recovery.</summary>
    [Option("learning_rate", "Adam learning rate during recovery.", Min = 0, MinExclusive = true, Max = 10)]
    public double LearningRate { get; init; } = 1e-3;

    /// <summary>Weight of the teacher's soft targets during recovery.</summary>
    [Option("alpha", "Weight of the teacher's soft targets during recovery (knowledge distillation, with temperature); 0, the default, trains on labels only.", Min = 0, Max = 1)]
    public double Alpha { get; init; }

    /// <summary>Softening temperature of the soft targets.</summary>
    [Option("temperature", "Softening temperature of the teacher's and student's softmax during recovery.", Min = 0, MinExclusive = true, Max = 100)]
    public double Temperature { get; init; } = 4;

    /// <summary>Seed of shuffling and dropout.</summary>
    [Option("seed", "Seed of shuffling and dropout during recovery.", Min = 0)]
    public int Seed { get; init; } = 1;

    /// <summary>Problems that the value ranges alone do not catch, each in one sentence.</summary>
    public IReadOnlyList<string> Validate() =>
        RankRatio > 0 && ParamsRatio > 0 ? ["give rank_ratio or params_ratio, not both"] : [];
}
