using ModelCompression.Torch.Training;

namespace ModelCompression.Torch.Tests.Training;

public sealed class LearningRateScheduleTests
{
    [Fact]
    public void Warms_up_linearly_then_follows_a_cosine_to_zero()
    {
        var schedule = new LearningRateSchedule(1.0, TotalSteps: 110, WarmupSteps: 10, ScheduleKind.Cosine);

        Assert.Equal(0.1, schedule.At(0), 12);
        Assert.Equal(0.5, schedule.At(4), 12);
        Assert.Equal(1.0, schedule.At(10), 12);
        Assert.Equal(0.5, schedule.At(60), 12);
        Assert.Equal(0.0, schedule.At(110), 12);
        Assert.True(schedule.At(109) > 0);
    }

    [Fact]
    public void Linear_decay_halves_at_the_middle_and_constant_stays()
    {
        var linear = new LearningRateSchedule(2.0, TotalSteps: 100, WarmupSteps: 0, ScheduleKind.Linear);
        var constant = linear with { Schedule = ScheduleKind.Constant };

        Assert.Equal(2.0, linear.At(0), 12);
        Assert.Equal(1.0, linear.At(50), 12);
        Assert.All(Enumerable.Range(0, 100), s => Assert.Equal(2.0, constant.At(s)));
    }

    [Fact]
    public void Warmup_steps_win_over_the_fraction()
    {
        var options = new TrainingOptions(1, 1, 0.1, 1) { WarmupFraction = 0.5, Schedule = ScheduleKind.Cosine };

        Assert.Equal(50, LearningRateSchedule.For(options, 100).WarmupSteps);
        Assert.Equal(7, LearningRateSchedule.For(options with { WarmupSteps = 7 }, 100).WarmupSteps);
        Assert.Equal(10, LearningRateSchedule.For(options with { WarmupSteps = 70 }, 10).WarmupSteps);
    }
}
