namespace ModelCompression.Pruning;

/// <summary>
/// The gradual pruning schedule of Zhu and Gupta (2017, "To prune, or not to prune"): the sparsity rises from
/// s_i to s_f over n steps as s_t = s_f + (s_i - s_f)(1 - t/n)^3 — fast at first, while many weights are
/// redundant, and slowly towards the end, so training can recover between increments. The sparsity moves only
/// every <see cref="UpdateEvery"/> steps (their Δt): masks are recomputed from the weights' magnitudes at
/// those steps and held in between.
/// </summary>
public sealed class CubicSparsitySchedule
{
    /// <summary>Mask updates over the ramp: often enough to be gradual, rarely enough that sorting the weights costs little.</summary>
    public const int UpdatesPerRamp = 32;

    /// <summary>A schedule from <paramref name="initial"/> to <paramref name="final"/> over <paramref name="rampSteps"/> steps.</summary>
    public CubicSparsitySchedule(double initial, double final, long rampSteps)
    {
        if (!(initial >= 0 && initial <= final && final < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(initial), $"Need 0 <= initial ({initial}) <= final ({final}) < 1.");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(rampSteps, 1);
        Initial = initial;
        Final = final;
        RampSteps = rampSteps;
        UpdateEvery = Math.Max(1, rampSteps / UpdatesPerRamp);
    }

    /// <summary>Sparsity before the first step (s_i).</summary>
    public double Initial { get; }

    /// <summary>Sparsity from the end of the ramp on (s_f).</summary>
    public double Final { get; }

    /// <summary>Steps from s_i to s_f (n).</summary>
    public long RampSteps { get; }

    /// <summary>Steps between mask updates (Δt).</summary>
    public long UpdateEvery { get; }

    /// <summary>The exact cubic value s_t at step <paramref name="step"/> (clamped to [0, n]).</summary>
    public static double Sparsity(double initial, double final, long step, long rampSteps)
    {
        var progress = Math.Clamp((double)step / rampSteps, 0, 1);
        var remaining = 1 - progress;
        return final + ((initial - final) * remaining * remaining * remaining);
    }

    /// <summary>
    /// The sparsity in force after <paramref name="step"/> optimizer steps: the cubic value at the last update
    /// step at or before it, and s_f from step n on.
    /// </summary>
    public double At(long step)
    {
        if (step >= RampSteps)
        {
            return Final;
        }

        var lastUpdate = Math.Max(0, step) / UpdateEvery * UpdateEvery;
        return Sparsity(Initial, Final, lastUpdate, RampSteps);
    }
}
