using ModelCompression.Pruning;

namespace ModelCompression.Core.Tests.Pruning;

public sealed class MagnitudeMasksTests
{
    // A 2x3 weight; magnitudes in order: 0.05 (index 4), 0.1 (3), 0.3 (1), 0.7 (5), 0.9 (2), 2.0 (0).
    private static readonly float[] Weight = [2.0f, -0.3f, 0.9f, 0.1f, -0.05f, -0.7f];

    [Fact]
    public void Half_of_a_known_weight_goes_by_magnitude()
    {
        var mask = MagnitudeMasks.Layer(Weight, 0.5);

        // The three smallest magnitudes (0.05, 0.1, 0.3 at indices 4, 3, 1) go.
        Assert.Equal([true, false, true, false, false, true], mask);
    }

    [Theory]
    [InlineData(0.0, 0)]
    [InlineData(0.2, 1)] // 1.2 rounds to 1
    [InlineData(0.25, 2)] // 1.5 rounds away from zero
    [InlineData(0.29, 2)]
    [InlineData(1.0, 6)]
    public void The_pruned_count_is_the_nearest_whole_number(double sparsity, int zeros)
    {
        Assert.Equal(zeros, MagnitudeMasks.Layer(Weight, sparsity).Count(k => !k));
        Assert.Equal(29, MagnitudeMasks.PrunedCount(100, 0.29)); // 28.999… in binary floating point
    }

    [Fact]
    public void Equal_magnitudes_go_earliest_first()
    {
        float[] ties = [0.5f, -0.5f, 0.5f, 1f];

        Assert.Equal([false, false, true, true], MagnitudeMasks.Layer(ties, 0.5));
    }

    [Fact]
    public void Global_pruning_ranks_all_layers_together()
    {
        float[] small = [0.01f, -0.02f, 0.03f, 0.5f];
        float[] large = [1f, -2f, 0.04f, 3f];

        var masks = MagnitudeMasks.Global([small, large], 0.5);

        // The four smallest of all eight are 0.01, 0.02, 0.03 (first layer) and 0.04 (second).
        Assert.Equal([false, false, false, true], masks[0]);
        Assert.Equal([true, true, false, true], masks[1]);
        // Per layer, each loses exactly half.
        Assert.Equal([false, false, true, true], MagnitudeMasks.Layer(small, 0.5));
    }

    [Fact]
    public void Two_of_four_along_the_columns_of_a_gemm_weight()
    {
        // Gemm with transB stores [out, in]: groups are 4 consecutive entries of a row.
        float[] weight =
        [
            0.1f, -0.9f, 0.3f, 0.2f, /**/ 5f, 4f, -3f, 2f,
            -1f, 1f, 0.5f, -0.5f, /**/ 0f, 0f, 0f, 0.01f,
        ];

        var mask = MagnitudeMasks.NOfM(weight, rows: 2, columns: 8, reductionAxis: 1, n: 2, m: 4);

        bool[] expected =
        [
            false, true, true, false, /**/ true, true, false, false,
            true, true, false, false, /**/ false, false, true, true, // ties: -1 and 1 tie, 0.5 and -0.5 tie; three zeros: the last one stays
        ];
        Assert.Equal(expected, mask);
    }

    [Fact]
    public void Two_of_four_along_the_rows_of_a_matmul_weight()
    {
        // MatMul stores [in, out]: groups are 4 consecutive rows of a column.
        float[] weight =
        [
            0.1f, 4f,
            -0.9f, -1f,
            0.3f, 2f,
            0.2f, -3f,
        ];

        var mask = MagnitudeMasks.NOfM(weight, rows: 4, columns: 2, reductionAxis: 0, n: 2, m: 4);

        Assert.Equal([false, true, true, false, true, false, false, true], mask);
    }

    [Fact]
    public void N_of_m_needs_whole_groups()
    {
        var error = Assert.Throws<ArgumentException>(() => MagnitudeMasks.NOfM(new float[6], 2, 3, 1, 2, 4));
        Assert.Contains("not a multiple of 4", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0, 0.0)]
    [InlineData(2, 0.3904)] // 0.8 - 0.8 * 0.8^3
    [InlineData(5, 0.7)] // 0.8 - 0.8 * 0.5^3
    [InlineData(10, 0.8)]
    [InlineData(25, 0.8)]
    public void The_cubic_schedule_has_known_values(long step, double expected)
    {
        Assert.Equal(expected, CubicSparsitySchedule.Sparsity(0, 0.8, step, 10), 12);
    }

    [Fact]
    public void The_schedule_moves_only_at_update_steps_and_ends_at_the_target()
    {
        // 64 ramp steps and 32 updates: the sparsity moves every 2 steps.
        var schedule = new CubicSparsitySchedule(0.1, 0.9, 64);

        Assert.Equal(2, schedule.UpdateEvery);
        Assert.Equal(0.1, schedule.At(0), 12);
        Assert.Equal(0.1, schedule.At(1), 12);
        Assert.Equal(CubicSparsitySchedule.Sparsity(0.1, 0.9, 2, 64), schedule.At(3), 12);
        Assert.Equal(0.9, schedule.At(64), 12);
        Assert.Equal(0.9, schedule.At(1000), 12);
        var values = Enumerable.Range(0, 70).Select(t => schedule.At(t)).ToArray();
        Assert.True(values.Zip(values.Skip(1)).All(p => p.Second >= p.First), "the sparsity never falls");
    }

    [Fact]
    public void Exclusions_match_names_with_wildcards()
    {
        var filter = new NameFilter(" classifier.* , fc1.weight,head?");

        Assert.True(filter.Matches("classifier.weight"));
        Assert.True(filter.Matches("x", "fc1.weight"));
        Assert.True(filter.Matches("head2"));
        Assert.False(filter.Matches("fc1.weight.factor1"));
        Assert.False(filter.Matches("Classifier.weight"));
        Assert.False(NameFilter.None.Matches("anything"));
    }
}
