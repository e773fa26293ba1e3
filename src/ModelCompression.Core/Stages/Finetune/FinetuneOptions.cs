using ModelCompression.Torch.Training;

namespace ModelCompression.Stages;

/// <summary>Options of the finetune stage: training on the labels alone (also how a teacher is made from a built-in architecture).</summary>
public sealed record FinetuneOptions : TrainingStageOptions
{
    /// <summary>Defaults, for recipes.</summary>
    public FinetuneOptions()
    {
    }

    /// <summary>The same budget, optimizer, schedule and seed as <paramref name="training"/>: a distilled student's labels-only twin.</summary>
    public FinetuneOptions(TrainingStageOptions training)
        : base(training)
    {
    }

    /// <summary>
    /// Optimizer steps per epoch; 0 makes an epoch one pass over the labelled data. Not a recipe option: a
    /// labels-only twin takes its student's count, since a student that also learns from an unlabelled pool
    /// takes many more steps per epoch than one pass over the labels, and a twin with fewer steps is no fair
    /// comparison.
    /// </summary>
    public int StepsPerEpoch { get; init; }
}
