using ModelCompression.Onnx.Proto;

namespace ModelCompression.Pruning;

/// <summary>One attention block with its own head axis ([batch, heads, sequence, head_width]), matched from its context MatMul outwards.</summary>
internal sealed class AttentionBlock(GraphIndex graph, NodeProto context) : AttentionBlockMatcher(graph, context)
{
    // Values laid out [batch, sequence, ...]: pruning changes none of their first two dims.
    private readonly HashSet<string> _sequenceMajor = new(StringComparer.Ordinal);

    /// <inheritdoc/>
    public override string? Match()
    {
        var value = Heads(Context.Input[1], [0, 2, 1, 3], "values");
        if (value is not null)
        {
            return value;
        }

        if (ScoresProduct(Graph.Producers[Context.Input[0]]) is not { } scores)
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

    /// <summary>
    /// A per-head tensor: Transpose(<paramref name="perm"/>) of Reshape([.., .., H, d]) of a projection x·W (+ b)
    /// with W a float initializer [in, H*d]. Records the projection's slices and the Reshape's shape fix.
    /// </summary>
    private string? Heads(string value, long[] perm, string what)
    {
        if (Graph.ProducedBy(value, "Transpose") is not { } transpose || !transpose.Attribute.Any(a => a.Name == "perm" && a.Ints.SequenceEqual(perm)))
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
        string? bias = null;
        if (Graph.ProducedBy(projected, "Add") is { } add)
        {
            var biasIndex = add.Input.ToList().FindIndex(Graph.IsFloatInitializer);
            if (biasIndex < 0 || Graph.ConstantDims(add.Input[biasIndex]) is not [var length] || length != heads * width)
            {
                return $"the {what}' projection adds something other than a bias of {heads * width}";
            }

            bias = add.Input[biasIndex];
            projected = add.Input[1 - biasIndex];
            Nodes.Add(add);
            Changed.Add(add.Output[0]);
        }

        if (Graph.ProducedBy(projected, "MatMul") is not { } matmul || !Graph.IsFloatInitializer(matmul.Input[1])
            || Graph.ConstantDims(matmul.Input[1]) is not [_, var columns] || columns != heads * width)
        {
            return $"the {what} are not projected by a MatMul with a [in, {heads * width}] weight initializer";
        }

        string[] values = [matmul.Output[0], reshape.Input[0], reshape.Output[0], transpose.Output[0]];
        if (values.Distinct().FirstOrDefault(v => Readers(v) != 1) is { } shared)
        {
            return $"'{shared}' (on the {what}' path) is read elsewhere too";
        }

        if (Graph.Uses.GetValueOrDefault(matmul.Input[1]) != 1 || (bias is not null && Graph.Uses.GetValueOrDefault(bias) != 1))
        {
            return $"the {what}' weights are shared with another node";
        }

        Nodes.AddRange([matmul, reshape, transpose]);
        Weights.Add(matmul.Input[1]);
        Slices.Add(new UnitSlice(matmul.Input[1], 1, (int)width, UnitSliceRole.Incoming));
        if (bias is not null)
        {
            Weights.Add(bias);
            Slices.Add(new UnitSlice(bias, 0, (int)width, UnitSliceRole.Incoming));
        }

        Fixes.Add(new ShapeFix(reshape.Output[0], 2, 1));
        Changed.AddRange([matmul.Output[0], reshape.Output[0], transpose.Output[0]]);
        _sequenceMajor.UnionWith(values[..3]);
        return null;
    }

    /// <summary>The heads merged back, Reshape(Transpose(context), [.., .., H*d]), into the output projection's MatMul.</summary>
    private string? Merge()
    {
        var width = HeadCount * HeadWidth;
        if (Graph.Uses.GetValueOrDefault(Context.Output[0]) != 1 || Graph.Consumers(Context.Output[0]).FirstOrDefault(n => n.OpType == "Transpose" && n.Input[0] == Context.Output[0]) is not { } transpose
            || !transpose.Attribute.Any(a => a.Name == "perm" && a.Ints.SequenceEqual([0L, 2, 1, 3])))
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
        _sequenceMajor.UnionWith([transpose.Output[0], reshape.Output[0]]);
        return null;
    }

    /// <summary>
    /// Null when every dim read at run time stays what it was: a dim of a value outside the block, or the batch or
    /// sequence dim of a [batch, sequence, ...] value of it; else why not.
    /// </summary>
    private string? StaleDimension()
    {
        var changed = Changed.ToHashSet(StringComparer.Ordinal);
        return DimensionReads.FirstOrDefault(r => changed.Contains(r.Value) && !(_sequenceMajor.Contains(r.Value) && r.Axis is 0 or 1)) is ({ } value, var axis)
            ? $"dim {axis} of '{value}' is read at run time and changes with the heads"
            : null;
    }
}
