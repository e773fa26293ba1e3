namespace ModelCompression.Pruning;

/// <summary>What a unit's entries of an initializer are, for scoring.</summary>
public enum UnitSliceRole
{
    /// <summary>The unit's incoming weights and biases (a row of the producing layer, its bias entry, per-unit constants).</summary>
    Incoming,

    /// <summary>The unit's BatchNormalization scale and shift.</summary>
    Normalization,

    /// <summary>The unit's BatchNormalization running mean and variance (buffers, not weights).</summary>
    Statistic,

    /// <summary>The unit's outgoing weights: its input rows (or channels) of the next layer.</summary>
    Outgoing,
}

/// <summary>
/// Entries of one initializer that belong to the units: along <paramref name="Axis"/>, unit j owns the
/// <paramref name="Block"/> consecutive entries from j * Block (a block larger than 1 where a convolution's
/// channels were flattened into features). An axis packing <paramref name="Groups"/> equal parts (the queries, keys
/// and values of one packed projection) holds the units once per part: unit j owns those entries in every part.
/// </summary>
/// <param name="Initializer">The initializer's name.</param>
/// <param name="Axis">The axis that loses entries.</param>
/// <param name="Block">Entries per unit along that axis.</param>
/// <param name="Role">What the entries are.</param>
/// <param name="Groups">Equal parts the axis is made of, each holding every unit.</param>
public sealed record UnitSlice(string Initializer, int Axis, int Block, UnitSliceRole Role, int Groups = 1);

/// <summary>
/// A Reshape (or Expand) whose target shape hard-codes the flattened width, or a Split whose sizes do (a packed query,
/// key and value projection): element <paramref name="Position"/> becomes Block x kept units. The element is a constant (the shape itself, folded from constants, or one input of the Concat
/// that assembles a shape computed at run time), a run-time value known to equal the width (replaced by the constant),
/// or, with <paramref name="Factor"/>, a dim read at run time times a constant unit count (<c>bsz * num_heads</c>),
/// whose factor is replaced.
/// </summary>
/// <param name="ReshapeOutput">The Reshape (or Expand) node's output, or a Split's first output (a unique name, unlike node names).</param>
/// <param name="Position">The element of the shape that holds the width.</param>
/// <param name="Block">Features per unit.</param>
/// <param name="Factor">True when the element is Mul(a dim read at run time, the unit count) and only the count changes.</param>
public sealed record ShapeFix(string ReshapeOutput, int Position, int Block, bool Factor = false);

/// <summary>
/// A layer whose units (hidden neurons of a MatMul/Gemm, output channels of a Conv) can be removed: the
/// producer's output columns, every per-unit entry on the way (bias, BatchNormalization) and the matching inputs
/// of the one consumer layer that reads them.
/// </summary>
/// <param name="Producer">The node that makes the units.</param>
/// <param name="ProducerOp">Its operator.</param>
/// <param name="Consumer">The MatMul/Gemm/Conv node that reads the units.</param>
/// <param name="Units">How many units there are.</param>
/// <param name="Slices">Every initializer axis that shrinks with the units.</param>
/// <param name="ShapeFixes">Reshape targets that must follow the new width.</param>
/// <param name="ChangedValues">Values between producer and consumer, whose shapes change.</param>
/// <param name="Cache">What else changes with a decoder's attention heads (its key/value cache); null elsewhere.</param>
public sealed record PrunableStructure(
    string Producer,
    string ProducerOp,
    string Consumer,
    int Units,
    IReadOnlyList<UnitSlice> Slices,
    IReadOnlyList<ShapeFix> ShapeFixes,
    IReadOnlyList<string> ChangedValues,
    HeadCache? Cache = null);

/// <summary>
/// What removing the heads of a decoder's attention block changes besides its weights and the shapes inside the graph:
/// the keys and values it caches are [batch, heads, sequence, head_width], so the cache inputs and outputs lose heads too.
/// </summary>
/// <param name="GraphValues">
/// Graph inputs and outputs whose axis 1 counts the heads (the layer's <c>past_key_values.{i}.key|value</c> and
/// <c>present.{i}.key|value</c>); their declared shapes follow the kept heads.
/// </param>
/// <param name="EmptyConcats">
/// Outputs of Concats that join an empty tensor (a past of length 0 that an export without cache makes inside the
/// graph, with the head count fixed and shared by every layer) and the new keys or values on the sequence axis. Such a
/// Concat passes the new ones through, so pruning removes it and its readers read them directly.
/// </param>
public sealed record HeadCache(IReadOnlyList<string> GraphValues, IReadOnlyList<string> EmptyConcats);

/// <summary>A MatMul/Gemm/Conv layer whose units structured pruning leaves alone, and why.</summary>
/// <param name="Node">The node's name.</param>
/// <param name="OpType">Its operator.</param>
/// <param name="Reason">Why, in words.</param>
/// <param name="Expected">
/// True when that is normal and needs no warning: the layer makes a graph output (the classifier), or its name
/// was excluded.
/// </param>
public sealed record SkippedLayer(string Node, string OpType, string Reason, bool Expected);
