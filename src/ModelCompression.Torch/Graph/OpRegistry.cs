using TorchSharp;
using static TorchSharp.torch;

namespace ModelCompression.Torch.Graph;

/// <summary>
/// The ONNX operators a <see cref="TrainableGraph"/> can run, each mapped to TorchSharp ops with autograd.
/// Semantics follow the ONNX operator specification (default domain, opsets 13 to 21).
/// </summary>
public static class OpRegistry
{
    private static readonly Dictionary<string, OpKernel> Kernels = new(StringComparer.Ordinal)
    {
        ["Gemm"] = Gemm,
        ["MatMul"] = c => [torch.matmul(c.Input(0), c.Input(1))],
        ["Add"] = c => [c.Input(0) + c.Input(1)],
        ["Sub"] = c => [c.Input(0) - c.Input(1)],
        ["Mul"] = c => [c.Input(0) * c.Input(1)],
        ["Div"] = c => [c.Input(0) / c.Input(1)],
        ["Relu"] = c => [nn.functional.relu(c.Input(0))],
        ["Sigmoid"] = c => [torch.sigmoid(c.Input(0))],
        ["Tanh"] = c => [torch.tanh(c.Input(0))],
        ["Softmax"] = c => [torch.softmax(c.Input(0), (int)c.Int("axis", -1))],
        ["Identity"] = c => [c.Input(0)],
        ["Dropout"] = Dropout,
        ["Flatten"] = Flatten,
        ["Reshape"] = Reshape,
    };

    /// <summary>The supported operator types, sorted.</summary>
    public static IReadOnlyList<string> SupportedOperators { get; } = [.. Kernels.Keys.Order(StringComparer.Ordinal)];

    /// <summary>The kernel for <paramref name="opType"/> in the default domain, if there is one.</summary>
    public static bool TryGet(string domain, string opType, out OpKernel kernel)
    {
        kernel = null!;
        return (domain.Length == 0 || domain == "ai.onnx") && Kernels.TryGetValue(opType, out kernel!);
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

        if (c.OptionalInput(2) is Tensor bias)
        {
            y = beta == 1f ? y + bias : y + (bias * beta);
        }

        return [y];
    }

    private static Tensor[] Dropout(OpContext c)
    {
        var x = c.Input(0);
        // Opset 12+: the ratio is an optional input; training_mode input is ignored in favour of the module's mode.
        var ratio = c.OptionalInput(1) is Tensor r ? r.item<float>() : c.Float("ratio", 0.5f);
        return [c.Training && ratio > 0 ? nn.functional.dropout(x, ratio, training: true) : x];
    }

    private static Tensor[] Flatten(OpContext c)
    {
        var x = c.Input(0);
        var axis = c.Int("axis", 1);
        if (axis < 0)
        {
            axis += x.dim();
        }

        var outer = 1L;
        for (var i = 0; i < axis; i++)
        {
            outer *= x.shape[i];
        }

        return [x.reshape(outer, -1)];
    }

    private static Tensor[] Reshape(OpContext c)
    {
        var x = c.Input(0);
        var shape = c.Input(1).data<long>().ToArray();
        var allowZero = c.Int("allowzero", 0) != 0;
        for (var i = 0; i < shape.Length; i++)
        {
            // ONNX: 0 copies the input's dimension unless allowzero is set.
            if (shape[i] == 0 && !allowZero)
            {
                shape[i] = x.shape[i];
            }
        }

        return [x.reshape(shape)];
    }
}
