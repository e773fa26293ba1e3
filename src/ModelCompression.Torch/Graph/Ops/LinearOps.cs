using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

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
        var transB = c.Int("transB", 0) != 0;
        var alpha = c.Float("alpha", 1f);
        var beta = c.Float("beta", 1f);
        var bias = c.OptionalInput(2);
        var columns = c.Input(1).shape[transB ? 0 : 1];
        if (alpha == 1f && (bias is null || (beta == 1f && bias.dim() == 1 && bias.shape[0] == columns)))
        {
            // The common exported layer (x W^T + b): torch's fused linear is one addmm forward and backward.
            // linear takes W as [out, in], which transB = 1 stores as is: no transposed views (each one more
            // tensor and one more autograd node per step) between the parameter and the kernel.
            return [F.linear(a, transB ? c.Input(1) : c.Input(1).t(), bias)];
        }

        var b = transB ? c.Input(1).t() : c.Input(1);
        var y = torch.matmul(a, b);
        if (alpha != 1f)
        {
            y = y.Times(alpha);
        }

        if (bias is not null && beta != 0f)
        {
            y = y.Plus(beta == 1f ? bias : bias.Times(beta));
        }

        return [y];
    }
}
