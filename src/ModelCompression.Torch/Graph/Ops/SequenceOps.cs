using TorchSharp;
using static TorchSharp.torch;

namespace ModelCompression.Torch.Graph;

/// <summary>
/// The ops that decoders (causal language models) add to a graph: Trilu (causal masks), CumSum (position ids from an
/// attention mask), Sin and Cos (rotary position tables computed in the graph).
/// </summary>
internal static class SequenceOps
{
    public static void Register(IDictionary<string, OpKernel> kernels)
    {
        kernels["Trilu"] = Trilu;
        kernels["CumSum"] = CumSum;
        kernels["Sin"] = c => [torch.sin(c.Input(0))];
        kernels["Cos"] = c => [torch.cos(c.Input(0))];
    }

    private static Tensor[] Trilu(OpContext c)
    {
        var x = c.Input(0);
        // k is an optional 0-D input (default 0); it may exceed the matrix, which torch's triu/tril accept as ONNX does
        // (everything kept or everything zeroed).
        var k = c.OptionalInputLongs(1) is { Length: > 0 } ks ? ks[0] : 0;
        if (x.dim() < 2)
        {
            throw c.Unsupported($"an input of rank {x.dim()} (Trilu needs rank 2 or more)");
        }

        // torch has no triu/tril kernel for bool: go through uint8, which keeps the values.
        if (x.dtype == ScalarType.Bool)
        {
            using var bytes = x.to_type(ScalarType.Byte);
            using var kept = c.Int("upper", 1) != 0 ? bytes.triu(k) : bytes.tril(k);
            return [kept.to_type(ScalarType.Bool)];
        }

        return [c.Int("upper", 1) != 0 ? x.triu(k) : x.tril(k)];
    }

    private static Tensor[] CumSum(OpContext c)
    {
        var x = c.Input(0);
        var axis = OpMath.Axis(OpMath.Longs(c.Input(1))[0], x.dim());
        var exclusive = c.Int("exclusive", 0) != 0;
        var reverse = c.Int("reverse", 0) != 0;
        // torch's cumsum of an integer tensor returns int64: keep the input's element type as ONNX does.
        var y = reverse ? x.flip(axis) : x;
        var sum = y.cumsum(axis, x.dtype);
        var length = y.shape[axis];
        if (exclusive && length > 0)
        {
            // Exclusive: the inclusive sums shifted one place, a zero first. (Subtracting the element instead would
            // round differently from ONNX Runtime's running sum for floats.)
            long[] zeroShape = [.. y.shape];
            zeroShape[axis] = 1;
            sum = torch.cat([torch.zeros(zeroShape, sum.dtype, sum.device), sum.narrow(axis, 0, length - 1)], axis);
        }

        return [reverse ? sum.flip(axis) : sum];
    }
}
