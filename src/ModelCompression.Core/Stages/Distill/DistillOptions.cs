using ModelCompression.Common;
using ModelCompression.Torch.Training;

namespace ModelCompression.Stages;

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

    /// <summary>Token-level distillation of a decoder: how many of the teacher's most likely tokens are kept per position; 0 for all.</summary>
    [Option("teacher_top_k", "task: generation, token-level distillation (alpha above 0, teacher and student sharing a tokenizer): keep the teacher's k most likely tokens per answer token, renormalised, instead of its whole distribution in fp16 (0).", Min = 0, Max = 100000)]
    public int TeacherTopK { get; init; }

    /// <summary>Whether to train the labels-only twin too and report the gain from distillation.</summary>
    [Option("baseline", "Also train the same student on the labels alone, with the same budget and seed (cached like any stage), and report the gain from distillation next to it.")]
    public bool Baseline { get; init; } = true;
}
