using System.Globalization;
using ModelCompression.Common;

namespace ModelCompression.Stages;

/// <summary>What pruning removes.</summary>
public enum PruneMethod
{
    /// <summary>Unstructured: the smallest-magnitude weights become 0 (the file does not shrink; it compresses better).</summary>
    Magnitude,

    /// <summary>N:M semi-structured: in every group of M consecutive input weights the N largest stay (2:4 by default).</summary>
    NM,

    /// <summary>Whole hidden neurons and conv channels: the graph physically shrinks.</summary>
    Structured,

    /// <summary>Whole encoder layers of the built-in transformer.</summary>
    Layers,

    /// <summary>Whole attention heads (their query, key and value columns and output rows): the graph shrinks.</summary>
    Heads,
}

/// <summary>Whether magnitude pruning ranks each weight tensor on its own or all of them together.</summary>
public enum PruneScope
{
    /// <summary>Every weight tensor loses the same fraction.</summary>
    Layer,

    /// <summary>One magnitude threshold across all weight tensors.</summary>
    Global,
}

/// <summary>How the sparsity of magnitude pruning rises during recovery.</summary>
public enum SparsitySchedule
{
    /// <summary>Zhu and Gupta's cubic ramp from initial_sparsity to sparsity.</summary>
    Cubic,

    /// <summary>The full sparsity before the first step.</summary>
    OneShot,
}

/// <summary>How structured pruning ranks units.</summary>
public enum UnitCriterion
{
    /// <summary>L2 norm of a unit's incoming weights times that of its outgoing weights.</summary>
    L2,

    /// <summary>First-order Taylor estimate of the loss change from removing the unit, from gradients on training batches.</summary>
    Taylor,
}

/// <summary>Options of the prune stage.</summary>
public sealed record PruneOptions : RecoveryOptions, ICheckedOptions
{
    /// <summary>What is removed.</summary>
    [Option("method", "magnitude (unstructured zeros), nm (N:M pattern, 2:4 by default), structured (whole neurons and conv channels; the graph shrinks), heads (whole attention heads of every attention block; the graph shrinks) or layers (whole transformer encoder layers).")]
    public PruneMethod Method { get; init; } = PruneMethod.Magnitude;

    /// <summary>Target fraction removed.</summary>
    [Option("sparsity", "Fraction removed: of the MatMul/Gemm/Conv weights (magnitude), of each layer's units (structured), or of each attention block's heads (heads; at least one head stays).", Min = 0, Max = 0.99)]
    public double Sparsity { get; init; } = 0.5;

    /// <summary>Per-tensor or global ranking for magnitude pruning.</summary>
    [Option("scope", "magnitude: layer (every weight tensor loses the same fraction) or global (one threshold over all).")]
    public PruneScope Scope { get; init; } = PruneScope.Layer;

    /// <summary>How the sparsity rises during recovery.</summary>
    [Option("schedule", "magnitude: cubic (sparsity rises from initial_sparsity over the first ramp_fraction of recovery, Zhu & Gupta 2017) or oneshot (the full sparsity from the first step).")]
    public SparsitySchedule Schedule { get; init; } = SparsitySchedule.Cubic;

    /// <summary>Sparsity at the first recovery step of the cubic schedule.</summary>
    [Option("initial_sparsity", "Sparsity the cubic schedule starts from.", Min = 0, Max = 0.99)]
    public double InitialSparsity { get; init; }

    /// <summary>Fraction of the recovery steps over which the sparsity rises.</summary>
    [Option("ramp_fraction", "Fraction of the recovery steps over which the cubic schedule reaches the target sparsity; the rest fine-tunes at it.", Min = 0, MinExclusive = true, Max = 1)]
    public double RampFraction { get; init; } = 0.75;

    /// <summary>Weights kept per group (N of N:M).</summary>
    [Option("n", "nm: weights kept in every group.", Min = 1, Max = 64)]
    public int N { get; init; } = 2;

    /// <summary>Group size (M of N:M).</summary>
    [Option("m", "nm: consecutive input weights per group.", Min = 2, Max = 64)]
    public int M { get; init; } = 4;

    /// <summary>How structured pruning ranks units.</summary>
    [Option("criterion", "structured: l2 (incoming times outgoing weight norm) or taylor (first-order loss change, abs(Σ w·grad), over training batches).")]
    public UnitCriterion Criterion { get; init; } = UnitCriterion.L2;

    /// <summary>Batches the Taylor criterion accumulates gradients over.</summary>
    [Option("taylor_batches", "structured with taylor: training batches (of batch_size) the scores are summed over.", Min = 1, Max = 100000)]
    public int TaylorBatches { get; init; } = 16;

    /// <summary>Encoder layers to remove.</summary>
    [Option("layers_to_drop", "layers: indices of the encoder layers to remove, e.g. [1, 3].")]
    public int[] LayersToDrop { get; init; } = [];

    /// <summary>Encoder layers to keep (the rest go).</summary>
    [Option("keep_layers", "layers: indices of the encoder layers to keep; every other layer is removed.")]
    public int[] KeepLayers { get; init; } = [];

    /// <summary>Weights or nodes left alone.</summary>
    [Option("exclude", "Comma-separated initializer or node names left alone; * and ? are wildcards, e.g. \"classifier.*, fc1.weight\".")]
    public string? Exclude { get; init; }

    /// <summary>Recovery training epochs (0 for none).</summary>
    [Option("recovery_epochs", "Epochs of recovery training after (and, for cubic magnitude pruning, during) pruning; 0 for none.", Min = 0, Max = 10000)]
    public int RecoveryEpochs { get; init; } = 2;

    /// <summary>Problems that the value ranges alone do not catch (options that do not fit together), each in one sentence.</summary>
    public IReadOnlyList<string> Validate()
    {
        var problems = new List<string>();
        var name = Method.ToString().ToLowerInvariant();
        if (Method == PruneMethod.NM && N >= M)
        {
            problems.Add($"nm needs n below m (n {N}, m {M})");
        }

        if (Method != PruneMethod.Magnitude && Scope == PruneScope.Global)
        {
            problems.Add($"scope global ranks weights for magnitude pruning only, not {name}");
        }

        if (Method == PruneMethod.Magnitude && InitialSparsity > Sparsity)
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"initial_sparsity ({InitialSparsity}) is above sparsity ({Sparsity})"));
        }

        if (Method != PruneMethod.Structured && Criterion == UnitCriterion.Taylor)
        {
            problems.Add($"criterion taylor ranks units for structured pruning only, not {name}");
        }

        if (Method == PruneMethod.Layers && (LayersToDrop.Length == 0) == (KeepLayers.Length == 0))
        {
            problems.Add("layers needs exactly one of layers_to_drop and keep_layers");
        }

        if (Method != PruneMethod.Layers && (LayersToDrop.Length > 0 || KeepLayers.Length > 0))
        {
            problems.Add($"layers_to_drop and keep_layers belong to method layers, not {name}");
        }

        return problems;
    }
}
