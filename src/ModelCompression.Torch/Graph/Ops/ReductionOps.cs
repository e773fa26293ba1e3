using TorchSharp;
using static TorchSharp.torch;

namespace ModelCompression.Torch.Graph;

/// <summary>ReduceMean, ReduceSum, ReduceMax, ReduceMin.</summary>
internal static class ReductionOps
{
    public static void Register(IDictionary<string, OpKernel> kernels)
    {
        kernels["ReduceMean"] = c => Reduce(c, (x, dims, keep) => x.mean(dims, keep));
        kernels["ReduceSum"] = c => Reduce(c, (x, dims, keep) => x.sum(dims, keep));
        kernels["ReduceMax"] = c => Reduce(c, (x, dims, keep) => x.amax(dims, keep));
        kernels["ReduceMin"] = c => Reduce(c, (x, dims, keep) => x.amin(dims, keep));
    }

    private static Tensor[] Reduce(OpContext c, Func<Tensor, long[], bool, Tensor> reduce)
    {
        var x = c.Input(0);
        var keepDims = c.Int("keepdims", 1) != 0;
        // The axes are an attribute up to opset 17 (ReduceSum: 12) and an optional input after; whichever
        // the node has is used, so every opset reads alike.
        var axes = c.OptionalInputLongs(1) ?? c.Ints("axes");
        if (axes is null || axes.Length == 0)
        {
            // No axes: reduce everything, unless noop_with_empty_axes asks for the input unchanged.
            if (c.Int("noop_with_empty_axes", 0) != 0)
            {
                return [x];
            }

            axes = [.. Enumerable.Range(0, (int)x.dim()).Select(i => (long)i)];
        }

        var dims = axes.Select(a => OpMath.Axis(a, x.dim())).Distinct().ToArray();
        return [dims.Length == 0 ? x : reduce(x, dims, keepDims)];
    }
}
