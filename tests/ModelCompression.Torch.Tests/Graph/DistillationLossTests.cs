using ModelCompression.Torch.Native;
using ModelCompression.Torch.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelCompression.Torch.Tests.Graph;

public sealed class DistillationLossTests
{
    // Two samples, three classes.
    private static readonly double[,] Student = { { 1.0, 2.0, 0.5 }, { -1.0, 0.0, 3.0 } };
    private static readonly double[,] Teacher = { { 0.5, 2.5, -1.0 }, { 0.0, 1.0, 2.0 } };
    private static readonly long[] Labels = [1, 0];

    public DistillationLossTests() => TorchNativeLoader.EnsureLoaded();

    [Fact]
    public void Alpha_zero_is_cross_entropy()
    {
        // CE = mean over samples of log(sum exp(s)) - s[y].
        var expected = Enumerable.Range(0, 2).Average(i => LogSumExp(Row(Student, i)) - Student[i, Labels[i]]);

        var actual = Compute(new DistillationLoss(0, 4), Student, Teacher);

        Assert.Equal(expected, actual, 1e-5);
    }

    [Fact]
    public void Alpha_zero_needs_no_teacher()
    {
        using var scope = torch.NewDisposeScope();
        var loss = new DistillationLoss(0, 4).Compute(Tensor(Student), torch.tensor(Labels, [2]), null);

        Assert.True(loss.item<float>() > 0);
    }

    [Theory]
    [InlineData(1.0)]
    [InlineData(2.0)]
    [InlineData(4.0)]
    public void Alpha_one_is_T_squared_times_KL(double temperature)
    {
        // KL(p_t || p_s) with p = softmax(logits / T), summed over classes, averaged over samples.
        var kl = Enumerable.Range(0, 2).Average(i =>
        {
            var pt = Softmax(Row(Teacher, i), temperature);
            var ps = Softmax(Row(Student, i), temperature);
            return pt.Zip(ps, (t, s) => t * Math.Log(t / s)).Sum();
        });
        var expected = temperature * temperature * kl;

        var actual = Compute(new DistillationLoss(1, temperature), Student, Teacher, labels: false);

        Assert.True(expected > 0.01);
        Assert.Equal(expected, actual, 1e-5);
    }

    [Fact]
    public void Mixed_alpha_weighs_both_terms()
    {
        var soft = Compute(new DistillationLoss(1, 2), Student, Teacher);
        var hard = Compute(new DistillationLoss(0, 2), Student, Teacher);

        var mixed = Compute(new DistillationLoss(0.3, 2), Student, Teacher);

        Assert.Equal((0.3 * soft) + (0.7 * hard), mixed, 1e-5);
    }

    [Theory]
    [InlineData(1.0)]
    [InlineData(4.0)]
    public void Alpha_one_is_zero_when_the_student_is_the_teacher(double temperature)
    {
        var actual = Compute(new DistillationLoss(1, temperature), Teacher, Teacher, labels: false);

        Assert.Equal(0, actual, 1e-6);
    }

    [Fact]
    public void The_soft_term_pulls_the_student_toward_the_teacher()
    {
        using var scope = torch.NewDisposeScope();
        var student = Tensor(Student).requires_grad_(true);
        var loss = new DistillationLoss(1, 2).Compute(student, null, Tensor(Teacher));
        loss.backward();

        // d/ds of T^2 KL = T * (p_s - p_t) / batch: the gradient points from the teacher to the student.
        var grad = student.grad!.data<float>().ToArray();
        for (var i = 0; i < 2; i++)
        {
            var pt = Softmax(Row(Teacher, i), 2);
            var ps = Softmax(Row(Student, i), 2);
            for (var c = 0; c < 3; c++)
            {
                Assert.Equal(2 * (ps[c] - pt[c]) / 2, grad[(i * 3) + c], 1e-5);
            }
        }
    }

    private static double Compute(DistillationLoss loss, double[,] student, double[,] teacher, bool labels = true)
    {
        using var scope = torch.NewDisposeScope();
        return loss.Compute(Tensor(student), labels ? torch.tensor(Labels, [2]) : null, Tensor(teacher)).item<float>();
    }

    private static Tensor Tensor(double[,] values) =>
        torch.tensor(values.Cast<double>().Select(v => (float)v).ToArray(), [values.GetLength(0), values.GetLength(1)]);

    private static double[] Row(double[,] values, int row) => [.. Enumerable.Range(0, values.GetLength(1)).Select(c => values[row, c])];

    private static double LogSumExp(double[] values)
    {
        var max = values.Max();
        return max + Math.Log(values.Sum(v => Math.Exp(v - max)));
    }

    private static double[] Softmax(double[] logits, double temperature)
    {
        var scaled = logits.Select(v => v / temperature).ToArray();
        var log = LogSumExp(scaled);
        return [.. scaled.Select(v => Math.Exp(v - log))];
    }
}
