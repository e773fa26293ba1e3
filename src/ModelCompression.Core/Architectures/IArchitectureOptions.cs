namespace ModelCompression.Architectures;

/// <summary>
/// The options record of a built-in architecture. Every recipe option carries an
/// <see cref="Common.OptionAttribute"/>; <see cref="Validate"/> adds the checks that span several options
/// or need the data (e.g. width divisible by heads, enough pixels for every pooling).
/// </summary>
public interface IArchitectureOptions
{
    /// <summary>Seed of the initial weights: the same seed gives the same model, byte for byte.</summary>
    int Seed { get; }

    /// <summary>Every problem with these options for <paramref name="inputs"/>, one sentence each naming the option; empty when valid.</summary>
    IReadOnlyList<string> Validate(ArchitectureInputs inputs);
}

/// <summary>Thrown by the builders when options or inputs are invalid; carries every problem at once.</summary>
public sealed class InvalidArchitectureOptionsException : ArgumentException
{
    /// <summary>Creates the exception for <paramref name="architecture"/> with its <paramref name="problems"/>.</summary>
    public InvalidArchitectureOptionsException(string architecture, IReadOnlyList<string> problems)
        : base($"Invalid options for the '{architecture}' architecture: {string.Join("; ", problems)}.")
    {
        Architecture = architecture;
        Problems = problems;
    }

    /// <summary>The architecture's registry name.</summary>
    public string Architecture { get; }

    /// <summary>Every problem found, one sentence each.</summary>
    public IReadOnlyList<string> Problems { get; }

    /// <summary>Throws when <paramref name="options"/> or <paramref name="inputs"/> have problems.</summary>
    internal static void ThrowIfInvalid(string architecture, IArchitectureOptions options, ArchitectureInputs inputs)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(inputs);
        // Both lists at once, so a recipe author fixes everything in one go; Validate copes with bad inputs.
        List<string> problems = [.. inputs.Problems(), .. options.Validate(inputs)];

        if (problems.Count > 0)
        {
            throw new InvalidArchitectureOptionsException(architecture, problems);
        }
    }
}
