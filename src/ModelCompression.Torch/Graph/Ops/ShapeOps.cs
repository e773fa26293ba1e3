using TorchSharp;
using static TorchSharp.torch;

namespace ModelCompression.Torch.Graph;

/// <summary>
/// Shape and data-movement ops. Shape values (Shape, Gather on shapes, Concat of dims, Reshape targets) are
/// int64 tensors computed at run time, so graphs with a dynamic batch work at any batch size.
/// </summary>
internal static class ShapeOps
{
    public static void Register(IDictionary<string, OpKernel> kernels)
    {
        kernels["Identity"] = c => [c.Input(0)];
        kernels["Constant"] = Constant;
        kernels["ConstantOfShape"] = ConstantOfShape;
        kernels["Shape"] = Shape;
        kernels["Size"] = c => [torch.tensor(c.Input(0).numel(), ScalarType.Int64, c.Input(0).device)];
        kernels["Reshape"] = Reshape;
        kernels["Flatten"] = Flatten;
        kernels["Transpose"] = Transpose;
        kernels["Concat"] = c => [torch.cat(c.Inputs.Where(t => t is not null).Select(t => t!).ToArray(), OpMath.Axis(c.Int("axis", 0), c.Input(0).dim()))];
        kernels["Split"] = Split;
        kernels["Slice"] = Slice;
        kernels["Gather"] = Gather;
        kernels["Squeeze"] = Squeeze;
        kernels["Unsqueeze"] = Unsqueeze;
        kernels["Expand"] = c => [c.Input(0).expand(OpMath.Broadcast(c.Input(0).shape, c.InputLongs(1)))];
        kernels["Tile"] = c => [c.Input(0).tile(c.InputLongs(1))];
        kernels["Range"] = Range;
    }

    /// <summary>
    /// The value of a Constant node (value, value_float(s), value_int(s)). TrainableGraph evaluates Constant
    /// nodes once at import and keeps the results as buffers.
    /// </summary>
    private static Tensor[] Constant(OpContext c)
    {
        if (c.TensorAttribute("value") is { } value)
        {
            var t = OpMath.ToTorch(value);
            return [t.dtype == ScalarType.Float32 ? t.to_type(c.FloatType) : t];
        }

        if (c.Has("value_float"))
        {
            return [torch.tensor(c.Float("value_float", 0f), c.FloatType)];
        }

        if (c.Floats("value_floats") is float[] floats)
        {
            return [torch.tensor(floats).to_type(c.FloatType)];
        }

        if (c.Has("value_int"))
        {
            return [torch.tensor(c.Int("value_int", 0))];
        }

        if (c.Ints("value_ints") is long[] ints)
        {
            return [torch.tensor(ints)];
        }

        throw c.Unsupported("a Constant without value, value_float(s) or value_int(s)");
    }

    private static Tensor[] ConstantOfShape(OpContext c)
    {
        var shape = c.InputLongs(0);
        var device = c.Input(0).device;
        // Default: float32 zero.
        var value = c.TensorAttribute("value") is { } proto ? OpMath.ToTorch(proto) : torch.zeros(1);
        if (value.dtype == ScalarType.Float32)
        {
            value = value.to_type(c.FloatType);
        }

        return [value.to(device).reshape([]).expand(shape).clone()];
    }

    private static Tensor[] Shape(OpContext c)
    {
        var dims = c.Input(0).shape;
        var rank = dims.Length;
        // Opset 15+: start/end select a part, clamped to [0, rank] after adding rank to negatives.
        long Clamp(long v) => Math.Clamp(v < 0 ? v + rank : v, 0, rank);
        var start = Clamp(c.Int("start", 0));
        var end = Clamp(c.Int("end", rank));
        var part = end > start ? dims[(int)start..(int)end] : [];
        return [torch.tensor(part, ScalarType.Int64, c.Input(0).device)];
    }

    private static Tensor[] Reshape(OpContext c)
    {
        var x = c.Input(0);
        var shape = c.InputLongs(1);
        var allowZero = c.Int("allowzero", 0) != 0;
        for (var i = 0; i < shape.Length; i++)
        {
            // ONNX: 0 copies the input's dimension unless allowzero is set; -1 is inferred (torch does that).
            if (shape[i] == 0 && !allowZero)
            {
                shape[i] = x.shape[i];
            }
        }

        return [x.reshape(shape)];
    }

    private static Tensor[] Flatten(OpContext c)
    {
        var x = c.Input(0);
        var rank = x.dim();
        var axis = c.Int("axis", 1);
        if (axis < 0)
        {
            axis += rank;
        }

        var outer = x.shape[..(int)axis].Aggregate(1L, (a, b) => a * b);
        var inner = x.shape[(int)axis..].Aggregate(1L, (a, b) => a * b);
        return [x.reshape(outer, inner)];
    }

    private static Tensor[] Transpose(OpContext c)
    {
        var x = c.Input(0);
        // Default perm reverses the axes.
        var perm = c.Ints("perm") ?? [.. Enumerable.Range(0, (int)x.dim()).Reverse().Select(i => (long)i)];
        return [x.permute(perm)];
    }

