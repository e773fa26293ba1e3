using System.Globalization;
using System.Text.RegularExpressions;
using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;

namespace ModelCompression.Core.Tests.Evaluation.Generation;

/// <summary>
/// The generators of the synthetic tasks: the committed slices under tests/fixtures/generation are reproduced byte
/// for byte (the README there gives the commands), and what each task promises holds on every example.
/// </summary>
public sealed class SyntheticDataTests
{
    private static readonly SplitSizes FixtureSizes = new(Train: 24, Pool: 24, Validation: 12, Test: 12);

    public static TheoryData<string, int, int> Fixtures => new()
    {
        { "math", 1, 2 },
        { "math-hard", 2, 4 },
        { "nli", 1, 0 },
        { "qa", 1, 0 },
    };

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void The_generator_reproduces_the_committed_slice_byte_for_byte(string name, int seed, int mathLevel)
    {
        var sizes = name == "math-hard" ? new SplitSizes(12, 12, 6, 6) : FixtureSizes;
        var splits = SyntheticDataset.Generate(Generator(name, mathLevel), sizes, seed);
        using var dir = new TempDir();

        var written = GeneratedSplitsWriter.WriteSplits(dir.Path, splits);

        foreach (var path in written)
        {
            var committed = Path.Join(Repo.Root, "tests", "fixtures", "generation", name, Path.GetFileName(path));
            Assert.True(File.ReadAllBytes(committed).AsSpan().SequenceEqual(File.ReadAllBytes(path)), $"{name}/{Path.GetFileName(path)} differs from the committed slice.");
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    public void Every_math_answer_is_the_arithmetic_of_its_problem(int level)
    {
        var splits = SyntheticDataset.Generate(new MathProblems(MathDifficulty.Level(level)), new SplitSizes(400, 400, 100, 100), seed: level);
        var difficulty = MathDifficulty.Level(level);
        var parser = new MathAnswerParser();
        foreach (var example in All(splits))
        {
            var (expected, steps) = Recompute(example.Prompt);
            Assert.Equal(expected.ToString(CultureInfo.InvariantCulture), parser.Parse(example.Answer).Value);
            Assert.InRange(steps, difficulty.MinSteps, difficulty.MaxSteps);
            CheckChainOfThought(example.Answer, steps);
        }
    }

    [Fact]
    public void Default_math_is_short()
    {
        var splits = SyntheticDataset.Generate(new MathProblems(), new SplitSizes(500, 2000, 0, 0), seed: 3);
        Assert.All(All(splits), e => Assert.True(e.Answer.Length < 40 && e.Prompt.Length < 130, $"{e.Prompt} / {e.Answer}"));
    }

    [Theory]
    [InlineData(24)]
    [InlineData(10)]
    public void Nli_labels_are_balanced_in_every_split(int size)
    {
        var splits = SyntheticDataset.Generate(new NliPairs(), new SplitSizes(size, 0, size, size), seed: 5);
        foreach (var split in new[] { splits.Train, splits.Validation, splits.Test })
        {
            var counts = LabelAnswerParser.NliLabels.Select(l => split.Count(e => e.Answer == l)).ToArray();
            Assert.Equal(size, counts.Sum());
            Assert.True(counts.Max() - counts.Min() <= 1, string.Join(", ", counts));
        }

        Assert.All(All(splits), e => Assert.True(new LabelAnswerParser().Parse(e.Answer).Succeeded));
    }

    [Fact]
    public void Every_qa_answer_is_a_span_of_its_context_that_occurs_once()
    {
        var splits = SyntheticDataset.Generate(new ExtractiveQa(), new SplitSizes(500, 500, 100, 100), seed: 9);
        foreach (var example in All(splits))
        {
            var context = example.Prompt[..example.Prompt.IndexOf("\nQuestion: ", StringComparison.Ordinal)];
            Assert.Contains(example.Answer, context, StringComparison.Ordinal);
            Assert.Single(Regex.Matches(context, $@"\b{Regex.Escape(example.Answer)}\b"));
        }
    }

    [Fact]
    public void Prompts_are_unique_across_splits_and_a_larger_pool_leaves_the_other_splits_alone()
    {
        var small = SyntheticDataset.Generate(new MathProblems(), new SplitSizes(50, 100, 20, 30), seed: 11);
        var large = SyntheticDataset.Generate(new MathProblems(), new SplitSizes(50, 3000, 20, 30), seed: 11);

        Assert.Equal(small.Test, large.Test);
        Assert.Equal(small.Validation, large.Validation);
        Assert.Equal(small.Train, large.Train);
        var prompts = All(large).Select(e => e.Prompt).ToList();
        Assert.Equal(prompts.Count, prompts.Distinct(StringComparer.Ordinal).Count());
        Assert.NotEqual(small.Test, SyntheticDataset.Generate(new MathProblems(), new SplitSizes(50, 100, 20, 30), seed: 12).Test);
    }

    [Fact]
    public void A_task_too_small_for_the_sizes_fails_with_MC2096_instead_of_looping()
    {
        // Start 2, one step adding 1 or 2: 20 names x 16 objects x 2 operands x 3 phrases = 1920 prompts.
        var tiny = new MathProblems(new MathDifficulty(1, 1, 2, MathOperations.Add));

        var e = Assert.Throws<CompressionException>(() => SyntheticDataset.Generate(tiny, new SplitSizes(0, 5000, 0, 0), seed: 1));

        Assert.Equal(DiagnosticCodes.GeneratedDataTooSmall, e.Code);
        // The last prompts of a space are hard to draw (the coupon collector), so it gives up a little before all 1920.
        var found = int.Parse(Regex.Match(e.Message, @"found only (\d+) distinct prompts of the 5000").Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.InRange(found, 1800, 1920);
        Assert.Throws<ArgumentException>(() => new MathProblems(new MathDifficulty(2, 1, 20, MathOperations.Add)));
        Assert.Throws<ArgumentException>(() => new MathProblems(new MathDifficulty(1, 2, 20, MathOperations.Subtract)));
    }

    [Fact]
    public void Labelled_splits_carry_the_answer_and_the_pool_only_the_prompt()
    {
        GeneratedExample[] examples = [new("What is 2+2?", "2+2=4\n#### 4"), new("Say \"<hi>\" & café", "ok")];

        var labelled = GeneratedSplitsWriter.Encode(examples, labelled: true, system: "Be brief.");
        var prompts = GeneratedSplitsWriter.Encode(examples, labelled: false);

        Assert.Equal(
            "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":\"What is 2+2?\"},{\"role\":\"assistant\",\"content\":\"2+2=4\\n#### 4\"}]}\n",
            System.Text.Encoding.UTF8.GetString(labelled).Split('\n')[0] + "\n");
        var decoded = GeneratedSplitsWriter.Decode(prompts);
        Assert.Equal([("user", "What is 2+2?")], decoded[0]);
        Assert.Equal([("user", "Say \"<hi>\" & café")], decoded[1]);
        Assert.Equal(("assistant", "ok"), GeneratedSplitsWriter.Decode(labelled)[1][^1]);
    }

    internal static IExampleGenerator Generator(string name, int mathLevel) => name switch
    {
        "math" or "math-hard" => new MathProblems(MathDifficulty.Level(mathLevel)),
        "nli" => new NliPairs(),
        _ => new ExtractiveQa(),
    };

    private static IEnumerable<GeneratedExample> All(GeneratedSplits splits) =>
        splits.Train.Concat(splits.Pool).Concat(splits.Validation).Concat(splits.Test);

    // Reads the problem as a person would: the first sentence gives the start, each later one an operation named by its
    // verb, the question ends it. Written from the problem text alone, not from the generator's code.
    private static (long Value, int Steps) Recompute(string problem)
    {
        var sentences = Regex.Matches(problem, @"[^.?]+[.?]").Select(m => m.Value.Trim()).ToList();
        Assert.EndsWith("have now?", sentences[^1], StringComparison.Ordinal);
        long value = Number(sentences[0]);
        foreach (var sentence in sentences.Skip(1).SkipLast(1))
        {
            var n = Number(sentence);
            value = sentence switch
            {
                _ when Regex.IsMatch(sentence, @"\b(buys|finds|gets) \d+ more\.$") => value + n,
                _ when Regex.IsMatch(sentence, @"\b(gives away|loses|uses) \d+\.$") => value - n,
                _ when sentence.EndsWith(" times as many.", StringComparison.Ordinal) => value * n,
                _ when sentence.Contains("shares them equally among", StringComparison.Ordinal) => Divide(value, n),
                _ => throw new Xunit.Sdk.XunitException($"No operation in '{sentence}' of '{problem}'."),
            };
            Assert.True(value >= 1, $"'{problem}' goes below one.");
        }

        return (value, sentences.Count - 2);
    }

    private static long Divide(long value, long n)
    {
        Assert.Equal(0, value % n);
        return value / n;
    }

    private static long Number(string sentence) =>
        long.Parse(Assert.Single(Regex.Matches(sentence, "[0-9]+")).Value, CultureInfo.InvariantCulture);

    // Each line "a<op>b=c" is right, starts from the previous result, and the last result is the final answer.
    private static void CheckChainOfThought(string answer, int steps)
    {
        var lines = answer.Split('\n');
        Assert.Equal(steps + 1, lines.Length);
        long? previous = null;
        foreach (var line in lines.SkipLast(1))
        {
            var m = Regex.Match(line, @"^(\d+)([-+*/])(\d+)=(\d+)$");
            Assert.True(m.Success, line);
            long a = long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), b = long.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture);
            var c = long.Parse(m.Groups[4].Value, CultureInfo.InvariantCulture);
            Assert.Equal(m.Groups[2].Value switch { "+" => a + b, "-" => a - b, "*" => a * b, _ => a / b }, c);
            Assert.True(previous is null || previous == a, answer);
            previous = c;
        }

        Assert.Equal($"#### {previous}", lines[^1]);
    }
}
