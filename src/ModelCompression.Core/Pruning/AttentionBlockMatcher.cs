using ModelCompression.Onnx.Proto;

namespace ModelCompression.Pruning;

/// <summary>
/// What the matchers of <see cref="AttentionHeadFinder"/>'s two layouts (<see cref="AttentionBlock"/>,
/// <see cref="PackedAttentionBlock"/>) share: the scores behind the softmax, and how values are read.
/// </summary>
internal abstract class AttentionBlockMatcher(GraphIndex graph, NodeProto context)
{
    // Elementwise steps allowed between Q·Kᵀ and the softmax (scaling, an additive mask).
    private static readonly HashSet<string> ScoreStepOps = new(StringComparer.Ordinal) { "Mul", "Div", "Add", "Sub", "Where" };

    /// <summary>The graph.</summary>
    protected GraphIndex Graph { get; } = graph;

    /// <summary>The context product, Softmax(scores) · V.</summary>
    protected NodeProto Context { get; } = context;

    /// <summary>Initializer axes that lose entries with the heads.</summary>
    protected List<UnitSlice> Slices { get; } = [];

    /// <summary>Target shapes that follow the heads.</summary>
    protected List<ShapeFix> Fixes { get; } = [];

    /// <summary>Values whose shapes change with the heads.</summary>
    protected List<string> Changed { get; } = [];

    /// <summary>Dims read at run time, Shape(value)[axis], by the block's target shapes or by readers of its values.</summary>
    protected List<(string Value, long Axis)> DimensionReads { get; } = [];

    /// <summary>The scaling and masking steps between Q·Kᵀ and the softmax, each with its input on that path.</summary>
    protected List<(NodeProto Step, string OnPath)> ScoreSteps { get; } = [];

    /// <summary>Graph inputs and outputs of a decoder's cache whose axis 1 counts the heads.</summary>
    protected List<string> CacheValues { get; } = [];

    /// <summary>Concats of an empty past and the new keys or values that pruning removes.</summary>
    protected List<string> EmptyConcats { get; } = [];

    /// <summary>The number of heads, once known.</summary>
    protected int HeadCount { get; set; }

    /// <summary>The width of one head, once known.</summary>
    protected int HeadWidth { get; set; }

    /// <summary>The MatMul/Gemm that reads the merged heads, once known.</summary>
    protected NodeProto? OutputProjection { get; set; }

    /// <summary>Every node of the block (for name exclusion).</summary>
    public List<NodeProto> Nodes { get; } = [context];

    /// <summary>Every weight initializer of the block.</summary>
    public List<string> Weights { get; } = [];

    /// <summary>Matches the block; null when it fits, else why not.</summary>
    public abstract string? Match();

    /// <summary>The structure found, after <see cref="Match"/> returned null.</summary>
    public PrunableStructure Structure() =>
        new(
            Context.Name,
            AttentionHeadFinder.AttentionOp,
            OutputProjection!.Name,
            HeadCount,
            Slices,
            Fixes,
            Changed,
            CacheValues.Count + EmptyConcats.Count > 0 ? new HeadCache(CacheValues, EmptyConcats) : null);

    /// <summary>The MatMul of queries and keys behind the softmax, through scaling and masking steps.</summary>
    protected NodeProto? ScoresProduct(NodeProto softmax)
    {
        Nodes.Add(softmax);
        Changed.Add(softmax.Output[0]);
        var current = softmax.Input[0];
        for (var depth = 0; depth < 6; depth++)
        {
            if (!Graph.Producers.TryGetValue(current, out var node) || Graph.Uses.GetValueOrDefault(current) != 1)
            {
                return null;
            }

            Changed.Add(current);
            if (node.OpType == "MatMul")
            {
                Nodes.Add(node);
                return node;
            }

            if (!ScoreStepOps.Contains(node.OpType))
            {
                return null;
            }

            // Follow the input that leads back to Q·Kᵀ: the one a MatMul or another score step makes.
            var next = node.Input.FirstOrDefault(i => Graph.Producers.TryGetValue(i, out var p) && (p.OpType == "MatMul" || ScoreStepOps.Contains(p.OpType)) && LeadsToProduct(i, 6 - depth));
            if (next is null)
            {
                return null;
            }

            Nodes.Add(node);
            ScoreSteps.Add((node, next));
            current = next;
        }

        return null;
    }

    /// <summary>
    /// How many readers <paramref name="value"/> has besides Shape nodes whose dims are only gathered one by one
    /// (exporters size the head reshapes that way); those dims are checked once the block is known.
    /// </summary>
    protected int Readers(string value)
    {
        var readers = Graph.GraphOutputs.Contains(value) ? 1 : 0;
        foreach (var node in Graph.Consumers(value))
        {
            if (node.OpType == "Shape" && DimensionsOnly(node))
            {
                Nodes.Add(node);
            }
            else if (ViewForDimensions(node) is { } shape)
            {
                // A transposed view read only for its dims (nn.MultiheadAttention takes src_len from k.transpose(0, 1)):
                // they are dims of the value, permuted.
                Nodes.AddRange([node, shape]);
                var perm = node.Attribute.First(a => a.Name == "perm").Ints;
                DimensionReads.AddRange(Graph.Consumers(shape.Output[0]).Select(g => Graph.DimensionRead(g.Output[0])!.Value).Select(r => (value, r.Axis < 0 ? r.Axis : perm[(int)r.Axis])));
                Changed.Add(node.Output[0]);
            }
            else
            {
                readers += node.Input.Count(i => i == value);
            }
        }

        return readers;
    }

    /// <summary>Records the dims that the run-time parts of a target shape read (Shape(x)[axis], as <see cref="Readers"/> admits them).</summary>
    protected void ReadsDimensions(params ShapePart[] parts)
    {
        foreach (var part in parts.Where(p => p.Value is null))
        {
            DimensionReads.AddRange(Graph.Product(part.Source, (_, _) => null)!.Reads);
        }
    }

    /// <summary>True when the Shape node's dims are only gathered one by one; records those reads.</summary>
    private bool DimensionsOnly(NodeProto shape)
    {
        var gathers = Graph.Consumers(shape.Output[0]).ToList();
        if (gathers.Count == 0 || Graph.GraphOutputs.Contains(shape.Output[0]) || !gathers.All(g => Graph.DimensionRead(g.Output[0]) is not null))
        {
            return false;
        }

        DimensionReads.AddRange(gathers.Select(g => Graph.DimensionRead(g.Output[0])!.Value));
        return true;
    }

    /// <summary>The one Shape node of a Transpose that nothing else reads, when that Shape's dims are only gathered; else null.</summary>
    private NodeProto? ViewForDimensions(NodeProto node)
    {
        if (node.OpType != "Transpose" || !node.Attribute.Any(a => a.Name == "perm") || Graph.GraphOutputs.Contains(node.Output[0])
            || Graph.Consumers(node.Output[0]).ToList() is not [{ OpType: "Shape", Attribute.Count: 0 } shape] || Graph.Uses.GetValueOrDefault(node.Output[0]) != 1)
        {
            return null;
        }

        var gathers = Graph.Consumers(shape.Output[0]).ToList();
        return gathers.Count > 0 && !Graph.GraphOutputs.Contains(shape.Output[0]) && gathers.All(g => Graph.DimensionRead(g.Output[0]) is not null) ? shape : null;
    }

    private bool LeadsToProduct(string value, int depth) =>
        depth > 0 && Graph.Producers.TryGetValue(value, out var node)
        && (node.OpType == "MatMul" || (ScoreStepOps.Contains(node.OpType) && node.Input.Any(i => LeadsToProduct(i, depth - 1))));
}
