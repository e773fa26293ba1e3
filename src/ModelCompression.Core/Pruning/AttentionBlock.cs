// Why this file is long: it is one matcher whose steps (keys, cache joins, rope, head-major reshapes, projections,
// packed projections, the merge) share the layouts and paths recorded by the steps before them; split, they would
// pass that state around instead of reading it.
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Pruning;

/// <summary>
/// One attention block with its own head axis ([batch, heads, sequence, head_width]), matched from its context MatMul
/// outwards. Besides an encoder's form (keys transposed straight into [batch, heads, head_width, sequence]) it follows
/// a decoder's: per-head keys and values joined to a cached past on the sequence axis (a Concat whose output is the
/// layer's present; in an export without cache, an empty past made in the graph), keys transposed after that, rotary
/// position steps on queries and keys (slices of the head width, negation, elementwise products with tables that
/// broadcast over the heads), and queries, keys and values split from one packed projection (GPT-2's <c>c_attn</c>).
/// </summary>
internal sealed class AttentionBlock(GraphIndex graph, NodeProto context) : AttentionBlockMatcher(graph, context)
{
    // Ops a per-head value may pass through between its head transpose and the attention (rotary embeddings).
    private static readonly HashSet<string> HeadwiseOps = new(StringComparer.Ordinal) { "Slice", "Neg", "Identity", "Concat", "Mul", "Add", "Sub", "Div" };

    // The block's values with their rank and the axes whose size pruning does not change (all but the heads').
    private readonly Dictionary<string, (int Rank, long[] Stable)> _layouts = new(StringComparer.Ordinal);

    // The three outputs of a packed projection's Split that the paths took, once one is matched.
    private readonly HashSet<string> _packedOutputs = new(StringComparer.Ordinal);
    private NodeProto? _packedSplit;

    /// <inheritdoc/>
    public override string? Match()
    {
        if (HeadMajor(Context.Input[1], "values") is { } value)
        {
            return value;
        }

        if (ScoresProduct(Graph.Producers[Context.Input[0]]) is not { } scores)
        {
            return "no MatMul of per-head queries and keys was found before the softmax";
        }

        if (HeadMajor(scores.Input[0], "queries") is { } query)
        {
            return query;
        }

        if (Keys(scores.Input[1]) is { } key)
        {
            return key;
        }

        if (_packedSplit is not null && _packedOutputs.Count != 3)
        {
            return $"Split '{_packedSplit.Name}' of the packed projection makes more than the queries, keys and values";
        }

        return Merge() ?? StaleDimension();
    }

    /// <summary>
    /// The keys as the scores read them: Transpose([0, 2, 3, 1]) of the head reshape (an encoder's), or
    /// Transpose([0, 1, 3, 2]) of per-head keys [batch, heads, sequence, head_width] (a decoder's, after its cache).
    /// </summary>
    private string? Keys(string value)
    {
        if (Graph.ProducedBy(value, "Transpose") is { } transpose && HasPerm(transpose, [0, 1, 3, 2]))
        {
            if (Readers(transpose.Output[0]) != 1 || Graph.GraphOutputs.Contains(transpose.Output[0]))
            {
                return $"'{transpose.Output[0]}' (on the keys' path) is read elsewhere too";
            }

            Nodes.Add(transpose);
            Changed.Add(transpose.Output[0]);
            Layout(transpose.Output[0], 4, 0, 2, 3);
            return HeadMajor(transpose.Input[0], "keys");
        }

        return Heads(value, [0, 2, 3, 1], "keys", region: null);
    }

    /// <summary>
    /// Per-head queries, keys or values [batch, heads, sequence, head_width]: optionally a Concat with the cached past on
    /// the sequence axis, then optionally head-wise steps (rotary positions), then Transpose([0, 2, 1, 3]) of the head
    /// reshape.
    /// </summary>
    private string? HeadMajor(string value, string what)
    {
        if (Graph.ProducedBy(value, "Concat") is { } concat)
        {
            if (Cache(concat, what) is { } why)
            {
                return why;
            }

            value = concat.Input[1];
        }

        if (Graph.ProducedBy(value, "Transpose") is { } transpose && HasPerm(transpose, [0, 2, 1, 3]))
        {
            return Heads(value, [0, 2, 1, 3], what, region: null);
        }

        if (Readers(value) != 1)
        {
            return $"'{value}' (on the {what}' path) is read elsewhere too";
        }

        var (start, region, problem) = Headwise(value, what);
        return problem ?? Heads(start!, [0, 2, 1, 3], what, region);
    }

