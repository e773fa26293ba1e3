using ModelCompression.Recipes;
using ModelCompression.Torch.Training;

namespace ModelCompression.Stages;

/// <summary>Options every training stage shares (finetune, distill): budget, optimizer, schedule, validation, logs.</summary>
public abstract record TrainingStageOptions
{
    /// <summary>Passes over the training data.</summary>
    [Option("epochs", "Passes over the training data.", Min = 1, Max = 10000)]
    public int Epochs { get; init; } = 10;

    /// <summary>Samples per optimizer step.</summary>
    [Option("batch_size", "Samples per optimizer step.", Min = 1, Max = 1 << 20)]
    public int BatchSize { get; init; } = 128;

    /// <summary>Peak learning rate (after warm-up, before decay).</summary>
    [Option("learning_rate", "Peak learning rate of the optimizer: reached after warm-up, then decayed by the schedule.", Min = 0, MinExclusive = true, Max = 10)]
    public double LearningRate { get; init; } = 1e-3;

    /// <summary>Seed of shuffling and dropout.</summary>
    [Option("seed", "Seed of shuffling, dropout and the validation split: the same seed and data give the same weights.", Min = 0)]
    public int Seed { get; init; } = 1;

    /// <summary>The optimizer.</summary>
    [Option("optimizer", "adam, adamw (decoupled weight decay) or sgd (with momentum).")]
    public OptimizerKind Optimizer { get; init; } = OptimizerKind.Adam;

    /// <summary>Weight decay: L2 for adam and sgd, decoupled for adamw.</summary>
    [Option("weight_decay", "Weight decay: L2 for adam and sgd, decoupled for adamw; 0 for none.", Min = 0, Max = 1)]
    public double WeightDecay { get; init; }

    /// <summary>SGD momentum.</summary>
    [Option("momentum", "Momentum of sgd; the adam optimizers ignore it.", Min = 0, Max = 0.999)]
    public double Momentum { get; init; } = 0.9;

    /// <summary>Steps of linear learning-rate warm-up; wins over <see cref="WarmupFraction"/>.</summary>
    [Option("warmup_steps", "Optimizer steps of linear learning-rate warm-up from 0; wins over warmup_fraction when above 0.", Min = 0, Max = int.MaxValue)]
    public int WarmupSteps { get; init; }

    /// <summary>Warm-up as a fraction of all steps.</summary>
    [Option("warmup_fraction", "Learning-rate warm-up as a fraction of all optimizer steps (used when warmup_steps is 0).", Min = 0, Max = 0.9)]
    public double WarmupFraction { get; init; }

    /// <summary>The learning rate after warm-up.</summary>
    [Option("schedule", "Learning rate after warm-up, per step: constant, cosine (to 0) or linear (to 0).")]
    public ScheduleKind Schedule { get; init; } = ScheduleKind.Constant;

    /// <summary>Largest global gradient norm; 0 turns clipping off.</summary>
    [Option("clip_grad_norm", "Largest global L2 norm of the gradients; larger ones are scaled down. 0 turns clipping off.", Min = 0, Max = 1e6)]
    public double ClipGradNorm { get; init; }

    /// <summary>Fraction of the training data held out (seeded) to measure validation accuracy after every epoch.</summary>
    [Option("validation_fraction", "Fraction of the training data held out (split by seed) to measure accuracy after every epoch; 0 for none. The best epoch's weights are kept.", Min = 0, Max = 0.5)]
    public double ValidationFraction { get; init; }

    /// <summary>Epochs without a better validation accuracy before training stops.</summary>
    [Option("early_stopping_patience", "Epochs without a better validation accuracy before training stops; 0 never stops early. Needs validation_fraction or a validation split in the data.", Min = 0, Max = 10000)]
    public int EarlyStoppingPatience { get; init; }

    /// <summary>Smallest rise of the validation accuracy that counts as better.</summary>
    [Option("early_stopping_min_delta", "Smallest rise of the validation accuracy that counts as better.", Min = 0, Max = 1)]
    public double EarlyStoppingMinDelta { get; init; }

    /// <summary>Whether the student starts from the teacher's weights where names and shapes match.</summary>
    [Option("init_from_teacher", "Start the student from the teacher's weights: every initializer whose name and shape match a teacher initializer (after layer_map) is copied before training.")]
    public bool InitFromTeacher { get; init; }

    /// <summary>Student layer i starts from teacher layer LayerMap[i]; empty maps names one to one.</summary>
    [Option("layer_map", "With init_from_teacher: student layer i starts from teacher layer layer_map[i], e.g. [1, 3] for a 2-layer student of a 4-layer teacher (layers are found by 'layer<N>' / 'layers.<N>' in names).", Min = 0, Max = 10000)]
    public int[] LayerMap { get; init; } = [];

