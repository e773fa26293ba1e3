using ModelCompression.Gates;

namespace ModelCompression.Core.Tests.Gates;

public sealed class GateExpressionTests
{
    [Theory]
    [InlineData("accuracy >= 0.85", "accuracy", ">=", null, null, 0.85)]
    [InlineData("size_mb<=1", "size_mb", "<=", null, null, 1.0)]
    [InlineData("  parameters < 1e5  ", "parameters", "<", null, null, 1e5)]
    [InlineData("accuracy > -0.5", "accuracy", ">", null, null, -0.5)]
    [InlineData("accuracy >= teacher.accuracy - 0.03", "accuracy", ">=", "teacher", "accuracy", -0.03)]
    [InlineData("accuracy >= teacher.accuracy + 0.01", "accuracy", ">=", "teacher", "accuracy", 0.01)]
    [InlineData("size_mb <= teacher.size_mb", "size_mb", "<=", "teacher", "size_mb", 0.0)]
    [InlineData("accuracy >= baseline.accuracy - 2 %", "accuracy", ">=", "baseline", "accuracy", -0.02)]
    [InlineData("latency_p95_ms <= baseline.latency_p95_ms + 10%", "latency_p95_ms", "<=", "baseline", "latency_p95_ms", 0.1)]
    public void Parses(string text, string metric, string op, string? reference, string? referenceMetric, double offset)
    {
        Assert.True(GateExpression.TryParse(text, out var gate, out var error), error);
        Assert.Equal(new GateExpression(metric, op, reference, referenceMetric, offset, RelativeOffset: text.Contains('%', StringComparison.Ordinal)), gate);
        Assert.Empty(error);
    }

    [Theory]
    [InlineData("", "is not a gate")]
    [InlineData("garbage", "is not a gate")]
    [InlineData("accuracy == 0.9", "is not a gate")]
    [InlineData("accuracy >= ", "is not a gate")]
    [InlineData("accuracy >= 0.9 0.1", "is not a gate")]
    [InlineData("accuracy >= teacher.accuracy * 2", "is not a gate")]
    [InlineData("recall >= 0.9", "unknown metric 'recall'")]
    [InlineData("accuracy >= teacher.recall - 0.1", "unknown metric 'recall'")]
    [InlineData("accuracy >= student.accuracy - 0.1", "compare with 'teacher' or 'baseline'")]
    public void Rejects(string text, string why)
    {
        Assert.False(GateExpression.TryParse(text, out var gate, out var error));
        Assert.Null(gate);
        Assert.Contains(why, error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("accuracy >= teacher.accuracy - 0.03", true)]
    [InlineData("size_mb <= teacher.size_mb", true)]
    [InlineData("agreement_with_teacher >= 0.9", true)]
    [InlineData("kl_to_teacher <= 0.2", true)]
    [InlineData("kl_to_teacher <= baseline.kl_to_teacher", true)]
    [InlineData("accuracy >= baseline.agreement_with_teacher", true)]
    [InlineData("accuracy >= 0.85", false)]
    [InlineData("accuracy >= baseline.accuracy - 0.005", false)]
    [InlineData("latency_p95_ms <= 2", false)]
    public void Knows_whether_it_reads_the_teacher(string text, bool needsTeacher)
    {
        Assert.True(GateExpression.TryParse(text, out var gate, out var error), error);
        Assert.Equal(needsTeacher, gate!.NeedsTeacher);
    }

    [Theory]
    [InlineData("accuracy >= 0.85", 0.85, true)]
    [InlineData("accuracy >= 0.85", 0.8499, false)]
    [InlineData("accuracy > 0.85", 0.85, false)]
    [InlineData("size_mb <= 0.2", 0.2, true)]
    [InlineData("size_mb <= 0.2", 0.2001, false)]
    [InlineData("size_mb < 0.2", 0.2, false)]
    [InlineData("size_mb < 0.2", 0.1, true)]
    public void Evaluates_against_a_constant(string text, double value, bool passes)
    {
        Assert.True(GateExpression.TryParse(text, out var gate, out _));
        var threshold = gate!.Threshold(null);
        Assert.Equal(passes, gate.Passes(value, threshold));
    }

    [Theory]
    [InlineData("accuracy >= teacher.accuracy - 0.03", 0.90, 0.87, 0.871, true)]
    [InlineData("accuracy >= teacher.accuracy - 0.03", 0.90, 0.87, 0.869, false)]
    [InlineData("accuracy >= teacher.accuracy + 0.01", 0.90, 0.91, 0.905, false)]
    [InlineData("accuracy >= teacher.accuracy", 0.90, 0.90, 0.90, true)]
    public void Evaluates_relative_to_the_teacher(string text, double teacherAccuracy, double expectedThreshold, double value, bool passes)
    {
        Assert.True(GateExpression.TryParse(text, out var gate, out _));
        var threshold = gate!.Threshold(new Dictionary<string, double> { ["accuracy"] = teacherAccuracy });
        Assert.Equal(expectedThreshold, threshold, 1e-12);
        Assert.Equal(passes, gate.Passes(value, threshold));
    }

    [Fact]
    public void A_teacher_relative_gate_needs_teacher_metrics()
    {
        Assert.True(GateExpression.TryParse("accuracy >= teacher.accuracy - 0.1", out var gate, out _));
        Assert.Throws<InvalidOperationException>(() => gate!.Threshold(null));
    }
}
