// Why this file is long: it is one matcher. The export of nn.MultiheadAttention reads every size at run time, so
// each step (the three paths, the packed projection, head shapes and slice bounds, the merge, the mask) checks its
// sizes at every head count against what the steps before it recorded (layouts, paths, head count and width);
// split into classes, the steps would hand that state back and forth instead of sharing it.

using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Pruning;

/// <summary>
/// One block of PyTorch's nn.MultiheadAttention as torch.onnx.export writes it (torch 1.13, opsets 13 and 17):
/// <code>
/// packed = x·W [+ b]                W [E, 3·H·d]: the queries', keys' and values' columns one after the other
/// q|k|v  = Slice(packed, i·P/3, (i+1)·P/3, axis -1)      P = Shape(packed)[-1], read at run time
/// heads  = Transpose(Reshape(q|k|v, [L, bsz·H, d]), [1, 0, 2])     keys: [1, 2, 0]; d = E / H at run time
/// scores = q·kᵀ [+ mask], mask = Reshape(Expand(key_padding_mask, [1, H, 1, 1]), [bsz·H, 1, S])
/// out    = Gemm(Reshape(Transpose(Softmax(scores)·v, [1, 0, 2]), [L·bsz, E]), out_proj, transB)
/// </code>
/// The heads are folded into the batch, so every size is read at run time: a head is its d columns in each third
/// of W and b and its d input columns of out_proj; pruning sets the count in bsz·H (on copies), the expanded mask's
/// heads and the merged width, and the slice bounds follow the packed width by themselves.
/// </summary>
internal sealed class PackedAttentionBlock(GraphIndex graph, NodeProto context) : AttentionBlockMatcher(graph, context)
{
    // The block's values, with their rank and the axes whose size the heads do not change.
    private readonly Dictionary<string, (int Rank, HashSet<long> Stable)> _layouts = new(StringComparer.Ordinal);

    // The queries', keys' and values' chunks of the packed projection and their head reshapes.
    private readonly List<(string Chunk, NodeProto Reshape, string What)> _paths = [];
    private readonly List<NodeProto> _splits = [];
    private string _input = string.Empty;
    private string _product = string.Empty;
    private string _packed = string.Empty;
    private long _inputWidth;

    /// <inheritdoc/>
    public override string? Match()
    {
        if (Path(Context.Input[1], [1, 0, 2], "values", scaled: false) is { } value)
        {
            return value;
        }

        var before = Changed.Count;
        if (ScoresProduct(Graph.Producers[Context.Input[0]]) is not { } scores)
        {
            return "no MatMul of per-head queries and keys was found before the softmax";
        }

        // The scores and their steps, [bsz·H, L, S].
        foreach (var changed in Changed.Skip(before))
        {
            Layout(changed, 3, 1, 2);
        }

        Layout(Context.Output[0], 3, 1, 2);
        return Path(scores.Input[0], [1, 0, 2], "queries", scaled: true)
            ?? Path(scores.Input[1], [1, 2, 0], "keys", scaled: false)
            ?? InProjection()
            ?? HeadShapes()
            ?? Merge()
            ?? Mask()
            ?? StaleDimension();
    }

