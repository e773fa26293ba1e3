using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Pruning;

/// <summary>One structure as pruned: which of its units stayed.</summary>
/// <param name="Structure">The structure.</param>
/// <param name="Kept">Indices of the kept units, ascending.</param>
public sealed record PrunedStructure(PrunableStructure Structure, int[] Kept);

/// <summary>
/// Removes whole units (hidden neurons, conv channels) from a model: the graph physically shrinks — the
/// producer's output columns, the per-unit bias and BatchNormalization entries and the consumer's input rows
/// go, and Reshape targets that hard-code the width follow. The kept units compute exactly what they did.
/// </summary>
public static class StructuredPruner
{
    /// <summary>
    /// The L2 score of every unit: the L2 norm of its incoming weights (the producer's row and bias entry; with a
    /// BatchNormalization, its scale and shift, which set the unit's output size after normalizing) times the L2
    /// norm of its outgoing weights. A unit nobody reads (zero outgoing weights) or that outputs nothing scores 0.
    /// </summary>
    public static double[] L2Scores(ModelProto model, PrunableStructure structure)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(structure);
        var initializers = model.Graph.Initializer.ToDictionary(i => i.Name, StringComparer.Ordinal);
        var incomingRole = structure.Slices.Any(s => s.Role == UnitSliceRole.Normalization) ? UnitSliceRole.Normalization : UnitSliceRole.Incoming;
        var incoming = new double[structure.Units];
        var outgoing = new double[structure.Units];
        foreach (var slice in structure.Slices.Where(s => s.Role == incomingRole || s.Role == UnitSliceRole.Outgoing))
        {
            var tensor = initializers[slice.Initializer];
            var values = TensorData.ToFloats(tensor);
            var target = slice.Role == UnitSliceRole.Outgoing ? outgoing : incoming;
            AddPerUnit(target, values, values, [.. tensor.Dims], slice);
        }

