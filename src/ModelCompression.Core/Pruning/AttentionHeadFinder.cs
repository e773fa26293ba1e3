using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Pruning;

/// <summary>
/// Finds multi-head attention blocks whose heads can be removed (structured pruning of attention, as in Michel et
/// al. 2019), written out in plain ops as the built-in transformer and many exporters write them:
/// <code>
/// q|k|v = Reshape(MatMul(x, W) [+ b], [.., .., H, d]) -> Transpose      (per head)
/// scores = MatMul(q, k) [-> scale, mask ...] -> Softmax
/// out = MatMul(Reshape(Transpose(MatMul(scores, v)), [.., .., H*d]), Wo)
/// </code>
/// The target shapes may be constants or, as PyTorch exports <c>x.view(x.size()[:-1] + (H, d))</c>, a Concat of
/// batch and sequence sizes read at run time (Unsqueeze(Gather(Shape(x), 0|1))) and constants holding H, d and H*d.
/// A head is a unit of <c>d</c> features: its columns of Wq, Wk, Wv and their biases, and its rows of Wo. The
/// result is a <see cref="PrunableStructure"/>, so <see cref="StructuredPruner"/> scores and applies it like any
/// other structure, including the Reshape targets that hard-code H and H*d.
/// </summary>
public static class AttentionHeadFinder
{
    /// <summary>The operator name structures found here carry.</summary>
    public const string AttentionOp = "Attention";

    // Elementwise steps allowed between Q·Kᵀ and the softmax (scaling, an additive mask).
    private static readonly HashSet<string> ScoreSteps = new(StringComparer.Ordinal) { "Mul", "Div", "Add", "Sub", "Where" };

    /// <summary>
    /// Every attention block of <paramref name="model"/> in the recognised form; attention-like blocks that are not
    /// (a value read twice, head sizes computed at run time) are listed as skipped with the reason.
    /// </summary>
    public static (IReadOnlyList<PrunableStructure> Structures, IReadOnlyList<SkippedLayer> Skipped) Find(ModelProto model, NameFilter exclude)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(exclude);
        var graph = new StructureFinder.GraphIndex(model.Graph);
        var structures = new List<PrunableStructure>();
        var skipped = new List<SkippedLayer>();
        foreach (var node in model.Graph.Node)
        {
            // The context product, Softmax(scores) · V, identifies an attention block.
            if (node.OpType != "MatMul" || !OnnxVersions.IsDefaultDomain(node.Domain) || graph.ProducedBy(node.Input[0], "Softmax") is null)
            {
                continue;
            }

            var block = new Block(graph, node);
            var reason = block.Match();
            if (reason is null && exclude.Matches([.. block.Nodes.Select(n => n.Name), .. block.Weights]))
            {
                skipped.Add(new SkippedLayer(node.Name, AttentionOp, "excluded by name", Expected: true));
            }
            else if (reason is null)
            {
                structures.Add(block.Structure());
            }
            else
            {
                skipped.Add(new SkippedLayer(node.Name, AttentionOp, reason, Expected: false));
            }
        }

