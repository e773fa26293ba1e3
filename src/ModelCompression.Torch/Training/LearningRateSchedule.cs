namespace ModelCompression.Torch.Training;

/// <summary>
/// The learning rate of every step: a linear warm-up from 0 to the base rate, then constant, cosine or linear
/// decay to 0 at the last step. A pure function of the step index, so a resumed run needs only the step count.
/// </summary>
/// <param name="BaseLearningRate">The peak learning rate.</param>
/// <param name="TotalSteps">Steps of the whole run.</param>
/// <param name="WarmupSteps">Steps of linear warm-up.</param>
/// <param name="Schedule">The decay after warm-up.</param>
public sealed record LearningRateSchedule(double BaseLearningRate, int TotalSteps, int WarmupSteps, ScheduleKind Schedule)
{
    /// <summary>The schedule of a run of <paramref name="totalSteps"/> steps with <paramref name="options"/>.</summary>
    public static LearningRateSchedule For(TrainingOptions options, int totalSteps)
    {
        ArgumentNullException.ThrowIfNull(options);
        var warmup = options.WarmupSteps > 0 ? options.WarmupSteps : (int)Math.Round(options.WarmupFraction * totalSteps);
        return new LearningRateSchedule(options.LearningRate, totalSteps, Math.Min(warmup, totalSteps), options.Schedule);
    }

    /// <summary>The learning rate of the 0-based step <paramref name="step"/>.</summary>
    public double At(int step)
    {
        if (step < WarmupSteps)
        {
            // (step + 1) so the first step already moves the weights.
            return BaseLearningRate * (step + 1) / WarmupSteps;
        }

        var decaySteps = Math.Max(1, TotalSteps - WarmupSteps);
        var progress = Math.Clamp((double)(step - WarmupSteps) / decaySteps, 0, 1);
        return Schedule switch
        {
            ScheduleKind.Cosine => BaseLearningRate * 0.5 * (1 + Math.Cos(Math.PI * progress)),
            ScheduleKind.Linear => BaseLearningRate * (1 - progress),
            _ => BaseLearningRate,
        };
    }
}