    /// <summary>
    /// The per-head queries, keys or values: Transpose(<paramref name="perm"/>) of Reshape(chunk, [L, bsz·H, d]),
    /// the queries optionally scaled by a constant.
    /// </summary>
    private string? Path(string value, long[] perm, string what, bool scaled)
    {
        NodeProto? scale = null;
        if (scaled && Graph.Producers.TryGetValue(value, out var step) && step.OpType is "Mul" or "Div" && OnnxVersions.IsDefaultDomain(step.Domain)
            && step.Input.Count == 2 && Graph.ConstantDims(step.Input[1]) is [] or [1])
        {
            scale = step;
            value = step.Input[0];
        }

        if (Graph.ProducedBy(value, "Transpose") is not { } transpose || !transpose.Attribute.Any(a => a.Name == "perm" && a.Ints.SequenceEqual(perm))
            || Graph.ProducedBy(transpose.Input[0], "Reshape") is not { } reshape)
        {
            return $"the {what} are not a Transpose (perm [{string.Join(", ", perm)}]) of a Reshape into [sequence, batch x heads, head_width]";
        }

        var chunk = reshape.Input[0];
        string[] values = scale is null ? [chunk, reshape.Output[0], transpose.Output[0]] : [chunk, reshape.Output[0], transpose.Output[0], scale.Output[0]];
        if (values.FirstOrDefault(v => Readers(v) != 1) is { } shared)
        {
            return $"'{shared}' (on the {what}' path) is read elsewhere too";
        }

        Nodes.AddRange(scale is null ? [reshape, transpose] : [reshape, transpose, scale]);
        Changed.AddRange(values);
        Layout(chunk, 3, 0, 1);
        Layout(reshape.Output[0], 3, 0, 2);
        long[] stable = [.. Enumerable.Range(0, 3).Where(axis => perm[axis] is 0 or 2).Select(axis => (long)axis)];
        Layout(transpose.Output[0], 3, stable);
        if (scale is not null)
        {
            Layout(scale.Output[0], 3, stable);
        }

        _paths.Add((chunk, reshape, what));
        return null;
    }

    /// <summary>The chunks are three Slices of one projection x·W [+ b] with W a float initializer [E, 3·E'] of its own.</summary>
    private string? InProjection()
    {
        _splits.AddRange(_paths.Select(p => Graph.ProducedBy(p.Chunk, "Slice")).OfType<NodeProto>());
        if (_splits.Count != 3 || _splits.Select(n => n.Input[0]).Distinct().Count() != 1)
        {
            return "the queries, keys and values are not three slices of one packed projection";
        }

        _packed = _splits[0].Input[0];
        var projected = _packed;
        string? bias = null;
        if (Graph.ProducedBy(projected, "Add") is { } add)
        {
            var biasIndex = add.Input.ToList().FindIndex(Graph.IsFloatInitializer);
            if (biasIndex < 0 || Graph.ConstantDims(add.Input[biasIndex]) is not [_])
            {
                return "the packed projection adds something other than a bias";
            }

            bias = add.Input[biasIndex];
            projected = add.Input[1 - biasIndex];
            Nodes.Add(add);
        }

        if (Graph.ProducedBy(projected, "MatMul") is not { } matmul || !Graph.IsFloatInitializer(matmul.Input[1])
            || Graph.ConstantDims(matmul.Input[1]) is not [var rows, var columns] || columns % 3 != 0
            || (bias is not null && (Graph.ConstantDims(bias) is not [var length] || length != columns)))
        {
            return "the packed projection is not a MatMul with a [in, 3 x width] weight initializer (and a bias of 3 x width)";
        }

        if (Graph.Uses.GetValueOrDefault(matmul.Input[1]) != 1 || (bias is not null && Graph.Uses.GetValueOrDefault(bias) != 1))
        {
            return "the packed projection's weights are shared with another node";
        }

        if ((bias is not null && Readers(matmul.Output[0]) != 1) || Readers(_packed) != 3)
        {
            return $"'{_packed}' (the packed projection) is read by more than the three slices";
        }

        if (Graph.Rank(matmul.Input[0]) != 3)
        {
            return $"the packed projection's input '{matmul.Input[0]}' is not known to be [sequence, batch, features]";
        }

        (_input, _product, _inputWidth) = (matmul.Input[0], matmul.Output[0], rows);
        Nodes.AddRange([matmul, .. _splits]);
        Weights.Add(matmul.Input[1]);
        Changed.AddRange([_product, _packed]);
        Layout(_product, 3, 0, 1);
        Layout(_packed, 3, 0, 1);
        return null;
    }

