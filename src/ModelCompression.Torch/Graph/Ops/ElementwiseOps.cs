using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ModelCompression.Torch.Graph;

/// <summary>Arithmetic, activations, comparisons, logic, Where, Cast and Clip.</summary>
internal static class ElementwiseOps
{
    public static void Register(IDictionary<string, OpKernel> kernels)
    {
        kernels["Add"] = c => [c.Input(0).Plus(c.Input(1))];
        kernels["Sub"] = c => [c.Input(0) - c.Input(1)];
        kernels["Mul"] = c => [c.Input(0) * c.Input(1)];
        kernels["Div"] = Div;
        kernels["Pow"] = Pow;
        kernels["Sqrt"] = c => [torch.sqrt(c.Input(0))];
        kernels["Neg"] = c => [c.Input(0).neg()];
        kernels["Abs"] = c => [c.Input(0).abs()];
        kernels["Reciprocal"] = c => [c.Input(0).reciprocal()];
        kernels["Floor"] = c => [c.Input(0).floor()];
        kernels["Ceil"] = c => [c.Input(0).ceil()];
        kernels["Exp"] = c => [torch.exp(c.Input(0))];
        kernels["Log"] = c => [torch.log(c.Input(0))];
        kernels["Erf"] = c => [torch.erf(c.Input(0))];
        kernels["Relu"] = c => [F.relu(c.Input(0))];
        kernels["LeakyRelu"] = LeakyRelu;
        kernels["Sigmoid"] = c => [torch.sigmoid(c.Input(0))];
        kernels["Tanh"] = c => [torch.tanh(c.Input(0))];
        kernels["Gelu"] = Gelu;
        kernels["Min"] = c => [Fold(c, torch.minimum)];
        kernels["Max"] = c => [Fold(c, torch.maximum)];
        kernels["Clip"] = Clip;
        kernels["Equal"] = c => [c.Input(0).eq(c.Input(1))];
        kernels["Less"] = c => [c.Input(0).lt(c.Input(1))];
        kernels["LessOrEqual"] = c => [c.Input(0).le(c.Input(1))];
        kernels["Greater"] = c => [c.Input(0).gt(c.Input(1))];
        kernels["GreaterOrEqual"] = c => [c.Input(0).ge(c.Input(1))];
        kernels["Not"] = c => [c.Input(0).logical_not()];
        kernels["And"] = c => [c.Input(0).logical_and(c.Input(1))];
        kernels["Or"] = c => [c.Input(0).logical_or(c.Input(1))];
        kernels["Xor"] = c => [c.Input(0).logical_xor(c.Input(1))];
        kernels["Where"] = c => [torch.where(c.Input(0).to_type(ScalarType.Bool), c.Input(1), c.Input(2))];
        kernels["Cast"] = c => [c.Input(0).to_type(OpMath.ToScalarType(c.Int("to", 1), c.FloatType))];
        kernels["CastLike"] = c => [c.Input(0).to_type(c.Input(1).dtype)];
    }

    private static Tensor[] LeakyRelu(OpContext c)
    {
        using var slope = c.Float("alpha", 0.01f).ToScalar();
        return [c.Input(0).leaky_relu(slope)];
    }

    private static Tensor[] Div(OpContext c)
    {
        var a = c.Input(0);
        var b = c.Input(1);
        // Integer Div truncates (ONNX Runtime uses C++ '/'); torch's '/' would make floats of shape arithmetic.
        return [a.is_integral() && b.is_integral() ? a.div(b, RoundingMode.trunc) : a / b];
    }

    private static Tensor[] Pow(OpContext c)
    {
        var x = c.Input(0);
        var y = torch.pow(x, c.Input(1));
        // ONNX Pow's output has the base's type (e.g. float base, int64 exponent).
        return [y.dtype == x.dtype ? y : y.to_type(x.dtype)];
    }

    private static Tensor[] Gelu(OpContext c)
    {
        var approximate = c.String("approximate", "none");
        return approximate switch
        {
            "none" => [F.gelu(c.Input(0), TorchSharp.Modules.GELU.Approximate.none)],
            "tanh" => [F.gelu(c.Input(0), TorchSharp.Modules.GELU.Approximate.tanh)],
            _ => throw c.Unsupported($"approximate='{approximate}'"),
        };
    }

    private static Tensor Fold(OpContext c, Func<Tensor, Tensor, Tensor> combine)
    {
        var result = c.Input(0);
        for (var i = 1; i < c.Inputs.Count; i++)
        {
            result = combine(result, c.Input(i));
        }

        return result;
    }

    private static Tensor[] Clip(OpContext c)
    {
        var x = c.Input(0);
        // Opset 11+: min and max are optional scalar inputs (kept as tensors, so a trainable bound gets its
        // gradient); before, float attributes.
        var min = c.OptionalInput(1) ?? (c.Has("min") ? torch.tensor(c.Float("min", 0f), x.dtype, x.device) : null);
        var max = c.OptionalInput(2) ?? (c.Has("max") ? torch.tensor(c.Float("max", 0f), x.dtype, x.device) : null);
        var y = x;
        if (min is not null)
        {
            y = torch.maximum(y, min.to_type(y.dtype));
        }

        // Applied after min, so min > max gives max everywhere, as ONNX specifies.
        if (max is not null)
        {
            y = torch.minimum(y, max.to_type(y.dtype));
        }

        return [y];
    }
}