    /// <summary>
    /// The new keys or values joined to the past on the sequence axis: Concat(past, new, axis 2) where the past is a graph
    /// input and the result a graph output (the present), or the past is empty (length 0 on axis 2).
    /// </summary>
    private string? Cache(NodeProto concat, string what)
    {
        var axis = concat.Attribute.FirstOrDefault(a => a.Name == "axis")?.I;
        if (concat.Input.Count != 2 || axis is not (2 or -2))
        {
            return $"the {what} come from Concat '{concat.Name}', which is not a past and new {what} joined on the sequence axis";
        }

        var (past, output) = (concat.Input[0], concat.Output[0]);
        var present = Graph.GraphOutputs.Contains(output);
        var cacheInput = Graph.Graph.Input.Any(i => i.Name == past) && !Graph.Initializers.ContainsKey(past);
        if (cacheInput && present)
        {
            CacheValues.AddRange([past, output]);
        }
        else if (!present && IsEmptyPast(past))
        {
            EmptyConcats.Add(output);
        }
        else
        {
            return $"the {what} are joined by Concat '{concat.Name}' with '{past}', which is neither a cache input whose result is a graph output (the present) nor empty";
        }

        // A present is read as a graph output and by the attention.
        if (Readers(output) != (present ? 2 : 1))
        {
            return $"'{output}' (on the {what}' path) is read elsewhere too";
        }

        Nodes.Add(concat);
        Changed.Add(output);
        Layout(output, 4, 0, 2, 3);
        return null;
    }

    /// <summary>Whether <paramref name="value"/> is certainly empty along the sequence axis: a constant or ConstantOfShape with a constant 0 there.</summary>
    private bool IsEmptyPast(string value) =>
        Graph.ConstantDims(value) is [_, _, 0, _]
        || (Graph.ProducedBy(value, "ConstantOfShape") is { } fill && Graph.ShapeParts(fill.Input[0]) is [_, _, { Value: 0 }, _]);

    /// <summary>
    /// The head-wise steps that end in <paramref name="end"/>, walked back to the one Transpose([0, 2, 1, 3]) they start
    /// from: slices of the head width, negation, concatenation on the head width, and elementwise arithmetic with
    /// constants of rank up to 2 or values unsqueezed on axis 1 (which broadcast over the heads). Every value in between
    /// is read only by these steps.
    /// </summary>
    private (string? Start, List<NodeProto> Region, string? Problem) Headwise(string end, string what)
    {
        const int MaxSteps = 16;
        var region = new List<NodeProto>();
        string? start = null;
        var pending = new Stack<string>([end]);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        while (pending.TryPop(out var value))
        {
            if (!seen.Add(value))
            {
                continue;
            }

            if (!Graph.Producers.TryGetValue(value, out var node))
            {
                return (null, region, $"the {what} are not made per head from a reshape into heads ('{value}' is not computed from one)");
            }

            if (node.OpType == "Transpose" && HasPerm(node, [0, 2, 1, 3]))
            {
                if (start is not null && start != value)
                {
                    return (null, region, $"the {what} combine two head transposes, '{start}' and '{value}'");
                }

                start = value;
                continue;
            }

            if (!HeadwiseOps.Contains(node.OpType) || !OnnxVersions.IsDefaultDomain(node.Domain) || region.Count == MaxSteps)
            {
                return (null, region, $"the {what} pass through {node.OpType} '{node.Name}', which the pruner cannot follow head by head");
            }

            if (HeadwiseInputs(node) is not { } path)
            {
                return (null, region, $"{node.OpType} '{node.Name}' on the {what}' path may mix or resize the heads (it must slice or join the head width only, and combine with values that broadcast over the heads)");
            }

            region.Add(node);
            foreach (var input in path)
            {
                pending.Push(input);
            }
        }

        if (start is null)
        {
            return (null, region, $"the {what} are not made from a Transpose (perm [0, 2, 1, 3]) of a reshape into heads");
        }

        // Values inside the steps, and the transposed heads they start from, must be read only by the steps.
        var inside = region.SelectMany(n => n.Output).Where(o => o != end).Append(start);
        if (inside.FirstOrDefault(v => Graph.GraphOutputs.Contains(v) || Readers(v) != region.Sum(n => n.Input.Count(i => i == v))) is { } shared)
        {
            return (null, region, $"'{shared}' (on the {what}' path) is read elsewhere too");
        }

        Nodes.AddRange(region);
        foreach (var output in region.SelectMany(n => n.Output))
        {
            Changed.Add(output);
            Layout(output, 4, 0, 2, 3);
        }

        return (start, region, null);
    }