    /// <summary>
    /// The head reshapes: [L, bsz·H, d] with L and bsz read at run time and d a constant or E / H; from d and the packed
    /// width follows H. Also checks the slice bounds, which must cut thirds of the packed width at every head count.
    /// </summary>
    private string? HeadShapes()
    {
        var columns = Graph.ConstantDims(Weights[0])![1];
        foreach (var (_, reshape, what) in _paths)
        {
            if (Graph.ShapeParts(reshape.Input[1]) is not [var sequence, var folded, var width]
                || Evaluate(width, HeadCount) is not { Reads.Count: 0, Coefficient: > 0 and var d } || columns % (3 * d) != 0
                || (HeadWidth != 0 && d != HeadWidth))
            {
                return $"the {what} are not reshaped into [sequence, batch x heads, head_width] with a head_width known before run time";
            }

            (HeadWidth, HeadCount) = ((int)d, (int)(columns / 3 / d));
            if (Unchanged(sequence) is { } why)
            {
                return $"the {what}' sequence size {why}";
            }

            if (Evaluate(folded, HeadCount) is not { Coefficient: var count, Reads: [var batch] } || count != HeadCount || !FactorForm(folded))
            {
                return $"the {what}' batch x heads size is not a dim read at run time times the {HeadCount} heads";
            }

            DimensionReads.Add(batch);
            Fixes.Add(new ShapeFix(reshape.Output[0], 1, 1, Factor: true));
            if (Enumerable.Range(1, HeadCount).Any(h => Evaluate(width, h) is not { Reads.Count: 0 } kept || kept.Coefficient != HeadWidth))
            {
                return $"the {what}' head_width would change with the heads";
            }
        }

        return Thirds();
    }

    /// <summary>Each Slice takes one third of the packed width along its last axis, at H heads and at every count below.</summary>
    private string? Thirds()
    {
        var taken = new HashSet<long>();
        foreach (var split in _splits)
        {
            if (split.Input.Count < 4 || Graph.FoldInts(split.Input[3]) is not [-1 or 2]
                || (split.Input.Count > 4 && split.Input[4].Length > 0 && Graph.FoldInts(split.Input[4]) is not [1]))
            {
                return $"Slice '{split.Name}' does not cut the packed projection along its last axis";
            }

            var third = -1L;
            for (var h = 1; h <= HeadCount; h++)
            {
                var part = (long)h * HeadWidth;
                if (Bound(split.Input[1], h) is not { } start || Bound(split.Input[2], h) is not { } end || start % part != 0
                    || (third >= 0 && start / part != third) || !(end == start + part || (start == 2 * part && end >= 3 * part)))
                {
                    return $"Slice '{split.Name}' does not cut a third of the packed projection when there are {h} heads";
                }

                third = start / part;
            }

            taken.Add(third);
        }

        if (taken.Count != 3)
        {
            return "the slices of the packed projection overlap";
        }

        Slices.Add(new UnitSlice(Weights[0], 1, HeadWidth, UnitSliceRole.Incoming, Groups: 3));
        if (Graph.ProducedBy(_packed, "Add") is { } add)
        {
            var bias = add.Input.First(Graph.IsFloatInitializer);
            Weights.Add(bias);
            Slices.Add(new UnitSlice(bias, 0, HeadWidth, UnitSliceRole.Incoming, Groups: 3));
        }

        // The packed width may be read only for the bounds just checked: they follow it when heads go.
        return WidthReadsOnlyForBounds();
    }

    /// <summary>A slice bound when <paramref name="heads"/> heads are kept, or null when it is not known before run time.</summary>
    private long? Bound(string value, int heads) => Graph.Product(value, (v, a) => Known(v, a, heads)) is { Reads.Count: 0 } bound ? bound.Coefficient : null;

