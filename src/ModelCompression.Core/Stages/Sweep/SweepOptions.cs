using ModelCompression.Common;
using ModelCompression.Torch.Training;

namespace ModelCompression.Stages;

/// <summary>Options of the sweep stage: distillation trials over a grid, the best by validation accuracy continues.</summary>
public sealed record SweepOptions : DistillingOptions
{
    /// <summary>A sweep ranks trials by validation accuracy, so it holds out a tenth of the training data by default.</summary>
    public SweepOptions() => ValidationFraction = 0.1;

    /// <summary>The alphas to try.</summary>
    [Option("alpha", "Weights of the teacher's soft targets to try, e.g. [0.5, 0.9].", Min = 0, Max = 1)]
    public double[] Alpha { get; init; } = [0.5, 0.9];

    /// <summary>The temperatures to try.</summary>
    [Option("temperature", "Softening temperatures to try, e.g. [2, 4].", Min = 0, MinExclusive = true, Max = 100)]
    public double[] Temperature { get; init; } = [2, 4];

    /// <summary>The learning rates to try; empty tries only <see cref="Training.TrainingSettings.LearningRate"/>.</summary>
    [Option("learning_rates", "Peak learning rates to try, e.g. [1e-3, 3e-3]; empty tries only learning_rate.", Min = 0, MinExclusive = true, Max = 10)]
    public double[] LearningRates { get; init; } = [];

    /// <summary>Every trial's distill options, in grid order (alpha, then temperature, then learning rate).</summary>
    public IReadOnlyList<DistillOptions> Trials() =>
    [
        .. from alpha in Alpha
           from temperature in Temperature
           from learningRate in LearningRates.Length > 0 ? LearningRates : [LearningRate]
           select new DistillOptions(this) { Alpha = alpha, Temperature = temperature, LearningRate = learningRate, Baseline = false },
    ];
}