    /// <summary>The inputs of a head-wise step that carry the heads; null when the step may mix or resize them.</summary>
    private List<string>? HeadwiseInputs(NodeProto node)
    {
        switch (node.OpType)
        {
            case "Neg" or "Identity":
                return [node.Input[0]];
            case "Slice":
                // Starts, ends, axes (the head width only) and steps are constants.
                return node.Input.Count >= 4 && node.Input.Skip(1).All(i => i.Length == 0 || Graph.FoldInts(i) is not null)
                    && Graph.FoldInts(node.Input[3]) is [-1 or 3]
                    ? [node.Input[0]]
                    : null;
            case "Concat":
                return node.Attribute.FirstOrDefault(a => a.Name == "axis")?.I is -1 or 3 ? [.. node.Input] : null;
            default:
                // Elementwise: the other operand is a constant of rank up to 2, or has axis 1 of size 1 (Unsqueeze on 1).
                var path = node.Input.Where(i => !BroadcastsOverHeads(i)).ToList();
                return path.Count is >= 1 and <= 2 ? path : null;
        }
    }

    private bool BroadcastsOverHeads(string value) =>
        Graph.ConstantDims(value) is { Length: <= 2 }
        || (Graph.ProducedBy(value, "Unsqueeze") is { } unsqueeze && unsqueeze.Input.Count == 2 && Graph.FoldInts(unsqueeze.Input[1]) is { } axes && axes.Contains(1));

    /// <summary>
    /// A per-head tensor: Transpose(<paramref name="perm"/>) of Reshape([.., .., H, d]) of a projection x·W (+ b)
    /// with W a float initializer [in, H*d], or of one of three equal parts split from a packed projection [in, 3·H*d].
    /// Records the projection's slices and the shape fixes. The transposed heads are read only by <paramref name="region"/>
    /// when head-wise steps follow (checked there), else once.
    /// </summary>
    private string? Heads(string value, long[] perm, string what, List<NodeProto>? region)
    {
        if (Graph.ProducedBy(value, "Transpose") is not { } transpose || !HasPerm(transpose, perm))
        {
            return $"the {what} are not a Transpose (perm [{string.Join(", ", perm)}]) of a Reshape into heads";
        }

        if (Graph.ProducedBy(transpose.Input[0], "Reshape") is not { } reshape
            || Graph.ShapeParts(reshape.Input[1]) is not [var batch, var sequence, { Value: > 0 and long heads }, { Value: > 0 and long width }])
        {
            return $"the {what} are not reshaped into heads by a [.., .., heads, head_width] shape with constant heads and head_width";
        }

        ReadsDimensions(batch, sequence);

        if (HeadCount != 0 && (heads != HeadCount || width != HeadWidth))
        {
            return $"the {what} have {heads} heads of {width}, the values {HeadCount} of {HeadWidth}";
        }

        (HeadCount, HeadWidth) = ((int)heads, (int)width);
        var projected = reshape.Input[0];
        List<string> path = [reshape.Input[0], reshape.Output[0]];
        if (region is null)
        {
            path.Add(transpose.Output[0]);
        }

        if (path.FirstOrDefault(v => Readers(v) != 1) is { } shared)
        {
            return $"'{shared}' (on the {what}' path) is read elsewhere too";
        }

        if (Graph.ProducedBy(projected, "Split") is { } split)
        {
            if (PackedProjection(split, heads * width, what) is { } why)
            {
                return why;
            }

            _packedOutputs.Add(projected);
        }
        else if (Projection(projected, heads * width, what) is { } why)
        {
            return why;
        }

        Nodes.AddRange([reshape, transpose]);
        Fixes.Add(new ShapeFix(reshape.Output[0], 2, 1));
        Changed.AddRange([projected, reshape.Output[0], transpose.Output[0]]);
        Layout(projected, 3, 0, 1);
        Layout(reshape.Output[0], 4, 0, 1, 3);
        // Both transposes put the heads on axis 1: [batch, heads, sequence, head_width] or [batch, heads, head_width, sequence].
        Layout(transpose.Output[0], 4, 0, 2, 3);
        return null;
    }

