using ModelCompression.Diagnostics;

namespace ModelCompression.Evaluation;

/// <summary>One example of a generative task: the user's prompt and the gold assistant answer.</summary>
/// <param name="Prompt">The user turn.</param>
/// <param name="Answer">The gold assistant turn (written only to labelled splits).</param>
public sealed record GeneratedExample(string Prompt, string Answer);

/// <summary>How many examples each split gets.</summary>
/// <param name="Train">Labelled examples for fine-tuning (the gold answers).</param>
/// <param name="Pool">Prompts without answers, for a teacher to answer.</param>
/// <param name="Validation">Labelled examples for model selection.</param>
/// <param name="Test">Labelled examples for the final evaluation and the gates.</param>
public readonly record struct SplitSizes(int Train, int Pool, int Validation, int Test)
{
    /// <summary>All splits together.</summary>
    public int Total => Train + Pool + Validation + Test;

    /// <summary>Throws when a size is negative.</summary>
    public void Check()
    {
        if (Train < 0 || Pool < 0 || Validation < 0 || Test < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(SplitSizes), this, "Split sizes are not negative.");
        }
    }
}

/// <summary>The four splits of a generated data set.</summary>
public sealed record GeneratedSplits(
    IReadOnlyList<GeneratedExample> Train, IReadOnlyList<GeneratedExample> Pool, IReadOnlyList<GeneratedExample> Validation, IReadOnlyList<GeneratedExample> Test);

/// <summary>Makes the examples of one synthetic task.</summary>
public interface IExampleGenerator
{
    /// <summary>The task's name (file and CLI name: math, nli, qa).</summary>
    string Name { get; }

    /// <summary>
    /// Makes one example from <paramref name="random"/>. <paramref name="index"/> is the example's place in its split
    /// (0, 1, …), for generators that balance something over a split (NLI's labels); others ignore it.
    /// </summary>
    GeneratedExample Make(Random random, int index);
}

/// <summary>
/// Deterministic splits of a synthetic task. One <see cref="Random"/> seeded once makes the test split first, then
/// validation, train and pool, so a larger pool leaves the other splits as they were. Prompts are unique across all
/// splits (a test prompt never appears in training or in the pool); a prompt drawn again is drawn anew, and a task
/// whose space is too small for the sizes asked for fails with MC2096 instead of looping.
/// </summary>
public static class SyntheticDataset
{
    /// <summary>How many draws one example may take before the task is judged too small for the sizes.</summary>
    public const int MaxDrawsPerExample = 1000;

    /// <summary>Generates the splits of <paramref name="generator"/>'s task.</summary>
    /// <exception cref="CompressionException">MC2096: the task cannot make that many distinct prompts.</exception>
    public static GeneratedSplits Generate(IExampleGenerator generator, SplitSizes sizes, int seed)
    {
        ArgumentNullException.ThrowIfNull(generator);
        sizes.Check();
        var random = new Random(seed);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var test = Split(generator, random, seen, sizes.Test, sizes);
        var validation = Split(generator, random, seen, sizes.Validation, sizes);
        var train = Split(generator, random, seen, sizes.Train, sizes);
        var pool = Split(generator, random, seen, sizes.Pool, sizes);
        return new GeneratedSplits(train, pool, validation, test);
    }

    /// <summary>Shuffles <paramref name="items"/> in place (Fisher-Yates) with <paramref name="random"/>.</summary>
    public static void Shuffle<T>(IList<T> items, Random random)
    {
        ArgumentNullException.ThrowIfNull(items);
        ArgumentNullException.ThrowIfNull(random);
        for (var i = items.Count - 1; i > 0; i--)
        {
            var j = random.Next(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }

    private static List<GeneratedExample> Split(IExampleGenerator generator, Random random, HashSet<string> seen, int count, SplitSizes sizes)
    {
        var examples = new List<GeneratedExample>(count);
        for (var index = 0; index < count; index++)
        {
            var draws = 0;
            GeneratedExample example;
            do
            {
                if (++draws > MaxDrawsPerExample)
                {
                    throw CompressionException.Error(
                        DiagnosticCodes.GeneratedDataTooSmall,
                        $"The {generator.Name} task found only {seen.Count} distinct prompts of the {sizes.Total} asked for ({sizes}): make it harder (more steps, larger numbers) or ask for fewer.");
                }

                example = generator.Make(random, index);
            }
            while (!seen.Add(example.Prompt));

            examples.Add(example);
        }

        // Generators that balance over the index (NLI) would otherwise leave a visible cycle in the file.
        Shuffle(examples, random);
        return examples;
    }
}
