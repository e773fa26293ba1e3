using ModelCompression.Generation;

namespace ModelCompression.Core.Tests.Generation;

/// <summary>
/// The sampler alone on hand-made logits whose softmax is known: temperature, top-k, top-p and their order, greedy
/// ties, the draw, and the log-probabilities it records.
/// </summary>
public sealed class TokenSamplerTests
{
    private const double Tolerance = 1e-6;

    // softmax(log p) = p.
    private static readonly float[] Logits = [MathF.Log(0.1f), MathF.Log(0.2f), MathF.Log(0.3f), MathF.Log(0.4f)];

    private static readonly GenerationOptions Sampling = new() { Temperature = 1 };

    public static TheoryData<string, GenerationOptions, double[]> Cases() => new()
    {
        { "temperature 1: the softmax", Sampling, [0.1, 0.2, 0.3, 0.4] },
        { "temperature 2: p^(1/2) renormalised", Sampling with { Temperature = 2 }, Normalise([Math.Sqrt(0.1), Math.Sqrt(0.2), Math.Sqrt(0.3), Math.Sqrt(0.4)]) },
        { "temperature 0.5: p^2 renormalised", Sampling with { Temperature = 0.5 }, Normalise([0.01, 0.04, 0.09, 0.16]) },
        { "top-k 2", Sampling with { TopK = 2 }, [0, 0, 3 / 7.0, 4 / 7.0] },
        { "top-k larger than the vocabulary keeps all", Sampling with { TopK = 9 }, [0.1, 0.2, 0.3, 0.4] },
        { "top-p 0.35: the most likely alone", Sampling with { TopP = 0.35 }, [0, 0, 0, 1] },
        { "top-p 0.5: 0.4, then 0.3 (0.4 before it < 0.5)", Sampling with { TopP = 0.5 }, [0, 0, 3 / 7.0, 4 / 7.0] },
        { "top-p 0.75: 0.2 is in (0.7 before it)", Sampling with { TopP = 0.75 }, [0, 2 / 9.0, 3 / 9.0, 4 / 9.0] },
        { "top-k 3 then top-p 0.6 on the renormalised three", Sampling with { TopK = 3, TopP = 0.6 }, [0, 0, 3 / 7.0, 4 / 7.0] },
        { "temperature 0.5 then top-p 0.6: 0.16/0.3 = 0.533 < 0.6, so 0.09 stays", Sampling with { Temperature = 0.5, TopP = 0.6 }, [0, 0, 9 / 25.0, 16 / 25.0] },
        { "greedy", new GenerationOptions(), [0, 0, 0, 1] },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Distribution_is_exact(string name, GenerationOptions options, double[] expected)
    {
        var distribution = TokenSampler.Distribution(Logits, options);

        Assert.True(
            expected.Zip(distribution).All(p => Math.Abs(p.First - p.Second) <= Tolerance),
            $"{name}: expected [{string.Join(", ", expected)}], got [{string.Join(", ", distribution)}]");
    }

    [Fact]
    public void Ties_go_to_the_lowest_id_and_top_k_keeps_ties_with_the_kth()
    {
        float[] tied = [1, 2, 2, 0];

        Assert.Equal(1, TokenSampler.ArgMax(tied));
        Assert.Equal(1, TokenSampler.Choose(tied, Sampling with { TopK = 1, Seed = 5 }, new SequenceRandom(5, 0)));
        Assert.Equal([0, 0.5, 0.5, 0], TokenSampler.Distribution(tied, Sampling with { TopK = 2 }));
        Assert.Equal([0, 1, 0, 0], TokenSampler.Distribution(tied, Sampling with { TopK = 1 }));
    }

    [Fact]
    public void Choose_takes_the_first_token_whose_cumulative_probability_exceeds_the_draw()
    {
        for (var sample = 0; sample < 200; sample++)
        {
            var draw = new SequenceRandom(11, sample).NextDouble();
            var expected = draw < 0.1 ? 0 : draw < 0.3 ? 1 : draw < 0.6 ? 2 : 3;

            // Draws within rounding of a boundary are left out: the cumulative sum of floats' softmax is not exactly 0.3.
            if (new[] { 0.1, 0.3, 0.6 }.Any(b => Math.Abs(draw - b) < 1e-6))
            {
                continue;
            }

            Assert.Equal(expected, TokenSampler.Choose(Logits, Sampling, new SequenceRandom(11, sample)));
        }
    }

    [Fact]
    public void Draws_follow_the_distribution()
    {
        var counts = new int[4];
        var random = new SequenceRandom(3, 0);
        const int Draws = 40_000;
        for (var i = 0; i < Draws; i++)
        {
            counts[TokenSampler.Choose(Logits, Sampling with { TopK = 3 }, random)]++;
        }

        // Binomial standard deviation at n = 40,000 is at most 0.0025; 0.01 is four of them.
        double[] expected = [0, 2 / 9.0, 3 / 9.0, 4 / 9.0];
        Assert.All(Enumerable.Range(0, 4), t => Assert.Equal(expected[t], counts[t] / (double)Draws, 0.01));
        Assert.Equal(0, counts[0]);
    }

    [Fact]
    public void Streams_depend_on_the_seed_and_the_sample_only()
    {
        static ulong[] Take(SequenceRandom r) => [r.NextUInt64(), r.NextUInt64(), r.NextUInt64()];

        Assert.Equal(Take(new SequenceRandom(42, 1)), Take(new SequenceRandom(42, 1)));
        Assert.NotEqual(Take(new SequenceRandom(42, 1)), Take(new SequenceRandom(42, 2)));
        Assert.NotEqual(Take(new SequenceRandom(42, 1)), Take(new SequenceRandom(43, 1)));
        Assert.All(Enumerable.Range(0, 1000).Select(i => new SequenceRandom(i, i).NextDouble()), d => Assert.InRange(d, 0, 1 - 1e-17));
    }

    [Fact]
    public void Logprobs_are_log_softmax_of_the_raw_logits()
    {
        Assert.Equal(Math.Log(0.3), TokenSampler.Logprob(Logits, 2), 1e-6);

        var top = TokenSampler.Top([1, 3, 3, 0, 2], 3);

        Assert.Equal([1, 2, 4], top.Select(t => t.TokenId));
        var logZ = Math.Log(Math.Exp(1) + Math.Exp(3) + Math.Exp(3) + Math.Exp(0) + Math.Exp(2));
        Assert.Equal([3 - logZ, 3 - logZ, 2 - logZ], top.Select(t => (double)t.Logprob), new ToleranceComparer(1e-6));
        Assert.Equal(4, TokenSampler.Top(Logits, 10).Length);
    }

    private static double[] Normalise(double[] values) => [.. values.Select(v => v / values.Sum())];

    private sealed class ToleranceComparer(double tolerance) : IEqualityComparer<double>
    {
        public bool Equals(double x, double y) => Math.Abs(x - y) <= tolerance;

        public int GetHashCode(double obj) => 0;
    }
}
