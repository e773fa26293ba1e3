using System.Globalization;
using ModelCompression.Core.Tests.Pruning;
using ModelCompression.Evaluation;
using ModelCompression.Factorization;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Pruning;
using ModelCompression.Stages;
using static ModelCompression.Core.Tests.Architectures.ArchitectureTestSupport;
using static ModelCompression.Core.Tests.Pruning.PruningTestSupport;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Core.Tests.Factorization;

public sealed class LowRankFactorizerTests
{
    [Fact]
    public void A_rank_one_matrix_factorizes_exactly_at_rank_one()
    {
        float[] u = [1f, -2f, 0.5f, 3f];
        float[] v = [0.2f, -1f, 4f, 0.7f, -0.3f, 2f];
        var w = u.SelectMany(a => v.Select(b => a * b)).ToArray();

        var split = LowRankFactorizer.Split(w, 4, 6, new RankChoice(0.9))!.Value;

        Assert.Equal(1, split.Rank);
        Assert.Equal(1.0, split.KeptEnergy, 12);
        Assert.Equal(4, split.Left.Length);
        Assert.Equal(6, split.Right.Length);
        var product = Multiply(split.Left, split.Right, 4, 1, 6);
        Assert.All(product.Zip(w), p => Assert.True(Math.Abs(p.First - p.Second) <= 1e-6, $"{p.First} vs {p.Second}"));
    }

    [Fact]
    public void The_rank_follows_the_kept_energy_or_the_budget()
    {
        // σ² = 9, 4, 1 of 14: two values keep 13/14 = 0.93.
        double[] singular = [3, 2, 1];

        Assert.Equal(1, new RankChoice(0.6).For(singular, 3, 3));
        Assert.Equal(2, new RankChoice(0.9).For(singular, 3, 3));
        Assert.Equal(3, new RankChoice(0.95).For(singular, 3, 3));
        Assert.Equal(5, new RankChoice(0.9, RankRatio: 0.5).For([], 10, 40));
        Assert.Equal(25, new RankChoice(0.9, ParamsRatio: 0.5).For([], 100, 100)); // 25 x 200 = half of 100 x 100
        Assert.Equal(1, new RankChoice(0.9, ParamsRatio: 0.01).For([], 4, 4));
    }

    [Fact]
    public void MatMul_and_Gemm_weights_split_into_two_nodes_that_compute_the_same()
    {
        var model = LowRankModel();

        var (factorized, report) = LowRankFactorizer.Factorize(model, new RankChoice(0.999), NameFilter.None);

        Assert.Empty(OnnxChecker.Check(factorized));
        Assert.Equal(
            ["fc1 8x12 rank 2", "fc2 12x10 rank 2", "fc3 10x4 rank 1"],
            report.Factorized.Select(l => $"{l.Node} {l.Inputs}x{l.Outputs} rank {l.Rank}"));
        Assert.Empty(report.Skipped);
        Assert.Equal(["MatMul", "MatMul", "Relu", "Gemm", "Gemm", "Relu", "Gemm", "Gemm"], factorized.Graph.Node.Select(n => n.OpType));
        // fc3 stores [out 4, in 10] for transB: its factors are stored [r, in] and [out, r], read transposed too.
        Assert.Equal([1L, 10], Dims(factorized, "fc3.weight.factor1"));
        Assert.Equal([4L, 1], Dims(factorized, "fc3.weight.factor2"));
        Assert.Equal([8L, 2], Dims(factorized, "fc1.weight.factor1"));
        Assert.Equal([2L, 12], Dims(factorized, "fc1.weight.factor2"));
        var inputs = new Dictionary<string, (Array, long[])> { ["input"] = (RandomFloats(5 * 8, 9), [5, 8]) };
        AssertClose(RunOrt(model, inputs).Values, RunOrt(factorized, inputs).Values, 1e-5);
        Assert.Contains(model.Graph.Initializer, i => i.Name == "fc1.weight");
        Assert.DoesNotContain(factorized.Graph.Initializer, i => i.Name == "fc1.weight");
    }

    [Fact]
    public void Weights_that_would_not_shrink_are_left_whole()
    {
        var model = LowRankModel();

        var (factorized, report) = LowRankFactorizer.Factorize(model, new RankChoice(0.9, RankRatio: 0.9), new NameFilter("fc3"));

        Assert.Empty(report.Factorized);
        Assert.Contains(report.Skipped, s => s.StartsWith("fc1 (MatMul): rank 8 would not shrink it (8 x (8 + 12) >= 8 x 12)", StringComparison.Ordinal));
        Assert.Contains(report.Skipped, s => s == "fc3 (Gemm): excluded by name");
        Assert.Equal(model.Graph.Node.Select(n => n.OpType), factorized.Graph.Node.Select(n => n.OpType));
    }