    /// <summary>The projection x·W (+ b) with W a float initializer [in, <paramref name="columns"/>] of its own; records its slices.</summary>
    private string? Projection(string projected, long columns, string what)
    {
        string? bias = null;
        if (Graph.ProducedBy(projected, "Add") is { } add)
        {
            var biasIndex = add.Input.ToList().FindIndex(Graph.IsFloatInitializer);
            if (biasIndex < 0 || Graph.ConstantDims(add.Input[biasIndex]) is not [var length] || length != columns)
            {
                return $"the {what}' projection adds something other than a bias of {columns}";
            }

            bias = add.Input[biasIndex];
            projected = add.Input[1 - biasIndex];
            Nodes.Add(add);
        }

        if (Graph.ProducedBy(projected, "MatMul") is not { } matmul || !Graph.IsFloatInitializer(matmul.Input[1])
            || Graph.ConstantDims(matmul.Input[1]) is not [_, var width] || width != columns)
        {
            return $"the {what} are not projected by a MatMul with a [in, {columns}] weight initializer";
        }

        if (bias is not null && Readers(matmul.Output[0]) != 1)
        {
            return $"'{matmul.Output[0]}' (on the {what}' path) is read elsewhere too";
        }

        if (Graph.Uses.GetValueOrDefault(matmul.Input[1]) != 1 || (bias is not null && Graph.Uses.GetValueOrDefault(bias) != 1))
        {
            return $"the {what}' weights are shared with another node";
        }

        Nodes.Add(matmul);
        Weights.Add(matmul.Input[1]);
        Slices.Add(new UnitSlice(matmul.Input[1], 1, HeadWidth, UnitSliceRole.Incoming));
        if (bias is not null)
        {
            Weights.Add(bias);
            Slices.Add(new UnitSlice(bias, 0, HeadWidth, UnitSliceRole.Incoming));
        }

        Changed.Add(matmul.Output[0]);
        Layout(matmul.Output[0], 3, 0, 1);
        return null;
    }

    /// <summary>
    /// Split(x·W (+ b), [w, w, w]) on the last axis, W a float initializer [in, 3w] and b [3w] of their own (GPT-2's
    /// <c>c_attn</c>): each part holds every head once, so a head owns its columns in each third. Matched once per block.
    /// </summary>
    private string? PackedProjection(NodeProto split, long part, string what)
    {
        if (_packedSplit is not null)
        {
            return _packedSplit == split ? null : $"the {what} are split from another projection than the rest of the block";
        }

        var axis = split.Attribute.FirstOrDefault(a => a.Name == "axis")?.I ?? 0;
        if (split.Output.Count != 3 || split.Input.Count != 2 || Graph.FoldInts(split.Input[1]) is not [var a, var b, var c] || a != part || b != part || c != part
            || !(axis == -1 || (axis == 2 && Graph.Rank(split.Input[0]) == 3)))
        {
            return $"Split '{split.Name}' does not cut a packed projection into queries, keys and values of {part} each along its last axis";
        }

        var packed = split.Input[0];
        if (Readers(packed) != 1)
        {
            return $"'{packed}' (the packed projection) is read elsewhere too";
        }

        string? bias = null;
        var projected = packed;
        if (Graph.ProducedBy(packed, "Add") is { } add)
        {
            var biasIndex = add.Input.ToList().FindIndex(Graph.IsFloatInitializer);
            if (biasIndex < 0 || Graph.ConstantDims(add.Input[biasIndex]) is not [var length] || length != 3 * part)
            {
                return $"the packed projection adds something other than a bias of {3 * part}";
            }

            bias = add.Input[biasIndex];
            projected = add.Input[1 - biasIndex];
            Nodes.Add(add);
        }

        if (Graph.ProducedBy(projected, "MatMul") is not { } matmul || !Graph.IsFloatInitializer(matmul.Input[1])
            || Graph.ConstantDims(matmul.Input[1]) is not [_, var columns] || columns != 3 * part)
        {
            return $"the packed projection is not a MatMul with a [in, {3 * part}] weight initializer";
        }

        if ((bias is not null && Readers(matmul.Output[0]) != 1)
            || Graph.Uses.GetValueOrDefault(matmul.Input[1]) != 1 || (bias is not null && Graph.Uses.GetValueOrDefault(bias) != 1))
        {
            return "the packed projection's product or weights are shared with another node";
        }

        _packedSplit = split;
        Nodes.AddRange([matmul, split]);
        Weights.Add(matmul.Input[1]);
        Slices.Add(new UnitSlice(matmul.Input[1], 1, HeadWidth, UnitSliceRole.Incoming, Groups: 3));
        if (bias is not null)
        {
            Weights.Add(bias);
            Slices.Add(new UnitSlice(bias, 0, HeadWidth, UnitSliceRole.Incoming, Groups: 3));
        }

        // The three sizes follow the kept heads.
        Fixes.AddRange(Enumerable.Range(0, 3).Select(i => new ShapeFix(split.Output[0], i, HeadWidth)));
        Changed.AddRange(new[] { matmul.Output[0], packed }.Distinct());
        Layout(matmul.Output[0], 3, 0, 1);
        Layout(packed, 3, 0, 1);
        return null;
    }

