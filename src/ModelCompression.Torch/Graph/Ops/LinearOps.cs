using TorchSharp;
using static TorchSharp.torch;

namespace ModelCompression.Torch.Graph;

/// <summary>Gemm and MatMul.</summary>
internal static class LinearOps
{
    public static void Register(IDictionary<string, OpKernel> kernels)
    {
        kernels["Gemm"] = Gemm;
        // numpy matmul semantics (1-D promotion, batched broadcasting) are torch.matmul's.
        kernels["MatMul"] = c => [torch.matmul(c.Input(0), c.Input(1))];
    }

    private static Tensor[] Gemm(OpContext c)
    {
        // Y = alpha * A' * B' + beta * C, with A' and B' optionally transposed.
        var a = c.Int("transA", 0) != 0 ? c.Input(0).t() : c.Input(0);
        var b = c.Int("transB", 0) != 0 ? c.Input(1).t() : c.Input(1);
        var alpha = c.Float("alpha", 1f);
        var beta = c.Float("beta", 1f);
        var y = torch.matmul(a, b);
        if (alpha != 1f)
        {
            y = y * alpha;
        }

        if (c.OptionalInput(2) is Tensor bias && beta != 0f)
        {
            y = beta == 1f ? y + bias : y + (bias * beta);
        }

        return [y];
    }
}
