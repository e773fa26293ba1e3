using ModelCompression.Common;

namespace ModelCompression.Architectures;

/// <summary>Options of the built-in MLP student (registry name <c>mlp</c>).</summary>
public sealed record MlpOptions : IArchitectureOptions
{
    /// <summary>Widths of the hidden layers.</summary>
    [Option("hidden", "Widths of the hidden layers, e.g. [64] or [256, 128]; [] makes a linear model.")]
    public int[] Hidden { get; init; } = [64];

    /// <summary>Hidden activation.</summary>
    [Option("activation", "Hidden activation: relu, gelu, tanh or sigmoid.")]
    public Activation Activation { get; init; } = Activation.Relu;

    /// <summary>Dropout probability after every hidden activation (training only).</summary>
    [Option("dropout", "Dropout probability after every hidden activation, applied only while training; 0 adds no Dropout node.", Min = 0, Max = 0.99)]
    public double Dropout { get; init; }

    /// <summary>Seed of the initial weights.</summary>
    [Option("seed", "Seed of the initial weights.", Min = 0)]
    public int Seed { get; init; } = 1;

    /// <inheritdoc />
    public IReadOnlyList<string> Validate(ArchitectureInputs inputs)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        List<string> problems = [];
        if (Hidden is null)
        {
            problems.Add("hidden must be a list of widths");
        }
        else if (Hidden.Any(w => w < 1))
        {
            problems.Add($"hidden widths must be at least 1 (got [{string.Join(", ", Hidden)}])");
        }

        if (!Enum.IsDefined(Activation))
        {
            problems.Add($"activation {(int)Activation} is not one of relu, gelu, tanh, sigmoid");
        }

        Checks.Probability(problems, "dropout", Dropout);
        Checks.NotNegative(problems, "seed", Seed);
        if (inputs.SampleShape is { Count: 0 } || inputs.SampleShape?.Any(d => d < 1) == true)
        {
            problems.Add($"the MLP needs samples with at least one value (sample shape [{string.Join(", ", inputs.SampleShape)}])");
        }

        return problems;
    }
}
