using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Pruning;

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
                _ when StructureFinder.Combining.Contains(node.OpType) || StructureFinder.Elementwise.Contains(node.OpType) || node.OpType is "Where" or "Equal" or "Not" or "And" or "Or"
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