    /// <summary>Null when every run-time read of the packed width reaches only the slice bounds, through scalar arithmetic; else why not.</summary>
    private string? WidthReadsOnlyForBounds()
    {
        var bounds = _splits.SelectMany(s => new[] { (s, 1), (s, 2) }).ToHashSet();
        foreach (var shape in new[] { _product, _packed }.SelectMany(Graph.Consumers).Where(n => n.OpType == "Shape"))
        {
            foreach (var gather in Graph.Consumers(shape.Output[0]))
            {
                if (Graph.DimensionRead(gather.Output[0]) is not { } read || Known(read.Value, read.Axis, 1) is null)
                {
                    continue;
                }

                var pending = new Queue<string>([gather.Output[0]]);
                var seen = new HashSet<string>(StringComparer.Ordinal);
                while (pending.TryDequeue(out var value))
                {
                    if (!seen.Add(value))
                    {
                        continue;
                    }

                    foreach (var reader in Graph.Consumers(value))
                    {
                        if (reader.OpType is "Add" or "Sub" or "Mul" or "Div" or "Cast" or "Unsqueeze" or "Squeeze" or "Identity" && !Graph.GraphOutputs.Contains(reader.Output[0]))
                        {
                            pending.Enqueue(reader.Output[0]);
                        }
                        else if (!Enumerable.Range(0, reader.Input.Count).All(k => reader.Input[k] != value || bounds.Contains((reader, k))))
                        {
                            return $"the packed width, dim -1 of '{read.Value}', is read at run time for more than the slice bounds";
                        }
                    }
                }
            }
        }

        return null;
    }

    /// <summary>The heads merged back, Reshape(Transpose(context, [1, 0, 2]), [L·bsz, H·d]), into out_proj (Gemm or MatMul).</summary>
    private string? Merge()
    {
        var width = (long)HeadCount * HeadWidth;
        if (Readers(Context.Output[0]) != 1 || Graph.Consumers(Context.Output[0]).FirstOrDefault(n => n.OpType == "Transpose") is not { } transpose
            || !transpose.Attribute.Any(a => a.Name == "perm" && a.Ints.SequenceEqual([1L, 0, 2])))
        {
            return "the context is not transposed back to [sequence, batch x heads, head_width]";
        }

        if (Readers(transpose.Output[0]) != 1 || Graph.Consumers(transpose.Output[0]).FirstOrDefault(n => n.OpType == "Reshape" && n.Input[0] == transpose.Output[0]) is not { } reshape
            || Graph.ShapeParts(reshape.Input[1]) is not [var rows, var merged]
            || Enumerable.Range(1, HeadCount).Any(h => Evaluate(merged, h) is not { Reads.Count: 0 } value || value.Coefficient != width))
        {
            return $"the heads are not merged by a Reshape to [sequence x batch, {width}] with {width} known before run time";
        }

        if (Unchanged(rows) is { } why)
        {
            return $"the merged heads' row count {why}";
        }

        var projection = Graph.Consumers(reshape.Output[0]).FirstOrDefault(n => n.OpType is "MatMul" or "Gemm" && n.Input[0] == reshape.Output[0]);
        var axis = projection is { OpType: "Gemm" } && PrunableWeights.Attribute(projection, "transB") != 0 ? 1 : 0;
        if (Readers(reshape.Output[0]) != 1 || projection is null || !Graph.IsFloatInitializer(projection.Input[1]) || (projection.OpType == "Gemm" && PrunableWeights.Attribute(projection, "transA") != 0)
            || Graph.ConstantDims(projection.Input[1]) is not { Length: 2 } dims || dims[axis] != width || Graph.Uses.GetValueOrDefault(projection.Input[1]) != 1)
        {
            return $"the merged heads do not feed one MatMul or Gemm with its own weight initializer of {width} inputs";
        }

        if (new[] { Context.Output[0], transpose.Output[0], reshape.Output[0] }.Any(Graph.GraphOutputs.Contains))
        {
            return "a value of the block is a graph output";
        }

        OutputProjection = projection;
        Nodes.AddRange([transpose, reshape, projection]);
        Weights.Add(projection.Input[1]);
        Slices.Add(new UnitSlice(projection.Input[1], axis, HeadWidth, UnitSliceRole.Outgoing));
        Fixes.Add(new ShapeFix(reshape.Output[0], 1, HeadWidth));
        Changed.AddRange([Context.Output[0], transpose.Output[0], reshape.Output[0]]);
        Layout(transpose.Output[0], 3, 0, 2);
        Layout(reshape.Output[0], 2, 0);
        return null;
    }

