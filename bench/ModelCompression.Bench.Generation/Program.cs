using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.OnnxRuntime;
using ModelCompression.Generation;

namespace ModelCompression.Bench.Generation;

/// <summary>
/// Generation throughput (new tokens per second) of one decoder export with cache inputs, with the KV cache (every
/// step after the first runs one token per row, its past in ONNX Runtime's memory) and without it (every step runs the
/// whole sequence again: <see cref="GenerationOptions.UseCache"/> false on the same file, so the two differ only in
/// the cache). Exactly <c>--new-tokens</c> tokens per row (no stop token), greedy, seeded random byte prompts of
/// <c>--prompt</c> tokens, batch 1 and 8. The two modes alternate within every round (which goes first alternates
/// too), so load on a shared machine hits both; the speed-up is the median over rounds of the per-round ratio.
/// Usage: ModelCompression.Bench.Generation --model DIR/decoder.onnx [--rounds 3] [--new-tokens 128] [--prompt 16]
/// [--batches 1,8] [--threads 0]. bench/Generation/run.sh makes the model with the fixture script and runs this.
/// </summary>
internal static class Program
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    private static int Main(string[] args)
    {
        ModelCompression.Inference.OnnxRuntimeEnvironment.EnsureTelemetryOff();
        var model = StringArg(args, "--model") ?? throw new ArgumentException("--model PATH (a decoder export with cache inputs) is required.");
        var rounds = IntArg(args, "--rounds", 3);
        var newTokens = IntArg(args, "--new-tokens", 128);
        var promptLength = IntArg(args, "--prompt", 16);
        var threads = IntArg(args, "--threads", 0);
        int[] batches = [.. (StringArg(args, "--batches") ?? "1,8").Split(',').Select(b => int.Parse(b, Invariant))];

        using var session = DecoderSession.Open(model, threads);
        var signature = session.Signature;
        if (!signature.HasCache)
        {
            throw new ArgumentException($"'{model}' has no cache inputs: the benchmark compares the cache with none on one file.");
        }

        var clock = Stopwatch.StartNew();
        Console.WriteLine($"# ModelCompression generation benchmark, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        Console.WriteLine($"machine: nproc {Environment.ProcessorCount}, {CpuModel()}; load average before: {LoadAverage()}");
        Console.WriteLine($"ONNX Runtime {OrtEnv.Instance().GetVersionString()} (CPU provider, graph optimization all, sequential execution, {(threads > 0 ? $"{threads} intra-op threads" : "the engine's thread budget")})");
        Console.WriteLine($"model: {model} ({new FileInfo(model).Length / 1e6:0.0} MB; {signature.CachedLayers} layers, {signature.KeyValueHeads} heads of {signature.HeadWidth}, vocabulary {signature.Vocabulary}, {signature.MaxPositions} positions)");
        Console.WriteLine($"{rounds} rounds; prompt {promptLength} tokens, {newTokens} new tokens per row, greedy, no stop token");
        Console.WriteLine();
        Console.WriteLine("| batch | with cache tokens/s (median) | without cache tokens/s (median) | cache / no cache (median of rounds) | min | max |");
        Console.WriteLine("|---|---|---|---|---|---|");

        var generator = new Generator(session);
        var options = new GenerationOptions { MaxNewTokens = newTokens, Seed = 1 };
        foreach (var batch in batches)
        {
            var random = new Random(batch);
            IReadOnlyList<IReadOnlyList<int>> prompts = [.. Enumerable.Range(0, batch).Select(_ => (IReadOnlyList<int>)[.. Enumerable.Range(0, promptLength).Select(_ => random.Next(32, 127))])];
            var cached = options with { BatchSize = batch, UseCache = true };
            var uncached = options with { BatchSize = batch, UseCache = false };
            // Warm-up: the first runs allocate and pack weights.
            Time(generator, prompts, cached, batch * newTokens);
            Time(generator, prompts, uncached, batch * newTokens);
            var withCache = new List<double>();
            var without = new List<double>();
            for (var round = 0; round < rounds; round++)
            {
                if (round % 2 == 0)
                {
                    withCache.Add(Time(generator, prompts, cached, batch * newTokens));
                    without.Add(Time(generator, prompts, uncached, batch * newTokens));
                }
                else
                {
                    without.Add(Time(generator, prompts, uncached, batch * newTokens));
                    withCache.Add(Time(generator, prompts, cached, batch * newTokens));
                }
            }

            var ratios = withCache.Zip(without, (c, n) => c / n).ToList();
            Console.WriteLine(string.Create(Invariant, $"| {batch} | {Median(withCache):0} | {Median(without):0} | {Median(ratios):0.00} | {ratios.Min():0.00} | {ratios.Max():0.00} |"));
        }

        Console.WriteLine();
        Console.WriteLine($"load average after: {LoadAverage()}; wall time {clock.Elapsed.TotalSeconds:0} s");
        return 0;
    }

    /// <summary>New tokens per second of one generation call; checks that every row made exactly the tokens asked for.</summary>
    private static double Time(Generator generator, IReadOnlyList<IReadOnlyList<int>> prompts, GenerationOptions options, int expectedTokens)
    {
        var start = Stopwatch.GetTimestamp();
        var results = generator.Generate(prompts, options);
        var seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        var made = results.Sum(r => r.Tokens.Count);
        if (made != expectedTokens)
        {
            throw new InvalidOperationException($"Made {made} tokens, expected {expectedTokens}: the model's position table is too short for the prompt and the new tokens.");
        }

        return made / seconds;
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
    }

    private static string CpuModel() =>
        File.Exists("/proc/cpuinfo")
            ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown CPU"
            : "unknown CPU";

    private static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "unknown";

    private static int IntArg(string[] args, string name, int fallback) =>
        StringArg(args, name) is { } value ? int.Parse(value, Invariant) : fallback;

    private static string? StringArg(string[] args, string name)
    {
        var index = Array.IndexOf(args, name);
        return index >= 0 && index + 1 < args.Length ? args[index + 1] : null;
    }
}
