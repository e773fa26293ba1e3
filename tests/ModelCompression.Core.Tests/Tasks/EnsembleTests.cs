using ModelCompression.Tasks;

namespace ModelCompression.Core.Tests.Tasks;

public sealed class EnsembleTests
{
    [Theory]
    [InlineData(1.0)]
    [InlineData(4.0)]
    public void Softmax_of_the_result_is_the_weighted_average_of_the_teachers_softmax(double temperature)
    {
        float[] a = [2f, 0f, -1f, 0.5f, 0.5f, 3f];
        float[] b = [-1f, 4f, 0f, 1f, 2f, 0f];
        var logits = Ensemble.SoftTargetLogits([(a, 3), (b, 1)], classes: 3, temperature);

        for (var s = 0; s < 2; s++)
        {
            var expected = Softmax(a.AsSpan(s * 3, 3), temperature).Zip(Softmax(b.AsSpan(s * 3, 3), temperature), (p, q) => (0.75 * p) + (0.25 * q));
            Assert.Equal(expected, Softmax(logits.AsSpan(s * 3, 3), temperature), (x, y) => Math.Abs(x - y) < 1e-6);
        }
    }

    [Fact]
    public void Equal_teachers_give_back_the_teacher_up_to_a_constant()
    {
        float[] a = [2f, 0f, -1f];
        var logits = Ensemble.SoftTargetLogits([(a, 1), (a, 5)], classes: 3, temperature: 2);
        // log-softmax is invariant to a constant shift: differences between classes are kept.
        Assert.Equal(a[0] - a[1], logits[0] - logits[1], 1e-5);
        Assert.Equal(a[1] - a[2], logits[1] - logits[2], 1e-5);
    }

    private static double[] Softmax(ReadOnlySpan<float> row, double temperature)
    {
        var scaled = row.ToArray().Select(v => v / temperature).ToArray();
        var max = scaled.Max();
        var exp = scaled.Select(v => Math.Exp(v - max)).ToArray();
        return [.. exp.Select(e => e / exp.Sum())];
    }
}
