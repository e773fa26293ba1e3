using System.Globalization;
using System.Text;

namespace ModelCompression.Evaluation;

/// <summary>The arithmetic operations a math word problem may use.</summary>
[Flags]
public enum MathOperations
{
    /// <summary>None.</summary>
    None = 0,

    /// <summary>"buys/finds/gets n more".</summary>
    Add = 1,

    /// <summary>"gives away/loses/uses n" (never below 1 left).</summary>
    Subtract = 2,

    /// <summary>"then has n times as many" (factor 2 to 5).</summary>
    Multiply = 4,

    /// <summary>"shares them equally among n friends and keeps one share" (only when it divides evenly).</summary>
    Divide = 8,
}

/// <summary>How hard the generated math problems are.</summary>
/// <param name="MinSteps">Fewest operations per problem (at least 1).</param>
/// <param name="MaxSteps">Most operations per problem.</param>
/// <param name="MaxNumber">Largest starting amount and largest amount added or taken away (at least 2).</param>
/// <param name="Operations">Which operations occur; <see cref="MathOperations.Add"/> must be one of them.</param>
public sealed record MathDifficulty(int MinSteps, int MaxSteps, int MaxNumber, MathOperations Operations)
{
    /// <summary>The default: 2-3 steps of + and − on numbers up to 20 (answers about 20-30 characters).</summary>
    public static MathDifficulty Default => Level(2);

    /// <summary>
    /// A preset: 1 = 1-2 steps, +/−, numbers to 9; 2 = 2-3 steps, +/−, to 20 (the default); 3 = 2-3 steps, +/−/×,
    /// to 50; 4 = 3-4 steps, +/−/×/÷, to 100; 5 = 4-6 steps, all operations, to 500.
    /// </summary>
    public static MathDifficulty Level(int level) => level switch
    {
        1 => new MathDifficulty(1, 2, 9, MathOperations.Add | MathOperations.Subtract),
        2 => new MathDifficulty(2, 3, 20, MathOperations.Add | MathOperations.Subtract),
        3 => new MathDifficulty(2, 3, 50, MathOperations.Add | MathOperations.Subtract | MathOperations.Multiply),
        4 => new MathDifficulty(3, 4, 100, MathOperations.Add | MathOperations.Subtract | MathOperations.Multiply | MathOperations.Divide),
        5 => new MathDifficulty(4, 6, 500, MathOperations.Add | MathOperations.Subtract | MathOperations.Multiply | MathOperations.Divide),
        _ => throw new ArgumentOutOfRangeException(nameof(level), level, "Math difficulty levels are 1 to 5."),
    };

    /// <summary>Throws when the difficulty cannot make a problem.</summary>
    public void Check()
    {
        if (MinSteps < 1 || MaxSteps < MinSteps || MaxNumber < 2 || !Operations.HasFlag(MathOperations.Add))
        {
            throw new ArgumentException($"A math difficulty needs 1 <= min steps <= max steps, a largest number of at least 2, and + among its operations (the one step that is always possible): {this}.");
        }
    }
}

/// <summary>
/// Multi-step arithmetic word problems in GSM8K's style, kept short for small decoders. The problem follows one
/// person's stock of one kind of object through a few operations; the answer spells out each step as
/// <c>a+b=c</c> on its own line (so every intermediate result is written down) and ends with <c>#### n</c>:
/// <code>
/// Ana has 7 pens. She buys 4 more. She gives away 3. How many pens does Ana have now?
/// 7+4=11
/// 11-3=8
/// #### 8
/// </code>
/// Every amount stays a positive whole number.
/// </summary>
public sealed class MathProblems(MathDifficulty difficulty) : IExampleGenerator
{
    private static readonly (string Name, string Pronoun)[] People =
    [
        ("Ana", "She"), ("Ben", "He"), ("Cara", "She"), ("Dan", "He"), ("Eva", "She"), ("Finn", "He"), ("Gia", "She"),
        ("Hugo", "He"), ("Ivy", "She"), ("Jon", "He"), ("Kim", "She"), ("Leo", "He"), ("Mia", "She"), ("Ned", "He"),
        ("Olga", "She"), ("Paul", "He"), ("Rosa", "She"), ("Sam", "He"), ("Tina", "She"), ("Omar", "He"),
    ];