        return [.. incoming.Zip(outgoing, (i, o) => Math.Sqrt(i) * Math.Sqrt(o))];
    }

    /// <summary>
    /// Adds Σ a·b over each unit's entries of <paramref name="slice"/> to <paramref name="perUnit"/>
    /// (a = b gives the squared norm; weight times gradient gives the first-order Taylor term).
    /// </summary>
    internal static void AddPerUnit(double[] perUnit, ReadOnlySpan<float> a, ReadOnlySpan<float> b, long[] dims, UnitSlice slice)
    {
        var inner = 1L;
        for (var d = slice.Axis + 1; d < dims.Length; d++)
        {
            inner *= dims[d];
        }

        // Each of the slice's groups holds every unit once.
        var groupLength = dims[slice.Axis] / slice.Groups;
        for (var i = 0; i < a.Length; i++)
        {
            var unit = (int)(i / inner % groupLength / slice.Block);
            perUnit[unit] += (double)a[i] * b[i];
        }
    }

    /// <summary>
    /// The units to keep: all but the round(<paramref name="sparsity"/> x units) lowest scores (at least one
    /// unit stays); among equal scores the earlier unit goes first. Ascending.
    /// </summary>
    public static int[] KeepHighest(IReadOnlyList<double> scores, double sparsity)
    {
        ArgumentNullException.ThrowIfNull(scores);
        var removed = (int)Math.Min(scores.Count - 1, MagnitudeMasks.PrunedCount(scores.Count, sparsity));
        return [.. Enumerable.Range(0, scores.Count)
            .OrderBy(j => scores[j])
            .ThenBy(j => j)
            .Skip(removed)
            .Order()];
    }

    /// <summary>Returns a copy of <paramref name="source"/> with only the kept units of every structure in <paramref name="plan"/>.</summary>
    public static ModelProto Apply(ModelProto source, IReadOnlyList<PrunedStructure> plan)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(plan);
        var model = source.Clone();
        var graph = model.Graph;
        var cuts = new Dictionary<string, List<(UnitSlice Slice, int[] Kept)>>(StringComparer.Ordinal);
        foreach (var (structure, kept) in plan)
        {
            if (kept.Length == 0 || kept.Any(k => k < 0 || k >= structure.Units) || kept.Distinct().Count() != kept.Length)
            {
                throw new ArgumentException($"The kept units of '{structure.Producer}' must be 1 to {structure.Units} distinct indices below {structure.Units}.", nameof(plan));
            }

            foreach (var slice in structure.Slices)
            {
                if (!cuts.TryGetValue(slice.Initializer, out var list))
                {
                    cuts[slice.Initializer] = list = [];
                }

                if (list.Any(c => c.Slice.Axis == slice.Axis))
                {
                    throw new ArgumentException($"Two structures cut axis {slice.Axis} of '{slice.Initializer}'.", nameof(plan));
                }

                list.Add((slice, [.. kept.Order()]));
            }
        }

        for (var i = 0; i < graph.Initializer.Count; i++)
        {
            var tensor = graph.Initializer[i];
            if (!cuts.TryGetValue(tensor.Name, out var list))
            {
                continue;
            }

            var values = TensorData.ToFloats(tensor);
            long[] dims = [.. tensor.Dims];
            foreach (var (slice, kept) in list)
            {
                // A packed axis keeps the same units in each of its groups.
                var units = (int)(dims[slice.Axis] / slice.Groups / slice.Block);
                int[] keptBlocks = [.. Enumerable.Range(0, slice.Groups).SelectMany(g => kept.Select(k => (g * units) + k))];
                (values, dims) = KeepAlongAxis(values, dims, slice.Axis, slice.Block, keptBlocks);
            }

            graph.Initializer[i] = TensorData.FromFloats(tensor.Name, values, dims);
            // Models of IR version 3 list initializers as graph inputs too, with their shapes.
            if (graph.Input.FirstOrDefault(v => v.Name == tensor.Name)?.Type?.TensorType?.Shape is { } shape)
            {
                shape.Dim.Clear();
                shape.Dim.AddRange(dims.Select(d => new TensorShapeProto.Types.Dimension { DimValue = d }));
            }
        }

        var names = new HashSet<string>(
            graph.Node.SelectMany(n => n.Output.Append(n.Name)).Concat(graph.Initializer.Select(t => t.Name)).Concat(graph.Input.Select(v => v.Name)),
            StringComparer.Ordinal);
        foreach (var (structure, kept) in plan)
        {
            foreach (var fix in structure.ShapeFixes)
            {
                FixShape(graph, names, fix, (long)fix.Block * kept.Length);
            }
        }

        foreach (var (structure, kept) in plan.Where(p => p.Structure.Cache is not null))
        {
            foreach (var value in structure.Cache!.GraphValues)
            {
                SetHeadCount(graph, value, kept.Length);
            }

            foreach (var concat in structure.Cache.EmptyConcats)
            {
                PassThrough(graph, concat);
            }
        }

        // Shapes recorded for the values in between are stale now.
        var changed = plan.SelectMany(p => p.Structure.ChangedValues).ToHashSet(StringComparer.Ordinal);
        foreach (var info in graph.ValueInfo.Where(v => changed.Contains(v.Name)).ToList())
        {
            graph.ValueInfo.Remove(info);
        }

        RemoveUnused(graph);
        return model;
    }

    /// <summary>Sets axis 1 (the heads) of the declared shape of graph input or output <paramref name="name"/> to <paramref name="heads"/>.</summary>
    private static void SetHeadCount(GraphProto graph, string name, int heads)
    {
        var value = graph.Input.Concat(graph.Output).FirstOrDefault(v => v.Name == name)
            ?? throw new ArgumentException($"'{name}' is not a graph input or output.", nameof(name));
        if (value.Type?.TensorType?.Shape is { Dim.Count: 4 } shape)
        {
            shape.Dim[1] = new TensorShapeProto.Types.Dimension { DimValue = heads };
        }
    }

    /// <summary>
    /// Removes the Concat that makes <paramref name="output"/> from an empty tensor and the new values (input 1): its
    /// readers read the new values, and what made the empty tensor goes when nothing else reads it.
    /// </summary>
    private static void PassThrough(GraphProto graph, string output)
    {
        var concat = graph.Node.Single(n => n.OpType == "Concat" && n.Output.Contains(output));
        foreach (var node in graph.Node)
        {
            for (var k = 0; k < node.Input.Count; k++)
            {
                if (node.Input[k] == output)
                {
                    node.Input[k] = concat.Input[1];
                }
            }
        }

        graph.Node.Remove(concat);
        RemoveUnread(graph, concat.Input[0]);
    }

    /// <summary>
    /// Sets element <see cref="ShapeFix.Position"/> of a Reshape's (or Expand's) target shape, or of a Split's sizes, to <paramref name="width"/>.
    /// The element lives in a constant (the shape itself, or one input of the Concat that assembles a shape computed at
    /// run time), or is a value computed at run time: replaced by the constant, or with <see cref="ShapeFix.Factor"/>,
    /// Mul(dim, count) with the count replaced. Those values (and the Concat) may be shared with nodes elsewhere, so the
    /// node gets new ones; the old ones go when nothing reads them any more.
    /// </summary>
    private static void FixShape(GraphProto graph, HashSet<string> names, ShapeFix fix, long width)
    {
        // Indexed afresh for each fix: an earlier fix may have rewired this very shape.
        var index = new GraphIndex(graph);
        var node = (index.ProducedBy(fix.ReshapeOutput, "Reshape") ?? index.ProducedBy(fix.ReshapeOutput, "Expand") ?? index.ProducedBy(fix.ReshapeOutput, "Split"))
            ?? throw new ArgumentException($"'{fix.ReshapeOutput}' is not made by a Reshape, an Expand or a Split.", nameof(fix));
        if (index.ShapeParts(node.Input[1]) is not { } parts || fix.Position >= parts.Length)
        {
            throw new ArgumentException($"The shape of {node.OpType} '{node.Name}' has no element {fix.Position} that pruning can set.", nameof(fix));
        }

        var part = parts[fix.Position];
        string element;
        if (part.Value is not null)
        {
            var values = index.FoldInts(part.Source)!;
            values[part.Offset] = width;
            element = Unique(names, $"{part.Source}.pruned");
            graph.Initializer.Add(TensorData.FromInt64s(element, values, index.ConstantDims(part.Source) ?? [values.Length]));
        }
        else if (fix.Factor)
        {
            element = ScaledDimension(graph, names, index, node, part.Source, width);
        }
        else
        {
            element = Unique(names, $"{part.Source}.pruned");
            graph.Initializer.Add(TensorData.FromInt64s(element, [width], [1]));
        }

        var old = node.Input[1];
        if (part.Concat is null)
        {
            node.Input[1] = element;
        }
        else
        {
            var concat = part.Concat.Clone();
            concat.Name = Unique(names, $"{part.Concat.Name}.pruned");
            concat.Output[0] = Unique(names, $"{part.Concat.Output[0]}.pruned");
            concat.Input[part.ConcatInput!.Value] = element;
            graph.Node.Insert(graph.Node.IndexOf(node), concat);
            node.Input[1] = concat.Output[0];
        }

        RemoveUnread(graph, old);
    }

    /// <summary>
    /// A copy of <paramref name="source"/> = [Unsqueeze](Mul(dim, count)) with <paramref name="count"/> for the count,
    /// made before <paramref name="before"/>; returns the copy's output.
    /// </summary>
    private static string ScaledDimension(GraphProto graph, HashSet<string> names, GraphIndex index, NodeProto before, string source, long count)
    {
        var unsqueeze = index.ProducedBy(source, "Unsqueeze");
        var product = unsqueeze?.Input[0] ?? source;
        var mul = index.ProducedBy(product, "Mul") ?? throw new ArgumentException($"'{source}' is not a dim times a count.", nameof(source));
        var factor = Enumerable.Range(0, 2).Single(k => index.FoldInts(mul.Input[k]) is [_]);
        var constant = Unique(names, $"{mul.Input[factor]}.pruned");
        graph.Initializer.Add(TensorData.FromInt64s(constant, [count], index.ConstantDims(mul.Input[factor]) ?? []));
        var scaled = mul.Clone();
        scaled.Name = Unique(names, $"{mul.Name}.pruned");
        scaled.Output[0] = Unique(names, $"{product}.pruned");
        scaled.Input[factor] = constant;
        graph.Node.Insert(graph.Node.IndexOf(before), scaled);
        if (unsqueeze is null)
        {
            return scaled.Output[0];
        }

        var copy = unsqueeze.Clone();
        copy.Name = Unique(names, $"{unsqueeze.Name}.pruned");
        copy.Output[0] = Unique(names, $"{source}.pruned");
        copy.Input[0] = scaled.Output[0];
        graph.Node.Insert(graph.Node.IndexOf(before), copy);
        return copy.Output[0];
    }

    /// <summary>Removes the node that makes <paramref name="value"/> when nothing reads its outputs, and so on up the inputs.</summary>
    private static void RemoveUnread(GraphProto graph, string value)
    {
        bool Read(string name) => name.Length > 0 && (graph.Node.Any(n => n.Input.Contains(name)) || graph.Output.Any(o => o.Name == name));
        if (graph.Node.FirstOrDefault(n => n.Output.Contains(value)) is not { } producer || producer.Output.Any(Read))
        {
            return;
        }

        graph.Node.Remove(producer);
        foreach (var info in graph.ValueInfo.Where(v => producer.Output.Contains(v.Name)).ToList())
        {
            graph.ValueInfo.Remove(info);
        }

        foreach (var input in producer.Input.Distinct().Where(i => i.Length > 0))
        {
            RemoveUnread(graph, input);
        }
    }

    /// <summary>Keeps the blocks of <paramref name="kept"/> units along <paramref name="axis"/> of a row-major tensor.</summary>
    internal static (float[] Values, long[] Dims) KeepAlongAxis(float[] values, long[] dims, int axis, int block, int[] kept)
    {
        var outer = 1L;
        for (var d = 0; d < axis; d++)
        {
            outer *= dims[d];
        }

        var inner = 1L;
        for (var d = axis + 1; d < dims.Length; d++)
        {
            inner *= dims[d];
        }

        var axisLength = dims[axis];
        var newLength = (long)kept.Length * block;
        var result = new float[outer * newLength * inner];
        var run = block * inner;
        var target = 0L;
        for (var o = 0L; o < outer; o++)
        {
            foreach (var unit in kept)
            {
                var source = ((o * axisLength) + ((long)unit * block)) * inner;
                Array.Copy(values, source, result, target, run);
                target += run;
            }
        }

        var newDims = (long[])dims.Clone();
        newDims[axis] = newLength;
        return (result, newDims);
    }

    /// <summary>Drops initializers and Constant nodes that no node reads any more (old Reshape targets).</summary>
    internal static void RemoveUnused(GraphProto graph)
    {
        var used = new HashSet<string>(graph.Node.SelectMany(n => n.Input).Concat(graph.Output.Select(o => o.Name)), StringComparer.Ordinal);
        foreach (var initializer in graph.Initializer.Where(i => !used.Contains(i.Name)).ToList())
        {
            graph.Initializer.Remove(initializer);
            if (graph.Input.FirstOrDefault(i => i.Name == initializer.Name) is { } asInput)
            {
                graph.Input.Remove(asInput);
            }
        }

        foreach (var constant in graph.Node.Where(n => n.OpType == "Constant" && n.Output.All(o => !used.Contains(o))).ToList())
        {
            graph.Node.Remove(constant);
        }
    }

    private static string Unique(HashSet<string> taken, string stem)
    {
        var name = stem;
        for (var i = 1; !taken.Add(name); i++)
        {
            name = $"{stem}_{i}";
        }

        return name;
    }
}