    private static Tensor[] Split(OpContext c)
    {
        var x = c.Input(0);
        var axis = OpMath.Axis(c.Int("axis", 0), x.dim());
        var length = x.shape[axis];
        // Opset 13+: split sizes are an optional input (before: attribute); without them the tensor splits
        // into num_outputs (18+) or as many parts as outputs, the last part smaller when it does not divide.
        var sizes = c.OptionalInputLongs(1) ?? c.Ints("split");
        if (sizes is null || sizes.Length == 0)
        {
            var parts = c.Int("num_outputs", c.Node.Output.Count);
            var chunk = (length + parts - 1) / parts;
            sizes = [.. Enumerable.Range(0, (int)parts).Select(i => Math.Max(0, Math.Min(chunk, length - (i * chunk))))];
        }

        return x.split(sizes, axis);
    }

    private static Tensor[] Slice(OpContext c)
    {
        var x = c.Input(0);
        var rank = x.dim();
        // Opset 10+: starts, ends, axes, steps are inputs; before, attributes without steps.
        var fromInputs = c.Opset >= 10;
        var starts = fromInputs ? c.InputLongs(1) : c.Ints("starts")!;
        var ends = fromInputs ? c.InputLongs(2) : c.Ints("ends")!;
        var axes = (fromInputs ? c.OptionalInputLongs(3) : c.Ints("axes")) ?? [.. Enumerable.Range(0, starts.Length).Select(i => (long)i)];
        var steps = (fromInputs ? c.OptionalInputLongs(4) : null) ?? [.. Enumerable.Repeat(1L, starts.Length)];
        var y = x;
        for (var i = 0; i < starts.Length; i++)
        {
            var axis = OpMath.Axis(axes[i], rank);
            var dim = y.shape[axis];
            var step = steps[i] != 0 ? steps[i] : throw c.Unsupported("a step of 0");
            // Negative starts/ends count from the end; huge values (INT64_MAX/MIN, as exporters write for
            // "to the end") are clamped, and adding dim to INT64_MIN cannot overflow.
            var start = starts[i] < 0 ? starts[i] + dim : starts[i];
            var end = ends[i] < 0 ? ends[i] + dim : ends[i];
            if (step > 0)
            {
                start = Math.Clamp(start, 0, dim);
                end = Math.Clamp(end, 0, dim);
                y = y.slice(axis, start, Math.Max(start, end), step);
            }
            else if (dim == 0)
            {
                y = y.narrow(axis, 0, 0);
            }
            else
            {
                // torch slicing has no negative steps: gather the indices start, start+step, ... > end.
                start = Math.Clamp(start, 0, dim - 1);
                end = Math.Clamp(end, -1, dim - 1);
                var count = start > end ? (start - end + (-step) - 1) / -step : 0;
                y = count == 0
                    ? y.narrow(axis, 0, 0)
                    : y.index_select(axis, ScalarArithmetic.Arange(start, start + (step * count), step, y.device));
            }
        }

        return [y];
    }

    private static Tensor[] Gather(OpContext c)
    {
        var data = c.Input(0);
        var indices = c.Input(1).to_type(ScalarType.Int64);
        var axis = OpMath.Axis(c.Int("axis", 0), data.dim());
        var dim = data.shape[axis];
        // Negative indices count from the end.
        indices = torch.where(indices.LessThan(0), indices.Plus(dim), indices);
        var picked = data.index_select(axis, indices.reshape(-1).to(data.device));
        long[] shape = [.. data.shape[..(int)axis], .. indices.shape, .. data.shape[((int)axis + 1)..]];
        return [picked.reshape(shape)];
    }

    private static long[]? Axes(OpContext c) =>
        // Opset 13+: axes are an optional input; before, an attribute.
        c.OptionalInputLongs(1) ?? c.Ints("axes");

    private static Tensor[] Squeeze(OpContext c)
    {
        var x = c.Input(0);
        var axes = Axes(c);
        if (axes is null || axes.Length == 0)
        {
            return [x.reshape([.. x.shape.Where(d => d != 1)])];
        }

        var drop = axes.Select(a => OpMath.Axis(a, x.dim())).ToHashSet();
        return [x.reshape([.. x.shape.Where((_, i) => !drop.Contains(i))])];
    }

    private static Tensor[] Unsqueeze(OpContext c)
    {
        var x = c.Input(0);
        var axes = Axes(c) ?? throw c.Unsupported("Unsqueeze without axes");
        // Axes refer to the output's rank.
        var rank = x.dim() + axes.Length;
        var y = x;
        foreach (var axis in axes.Select(a => OpMath.Axis(a, rank)).Order())
        {
            y = y.unsqueeze(axis);
        }

        return [y];
    }

    private static Tensor[] Range(OpContext c)
    {
        var start = c.Input(0);
        var type = start.dtype;
        var device = start.device;
        if (start.is_integral())
        {
            long s = OpMath.Longs(start)[0], limit = OpMath.Longs(c.Input(1))[0], delta = OpMath.Longs(c.Input(2))[0];
            // count = max(ceil((limit - start) / delta), 0)
            var count = Math.Max(0, (long)Math.Ceiling((limit - s) / (double)delta));
            return [ScalarArithmetic.Arange(s, s + (delta * count), delta, device).to_type(type)];
        }

        double fs = OpMath.Double(start), flimit = OpMath.Double(c.Input(1)), fdelta = OpMath.Double(c.Input(2));
        var n = Math.Max(0, (long)Math.Ceiling((flimit - fs) / fdelta));
        return [ScalarArithmetic.Arange(0, n, 1, device).to(ScalarType.Float64).Times(fdelta).Plus(fs).to_type(type)];
    }
}
