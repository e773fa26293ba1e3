using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using ModelCompression.Architectures;
using ModelCompression.Generation;
using ModelCompression.Onnx;
using ModelCompression.Serving;
using ModelCompression.Text;

namespace ModelCompression.Bench.Serve;

/// <summary>
/// Tokens per second through <c>dotnet compress serve</c> (in process, loopback HTTP, <c>/v1/completions</c>): one
/// client sending its requests one after another, against eight clients sending theirs at the same time, which the
/// server batches (up to 8 sequences per generator call). The model is a seeded, untrained built-in decoder (byte
/// vocabulary, written as a generative model folder; no Python, nothing committed) of <c>--width</c>, <c>--layers</c>
/// and <c>--positions</c>. Greedy, <c>--new-tokens</c> per request, seeded random printable prompts of <c>--prompt</c>
/// bytes; tokens are counted from each answer's <c>usage</c>. The two modes alternate within every round (which goes
/// first alternates too), so the load of a shared machine hits both; the speed-up is the median of the per-round ratio.
/// Usage: ModelCompression.Bench.Serve [--rounds 3] [--new-tokens 64] [--prompt 16] [--requests 4] [--width 256]
/// [--layers 4] [--positions 256] [--threads 0] [--batch-wait-ms 0].
/// </summary>
internal static class Program
{
    private const int Clients = 8;
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    private static async Task<int> Main(string[] args)
    {
        var rounds = IntArg(args, "--rounds", 3);
        var newTokens = IntArg(args, "--new-tokens", 64);
        var promptLength = IntArg(args, "--prompt", 16);
        var perClient = IntArg(args, "--requests", 4);
        var width = IntArg(args, "--width", 256);
        var layers = IntArg(args, "--layers", 4);
        var positions = IntArg(args, "--positions", 256);
        var threads = IntArg(args, "--threads", 0);
        var batchWait = IntArg(args, "--batch-wait-ms", 0);

        var dir = Directory.CreateTempSubdirectory("mc-bench-serve-");
        try
        {
            var folder = MakeFolder(dir.FullName, width, layers, positions, newTokens);
            var clock = Stopwatch.StartNew();
            Console.WriteLine($"# ModelCompression serve benchmark, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
            Console.WriteLine($"machine: nproc {Environment.ProcessorCount}, {CpuModel()}; load average before: {LoadAverage()}");
            Console.WriteLine($"model: untrained built-in decoder, width {width}, {layers} layers, {positions} positions, byte vocabulary ({new FileInfo(Path.Join(folder, GenerativeModelFolder.ModelFile)).Length / 1e6:0.0} MB); threads {(threads > 0 ? threads.ToString(Invariant) : "engine budget")}");
            Console.WriteLine($"{rounds} rounds; greedy, {newTokens} new tokens per request, prompts of {promptLength} bytes; one client: {Clients} requests one after another; {Clients} clients: {perClient} requests each, all at once; server max batch 8, batch wait {batchWait} ms");
            Console.WriteLine();

            await using var server = await OpenAiServer.StartAsync(new ServeOptions { Models = [new(folder) { Name = "bench" }], MaxBatch = 8, Threads = threads, BatchWait = TimeSpan.FromMilliseconds(batchWait) });
            using var http = new HttpClient { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromMinutes(10) };
            var random = new Random(1);
            var prompts = Enumerable.Range(0, Clients * perClient).Select(_ => new string([.. Enumerable.Range(0, promptLength).Select(_ => (char)random.Next(97, 123))])).ToList();

            // Warm-up: the first runs allocate and pack weights.
            await One(http, prompts, newTokens);
            await Many(http, prompts, perClient, newTokens);
            var single = new List<double>();
            var concurrent = new List<double>();
            var batchSizes = new List<double>();
            for (var round = 0; round < rounds; round++)
            {
                for (var turn = 0; turn < 2; turn++)
                {
                    if ((round + turn) % 2 == 0)
                    {
                        single.Add(await One(http, prompts, newTokens));
                    }
                    else
                    {
                        var before = server.Stats;
                        concurrent.Add(await Many(http, prompts, perClient, newTokens));
                        var after = server.Stats;
                        batchSizes.Add((double)(Requests(after) - Requests(before)) / (after.Batches - before.Batches));
                    }
                }

                Console.WriteLine(string.Create(Invariant, $"round {round + 1}: one client {single[^1]:0} tokens/s, {Clients} clients {concurrent[^1]:0} tokens/s (mean batch {batchSizes[^1]:0.0} requests), ratio {concurrent[^1] / single[^1]:0.00}"));
            }

            var ratios = concurrent.Zip(single, (c, s) => c / s).ToList();
            Console.WriteLine();
            Console.WriteLine("| one client tokens/s (median) | 8 clients tokens/s (median) | mean requests per batch (8 clients) | 8 clients / one (median of rounds) | min | max |");
            Console.WriteLine("|---|---|---|---|---|---|");
            Console.WriteLine(string.Create(Invariant, $"| {Median(single):0} | {Median(concurrent):0} | {batchSizes.Average():0.0} | {Median(ratios):0.00} | {ratios.Min():0.00} | {ratios.Max():0.00} |"));
            Console.WriteLine();
            Console.WriteLine($"load average after: {LoadAverage()}; wall time {clock.Elapsed.TotalSeconds:0} s");
            return 0;
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private static string MakeFolder(string dir, int width, int layers, int positions, int newTokens)
    {
        var tokenizer = GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Byte));
        var options = new DecoderOptions { VocabSize = tokenizer.VocabularySize, MaxLength = positions, Width = width, Heads = 4, Layers = layers, FeedForward = 4 * width, Dropout = 0, Seed = 1 };
        var model = Path.Join(dir, "decoder.onnx");
        OnnxModelFile.Save(DecoderBuilder.Build(options, new ArchitectureInputs([0], 1)), model);
        var folder = Path.Join(dir, "bench");
        GenerativeModelFolder.Write(folder, model, tokenizer, chatTemplate: null, new GenerationOptions { MaxNewTokens = newTokens, StopTokenIds = [tokenizer.EndOfTextId] });
        return folder;
    }

    /// <summary>One client: <see cref="Clients"/> requests one after another; new tokens per second.</summary>
    private static async Task<double> One(HttpClient http, List<string> prompts, int newTokens)
    {
        var start = Stopwatch.GetTimestamp();
        var tokens = 0;
        for (var i = 0; i < Clients; i++)
        {
            tokens += await Complete(http, prompts[i], newTokens);
        }

        return tokens / Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    /// <summary><see cref="Clients"/> clients at once, each sending <paramref name="perClient"/> requests one after another; new tokens per second.</summary>
    private static async Task<double> Many(HttpClient http, List<string> prompts, int perClient, int newTokens)
    {
        var start = Stopwatch.GetTimestamp();
        var counts = await Task.WhenAll(Enumerable.Range(0, Clients).Select(async client =>
        {
            var tokens = 0;
            for (var i = 0; i < perClient; i++)
            {
                tokens += await Complete(http, prompts[(client * perClient) + i], newTokens);
            }

            return tokens;
        }));
        return counts.Sum() / Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    private static async Task<int> Complete(HttpClient http, string prompt, int newTokens)
    {
        var body = JsonSerializer.Serialize(new Dictionary<string, object> { ["model"] = "bench", ["prompt"] = prompt, ["max_tokens"] = newTokens, ["temperature"] = 0 });
        using var response = await http.PostAsync("/v1/completions", new StringContent(body, Encoding.UTF8, "application/json"));
        response.EnsureSuccessStatusCode();
        using var answer = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return answer.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
    }

    private static long Requests(ServeStatistics stats) => stats.BatchedRequests.Sum(b => b.Key * b.Value);

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

    private static int IntArg(string[] args, string name, int fallback)
    {
        var index = Array.IndexOf(args, name);
        return index >= 0 && index + 1 < args.Length ? int.Parse(args[index + 1], Invariant) : fallback;
    }
}