    /// <summary>Folder for TensorBoard event files, relative to the recipe; null writes none.</summary>
    [Option("tensorboard_dir", "Folder (relative to the recipe) for TensorBoard event files: loss and learning rate per step; training loss, learning rate, validation loss and validation accuracy per epoch. Not part of the cache key.")]
    public string? TensorBoardDirectory { get; init; }
}

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

/// <summary>Options of the stages that learn from the teacher (distill, sweep): feature hints besides the training options.</summary>
public abstract record DistillingOptions : TrainingStageOptions, ICheckedOptions
{
    /// <summary>What separates a hint's student tensor from its teacher tensor (ONNX names often hold ':' and '/').</summary>
    public const string HintSeparator = "->";

    /// <summary>
    /// A hint written as this one word pairs the two models' penultimate values (what their final Gemm/MatMul reads),
    /// the usual feature-distillation target; either side of a pair may also be this word.
    /// </summary>
    public const string Penultimate = "penultimate";

    /// <summary>Feature hints, each "student tensor -> teacher tensor".</summary>
    [Option("hints", "Feature (hint) distillation: pairs 'student_tensor -> teacher_tensor' of intermediate tensors (node outputs), e.g. ['/fc1/Relu_output_0 -> /fc1/Relu_output_0'], or the one word 'penultimate' for what each model's final Gemm/MatMul reads ('dotnet compress inspect' lists a model's tensors). The student's values learn the teacher's (mean squared error), through a learned linear projection where the shapes differ; the teacher's values are computed once and cached. Tensors are read from the first teacher.")]
    public string[] Hints { get; init; } = [];

    /// <summary>Weight of the hint term in the loss.</summary>
    [Option("hint_weight", "Weight of the hint term: loss = alpha * KD + (1 - alpha) * CE + hint_weight * mean over hints of MSE.", Min = 0, MinExclusive = true, Max = 1e6)]
    public double HintWeight { get; init; } = 1;

    /// <summary>The hints as (student tensor, teacher tensor) pairs; call after <see cref="Validate"/> passes.</summary>
    public IReadOnlyList<(string Student, string Teacher)> HintPairs =>
        [.. Hints.Select(h => h.Trim() == Penultimate ? (Penultimate, Penultimate)
            : h.Split(HintSeparator) is [var student, var teacher] ? (student.Trim(), teacher.Trim())
            : throw new InvalidOperationException($"Hint '{h}' is not 'student -> teacher'."))];

    /// <inheritdoc />
    public IReadOnlyList<string> Validate()
    {
        var problems = new List<string>();
        foreach (var hint in Hints.Where(h => h.Trim() != Penultimate))
        {
            var parts = hint.Split(HintSeparator);
            if (parts.Length != 2 || parts.Any(p => p.Trim().Length == 0))
            {
                problems.Add($"hint '{hint}' must be 'student_tensor {HintSeparator} teacher_tensor' (one '{HintSeparator}', a tensor name on each side)");
            }
        }

        var students = Hints.Select(h => h.Trim() == Penultimate ? Penultimate : h.Split(HintSeparator)[0].Trim()).ToList();
        if (students.Distinct(StringComparer.Ordinal).Count() != students.Count)
        {
            problems.Add("two hints read the same student tensor; give each student tensor one teacher tensor");
        }

        return problems;
    }
}

/// <summary>Options of the distill stage: response-based knowledge distillation, optionally with feature hints.</summary>
public sealed record DistillOptions : DistillingOptions
{
    /// <summary>Defaults, for recipes.</summary>
    public DistillOptions()
    {
    }

    /// <summary>The training options and hints of <paramref name="training"/> (a sweep's) with the default alpha and temperature.</summary>
    public DistillOptions(DistillingOptions training)
        : base(training)
    {
    }

    /// <summary>Softening temperature T of the teacher's and student's softmax.</summary>
    [Option("temperature", "Softening temperature T of the teacher's and student's softmax.", Min = 0, MinExclusive = true, Max = 100)]
    public double Temperature { get; init; } = 4;

    /// <summary>Weight of the teacher's soft targets against the true labels (1 - alpha).</summary>
    [Option("alpha", "Weight of the teacher's soft targets; the labels get 1 - alpha.", Min = 0, Max = 1)]
    public double Alpha { get; init; } = 0.9;

    /// <summary>Whether to train the labels-only twin too and report the gain from distillation.</summary>
    [Option("baseline", "Also train the same student on the labels alone, with the same budget and seed (cached like any stage), and report the gain from distillation next to it.")]
    public bool Baseline { get; init; } = true;
}

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

    /// <summary>The learning rates to try; empty tries only <see cref="TrainingStageOptions.LearningRate"/>.</summary>
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