    /// <summary>The heads merged back, Reshape(Transpose(context), [.., .., H*d]), into the output projection's MatMul.</summary>
    private string? Merge()
    {
        var width = HeadCount * HeadWidth;
        if (Readers(Context.Output[0]) != 1 || Graph.Consumers(Context.Output[0]).FirstOrDefault(n => n.OpType == "Transpose" && n.Input[0] == Context.Output[0]) is not { } transpose
            || !HasPerm(transpose, [0, 2, 1, 3]))
        {
            return "the context is not transposed back to [batch, sequence, heads, head_width]";
        }

        var reshape = Graph.Consumers(transpose.Output[0]).FirstOrDefault(n => n.OpType == "Reshape" && n.Input[0] == transpose.Output[0]);
        if (Readers(transpose.Output[0]) != 1 || reshape is null || Graph.ShapeParts(reshape.Input[1]) is not [var batch, var sequence, { Value: var merged }] || merged != width)
        {
            return $"the heads are not merged by a Reshape to a [.., .., {width}] shape with a constant {width}";
        }

        ReadsDimensions(batch, sequence);
        var projection = Graph.Consumers(reshape.Output[0]).FirstOrDefault(n => n.OpType == "MatMul" && n.Input[0] == reshape.Output[0]);
        if (Readers(reshape.Output[0]) != 1 || projection is null || !Graph.IsFloatInitializer(projection.Input[1])
            || Graph.ConstantDims(projection.Input[1]) is not [var rows, _] || rows != width || Graph.Uses.GetValueOrDefault(projection.Input[1]) != 1)
        {
            return $"the merged heads do not feed one MatMul with its own [{width}, out] weight initializer";
        }

        if (new[] { Context.Output[0], transpose.Output[0], reshape.Output[0] }.Any(Graph.GraphOutputs.Contains))
        {
            return "a value of the block is a graph output";
        }

        OutputProjection = projection;
        Nodes.AddRange([transpose, reshape, projection]);
        Weights.Add(projection.Input[1]);
        Slices.Add(new UnitSlice(projection.Input[1], 0, HeadWidth, UnitSliceRole.Outgoing));
        Fixes.Add(new ShapeFix(reshape.Output[0], 2, HeadWidth));
        Changed.AddRange([Context.Output[0], transpose.Output[0], reshape.Output[0]]);
        Layout(Context.Output[0], 4, 0, 2, 3);
        Layout(transpose.Output[0], 4, 0, 1, 3);
        Layout(reshape.Output[0], 3, 0, 1);
        return null;
    }

    /// <summary>
    /// Null when every dim read at run time stays what it was: a dim of a value outside the block, or an axis of a block
    /// value that the heads do not size (batch, sequence, head width); else why not.
    /// </summary>
    private string? StaleDimension()
    {
        var changed = Changed.ToHashSet(StringComparer.Ordinal);
        foreach (var (value, axis) in DimensionReads.Where(r => changed.Contains(r.Value)))
        {
            if (!_layouts.TryGetValue(value, out var layout) || !layout.Stable.Contains(axis < 0 ? axis + layout.Rank : axis))
            {
                return $"dim {axis} of '{value}' is read at run time and changes with the heads";
            }
        }

        return null;
    }

    private void Layout(string value, int rank, params long[] stable) => _layouts[value] = (rank, stable);

    private static bool HasPerm(NodeProto transpose, long[] perm) =>
        transpose.Attribute.Any(a => a.Name == "perm" && a.Ints.SequenceEqual(perm));
}
