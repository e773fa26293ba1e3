using System.Globalization;
using System.Security.Cryptography;
using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;

namespace ModelCompression.Bench.GenerativeData;

/// <summary>
/// Writes the data of a generative task as chat JSONL splits (train.jsonl, pool.jsonl, validation.jsonl, test.jsonl)
/// and prints their sizes, lengths and SHA-256 hashes, so a bench run can record exactly which data it used.
/// Usage: GenerativeData math|nli|qa|mail --out DIR [--seed N] [--train N] [--pool N] [--validation N] [--test N]
///        [--system TEXT] math: [--difficulty 1-5] [--steps MIN-MAX] [--max-number N] [--operations +-*/]
///        mail: --corpus DIR [--body-chars N]
/// </summary>
internal static class Program
{
    private static int Main(string[] args)
    {
        if (args.Length == 0 || args[0].StartsWith('-') || StringArg(args, "--out") is not { } output)
        {
            Console.Error.WriteLine("usage: GenerativeData math|nli|qa|mail --out DIR [--seed N] [--train N] [--pool N] [--validation N] [--test N] [--system TEXT]");
            Console.Error.WriteLine("       math: [--difficulty 1-5] [--steps MIN-MAX] [--max-number N] [--operations +-*/]; mail: --corpus DIR [--body-chars N]");
            return 2;
        }

        var sizes = new SplitSizes(
            IntArg(args, "--train", 500), IntArg(args, "--pool", 20000), IntArg(args, "--validation", 500), IntArg(args, "--test", 1000));
        var seed = IntArg(args, "--seed", 1);
        try
        {
            GeneratedSplits splits;
            if (args[0] == "mail")
            {
                var corpus = StringArg(args, "--corpus") ?? throw new ArgumentException("mail needs --corpus DIR (the package's data folder).");
                var mails = MailSubjects.ReadCorpus(corpus);
                var data = MailSubjects.Build(mails, sizes, seed, IntArg(args, "--body-chars", MailSubjects.DefaultBodyCharacters));
                Console.WriteLine($"mails: {data.Mails}, left out: {string.Join(", ", data.Skipped.Select(s => $"{s.Key} {s.Value}"))}");
                splits = data.Splits;
            }
            else
            {
                IExampleGenerator generator = args[0] switch
                {
                    "math" => new MathProblems(Difficulty(args)),
                    "nli" => new NliPairs(),
                    "qa" => new ExtractiveQa(),
                    _ => throw new ArgumentException($"Unknown task '{args[0]}': math, nli, qa or mail."),
                };
                if (generator is MathProblems math)
                {
                    Console.WriteLine($"difficulty: {math.Difficulty}");
                }

                splits = SyntheticDataset.Generate(generator, sizes, seed);
            }

            var paths = GeneratedSplitsWriter.WriteSplits(output, splits, StringArg(args, "--system"));
            IReadOnlyList<GeneratedExample>[] parts = [splits.Train, splits.Pool, splits.Validation, splits.Test];
            Console.WriteLine($"task {args[0]}, seed {seed}");
            Console.WriteLine("| file | examples | prompt chars (mean / max) | answer chars (mean / max) | SHA-256 |");
            Console.WriteLine("|---|---|---|---|---|");
            for (var i = 0; i < paths.Count; i++)
            {
                var examples = parts[i];
                var hash = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(paths[i])));
                Console.WriteLine($"| {Path.GetFileName(paths[i])} | {examples.Count} | {Stats(examples.Select(e => e.Prompt.Length))} | {Stats(examples.Select(e => e.Answer.Length))} | {hash} |");
            }

            return 0;
        }
        catch (CompressionException e)
        {
            Console.Error.WriteLine(e.Message);
            return 1;
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine(e.Message);
            return 2;
        }
    }

    private static MathDifficulty Difficulty(string[] args)
    {
        var difficulty = MathDifficulty.Level(IntArg(args, "--difficulty", 2));
        if (StringArg(args, "--steps") is { } steps)
        {
            var range = steps.Split('-');
            difficulty = difficulty with
            {
                MinSteps = int.Parse(range[0], CultureInfo.InvariantCulture),
                MaxSteps = int.Parse(range[^1], CultureInfo.InvariantCulture),
            };
        }

        if (StringArg(args, "--max-number") is not null)
        {
            difficulty = difficulty with { MaxNumber = IntArg(args, "--max-number", difficulty.MaxNumber) };
        }

        if (StringArg(args, "--operations") is { } operations)
        {
            difficulty = difficulty with
            {
                Operations = operations.Aggregate(MathOperations.None, (all, c) => all | c switch
                {
                    '+' => MathOperations.Add,
                    '-' => MathOperations.Subtract,
                    '*' => MathOperations.Multiply,
                    '/' => MathOperations.Divide,
                    _ => throw new ArgumentException($"--operations takes + - * /, not '{c}'."),
                }),
            };
        }

        return difficulty;
    }

    private static string Stats(IEnumerable<int> lengths)
    {
        var all = lengths.ToList();
        return all.Count == 0 ? "-" : string.Create(CultureInfo.InvariantCulture, $"{all.Average():0.0} / {all.Max()}");
    }

    private static int IntArg(string[] args, string name, int fallback) =>
        StringArg(args, name) is { } text ? int.Parse(text, CultureInfo.InvariantCulture) : fallback;

    private static string? StringArg(string[] args, string name)
    {
        var index = Array.IndexOf(args, name);
        return index >= 0 && index + 1 < args.Length ? args[index + 1] : null;
    }
}