    /// <summary>
    /// What the scores are combined with: constants, and at most one key padding mask expanded over the heads,
    /// Reshape(Expand(mask, [1, H, 1, 1]), [bsz·H, ...]), read only on its way to the scores.
    /// </summary>
    private string? Mask()
    {
        NodeProto? reshape = null;
        var walked = new List<NodeProto>();
        foreach (var (step, onPath) in ScoreSteps)
        {
            foreach (var input in step.Input.Where(i => i.Length > 0 && i != onPath))
            {
                if (MaskSide(input, 6, ref reshape, walked) is { } why)
                {
                    return why;
                }
            }
        }

        if (reshape is null)
        {
            return null;
        }

        var parts = Graph.ShapeParts(reshape.Input[1]);
        if (parts is not [var folded, .. var rest] || Evaluate(folded, HeadCount) is not { Coefficient: var count, Reads: [var batch] } || count != HeadCount || !FactorForm(folded))
        {
            return $"the mask added to the scores is not reshaped to [batch x {HeadCount} heads, ...] with the batch read at run time";
        }

        if (rest.Select(Unchanged).FirstOrDefault(w => w is not null) is { } why2)
        {
            return $"the mask's reshape has a size that {why2}";
        }

        if (Graph.ProducedBy(reshape.Input[0], "Expand") is not { } expand || Readers(expand.Output[0]) != 1
            || Graph.FoldInts(expand.Input[1]) is not [1 or -1, var heads, .. var ones] || heads != HeadCount || ones.Any(o => o is not (1 or -1))
            || Changed.Contains(expand.Input[0]))
        {
            return $"the mask added to the scores is not expanded over the {HeadCount} heads by a constant [1, {HeadCount}, ...] shape";
        }

        var inside = walked.Concat(ScoreSteps.Select(s => s.Step)).Append(reshape).ToHashSet();
        if (walked.Append(reshape).SelectMany(n => n.Output).FirstOrDefault(o => Graph.GraphOutputs.Contains(o) || Graph.Consumers(o).Any(c => !inside.Contains(c))) is { } leak)
        {
            return $"'{leak}' (on the mask's path) is read elsewhere too";
        }

        DimensionReads.Add(batch);
        Fixes.Add(new ShapeFix(reshape.Output[0], 0, 1, Factor: true));
        Fixes.Add(new ShapeFix(expand.Output[0], 1, 1));
        Nodes.AddRange([expand, reshape, .. walked]);
        Changed.AddRange([expand.Output[0], reshape.Output[0], .. walked.SelectMany(n => n.Output)]);
        return null;
    }

    private string? MaskSide(string value, int depth, ref NodeProto? reshape, List<NodeProto> walked)
    {
        if (Graph.ConstantDims(value) is not null)
        {
            return null;
        }

        if (Graph.Producers.TryGetValue(value, out var node) && node.OpType == "Reshape" && (reshape is null || reshape == node))
        {
            reshape = node;
            return null;
        }

        if (depth == 0 || node is null || !OnnxVersions.IsDefaultDomain(node.Domain)
            || node.OpType is not ("Mul" or "Add" or "Sub" or "Div" or "Where" or "Cast" or "Not" or "And" or "Or" or "Equal" or "Neg" or "Identity" or "ConstantOfShape" or "Shape"))
        {
            return $"the scores are combined with '{value}', whose batch x heads size pruning cannot follow";
        }

        if (!walked.Contains(node))
        {
            walked.Add(node);
        }

        foreach (var input in node.Input.Where(i => i.Length > 0))
        {
            if (MaskSide(input, depth - 1, ref reshape, walked) is { } why)
            {
                return why;
            }
        }

        return null;
    }

