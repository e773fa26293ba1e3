using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Pruning;

/// <summary>Follows one producer's units to their consumer, for <see cref="StructureFinder"/>.</summary>
internal sealed class StructureWalk(GraphIndex graph, NodeProto producer, int producerIndex)
{
    private readonly Dictionary<string, UnitLayout> _region = new(StringComparer.Ordinal);
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

                Enter(producer.Output[0], new UnitLayout(Spatial: false, Rank: 2, Flattened: false, Block: 1));
                return null;
            case "MatMul" when dims.Count == 2:
                _units = (int)dims[1];
                _slices.Add(new UnitSlice(weight.Name, 1, 1, UnitSliceRole.Incoming));
                Enter(producer.Output[0], new UnitLayout(Spatial: false, Rank: 0, Flattened: false, Block: 1));
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

                Enter(producer.Output[0], new UnitLayout(Spatial: true, Rank: dims.Count, Flattened: false, Block: 1));
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

    private void Enter(string value, UnitLayout layout) => _region[value] = layout;

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
            case var op when StructureFinder.Elementwise.Contains(op):
                why = OnlyFirstInput(label, inRegion);
                break;
            case "Dropout":
            case "Clip":
                why = OnlyFirstInput(label, inRegion) ?? ScalarsOnly(node, label, 1);
                break;
            case var op when StructureFinder.Combining.Contains(op):
                why = PerUnitConstants(node, label, layout);
                break;
            case "BatchNormalization":
                why = OnlyFirstInput(label, inRegion) ?? Normalization(node, label, layout);
                break;
            case var op when StructureFinder.Pooling.Contains(op):
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

    private string? Consume(NodeProto node, UnitLayout layout)
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
    private string? PerUnitConstants(NodeProto node, string label, UnitLayout layout)
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

    private string? Normalization(NodeProto node, string label, UnitLayout layout)
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

    private static string? Flatten(NodeProto node, string label, ref UnitLayout layout)
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
            layout = new UnitLayout(Spatial: false, Rank: 2, Flattened: true, Block: 0);
            return null;
        }

        return layout.Rank == 2 ? null : $"{label} flattens a tensor of unknown rank";
    }

    private string? Reshape(NodeProto node, string label, ref UnitLayout layout)
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
            layout = new UnitLayout(Spatial: false, Rank: 2, Flattened: true, Block: 0);
            return null;
        }

        if (width <= 0 || width % _units != 0)
        {
            return $"{label} reshapes to [{batch}, {width}], which does not split into the {_units} channels";
        }

        var block = (int)(width / _units);
        _fixes.Add(new ShapeFix(node.Output[0], 1, block));
        layout = new UnitLayout(Spatial: false, Rank: 2, Flattened: true, Block: block);
        return null;
    }
}
