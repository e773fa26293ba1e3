using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ModelCompression.Torch.Graph;

/// <summary>Conv, MaxPool, AveragePool, the global pools and Pad.</summary>
internal static class ConvPoolOps
{
    public static void Register(IDictionary<string, OpKernel> kernels)
    {
        kernels["Conv"] = Conv;
        kernels["MaxPool"] = MaxPool;
        kernels["AveragePool"] = AveragePool;
        kernels["GlobalAveragePool"] = c => [c.Input(0).mean(SpatialDims(c.Input(0)), keepdim: true)];
        kernels["GlobalMaxPool"] = c => [c.Input(0).amax(SpatialDims(c.Input(0)), keepdim: true)];
        kernels["Pad"] = Pad;
    }

    private static long[] SpatialDims(Tensor x) => [.. Enumerable.Range(2, (int)x.dim() - 2).Select(i => (long)i)];

    private static long[] Filled(long[]? values, int count, long fill) => values ?? [.. Enumerable.Repeat(fill, count)];

    /// <summary>
    /// The begin and end padding of every spatial axis, ONNX layout [x1_begin, ..., x1_end, ...], from
    /// explicit pads or auto_pad.
    /// </summary>
    private static long[] ResolvePads(OpContext c, long[] input, long[] kernel, long[] strides, long[] dilations)
    {
        var n = input.Length;
        var autoPad = c.String("auto_pad", "NOTSET");
        switch (autoPad)
        {
            case "NOTSET":
                return Filled(c.Ints("pads"), 2 * n, 0);
            case "VALID":
                return new long[2 * n];
            case "SAME_UPPER" or "SAME_LOWER":
                var pads = new long[2 * n];
                for (var i = 0; i < n; i++)
                {
                    // Output = ceil(input / stride); the padding that makes it so is split, the odd one at the
                    // end (SAME_UPPER) or at the beginning (SAME_LOWER).
                    var output = (input[i] + strides[i] - 1) / strides[i];
                    var total = Math.Max(0, ((output - 1) * strides[i]) + ((kernel[i] - 1) * dilations[i]) + 1 - input[i]);
                    var small = total / 2;
                    var big = total - small;
                    pads[i] = autoPad == "SAME_UPPER" ? small : big;
                    pads[i + n] = autoPad == "SAME_UPPER" ? big : small;
                }

                return pads;
            default:
                throw c.Unsupported($"auto_pad='{autoPad}'");
        }
    }

    private static bool Symmetric(long[] pads)
    {
        var n = pads.Length / 2;
        for (var i = 0; i < n; i++)
        {
            if (pads[i] != pads[i + n])
            {
                return false;
            }
        }

        return true;
    }

    private static Tensor[] Conv(OpContext c)
    {
        var x = c.Input(0);
        var w = c.Input(1);
        var b = c.OptionalInput(2);
        var n = (int)x.dim() - 2;
        var kernel = c.Ints("kernel_shape") ?? w.shape[2..];
        var strides = Filled(c.Ints("strides"), n, 1);
        var dilations = Filled(c.Ints("dilations"), n, 1);
        var group = c.Int("group", 1);
        var pads = ResolvePads(c, x.shape[2..], kernel, strides, dilations);
        long[] padding;
        if (Symmetric(pads))
        {
            padding = pads[..n];
        }
        else
        {
            // torch convolutions pad both sides alike; asymmetric ONNX pads become an explicit zero pad.
            x = F.pad(x, OpMath.TorchPads(pads), PaddingModes.Constant, 0);
            padding = new long[n];
        }

        return n switch
        {
            1 => [F.conv1d(x, w, b, strides[0], padding[0], dilations[0], group)],
            2 => [F.conv2d(x, w, b, strides, padding, dilations, group)],
            3 => [F.conv3d(x, w, b, strides, padding, dilations, group)],
            _ => throw c.Unsupported($"a {n}-D convolution"),
        };
    }

    /// <summary>Pooling geometry after ONNX rules: pads, and per axis the output length.</summary>
    private sealed record PoolGeometry(long[] Kernel, long[] Strides, long[] Dilations, long[] Pads, long[] Extra, long[] Output);

    private static PoolGeometry Geometry(OpContext c, Tensor x)
    {
        var n = (int)x.dim() - 2;
        var kernel = c.Ints("kernel_shape") ?? throw c.Unsupported("a pool without kernel_shape");
        var strides = Filled(c.Ints("strides"), n, 1);
        var dilations = Filled(c.Ints("dilations"), n, 1);
        var input = x.shape[2..];
        var pads = ResolvePads(c, input, kernel, strides, dilations);
        var ceil = c.Int("ceil_mode", 0) != 0;
        var output = new long[n];
        var extra = new long[n];
        for (var i = 0; i < n; i++)
        {
            var span = input[i] + pads[i] + pads[i + n] - (((kernel[i] - 1) * dilations[i]) + 1);
            output[i] = (ceil ? (span + strides[i] - 1) / strides[i] : span / strides[i]) + 1;
            // ceil_mode: a window that would start in the right padding is dropped (ONNX, as PyTorch).
            if (ceil && (output[i] - 1) * strides[i] >= input[i] + pads[i])
            {
                output[i]--;
            }

            // Beyond the end padding, ceil_mode's last window may hang over: padding that is never counted.
            var needed = ((output[i] - 1) * strides[i]) + ((kernel[i] - 1) * dilations[i]) + 1;
            extra[i] = Math.Max(0, needed - (input[i] + pads[i] + pads[i + n]));
        }

        return new PoolGeometry(kernel, strides, dilations, pads, extra, output);
    }