    /// <summary>Null when a target shape's element is the same at every head count and not 0; else why not.</summary>
    private string? Unchanged(ShapePart part)
    {
        var first = Evaluate(part, HeadCount);
        if (first is null || first.Coefficient == 0 || (first.Coefficient < 0 && (first.Coefficient != -1 || first.Reads.Count > 0)))
        {
            return "is not a product of dims read at run time and constants";
        }

        if (Enumerable.Range(1, HeadCount).Any(h => Evaluate(part, h) is not { } other || other.Coefficient != first.Coefficient || !other.Reads.SequenceEqual(first.Reads)))
        {
            return "changes with the heads";
        }

        DimensionReads.AddRange(first.Reads);
        return null;
    }

    /// <summary>A shape element computed as [Unsqueeze](Mul(a dim read at run time, the head count)), whose count a fix replaces.</summary>
    private bool FactorForm(ShapePart part)
    {
        if (part.Value is not null || part.Concat is null)
        {
            return false;
        }

        var product = Graph.ProducedBy(part.Source, "Unsqueeze")?.Input[0] ?? part.Source;
        return Graph.ProducedBy(product, "Mul") is { } mul
            && mul.Input.Count(i => Graph.FoldInts(i) is [_]) == 1
            && mul.Input.Any(i => Graph.FoldInts(i) is [var count] && count == HeadCount);
    }

    /// <summary>A target shape's element when <paramref name="heads"/> heads are kept: the widths pruning sets are known.</summary>
    private DimensionProduct? Evaluate(ShapePart part, int heads) =>
        part.Value is { } constant ? new DimensionProduct(constant, []) : Graph.Product(part.Source, (v, a) => Known(v, a, heads));

    /// <summary>The dims whose size is known: the input's width, and the packed projection's at <paramref name="heads"/> heads.</summary>
    private long? Known(string value, long axis, int heads) =>
        value == _input && axis is -1 or 2 ? _inputWidth
        : (value == _packed || value == _product) && axis is -1 or 2 && HeadWidth > 0 ? 3L * heads * HeadWidth
        : null;

    private void Layout(string value, int rank, params long[] stable) => _layouts[value] = (rank, [.. stable]);

    /// <summary>
    /// Null when every dim read at run time stays what it was: a dim of a value outside the block, or an axis of a
    /// block value that the heads do not size; else why not.
    /// </summary>
    private string? StaleDimension()
    {
        var changed = Changed.ToHashSet(StringComparer.Ordinal);
        foreach (var (value, axis) in DimensionReads)
        {
            // Shape(view) of a transposed view of a block value: the dims of that value, permuted.
            var (source, at) = (value, axis);
            if (!_layouts.ContainsKey(source) && Graph.ProducedBy(source, "Transpose") is { } view && _layouts.TryGetValue(view.Input[0], out var viewed) && at >= -viewed.Rank && at < viewed.Rank)
            {
                (source, at) = (view.Input[0], view.Attribute.First(a => a.Name == "perm").Ints[(int)(at < 0 ? at + viewed.Rank : at)]);
            }

            if (Known(source, at, HeadCount) is not null)
            {
                continue;
            }

            if (_layouts.TryGetValue(source, out var layout) ? !layout.Stable.Contains(at < 0 ? at + layout.Rank : at) : changed.Contains(source))
            {
                return $"dim {axis} of '{value}' is read at run time and changes with the heads";
            }
        }

        return null;
    }
}
