namespace ModelCompression.Architectures;

/// <summary>
/// Seeded weight initialisers shared by the builders. One <see cref="Random"/> per model, drawn in graph
/// order, so a seed fixes every byte (System.Random with a seed is stable across .NET versions and platforms).
/// </summary>
internal static class Init
{
    /// <summary>U(-bound, bound).</summary>
    public static float[] Uniform(Random random, long count, double bound)
    {
        var values = new float[count];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = (float)(((random.NextDouble() * 2) - 1) * bound);
        }

        return values;
    }

    /// <summary>
    /// He/Kaiming-uniform for a layer followed by ReLU: bound sqrt(6 / fan_in) (gain sqrt 2), which keeps the
    /// forward activation variance constant through ReLUs that zero half their inputs.
    /// </summary>
    public static float[] KaimingUniform(Random random, long count, long fanIn) =>
        Uniform(random, count, KaimingBound(fanIn));

    /// <summary>The Kaiming-uniform (ReLU) bound for <paramref name="fanIn"/>.</summary>
    public static double KaimingBound(long fanIn) => Math.Sqrt(6.0 / fanIn);

    /// <summary>
    /// Glorot/Xavier-uniform, bound sqrt(6 / (fan_in + fan_out)): balances forward and backward variance for
    /// layers with no rectifier after them (attention projections, linear read-outs).
    /// </summary>
    public static float[] XavierUniform(Random random, long count, long fanIn, long fanOut) =>
        Uniform(random, count, XavierBound(fanIn, fanOut));

    /// <summary>The Xavier-uniform bound.</summary>
    public static double XavierBound(long fanIn, long fanOut) => Math.Sqrt(6.0 / (fanIn + fanOut));

    /// <summary>N(0, std²), by Box-Muller (deterministic given the generator).</summary>
    public static float[] Normal(Random random, long count, double std)
    {
        var values = new float[count];
        for (var i = 0; i < values.Length; i += 2)
        {
            // 1 - NextDouble() is in (0, 1], so the log is finite.
            var radius = Math.Sqrt(-2.0 * Math.Log(1.0 - random.NextDouble())) * std;
            var angle = 2.0 * Math.PI * random.NextDouble();
            values[i] = (float)(radius * Math.Cos(angle));
            if (i + 1 < values.Length)
            {
                values[i + 1] = (float)(radius * Math.Sin(angle));
            }
        }

        return values;
    }

    /// <summary>All <paramref name="value"/>.</summary>
    public static float[] Fill(long count, float value)
    {
        var values = new float[count];
        Array.Fill(values, value);
        return values;
    }
}