        return (structures, skipped);
    }

    /// <summary>One attention block, matched from its context MatMul outwards.</summary>
    private sealed class Block(StructureFinder.GraphIndex graph, NodeProto context)
    {
        private readonly List<UnitSlice> _slices = [];
        private readonly List<ShapeFix> _fixes = [];
        private readonly List<string> _changed = [];

        // Values laid out [batch, sequence, ...]: pruning changes none of their first two dims.
        private readonly HashSet<string> _sequenceMajor = new(StringComparer.Ordinal);

        // Dims read at run time, Shape(value)[axis], by the block's target shapes or by readers of its values.
        private readonly List<(string Value, long Axis)> _dimensionReads = [];
        private int _heads;
        private int _headWidth;
        private NodeProto? _outputProjection;

        /// <summary>Every node of the block (for name exclusion).</summary>
        public List<NodeProto> Nodes { get; } = [context];

        /// <summary>Every weight initializer of the block.</summary>
        public List<string> Weights { get; } = [];

        /// <summary>Matches the block; null when it fits, else why not.</summary>
        public string? Match()
        {
            var value = Heads(context.Input[1], [0, 2, 1, 3], "values");
            if (value is not null)
            {
                return value;
            }

            if (ScoresProduct(graph.Producers[context.Input[0]]) is not { } scores)
            {
                return "no MatMul of per-head queries and keys was found before the softmax";
            }

            if (Heads(scores.Input[0], [0, 2, 1, 3], "queries") is { } query)
            {
                return query;
            }

            if (Heads(scores.Input[1], [0, 2, 3, 1], "keys") is { } key)
            {
                return key;
            }

            return Merge() ?? StaleDimension();
        }

        public PrunableStructure Structure() =>
            new(context.Name, AttentionOp, _outputProjection!.Name, _heads, _slices, _fixes, _changed);

        /// <summary>
        /// A per-head tensor: Transpose(<paramref name="perm"/>) of Reshape([.., .., H, d]) of a projection x·W (+ b)
        /// with W a float initializer [in, H*d]. Records the projection's slices and the Reshape's shape fix.
        /// </summary>
        private string? Heads(string value, long[] perm, string what)
        {
            if (graph.ProducedBy(value, "Transpose") is not { } transpose || !transpose.Attribute.Any(a => a.Name == "perm" && a.Ints.SequenceEqual(perm)))
            {
                return $"the {what} are not a Transpose (perm [{string.Join(", ", perm)}]) of a Reshape into heads";
            }

            if (graph.ProducedBy(transpose.Input[0], "Reshape") is not { } reshape
                || graph.ShapeParts(reshape.Input[1]) is not [var batch, var sequence, { Value: > 0 and long heads }, { Value: > 0 and long width }])
            {
                return $"the {what} are not reshaped into heads by a [.., .., heads, head_width] shape with constant heads and head_width";
            }

            ReadsDimensions(batch, sequence);

            if (_heads != 0 && (heads != _heads || width != _headWidth))
            {
                return $"the {what} have {heads} heads of {width}, the values {_heads} of {_headWidth}";
            }

            (_heads, _headWidth) = ((int)heads, (int)width);
            var projected = reshape.Input[0];
            string? bias = null;
            if (graph.ProducedBy(projected, "Add") is { } add)
            {
                var biasIndex = add.Input.ToList().FindIndex(graph.IsFloatInitializer);
                if (biasIndex < 0 || graph.ConstantDims(add.Input[biasIndex]) is not [var length] || length != heads * width)
                {
                    return $"the {what}' projection adds something other than a bias of {heads * width}";
                }

                bias = add.Input[biasIndex];
                projected = add.Input[1 - biasIndex];
                Nodes.Add(add);
                _changed.Add(add.Output[0]);
            }

            if (graph.ProducedBy(projected, "MatMul") is not { } matmul || !graph.IsFloatInitializer(matmul.Input[1])
                || graph.ConstantDims(matmul.Input[1]) is not [_, var columns] || columns != heads * width)
            {
                return $"the {what} are not projected by a MatMul with a [in, {heads * width}] weight initializer";
            }

            string[] values = [matmul.Output[0], reshape.Input[0], reshape.Output[0], transpose.Output[0]];
            if (values.Distinct().FirstOrDefault(v => Readers(v) != 1) is { } shared)
            {
                return $"'{shared}' (on the {what}' path) is read elsewhere too";
            }

            if (graph.Uses.GetValueOrDefault(matmul.Input[1]) != 1 || (bias is not null && graph.Uses.GetValueOrDefault(bias) != 1))
            {
                return $"the {what}' weights are shared with another node";
            }

            Nodes.AddRange([matmul, reshape, transpose]);
            Weights.Add(matmul.Input[1]);
            _slices.Add(new UnitSlice(matmul.Input[1], 1, (int)width, UnitSliceRole.Incoming));
            if (bias is not null)
            {
                Weights.Add(bias);
                _slices.Add(new UnitSlice(bias, 0, (int)width, UnitSliceRole.Incoming));
            }

            _fixes.Add(new ShapeFix(reshape.Output[0], 2, 1));
            _changed.AddRange([matmul.Output[0], reshape.Output[0], transpose.Output[0]]);
            _sequenceMajor.UnionWith(values[..3]);
            return null;
        }

        /// <summary>The MatMul of queries and keys behind the softmax, through scaling and masking steps.</summary>
        private NodeProto? ScoresProduct(NodeProto softmax)
        {
            Nodes.Add(softmax);
            _changed.Add(softmax.Output[0]);
            var current = softmax.Input[0];
            for (var depth = 0; depth < 6; depth++)
            {
                if (!graph.Producers.TryGetValue(current, out var node) || graph.Uses.GetValueOrDefault(current) != 1)
                {
                    return null;
                }

                _changed.Add(current);
                if (node.OpType == "MatMul")
                {
                    Nodes.Add(node);
                    return node;
                }

                if (!ScoreSteps.Contains(node.OpType))
                {
                    return null;
                }

                // Follow the input that leads back to Q·Kᵀ: the one a MatMul or another score step makes.
                var next = node.Input.FirstOrDefault(i => graph.Producers.TryGetValue(i, out var p) && (p.OpType == "MatMul" || ScoreSteps.Contains(p.OpType)) && LeadsToProduct(i, 6 - depth));
                if (next is null)
                {
                    return null;
                }

                Nodes.Add(node);
                current = next;
            }

            return null;
        }

        private bool LeadsToProduct(string value, int depth) =>
            depth > 0 && graph.Producers.TryGetValue(value, out var node)
            && (node.OpType == "MatMul" || (ScoreSteps.Contains(node.OpType) && node.Input.Any(i => LeadsToProduct(i, depth - 1))));

        /// <summary>The heads merged back, Reshape(Transpose(context), [.., .., H*d]), into the output projection's MatMul.</summary>
        private string? Merge()
        {
            var width = _heads * _headWidth;
            if (graph.Uses.GetValueOrDefault(context.Output[0]) != 1 || graph.Consumers(context.Output[0]).FirstOrDefault(n => n.OpType == "Transpose" && n.Input[0] == context.Output[0]) is not { } transpose
                || !transpose.Attribute.Any(a => a.Name == "perm" && a.Ints.SequenceEqual([0L, 2, 1, 3])))
            {
                return "the context is not transposed back to [batch, sequence, heads, head_width]";
            }

            var reshape = graph.Consumers(transpose.Output[0]).FirstOrDefault(n => n.OpType == "Reshape" && n.Input[0] == transpose.Output[0]);
            if (Readers(transpose.Output[0]) != 1 || reshape is null || graph.ShapeParts(reshape.Input[1]) is not [var batch, var sequence, { Value: var merged }] || merged != width)
            {
                return $"the heads are not merged by a Reshape to a [.., .., {width}] shape with a constant {width}";
            }

            ReadsDimensions(batch, sequence);
            var projection = graph.Consumers(reshape.Output[0]).FirstOrDefault(n => n.OpType == "MatMul" && n.Input[0] == reshape.Output[0]);
            if (Readers(reshape.Output[0]) != 1 || projection is null || !graph.IsFloatInitializer(projection.Input[1])
                || graph.ConstantDims(projection.Input[1]) is not [var rows, _] || rows != width || graph.Uses.GetValueOrDefault(projection.Input[1]) != 1)
            {
                return $"the merged heads do not feed one MatMul with its own [{width}, out] weight initializer";
            }

            if (new[] { context.Output[0], transpose.Output[0], reshape.Output[0] }.Any(graph.GraphOutputs.Contains))
            {
                return "a value of the block is a graph output";
            }

            _outputProjection = projection;
            Nodes.AddRange([transpose, reshape, projection]);
            Weights.Add(projection.Input[1]);
            _slices.Add(new UnitSlice(projection.Input[1], 0, _headWidth, UnitSliceRole.Outgoing));
            _fixes.Add(new ShapeFix(reshape.Output[0], 2, _headWidth));
            _changed.AddRange([context.Output[0], transpose.Output[0], reshape.Output[0]]);
            _sequenceMajor.UnionWith([transpose.Output[0], reshape.Output[0]]);
            return null;
        }

        /// <summary>
        /// How many readers <paramref name="value"/> has besides Shape nodes whose dims are only gathered one by one
        /// (exporters size the head reshapes that way); those dims are checked once the block is known.
        /// </summary>
        private int Readers(string value)
        {
            var readers = graph.GraphOutputs.Contains(value) ? 1 : 0;
            foreach (var node in graph.Consumers(value))
            {
                var gathers = node.OpType == "Shape" ? graph.Consumers(node.Output[0]).ToList() : [];
                if (gathers.Count > 0 && !graph.GraphOutputs.Contains(node.Output[0]) && gathers.All(g => graph.DimensionRead(g.Output[0]) is not null))
                {
                    _dimensionReads.AddRange(gathers.Select(g => graph.DimensionRead(g.Output[0])!.Value));
                    Nodes.Add(node);
                }
                else
                {
                    readers += node.Input.Count(i => i == value);
                }
            }

            return readers;
        }

        /// <summary>Records the run-time parts of a target shape (Shape(x)[axis], as <see cref="Readers"/> admits them).</summary>
        private void ReadsDimensions(params StructureFinder.ShapePart[] parts)
        {
            foreach (var part in parts.Where(p => p.Value is null))
            {
                _dimensionReads.Add(graph.DimensionRead(part.Source)!.Value);
            }
        }

        /// <summary>
        /// Null when every dim read at run time stays what it was: a dim of a value outside the block, or the batch or
        /// sequence dim of a [batch, sequence, ...] value of it; else why not.
        /// </summary>
        private string? StaleDimension()
        {
            var changed = _changed.ToHashSet(StringComparer.Ordinal);
            return _dimensionReads.FirstOrDefault(r => changed.Contains(r.Value) && !(_sequenceMajor.Contains(r.Value) && r.Axis is 0 or 1)) is ({ } value, var axis)
                ? $"dim {axis} of '{value}' is read at run time and changes with the heads"
                : null;
        }
    }
}