    private static readonly string[] Objects =
    [
        "apples", "pens", "books", "cards", "coins", "shells", "stamps", "marbles", "cookies", "stickers", "toys", "eggs",
        "beads", "cups", "hats", "kites",
    ];

    private static readonly string[] AddPhrases = ["{0} buys {1} more.", "{0} finds {1} more.", "{0} gets {1} more."];

    private static readonly string[] SubtractPhrases = ["{0} gives away {1}.", "{0} loses {1}.", "{0} uses {1}."];

    private const string MultiplyPhrase = "Then {0} has {1} times as many.";

    private const string DividePhrase = "{0} shares them equally among {1} friends and keeps one share.";

    /// <summary>Problems of the <see cref="MathDifficulty.Default"/> difficulty.</summary>
    public MathProblems()
        : this(MathDifficulty.Default)
    {
    }

    /// <summary>The difficulty.</summary>
    public MathDifficulty Difficulty { get; } = Checked(difficulty);

    /// <inheritdoc />
    public string Name => "math";

    /// <inheritdoc />
    public GeneratedExample Make(Random random, int index)
    {
        ArgumentNullException.ThrowIfNull(random);
        var d = Difficulty;
        var (name, pronoun) = People[random.Next(People.Length)];
        var objects = Objects[random.Next(Objects.Length)];
        var amount = random.Next(2, d.MaxNumber + 1);
        var problem = new StringBuilder(string.Create(CultureInfo.InvariantCulture, $"{name} has {amount} {objects}."));
        var answer = new StringBuilder();
        var steps = random.Next(d.MinSteps, d.MaxSteps + 1);
        for (var step = 0; step < steps; step++)
        {
            var (operation, operand) = NextOperation(random, amount);
            var result = operation switch
            {
                MathOperations.Add => amount + operand,
                MathOperations.Subtract => amount - operand,
                MathOperations.Multiply => amount * operand,
                _ => amount / operand,
            };
            var (phrase, symbol) = operation switch
            {
                MathOperations.Add => (AddPhrases[random.Next(AddPhrases.Length)], '+'),
                MathOperations.Subtract => (SubtractPhrases[random.Next(SubtractPhrases.Length)], '-'),
                MathOperations.Multiply => (MultiplyPhrase, '*'),
                _ => (DividePhrase, '/'),
            };
            var subject = operation == MathOperations.Multiply ? pronoun.ToLowerInvariant() : pronoun;
            problem.Append(' ').Append(string.Format(CultureInfo.InvariantCulture, phrase, subject, operand));
            answer.Append(CultureInfo.InvariantCulture, $"{amount}{symbol}{operand}={result}\n");
            amount = result;
        }

        problem.Append(CultureInfo.InvariantCulture, $" How many {objects} does {name} have now?");
        answer.Append(CultureInfo.InvariantCulture, $"{MathAnswerParser.FinalAnswerMarker} {amount}");
        return new GeneratedExample(problem.ToString(), answer.ToString());
    }

    private (MathOperations Operation, int Operand) NextOperation(Random random, int amount)
    {
        var d = Difficulty;
        while (true)
        {
            var operation = (MathOperations)(1 << random.Next(4));
            if ((d.Operations & operation) == MathOperations.None)
            {
                continue;
            }

            switch (operation)
            {
                case MathOperations.Add:
                    return (operation, random.Next(1, d.MaxNumber + 1));
                case MathOperations.Subtract when amount >= 2:
                    // Leave at least one: "how many now?" with 0 left reads like a trick question.
                    return (operation, random.Next(1, Math.Min(amount - 1, d.MaxNumber) + 1));
                case MathOperations.Multiply when amount <= d.MaxNumber:
                    return (operation, random.Next(2, 6));
                case MathOperations.Divide:
                    int[] divisors = [.. Enumerable.Range(2, 4).Where(k => amount % k == 0 && amount / k >= 1)];
                    if (divisors.Length > 0)
                    {
                        return (operation, divisors[random.Next(divisors.Length)]);
                    }

                    break;
            }
        }
    }

    private static MathDifficulty Checked(MathDifficulty difficulty)
    {
        ArgumentNullException.ThrowIfNull(difficulty);
        difficulty.Check();
        return difficulty;
    }
}