    private static long[] WithExtra(long[] pads, long[] extra)
    {
        var n = extra.Length;
        var result = (long[])pads.Clone();
        for (var i = 0; i < n; i++)
        {
            result[i + n] += extra[i];
        }

        return result;
    }

    private static Tensor[] MaxPool(OpContext c)
    {
        if (c.WantsOutput(1))
        {
            throw c.Unsupported("the Indices output");
        }

        var x = c.Input(0);
        var g = Geometry(c, x);
        var all = WithExtra(g.Pads, g.Extra);
        if (all.Any(p => p != 0))
        {
            // Padding never wins a max: pad with -inf explicitly, which also covers asymmetric pads and ceil_mode.
            x = F.pad(x, OpMath.TorchPads(all), PaddingModes.Constant, double.NegativeInfinity);
        }

        var zeros = new long[g.Kernel.Length];
        return g.Kernel.Length switch
        {
            1 => [F.max_pool1d(x, g.Kernel[0], g.Strides[0], 0, g.Dilations[0], false)],
            2 => [F.max_pool2d(x, g.Kernel, g.Strides, zeros, g.Dilations, false)],
            3 => [F.max_pool3d(x, g.Kernel, g.Strides, zeros, g.Dilations, false)],
            _ => throw c.Unsupported($"a {g.Kernel.Length}-D pool"),
        };
    }

    private static Tensor[] AveragePool(OpContext c)
    {
        var x = c.Input(0);
        var g = Geometry(c, x);
        if (g.Dilations.Any(d => d != 1))
        {
            throw c.Unsupported("AveragePool with dilations");
        }

        var n = g.Kernel.Length;
        var all = WithExtra(g.Pads, g.Extra);
        if (all.All(p => p == 0))
        {
            return [AvgPool(x, g.Kernel, g.Strides, null)];
        }

        // Sum over each window of the zero-padded input, divided by how many cells count: the real input
        // (count_include_pad=0) or the input and its pads (count_include_pad=1), never ceil_mode's overhang.
        var includePad = c.Int("count_include_pad", 0) != 0;
        var sums = AvgPool(F.pad(x, OpMath.TorchPads(all), PaddingModes.Constant, 0), g.Kernel, g.Strides, 1);
        long[] one = [1, 1, .. x.shape[2..]];
        var mask = torch.ones(one, x.dtype, x.device);
        mask = includePad
            ? F.pad(F.pad(mask, OpMath.TorchPads(g.Pads), PaddingModes.Constant, 1), OpMath.TorchPads([.. new long[n], .. g.Extra]), PaddingModes.Constant, 0)
            : F.pad(mask, OpMath.TorchPads(all), PaddingModes.Constant, 0);
        var counts = AvgPool(mask, g.Kernel, g.Strides, 1);
        return [sums / counts];
    }

    /// <summary>Average pooling without padding; a divisor of 1 gives window sums. 1-D runs as 2-D.</summary>
    private static Tensor AvgPool(Tensor x, long[] kernel, long[] strides, long? divisor) => kernel.Length switch
    {
        1 => F.avg_pool2d(x.unsqueeze(-2), [1, kernel[0]], [1, strides[0]], [0, 0], false, true, divisor).squeeze(-2),
        2 => F.avg_pool2d(x, kernel, strides, [0, 0], false, true, divisor),
        3 => F.avg_pool3d(x, kernel, strides, [0, 0, 0], false, true, divisor),
        _ => throw new NotSupportedException($"A {kernel.Length}-D AveragePool is not supported."),
    };

    private static Tensor[] Pad(OpContext c)
    {
        var x = c.Input(0);
        var rank = (int)x.dim();
        var mode = c.String("mode", "constant");
        // Opset 11+: pads, constant_value and (18+) axes are inputs; before, attributes.
        var given = c.Opset >= 11 ? c.InputLongs(1) : c.Ints("pads") ?? throw c.Unsupported("Pad without pads");
        var value = c.OptionalInput(2) is Tensor v ? OpMath.Double(v) : c.Float("value", 0f);
        var axes = c.OptionalInputLongs(3)?.Select(a => OpMath.Axis(a, rank)).ToArray() ?? [.. Enumerable.Range(0, rank).Select(i => (long)i)];
        var pads = new long[2 * rank];
        for (var i = 0; i < axes.Length; i++)
        {
            pads[axes[i]] = given[i];
            pads[axes[i] + rank] = given[i + axes.Length];
        }

        // torch pads trailing dimensions only; leading axes without padding are left out of the list,
        // which the non-constant modes need (they pad at most the last three axes).
        var torchPads = OpMath.TorchPads(pads);
        var used = torchPads.Length;
        while (used > 2 && torchPads[used - 1] == 0 && torchPads[used - 2] == 0)
        {
            used -= 2;
        }

        torchPads = torchPads[..used];
        return mode switch
        {
            "constant" => [F.pad(x, torchPads, PaddingModes.Constant, value)],
            "reflect" => [F.pad(x, torchPads, PaddingModes.Reflect)],
            "edge" => [F.pad(x, torchPads, PaddingModes.Replicate)],
            "wrap" => [F.pad(x, torchPads, PaddingModes.Circular)],
            _ => throw c.Unsupported($"mode='{mode}'"),
        };
    }
}
