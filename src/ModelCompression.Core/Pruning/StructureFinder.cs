using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Pruning;

/// <summary>
/// Finds the layers whose units can be removed without breaking the graph. From each MatMul/Gemm/Conv with a
/// constant weight it follows the output forward through ops that treat every unit on its own (bias Add,
/// activations, Dropout, BatchNormalization, pooling, Flatten and a flattening Reshape) to the one
/// MatMul/Gemm/Conv that reads the units. Anything else on the way — a residual Add with another tensor, a
/// reshape into attention heads, LayerNormalization across the units, a second reader, a graph output — means
/// the layer is left whole, with the reason.
/// </summary>
public static class StructureFinder
{
    private static readonly HashSet<string> Elementwise = new(StringComparer.Ordinal)
    {
        "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Erf", "Elu", "Selu", "Celu", "Softplus", "Softsign", "HardSigmoid",
        "HardSwish", "Gelu", "Mish", "ThresholdedRelu", "Neg", "Abs", "Exp", "Log", "Sqrt", "Reciprocal", "Identity", "Cast",
    };

    private static readonly HashSet<string> Combining = new(StringComparer.Ordinal)
    {
        "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "PRelu",
    };

    private static readonly HashSet<string> Pooling = new(StringComparer.Ordinal)
    {
        "MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool",
    };

    /// <summary>Every prunable structure of <paramref name="model"/>, and every MatMul/Gemm/Conv left whole with its reason.</summary>
    /// <param name="model">The model; not changed.</param>
    /// <param name="exclude">Producer nodes or weights not to prune.</param>
    public static (IReadOnlyList<PrunableStructure> Structures, IReadOnlyList<SkippedLayer> Skipped) Find(ModelProto model, NameFilter exclude)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(exclude);
        var graph = new GraphIndex(model.Graph);
        var structures = new List<PrunableStructure>();
        var skipped = new List<SkippedLayer>();
        var hasControlFlow = model.Graph.Node.Any(n => n.Attribute.Any(a => a.G is not null || a.Graphs.Count > 0));
        for (var i = 0; i < model.Graph.Node.Count; i++)
        {
            var node = model.Graph.Node[i];
            if (node.OpType is not ("MatMul" or "Gemm" or "Conv") || !OnnxVersions.IsDefaultDomain(node.Domain))
            {
                continue;
            }

            if (exclude.Matches(node.Name, node.Input.Count > 1 ? node.Input[1] : string.Empty))
            {
                skipped.Add(new SkippedLayer(node.Name, node.OpType, "excluded by name", Expected: true));
                continue;
            }

            if (graph.GraphOutputs.Contains(node.Output[0]))
            {
                skipped.Add(new SkippedLayer(node.Name, node.OpType, $"it makes the graph output '{node.Output[0]}'", Expected: true));
                continue;
            }

            if (hasControlFlow)
            {
                skipped.Add(new SkippedLayer(node.Name, node.OpType, "the graph has control flow (If/Loop/Scan), whose subgraphs are not followed", Expected: false));
                continue;
            }

            var walk = new Walk(graph, node, i);
            if (walk.Run() is { } reason)
            {
                skipped.Add(new SkippedLayer(node.Name, node.OpType, reason, Expected: false));
            }
            else
            {
                structures.Add(walk.Result!);
            }
        }

