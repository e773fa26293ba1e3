using System.Diagnostics;
using System.Globalization;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using ModelCompression.Architectures;
using ModelCompression.Factorization;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Pruning;
using ModelCompression.Quantization;

namespace ModelCompression.Bench.Latency;

/// <summary>
/// Inference latency (p50) in ONNX Runtime of compressed students against their fp32 originals: dynamic int8
/// (DynamicQuantizer, per-channel), 50% structured pruning (StructuredPruner, L2), low-rank factorization
/// (LowRankFactorizer, rank = 25% of min(m, n)) and, for the transformer, half the attention heads removed
/// (AttentionHeadFinder) and one of two layers dropped. Batch 1 and
/// 64, 1 and 2 intra-op threads. The variants of a model alternate within every round (in a rotating order), so
/// load on a shared machine hits them alike; the speed-up is the median over rounds of fp32's round median over
/// the variant's.
/// Usage: ModelCompression.Bench.Latency [--rounds 15] [--round-ms 150] [--threads 1,2] [--batches 1,64];
/// with --int8-targets [--repo .] it measures quantize's target any against target vnni instead (see <see cref="Int8Targets"/>);
/// with --int4 float against int8 and int4 on a width-256 transformer (see <see cref="Int4Sizes"/>).
/// </summary>
internal static class Program
{
    private const int SequenceLength = 64;
    private const int Vocabulary = 1000;

    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    private static int Main(string[] args)
    {
        // First: ONNX Runtime reads its telemetry opt-out once, when it starts.
        ModelCompression.Inference.OnnxRuntimeEnvironment.EnsureTelemetryOff();
        var rounds = IntArg(args, "--rounds", 15);
        var roundSeconds = IntArg(args, "--round-ms", 150) / 1000.0;
        if (args.Contains("--int8-targets"))
        {
            return Int8Targets.Run(StringArg(args, "--repo") ?? Directory.GetCurrentDirectory(), rounds, roundSeconds, StringArg(args, "--save"));
        }

        int[] threadCounts = [.. (StringArg(args, "--threads") ?? "1,2").Split(',').Select(t => int.Parse(t, Invariant))];
        if (args.Contains("--int4"))
        {
            return Int4Sizes.Run(rounds, roundSeconds, threadCounts, StringArg(args, "--save"));
        }

        int[] batches = [.. (StringArg(args, "--batches") ?? "1,64").Split(',').Select(b => int.Parse(b, Invariant))];

        var clock = Stopwatch.StartNew();
        Console.WriteLine($"# ModelCompression latency benchmark, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        Console.WriteLine($"machine: nproc {Environment.ProcessorCount}, {CpuModel()}; load average before: {LoadAverage()}");
        Console.WriteLine($"ONNX Runtime {OrtEnv.Instance().GetVersionString()} (CPU provider, graph optimization all, sequential execution)");
        Console.WriteLine($"{rounds} rounds; each round runs every variant for about {roundSeconds * 1000:0} ms, in a rotating order");
        Console.WriteLine();

        var families = new (string Name, ModelProto Model, bool Tokens)[]
        {
            ("MLP 784-64-10", Mlp(64), false),
            ("MLP 784-256-10", Mlp(256), false),
            ("MLP 784-1024-10", Mlp(1024), false),
            ($"transformer (width 128, 4 heads, 2 layers, ff 512, seq {SequenceLength})", Transformer(), true),
        };

        var rows = new List<string>();
        foreach (var (name, model, tokens) in families)
        {
            var variants = Variants(model, tokens);
            var results = new Dictionary<(string Variant, int Threads, int Batch), (double P50, double Speedup)>();
            foreach (var threads in threadCounts)
            {
                foreach (var batch in batches)
                {
                    foreach (var (variant, result) in Measure(variants, threads, batch, tokens, rounds, roundSeconds))
                    {
                        results[(variant, threads, batch)] = result;
                    }
                }
            }

            foreach (var variant in variants)
            {
                var cells = threadCounts.SelectMany(t => batches.Select(b => results[(variant.Name, t, b)]))
                    .Select(r => $"{Micro(r.P50)} ({r.Speedup.ToString("0.00", Invariant)}x)");
                rows.Add($"| {name} | {variant.Name} | {ModelStatistics.Parameters(variant.Model).ToString("N0", Invariant)} | {variant.Note} | {string.Join(" | ", cells)} |");
            }

            Console.Error.WriteLine($"{name}: done after {clock.Elapsed.TotalSeconds:0} s");
        }

        var columns = threadCounts.SelectMany(t => batches.Select(b => $"{t} thr, batch {b}: p50 µs (speed-up)"));
        Console.WriteLine($"| model | variant | parameters | what | {string.Join(" | ", columns)} |");
        Console.WriteLine($"|---|---|---:|---|{string.Concat(columns.Select(_ => "---:|"))}");
        rows.ForEach(Console.WriteLine);
        Console.WriteLine();
        Console.WriteLine($"load average after: {LoadAverage()}; wall time {clock.Elapsed.TotalSeconds:0} s");
        return 0;
    }

    internal sealed record Variant(string Name, ModelProto Model, string Note);

    /// <summary>fp32 and its compressed forms; each is checked before it is timed.</summary>
    private static List<Variant> Variants(ModelProto fp32, bool tokens)
    {
        var (int8, quantization) = DynamicQuantizer.Quantize(fp32, perChannel: true);
        var (structures, _) = StructureFinder.Find(fp32, NameFilter.None);
        var plan = structures.Select(s => new PrunedStructure(s, StructuredPruner.KeepHighest(StructuredPruner.L2Scores(fp32, s), 0.5))).ToList();
        var pruned = StructuredPruner.Apply(fp32, plan);
        var (factorized, factorization) = LowRankFactorizer.Factorize(fp32, new RankChoice(0.9, RankRatio: 0.25), NameFilter.None);
        var variants = new List<Variant>
        {
            new("fp32", fp32, "original"),
            new("int8 dynamic", int8, $"{quantization.QuantizedNodes.Count} MatMul/Gemm int8, per channel"),
            new("pruned 50%", pruned, $"units {string.Join(", ", plan.Select(p => $"{p.Structure.Units}->{p.Kept.Length}"))}"),
            new("factorized", factorized, $"ranks {string.Join(", ", factorization.Factorized.Select(l => $"{l.Inputs}x{l.Outputs}:{l.Rank}").Distinct())}"),
        };
        if (tokens)
        {
            var (blocks, _) = AttentionHeadFinder.Find(fp32, NameFilter.None);
            var heads = blocks.Select(s => new PrunedStructure(s, StructuredPruner.KeepHighest(StructuredPruner.L2Scores(fp32, s), 0.5))).ToList();
            variants.Add(new("heads 50%", StructuredPruner.Apply(fp32, heads), $"attention heads {string.Join(", ", heads.Select(p => $"{p.Structure.Units}->{p.Kept.Length}"))}"));
            variants.Add(new("1 of 2 layers", TransformerLayerDropper.Drop(fp32, [1]), "encoder.layer1 dropped"));
        }

        foreach (var variant in variants)
        {
            OnnxChecker.ThrowIfInvalid(variant.Model);
        }

        return variants;
    }

    internal static IEnumerable<(string Variant, (double P50, double Speedup) Result)> Measure(
        List<Variant> variants, int threads, int batch, bool tokens, int rounds, double roundSeconds)
    {
        using var options = new SessionOptions
        {
            IntraOpNumThreads = threads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        var sessions = variants.Select(v => new InferenceSession(v.Model.ToByteArray(), options)).ToList();
        var (names, values) = Inputs(batch, tokens);
        using var runOptions = new RunOptions();
        try
        {
            double RunOnce(InferenceSession session)
            {
                var start = Stopwatch.GetTimestamp();
                using var outputs = session.Run(runOptions, names, values, ["logits"]);
                return Stopwatch.GetElapsedTime(start).TotalSeconds;
            }

            // Warm-up, and iterations per round from the warm-up's median.
            var iterations = sessions.Select(s => Math.Clamp((int)(roundSeconds / Median([.. Enumerable.Range(0, 5).Select(_ => RunOnce(s))])), 3, 2000)).ToArray();
            var times = variants.Select(_ => new List<double>()).ToArray();
            var roundMedians = variants.Select(_ => new List<double>()).ToArray();
            for (var round = 0; round < rounds; round++)
            {
                for (var k = 0; k < variants.Count; k++)
                {
                    var v = (k + round) % variants.Count;
                    var these = Enumerable.Range(0, iterations[v]).Select(_ => RunOnce(sessions[v])).ToArray();
                    times[v].AddRange(these);
                    roundMedians[v].Add(Median(these));
                }
            }

            for (var v = 0; v < variants.Count; v++)
            {
                var speedup = Median([.. Enumerable.Range(0, rounds).Select(r => roundMedians[0][r] / roundMedians[v][r])]);
                yield return (variants[v].Name, (Median([.. times[v]]), speedup));
            }
        }
        finally
        {
            sessions.ForEach(s => s.Dispose());
            Array.ForEach(values, v => v.Dispose());
        }
    }

    internal static (string[] Names, OrtValue[] Values) Inputs(int batch, bool tokens)
    {
        var random = new Random(1);
        if (!tokens)
        {
            var pixels = Enumerable.Range(0, batch * 784).Select(_ => (float)random.NextDouble()).ToArray();
            return (["input"], [OrtValue.CreateTensorValueFromMemory(pixels, [batch, 784])]);
        }

        var ids = Enumerable.Range(0, batch * SequenceLength).Select(_ => (long)random.Next(Vocabulary)).ToArray();
        var mask = Enumerable.Repeat(1L, batch * SequenceLength).ToArray();
        return (
            [TransformerBuilder.InputIdsName, TransformerBuilder.AttentionMaskName],
            [OrtValue.CreateTensorValueFromMemory(ids, [batch, SequenceLength]), OrtValue.CreateTensorValueFromMemory(mask, [batch, SequenceLength])]);
    }

    private static ModelProto Mlp(int hidden) =>
        MlpBuilder.Build(new MlpOptions { Hidden = [hidden], Seed = 1 }, new ArchitectureInputs([784], 10));

    private static ModelProto Transformer() =>
        TransformerBuilder.Build(new TransformerOptions { VocabSize = Vocabulary, Seed = 1 }, new ArchitectureInputs([SequenceLength], 4));

    private static double Median(double[] values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private static string Micro(double seconds) => (seconds * 1e6).ToString(seconds < 1e-3 ? "0.0" : "0", Invariant);

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
