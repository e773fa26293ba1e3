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
}