        return (structures, skipped);
    }

    /// <summary>Where the units sit in a value: the channel axis 1 of a rank-<c>Rank</c> image tensor, or the last axis (features).</summary>
    private sealed record Layout(bool Spatial, int Rank, bool Flattened, int Block);

    /// <summary>Lookups over one graph.</summary>
    /// <summary>Lookups over one graph: initializers, constants, how often each value is read, and which node makes it.</summary>
    internal sealed class GraphIndex
    {
        // Ranks of values, worked out on first use (most walks never ask).
        private Dictionary<string, int>? _ranks;

        public GraphIndex(GraphProto graph)
        {
            Graph = graph;
            Initializers = graph.Initializer.ToDictionary(i => i.Name, StringComparer.Ordinal);
            GraphOutputs = graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
            foreach (var node in graph.Node)
            {
                if (node.OpType == "Constant" && node.Output.Count == 1)
                {
                    ConstantNodes[node.Output[0]] = node;
                }

                foreach (var input in node.Input.Where(n => n.Length > 0))
                {
                    Uses[input] = Uses.GetValueOrDefault(input) + 1;
                }

                foreach (var output in node.Output.Where(n => n.Length > 0))
                {
                    Producers[output] = node;
                }
            }

            foreach (var output in GraphOutputs)
            {
                Uses[output] = Uses.GetValueOrDefault(output) + 1;
            }
        }

        public GraphProto Graph { get; }

        public Dictionary<string, TensorProto> Initializers { get; }

        public Dictionary<string, NodeProto> ConstantNodes { get; } = new(StringComparer.Ordinal);

        public HashSet<string> GraphOutputs { get; }

        public Dictionary<string, int> Uses { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, NodeProto> Producers { get; } = new(StringComparer.Ordinal);

        /// <summary>The node that makes <paramref name="value"/> when it is a default-domain <paramref name="opType"/>, else null.</summary>
        public NodeProto? ProducedBy(string value, string opType) =>
            Producers.TryGetValue(value, out var node) && node.OpType == opType && OnnxVersions.IsDefaultDomain(node.Domain) ? node : null;

        /// <summary>The dims of a constant (initializer or Constant node), or null when the value is computed.</summary>
        public long[]? ConstantDims(string name)
        {
            if (Initializers.TryGetValue(name, out var initializer))
            {
                return [.. initializer.Dims];
            }

            if (!ConstantNodes.TryGetValue(name, out var node) || node.Attribute.Count != 1)
            {
                return null;
            }

            var attribute = node.Attribute[0];
            return attribute.Name switch
            {
                "value" => [.. attribute.T.Dims],
                "value_float" or "value_int" => [],
                "value_floats" => [attribute.Floats.Count],
                "value_ints" => [attribute.Ints.Count],
                _ => null,
            };
        }

        /// <summary>The int64 values of a constant, or null.</summary>
        public long[]? ConstantInts(string name)
        {
            if (Initializers.TryGetValue(name, out var initializer))
            {
                return initializer.DataType == (int)DataType.Int64 ? TensorData.ToInt64s(initializer) : null;
            }

            if (!ConstantNodes.TryGetValue(name, out var node) || node.Attribute.Count != 1)
            {
                return null;
            }

            var attribute = node.Attribute[0];
            return attribute.Name switch
            {
                "value" when attribute.T.DataType == (int)DataType.Int64 => TensorData.ToInt64s(attribute.T),
                "value_ints" => [.. attribute.Ints],
                _ => null,
            };
        }

        /// <summary>
        /// The int64 values of a constant, or of a small computation on constants only: exporters spell
        /// <c>expand(-1, h, -1, -1)</c> as Where(Equal(c, ConstantOfShape(..) * -1), ConstantOfShape(..), c). Null when
        /// the value depends on anything computed at run time.
        /// </summary>
        public long[]? FoldInts(string name, int depth = 6)
        {
            if (ConstantInts(name) is { } values)
            {
                return ConstantDims(name) is { Length: <= 1 } ? values : null;
            }

            if (depth == 0 || !Producers.TryGetValue(name, out var node) || !OnnxVersions.IsDefaultDomain(node.Domain))
            {
                return null;
            }

            long[]? Input(int k) => k < node.Input.Count && node.Input[k].Length > 0 ? FoldInts(node.Input[k], depth - 1) : null;
            switch (node.OpType)
            {
                case "ConstantOfShape":
                    var fill = node.Attribute.FirstOrDefault(a => a.Name == "value")?.T;
                    return Input(0) is [var length] && fill is { DataType: (int)DataType.Int64 } && TensorData.ToInt64s(fill) is [var filler]
                        ? [.. Enumerable.Repeat(filler, (int)length)]
                        : null;
                case "Cast" when PrunableWeights.Attribute(node, "to") == (int)DataType.Int64:
                    return Input(0);
                case "Add" or "Sub" or "Mul" or "Equal":
                    return Broadcast(Input(0), Input(1), node.OpType switch
                    {
                        "Add" => (a, b) => a + b,
                        "Sub" => (a, b) => a - b,
                        "Mul" => (a, b) => a * b,
                        _ => (a, b) => a == b ? 1 : 0,
                    });
                case "Where":
                    if (Input(0) is not { } condition || Input(1) is not { } whenTrue || Input(2) is not { } whenFalse)
                    {
                        return null;
                    }

                    var count = Math.Max(condition.Length, Math.Max(whenTrue.Length, whenFalse.Length));
                    return new[] { condition, whenTrue, whenFalse }.All(v => v.Length == 1 || v.Length == count)
                        ? [.. Enumerable.Range(0, count).Select(i => At(condition, i) != 0 ? At(whenTrue, i) : At(whenFalse, i))]
                        : null;
                default:
                    return null;
            }
        }

        /// <summary>
        /// A one-element int64 value computed from constants and dims read at run time, as exporters size reshapes
        /// (<c>bsz * num_heads</c>, <c>embed_dim // num_heads</c>): Coefficient x the product of the dims in Reads.
        /// <paramref name="known"/> gives the dims whose value the caller knows (null: read at run time). Null when
        /// the value is anything else, or a division would not be exact.
        /// </summary>
        public DimensionProduct? Product(string value, Func<string, long, long?> known, int depth = 8)
        {
            if (FoldInts(value) is [var constant])
            {
                return new DimensionProduct(constant, []);
            }

            if (depth == 0 || !Producers.TryGetValue(value, out var node) || !OnnxVersions.IsDefaultDomain(node.Domain) || node.Input.Count == 0)
            {
                return null;
            }

            DimensionProduct? Input(int k) => k < node.Input.Count ? Product(node.Input[k], known, depth - 1) : null;
            switch (node.OpType)
            {
                case "Unsqueeze" or "Squeeze" or "Identity":
                case "Cast" when PrunableWeights.Attribute(node, "to") == (int)DataType.Int64:
                    return Input(0);
                case "Gather":
                    return DimensionRead(value) is not { } read ? null
                        : known(read.Value, read.Axis) is { } size ? new DimensionProduct(size, [])
                        : new DimensionProduct(1, [read]);
                case "Mul":
                    return Input(0) is { } a && Input(1) is { } b ? new DimensionProduct(a.Coefficient * b.Coefficient, [.. a.Reads, .. b.Reads]) : null;
                case "Div":
                    // Integer Div truncates; only exact, non-negative quotients are certain to mean what they say.
                    return Input(0) is { Coefficient: >= 0 } dividend && Input(1) is { Reads.Count: 0, Coefficient: > 0 } divisor
                        && (dividend.Reads.Count == 0 || dividend.Coefficient % divisor.Coefficient == 0)
                        ? dividend with { Coefficient = dividend.Coefficient / divisor.Coefficient }
                        : null;
                case "Add" or "Sub":
                    return Input(0) is { Reads.Count: 0 } left && Input(1) is { Reads.Count: 0 } right
                        ? new DimensionProduct(node.OpType == "Add" ? left.Coefficient + right.Coefficient : left.Coefficient - right.Coefficient, [])
                        : null;
                default:
                    return null;
            }
        }

        /// <summary>The rank of <paramref name="value"/> where the graph says it or it follows from the ops before; else null.</summary>
        public int? Rank(string value)
        {
            _ranks ??= Ranks();
            return _ranks.TryGetValue(value, out var rank) ? rank : null;
        }

        public bool IsFloatInitializer(string name) =>
            Initializers.TryGetValue(name, out var initializer) && initializer.DataType == (int)DataType.Float;

        /// <summary>
        /// The elements of a Reshape's shape input, each with where it comes from: a constant, or a Concat (axis 0)
        /// of constants and one-element parts computed at run time, as exporters write <c>x.view(x.size()[:-1] + (h, d))</c>.
        /// Null when the shape is neither, or a computed part's length is unknown.
        /// </summary>
        public ShapePart[]? ShapeParts(string shape)
        {
            if (FoldInts(shape) is { } whole)
            {
                return [.. whole.Select((v, i) => new ShapePart(v, shape, i, null, null))];
            }

            if (ProducedBy(shape, "Concat") is not { } concat || concat.Attribute.FirstOrDefault(a => a.Name == "axis") is not { I: 0 or -1 })
            {
                return null;
            }

            var parts = new List<ShapePart>();
            for (var k = 0; k < concat.Input.Count; k++)
            {
                var input = concat.Input[k];
                if (FoldInts(input) is { } values)
                {
                    parts.AddRange(values.Select((v, i) => new ShapePart(v, input, i, concat, k)));
                }
                else if (IsOneElement(input))
                {
                    parts.Add(new ShapePart(null, input, 0, concat, k));
                }
                else
                {
                    return null;
                }
            }

            return [.. parts];
        }

        /// <summary>
        /// The axis of <c>Shape(value)</c> that <paramref name="element"/> reads: Gather(Shape(value), k) with a
        /// constant k, unsqueezed or not; null when it is anything else.
        /// </summary>
        public (string Value, long Axis)? DimensionRead(string element)
        {
            var gathered = ProducedBy(element, "Unsqueeze") is { } unsqueeze ? unsqueeze.Input[0] : element;
            if (ProducedBy(gathered, "Gather") is not { } gather || ConstantInts(gather.Input[1]) is not [var axis]
                || ProducedBy(gather.Input[0], "Shape") is not { Attribute.Count: 0 } shape)
            {
                return null;
            }

            return (shape.Input[0], axis);
        }

        /// <summary>The nodes that read <paramref name="value"/>.</summary>
        public IEnumerable<NodeProto> Consumers(string value) => Graph.Node.Where(n => n.Input.Contains(value));

        private bool IsOneElement(string value) =>
            (DimensionRead(value) is not null && (ProducedBy(value, "Unsqueeze") is not null || ConstantDims(Producers[value].Input[1]) is [1]))
            || (ProducedBy(value, "Unsqueeze") is { } unsqueeze && IsScalarArithmetic(unsqueeze.Input[0], 8));

        /// <summary>A one-element int64 value made of constants and dims by the ops <see cref="Product"/> reads (its value may need dims the caller knows).</summary>
        private bool IsScalarArithmetic(string value, int depth)
        {
            if (FoldInts(value) is [_] || DimensionRead(value) is not null)
            {
                return true;
            }

            if (depth == 0 || !Producers.TryGetValue(value, out var node) || !OnnxVersions.IsDefaultDomain(node.Domain) || node.Input.Count == 0)
            {
                return false;
            }

            return node.OpType switch
            {
                "Unsqueeze" or "Squeeze" or "Identity" or "Cast" => IsScalarArithmetic(node.Input[0], depth - 1),
                "Mul" or "Div" or "Add" or "Sub" => node.Input.Count == 2 && node.Input.All(i => IsScalarArithmetic(i, depth - 1)),
                _ => false,
            };
        }

        private static long[]? Broadcast(long[]? a, long[]? b, Func<long, long, long> op) =>
            a is null || b is null || (a.Length != b.Length && a.Length != 1 && b.Length != 1) ? null
            : [.. Enumerable.Range(0, Math.Max(a.Length, b.Length)).Select(i => op(At(a, i), At(b, i)))];

        /// <summary>Element <paramref name="i"/> of a 1-D value broadcast from one element if need be.</summary>
        private static long At(long[] values, int i) => values[values.Length == 1 ? 0 : i];

        /// <summary>One pass in graph (topological) order: ranks declared by the graph, then those the ops imply.</summary>
        private Dictionary<string, int> Ranks()
        {
            var ranks = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var info in Graph.Input.Concat(Graph.ValueInfo).Concat(Graph.Output).Where(v => v.Type?.TensorType?.Shape is not null))
            {
                ranks[info.Name] = info.Type.TensorType.Shape.Dim.Count;
            }

            foreach (var initializer in Graph.Initializer)
            {
                ranks[initializer.Name] = initializer.Dims.Count;
            }

            foreach (var node in Graph.Node.Where(n => n.Output.Count > 0 && OnnxVersions.IsDefaultDomain(n.Domain)))
            {
                int? Of(int k) => k < node.Input.Count && ranks.TryGetValue(node.Input[k], out var r) ? r : null;
                var inputs = node.Input.Where(i => i.Length > 0).Select(i => ranks.TryGetValue(i, out var r) ? r : (int?)null).ToList();
                int? rank = node.OpType switch
                {
                    "Constant" => ConstantDims(node.Output[0])?.Length,
                    "Shape" => 1,
                    "Gemm" => 2,
                    "Transpose" => node.Attribute.FirstOrDefault(a => a.Name == "perm")?.Ints.Count ?? Of(0),
                    "MatMul" => Of(0) is { } a && Of(1) is { } b && a >= 2 && b >= 2 ? Math.Max(a, b) : null,
                    "Gather" => Of(0) + Of(1) - 1,
                    "Reshape" => ShapeParts(node.Input[1])?.Length,
                    "ReduceMean" or "ReduceSum" when PrunableWeights.Attribute(node, "keepdims", 1) == 1 => Of(0),
                    "Softmax" or "LayerNormalization" or "Slice" or "Dropout" => Of(0),
                    _ when Combining.Contains(node.OpType) || Elementwise.Contains(node.OpType) || node.OpType is "Where" or "Equal" or "Not" or "And" or "Or"
                        => inputs.All(r => r is not null) ? inputs.Max() : null,
                    _ => null,
                };
                if (rank is { } known && node.Output[0].Length > 0)
                {
                    ranks.TryAdd(node.Output[0], known);
                }
            }

            return ranks;
        }
    }

    /// <summary>A one-element int64 value computed at run time: <paramref name="Coefficient"/> x the product of the dims read.</summary>
    /// <param name="Coefficient">The constant factor.</param>
    /// <param name="Reads">The dims read at run time, Shape(value)[axis].</param>
    internal sealed record DimensionProduct(long Coefficient, IReadOnlyList<(string Value, long Axis)> Reads);

    /// <summary>One element of a Reshape's shape input.</summary>
    /// <param name="Value">Its value when constant; null when computed at run time.</param>
    /// <param name="Source">The value that holds it: the whole shape constant, or one input of the Concat.</param>
    /// <param name="Offset">Its position within <paramref name="Source"/>.</param>
    /// <param name="Concat">The Concat that assembles the shape, or null for a constant shape.</param>
    /// <param name="ConcatInput">Which input of <paramref name="Concat"/> <paramref name="Source"/> is.</param>
    internal sealed record ShapePart(long? Value, string Source, int Offset, NodeProto? Concat, int? ConcatInput);

    /// <summary>Follows one producer's units to their consumer.</summary>
    private sealed class Walk(GraphIndex graph, NodeProto producer, int producerIndex)
    {
        private readonly Dictionary<string, Layout> _region = new(StringComparer.Ordinal);
        private readonly List<UnitSlice> _slices = [];
        private readonly List<ShapeFix> _fixes = [];
        private NodeProto? _consumer;
        private int _units;

        public PrunableStructure? Result { get; private set; }

        /// <summary>Null when the structure was found (<see cref="Result"/>), else why not.</summary>
        public string? Run()
        {
            if (StartAtProducer() is { } why)
            {
                return why;
            }

            var nodes = graph.Graph.Node;
            for (var i = producerIndex + 1; i < nodes.Count; i++)
            {
                var node = nodes[i];
                var inRegion = Enumerable.Range(0, node.Input.Count).Where(k => _region.ContainsKey(node.Input[k])).ToArray();
                if (inRegion.Length == 0)
                {
                    continue;
                }

                if (Follow(node, inRegion) is { } reason)
                {
                    return reason;
                }
            }

            if (_consumer is null)
            {
                return "no MatMul/Gemm/Conv reads its units";
            }

            foreach (var slice in _slices)
            {
                if (!graph.IsFloatInitializer(slice.Initializer))
                {
                    return $"'{slice.Initializer}' is not a float constant";
                }

                if (graph.Uses.GetValueOrDefault(slice.Initializer) != 1)
                {
                    return $"'{slice.Initializer}' is shared with other nodes";
                }
            }

            Result = new PrunableStructure(producer.Name, producer.OpType, _consumer.Name, _units, _slices, _fixes, [.. _region.Keys]);
            return null;
        }

        private string? StartAtProducer()
        {
            if (producer.Input.Count < 2 || !graph.Initializers.TryGetValue(producer.Input[1], out var weight))
            {
                return "the weight is not a constant";
            }

            var dims = weight.Dims;
            switch (producer.OpType)
            {
                case "Gemm":
                    var outputAxis = PrunableWeights.Attribute(producer, "transB") != 0 ? 0 : 1;
                    _units = (int)dims[outputAxis];
                    _slices.Add(new UnitSlice(weight.Name, outputAxis, 1, UnitSliceRole.Incoming));
                    if (producer.Input.Count > 2 && producer.Input[2].Length > 0 && BiasSlice(producer.Input[2]) is { } why)
                    {
                        return why;
                    }

                    Enter(producer.Output[0], new Layout(Spatial: false, Rank: 2, Flattened: false, Block: 1));
                    return null;
                case "MatMul" when dims.Count == 2:
                    _units = (int)dims[1];
                    _slices.Add(new UnitSlice(weight.Name, 1, 1, UnitSliceRole.Incoming));
                    Enter(producer.Output[0], new Layout(Spatial: false, Rank: 0, Flattened: false, Block: 1));
                    return null;
                case "Conv" when dims.Count >= 3:
                    if (PrunableWeights.Attribute(producer, "group", 1) != 1)
                    {
                        return "it is a grouped convolution";
                    }

                    _units = (int)dims[0];
                    _slices.Add(new UnitSlice(weight.Name, 0, 1, UnitSliceRole.Incoming));
                    if (producer.Input.Count > 2 && producer.Input[2].Length > 0)
                    {
                        _slices.Add(new UnitSlice(producer.Input[2], 0, 1, UnitSliceRole.Incoming));
                    }

                    Enter(producer.Output[0], new Layout(Spatial: true, Rank: dims.Count, Flattened: false, Block: 1));
                    return null;
                default:
                    return $"its weight has rank {dims.Count}";
            }
        }

        /// <summary>Gemm's C: per unit (sliced) or one value for all (kept).</summary>
        private string? BiasSlice(string bias)
        {
            var dims = graph.ConstantDims(bias);
            if (dims is null || !graph.Initializers.ContainsKey(bias))
            {
                return "its bias is not a constant";
            }

            if (dims.All(d => d == 1))
            {
                return null;
            }

            if (dims[^1] != _units || dims.Take(dims.Length - 1).Any(d => d != 1))
            {
                return $"its bias has shape [{string.Join(", ", dims)}], not one entry per unit";
            }

            _slices.Add(new UnitSlice(bias, dims.Length - 1, 1, UnitSliceRole.Incoming));
            return null;
        }

        private void Enter(string value, Layout layout) => _region[value] = layout;

        private string? Follow(NodeProto node, int[] inRegion)
        {
            var label = $"{node.OpType} '{node.Name}'";
            var layout = _region[node.Input[inRegion[0]]];
            if (inRegion.Any(k => _region[node.Input[k]] != layout))
            {
                return $"{label} combines its units in two layouts";
            }

            if (node.OpType is "MatMul" or "Gemm" or "Conv" && OnnxVersions.IsDefaultDomain(node.Domain) && inRegion.SequenceEqual([0])
                && node.Input.Count > 1 && graph.Initializers.ContainsKey(node.Input[1]))
            {
                return Consume(node, layout);
            }

            if (!OnnxVersions.IsDefaultDomain(node.Domain))
            {
                return $"its units reach {node.Domain}.{label}, which structured pruning cannot follow";
            }

            string? why;
            switch (node.OpType)
            {
                case var op when Elementwise.Contains(op):
                    why = OnlyFirstInput(label, inRegion);
                    break;
                case "Dropout":
                case "Clip":
                    why = OnlyFirstInput(label, inRegion) ?? ScalarsOnly(node, label, 1);
                    break;
                case var op when Combining.Contains(op):
                    why = PerUnitConstants(node, label, layout);
                    break;
                case "BatchNormalization":
                    why = OnlyFirstInput(label, inRegion) ?? Normalization(node, label, layout);
                    break;
                case var op when Pooling.Contains(op):
                    why = OnlyFirstInput(label, inRegion) ?? (layout.Spatial && !layout.Flattened ? null : $"{label} pools a tensor that is not an image");
                    break;
                case "Flatten":
                    why = OnlyFirstInput(label, inRegion) ?? Flatten(node, label, ref layout);
                    break;
                case "Reshape":
                    why = OnlyFirstInput(label, inRegion) ?? Reshape(node, label, ref layout);
                    break;
                default:
                    return $"its units reach {label}, which structured pruning cannot follow";
            }

            if (why is not null)
            {
                return why;
            }

            // Only the first output carries the units; the others (Dropout's mask, MaxPool's indices, BN's
            // training statistics) would change shape unseen.
            for (var k = 1; k < node.Output.Count; k++)
            {
                if (node.Output[k].Length > 0 && graph.Uses.GetValueOrDefault(node.Output[k]) > 0)
                {
                    return $"{label}'s output '{node.Output[k]}' is used";
                }
            }

            if (graph.GraphOutputs.Contains(node.Output[0]))
            {
                return $"its units reach the graph output '{node.Output[0]}'";
            }

            Enter(node.Output[0], layout);
            return null;
        }

        private string? Consume(NodeProto node, Layout layout)
        {
            var label = $"{node.OpType} '{node.Name}'";
            if (_consumer is not null)
            {
                return $"its units feed two layers ('{_consumer.Name}' and '{node.Name}')";
            }

            var weight = graph.Initializers[node.Input[1]];
            int axis;
            switch (node.OpType)
            {
                case "Gemm" when !layout.Spatial:
                    if (PrunableWeights.Attribute(node, "transA") != 0)
                    {
                        return $"{label} reads its units transposed (transA)";
                    }

                    axis = PrunableWeights.Attribute(node, "transB") != 0 ? 1 : 0;
                    break;
                case "MatMul" when !layout.Spatial && weight.Dims.Count == 2:
                    axis = 0;
                    break;
                case "Conv" when layout.Spatial && !layout.Flattened && weight.Dims.Count == layout.Rank:
                    if (PrunableWeights.Attribute(node, "group", 1) != 1)
                    {
                        return $"{label} is a grouped convolution";
                    }

                    axis = 1;
                    break;
                default:
                    return $"{label} reads its units in a layout structured pruning does not follow";
            }

            var width = weight.Dims[axis];
            var block = layout.Block;
            if (layout.Flattened && block == 0)
            {
                if (width % _units != 0)
                {
                    return $"{label} takes {width} features, not a multiple of the {_units} channels";
                }

                block = (int)(width / _units);
            }

            if (width != (long)_units * block)
            {
                return $"{label} takes {width} inputs where {_units} x {block} were expected";
            }

            _slices.Add(new UnitSlice(weight.Name, axis, block, UnitSliceRole.Outgoing));
            _consumer = node;
            return null;
        }

        private static string? OnlyFirstInput(string label, int[] inRegion) =>
            inRegion.SequenceEqual([0]) ? null : $"{label} takes the units as a parameter, not as its data";

        /// <summary>Inputs from <paramref name="first"/> on must be constants with a single value (a dropout ratio, clip bounds).</summary>
        private string? ScalarsOnly(NodeProto node, string label, int first)
        {
            foreach (var input in node.Input.Skip(first).Where(n => n.Length > 0))
            {
                var dims = graph.ConstantDims(input);
                if (dims is null)
                {
                    return $"{label}'s input '{input}' is computed, not a constant";
                }

                if (dims.Any(d => d != 1))
                {
                    return $"{label}'s input '{input}' is not a single value";
                }
            }

            return null;
        }

        /// <summary>An elementwise op whose other inputs are the units themselves, single values or per-unit constants.</summary>
        private string? PerUnitConstants(NodeProto node, string label, Layout layout)
        {
            foreach (var input in node.Input.Where(n => n.Length > 0 && !_region.ContainsKey(n)))
            {
                if (graph.ConstantDims(input) is not { } dims)
                {
                    return $"{label} combines its units with '{input}', which does not come from this layer (a residual connection?)";
                }

                var axis = layout.Spatial && !layout.Flattened ? dims.Length - (layout.Rank - 1) : dims.Length - 1;
                if (layout.Spatial && !layout.Flattened && dims.Length > layout.Rank)
                {
                    return $"{label} broadcasts its units with '{input}' to a higher rank";
                }

                if (axis < 0 || dims[axis] == 1)
                {
                    continue;
                }

                if (layout.Flattened || dims[axis] != _units)
                {
                    return $"{label} combines its units with '{input}' of shape [{string.Join(", ", dims)}], which is not one value per unit";
                }

                if (!graph.Initializers.ContainsKey(input))
                {
                    return $"{label}'s per-unit constant '{input}' is a Constant node, not an initializer";
                }

                _slices.Add(new UnitSlice(input, axis, 1, UnitSliceRole.Incoming));
            }

            return null;
        }

        private string? Normalization(NodeProto node, string label, Layout layout)
        {
            var channelAxisIsOne = (layout.Spatial && !layout.Flattened) || layout.Rank == 2;
            if (!channelAxisIsOne || node.Input.Count < 5)
            {
                return $"{label} normalizes over an axis that is not the units'";
            }

            for (var k = 1; k <= 4; k++)
            {
                var dims = graph.ConstantDims(node.Input[k]);
                if (dims is not [var length] || length != _units || !graph.Initializers.ContainsKey(node.Input[k]))
                {
                    return $"{label}'s '{node.Input[k]}' is not a constant with one entry per unit";
                }

                _slices.Add(new UnitSlice(node.Input[k], 0, 1, k <= 2 ? UnitSliceRole.Normalization : UnitSliceRole.Statistic));
            }

            return null;
        }

        private static string? Flatten(NodeProto node, string label, ref Layout layout)
        {
            var axis = PrunableWeights.Attribute(node, "axis", 1);
            if (axis != 1)
            {
                return $"{label} flattens at axis {axis}, not 1";
            }

            if (layout.Spatial && !layout.Flattened)
            {
                // Channel-major (NCHW) flattening: channel j becomes the features j*S .. (j+1)*S - 1; S is
                // known once a layer reads them.
                layout = new Layout(Spatial: false, Rank: 2, Flattened: true, Block: 0);
                return null;
            }

            return layout.Rank == 2 ? null : $"{label} flattens a tensor of unknown rank";
        }

        private string? Reshape(NodeProto node, string label, ref Layout layout)
        {
            if (!layout.Spatial || layout.Flattened)
            {
                return $"{label} reshapes the units (into attention heads?), which structured pruning cannot follow";
            }

            var shape = node.Input.Count > 1 ? graph.ConstantInts(node.Input[1]) : null;
            if (shape is not [var batch, var width])
            {
                return $"{label}'s target shape is not a constant [batch, features]";
            }

            if (PrunableWeights.Attribute(node, "allowzero") != 0 && (batch == 0 || width == 0))
            {
                return $"{label} sets allowzero";
            }

            if (width == -1 && batch != -1)
            {
                layout = new Layout(Spatial: false, Rank: 2, Flattened: true, Block: 0);
                return null;
            }

            if (width <= 0 || width % _units != 0)
            {
                return $"{label} reshapes to [{batch}, {width}], which does not split into the {_units} channels";
            }

            var block = (int)(width / _units);
            _fixes.Add(new ShapeFix(node.Output[0], 1, block));
            layout = new Layout(Spatial: false, Rank: 2, Flattened: true, Block: block);
            return null;
        }
    }
}
