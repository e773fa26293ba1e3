using TorchSharp;
using static TorchSharp.torch;

namespace ModelCompression.Torch;

/// <summary>
/// Tensor arithmetic with C# numbers that keeps every native <see cref="Scalar"/> alive for the whole native call.
/// </summary>
/// <remarks>
/// TorchSharp 0.107 converts a number to a finalizable <see cref="Scalar"/> wherever a method takes one (also
/// inside <c>Tensor + Tensor</c>, whose alpha is an implicit <c>1</c>) and passes only its handle to native code;
/// a garbage collection during that call can finalize the Scalar and abort the process ("Unknown scalar type").
/// Here the Scalar is a local disposed after the call returns, or a static that lives as long as the process
/// (Scalars are not tracked by dispose scopes). tests/…/Safety/ScalarLifetimeTests fails on any other use.
/// </remarks>
public static class ScalarArithmetic
{
    private static readonly Scalar One = 1.ToScalar();

    /// <summary><paramref name="a"/> + <paramref name="b"/> (broadcasting).</summary>
    public static Tensor Plus(this Tensor a, Tensor b) => a.add(b, One);

    /// <summary><paramref name="a"/> + <paramref name="value"/>.</summary>
    public static Tensor Plus(this Tensor a, double value)
    {
        using var scalar = value.ToScalar();
        return a.add(scalar, One);
    }

    /// <summary><paramref name="a"/> + <paramref name="value"/>, keeping an integer tensor integer.</summary>
    public static Tensor Plus(this Tensor a, long value)
    {
        using var scalar = value.ToScalar();
        return a.add(scalar, One);
    }

    /// <summary><paramref name="a"/> * <paramref name="factor"/>.</summary>
    public static Tensor Times(this Tensor a, double factor)
    {
        using var scalar = factor.ToScalar();
        return a.mul(scalar);
    }

    /// <summary><paramref name="a"/> / <paramref name="divisor"/>.</summary>
    public static Tensor DividedBy(this Tensor a, double divisor)
    {
        using var scalar = divisor.ToScalar();
        return a.div(scalar);
    }

    /// <summary>In place: <paramref name="a"/> = <paramref name="a"/> * <paramref name="factor"/>.</summary>
    public static Tensor TimesInPlace(this Tensor a, double factor)
    {
        using var scalar = factor.ToScalar();
        return a.mul_(scalar);
    }

    /// <summary>In place: <paramref name="a"/> = <paramref name="a"/> + <paramref name="alpha"/> * <paramref name="b"/>.</summary>
    public static Tensor PlusScaledInPlace(this Tensor a, Tensor b, double alpha)
    {
        using var scalar = alpha.ToScalar();
        return a.add_(b, scalar);
    }

    /// <summary>In place: <paramref name="a"/> = <paramref name="a"/> + <paramref name="value"/> * <paramref name="b"/> * <paramref name="c"/>.</summary>
    public static Tensor PlusProductInPlace(this Tensor a, Tensor b, Tensor c, double value)
    {
        using var scalar = value.ToScalar();
        return a.addcmul_(b, c, scalar);
    }

    /// <summary>In place: <paramref name="a"/> = <paramref name="a"/> + <paramref name="value"/> * <paramref name="b"/> / <paramref name="c"/>.</summary>
    public static Tensor PlusQuotientInPlace(this Tensor a, Tensor b, Tensor c, double value)
    {
        using var scalar = value.ToScalar();
        return a.addcdiv_(b, c, scalar);
    }

    /// <summary>Element-wise <paramref name="a"/> &lt; <paramref name="value"/>.</summary>
    public static Tensor LessThan(this Tensor a, double value)
    {
        using var scalar = value.ToScalar();
        return a.lt(scalar);
    }

    /// <summary>Element-wise <paramref name="a"/> != <paramref name="value"/>.</summary>
    public static Tensor NotEqual(this Tensor a, long value)
    {
        using var scalar = value.ToScalar();
        return a.ne(scalar);
    }

    /// <summary>start, start + step, … up to (not including) <paramref name="end"/>, as int64.</summary>
    public static Tensor Arange(long start, long end, long step, Device? device = null)
    {
        using var first = start.ToScalar();
        using var stop = end.ToScalar();
        using var delta = step.ToScalar();
        return torch.arange(first, stop, delta, ScalarType.Int64, device);
    }

    /// <summary>A tensor of <paramref name="shape"/> filled with <paramref name="value"/>.</summary>
    public static Tensor Full(long[] shape, double value, ScalarType dtype)
    {
        using var scalar = value.ToScalar();
        return torch.full(shape, scalar, dtype);
    }
}