    /// <summary>
    /// input [batch, 8] -> MatMul [8, 12] (rank 2) -> Relu -> Gemm [12, 10] (rank 2, bias) -> Relu -> Gemm transB
    /// [4, 10] (rank 1, bias, alpha 0.5, beta 2) -> logits [batch, 4].
    /// </summary>
    private static ModelProto LowRankModel()
    {
        var builder = new GraphBuilder("low_rank");
        builder.Input("input", DataType.Float, "batch", 8);
        builder.Output("logits", DataType.Float, "batch", 4);
        builder.Initializer("fc1.weight", RankK(8, 12, 2, 1), [8, 12]);
        builder.Initializer("fc2.weight", RankK(12, 10, 2, 2), [12, 10]);
        builder.Initializer("fc2.bias", RandomFloats(10, 3), [10]);
        builder.Initializer("fc3.weight", RankK(4, 10, 1, 4), [4, 10]);
        builder.Initializer("fc3.bias", RandomFloats(4, 5), [4]);
        builder.Node("MatMul", ["input", "fc1.weight"], ["h1"], "fc1", "");
        builder.Node("Relu", ["h1"], ["r1"], "relu1", "");
        builder.Node("Gemm", ["r1", "fc2.weight", "fc2.bias"], ["h2"], "fc2", "");
        builder.Node("Relu", ["h2"], ["r2"], "relu2", "");
        builder.Node("Gemm", ["r2", "fc3.weight", "fc3.bias"], ["logits"], "fc3", "", Attr.Int("transB", 1), Attr.Float("alpha", 0.5f), Attr.Float("beta", 2f));
        return builder.Build();
    }

    /// <summary>A rows x columns matrix of rank <paramref name="rank"/>: a sum of seeded outer products.</summary>
    private static float[] RankK(int rows, int columns, int rank, int seed)
    {
        var left = RandomFloats(rows * rank, seed);
        var right = RandomFloats(rank * columns, seed + 100);
        return Multiply(left, right, rows, rank, columns);
    }

    private static float[] Multiply(float[] a, float[] b, int rows, int inner, int columns)
    {
        var result = new float[rows * columns];
        for (var r = 0; r < rows; r++)
        {
            for (var c = 0; c < columns; c++)
            {
                var sum = 0.0;
                for (var k = 0; k < inner; k++)
                {
                    sum += (double)a[(r * inner) + k] * b[(k * columns) + c];
                }

                result[(r * columns) + c] = (float)sum;
            }
        }

        return result;
    }
}

[Collection(FashionStudentCollection.Name)]
[Trait("Category", "Slow")] // trains a Fashion-MNIST student and recovers it after factorizing
public sealed class FactorizeStageTests(FashionStudentFixture fashion)
{
    [Fact]
    public void The_trained_student_factorizes_by_energy_and_recovers()
    {
        var before = ModelHash.ComputeFile(fashion.StudentPath);
        var output = fashion.Output("factorize");

        var result = new FactorizeStage(new FactorizeOptions { Energy = 0.9, Epochs = 1 })
            .Run(fashion.Context(), fashion.StudentPath, output);

        var factorized = OnnxModelFile.Load(output);
        var rank = (int)Dims(factorized, "fc1.weight.factor1")[0];
        Assert.Equal([(long)rank, 784], Dims(factorized, "fc1.weight.factor1"));
        Assert.Equal([256L, rank], Dims(factorized, "fc1.weight.factor2"));
        Assert.True(rank * (784 + 256) < 784 * 256);
        Assert.StartsWith($"784x256 -> rank {rank} (", result.Details["rank.fc1"], StringComparison.Ordinal);
        var original = ModelEvaluation.Measure("student", fashion.StudentPath, fashion.Test, new EvaluateOptions { BatchSize = 500, MeasureLatency = false });
        var after = ModelEvaluation.Measure("factorized", output, fashion.Test, new EvaluateOptions { BatchSize = 500, MeasureLatency = false });
        Assert.True(after.Parameters < original.Parameters, $"parameters {original.Parameters} -> {after.Parameters}");
        Assert.Equal(after.Parameters.ToString(CultureInfo.InvariantCulture), result.Details["parameters_after"]);
        Assert.True(after.Accuracy >= original.Accuracy - 0.02, $"factorized {after.Accuracy:P2} vs {original.Accuracy:P2}");
        Assert.Equal(before, ModelHash.ComputeFile(fashion.StudentPath));
    }
}
