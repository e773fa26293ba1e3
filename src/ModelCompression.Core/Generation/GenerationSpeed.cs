using System.Diagnostics;
using ModelCompression.Evaluation;

namespace ModelCompression.Generation;

/// <summary>How <see cref="GenerationSpeed.Measure"/> times generation.</summary>
public sealed record GenerationSpeedOptions
{
    /// <summary>Prompts of every timed run (the given prompts, repeated in order when there are fewer).</summary>
    public int Prompts { get; init; } = 8;

    /// <summary>New tokens per prompt; fewer when the model's position table ends first (<see cref="GenerationSpeedResult.NewTokens"/> says how many).</summary>
    public int NewTokens { get; init; } = 64;

    /// <summary>The larger batch size (the smaller is 1).</summary>
    public int BatchSize { get; init; } = 8;

    /// <summary>Timed runs per batch size after one untimed warm-up run; the median run counts.</summary>
    public int Runs { get; init; } = 3;

    /// <summary>ONNX Runtime threads; 0 uses the engine's thread budget.</summary>
    public int Threads { get; init; }
}

/// <summary>Tokens per second of greedy generation at batch 1 and at a larger batch.</summary>
/// <param name="TokensPerSecond">Generated tokens per second at batch 1 (the median run).</param>
/// <param name="TokensPerSecondBatch">Generated tokens per second at <paramref name="BatchSize"/> (the median run).</param>
/// <param name="BatchSize">The larger batch size.</param>
/// <param name="Prompts">Prompts per run.</param>
/// <param name="NewTokens">New tokens per prompt in every run.</param>
/// <param name="UsedCache">Whether the model has cache inputs (without them every step runs the whole sequence).</param>
/// <param name="Runs">Timed runs per batch size.</param>
public sealed record GenerationSpeedResult(double TokensPerSecond, double TokensPerSecondBatch, int BatchSize, int Prompts, int NewTokens, bool UsedCache, int Runs)
{
    /// <summary>The two speeds by gate name (<see cref="GenerationMetricNames.TokensPerSecond"/>, <see cref="GenerationMetricNames.TokensPerSecondBatch"/>).</summary>
    public IReadOnlyDictionary<string, double> Metrics => new Dictionary<string, double>(StringComparer.Ordinal)
    {
        [GenerationMetricNames.TokensPerSecond] = TokensPerSecond,
        [GenerationMetricNames.TokensPerSecondBatch] = TokensPerSecondBatch,
    };
}

/// <summary>
/// Speed of generation, measured apart from quality: the same prompts continued greedily by exactly the same number of
/// new tokens (no stop token, so no run ends early) at batch 1 and at a larger batch, with the KV cache where the model
/// has one, after a warm-up run. Tokens per second counts new tokens only; the first step (the prompt) is part of the
/// time, as a user waits for it.
/// </summary>
public static class GenerationSpeed
{
    /// <summary>
    /// Times the decoder at <paramref name="modelPath"/> on <paramref name="prompts"/> (token ids, e.g. rendered test
    /// prompts); MC2080 when it is not a decoder, MC2081/MC2082 for prompts it cannot take.
    /// </summary>
    public static GenerationSpeedResult Measure(string modelPath, IReadOnlyList<IReadOnlyList<int>> prompts, GenerationSpeedOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(modelPath);
        ArgumentNullException.ThrowIfNull(prompts);
        options ??= new GenerationSpeedOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Prompts, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.NewTokens, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.BatchSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Runs, 1);
        if (prompts.Count == 0)
        {
            throw new ArgumentException("Speed is measured on at least one prompt.", nameof(prompts));
        }

        using var session = DecoderSession.Open(modelPath, options.Threads);
        IReadOnlyList<IReadOnlyList<int>> chosen = [.. Enumerable.Range(0, options.Prompts).Select(i => prompts[i % prompts.Count])];
        var longest = chosen.Max(p => p.Count);
        var newTokens = session.Signature.MaxPositions is { } positions ? Math.Min(options.NewTokens, positions - longest) : options.NewTokens;
        if (newTokens < 1)
        {
            throw new ArgumentException($"A prompt of {longest} tokens leaves no room in the {session.Signature.MaxPositions} positions of '{modelPath}' to time generation.", nameof(prompts));
        }

        var generator = new Generator(session);
        var greedy = new GenerationOptions { MaxNewTokens = newTokens };
        return new GenerationSpeedResult(
            Time(generator, chosen, greedy with { BatchSize = 1 }, options.Runs),
            Time(generator, chosen, greedy with { BatchSize = options.BatchSize }, options.Runs),
            options.BatchSize,
            chosen.Count,
            newTokens,
            session.Signature.HasCache,
            options.Runs);
    }

    private static double Time(Generator generator, IReadOnlyList<IReadOnlyList<int>> prompts, GenerationOptions options, int runs)
    {
        generator.Generate(prompts, options);
        var speeds = new double[runs];
        for (var run = 0; run < runs; run++)
        {
            var clock = Stopwatch.StartNew();
            var tokens = generator.Generate(prompts, options).Sum(s => s.Tokens.Count);
            speeds[run] = tokens / clock.Elapsed.TotalSeconds;
        }

        Array.Sort(speeds);
        return speeds[runs / 2];
    }
}
