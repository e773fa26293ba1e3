using System.Diagnostics;
using System.Globalization;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using ModelCompression.Architectures;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Quantization;

namespace ModelCompression.Bench.Latency;

/// <summary>
/// Size, output error and latency of float against dynamic int8 (per channel, target any) and weight-only int4
/// (MatMulNBits, blocks of 32 and 128, symmetric and asymmetric) on the built-in transformer encoder at a realistic
/// width (256, 4 heads, 4 layers, feed-forward 1024, 64 tokens, vocabulary 8000), batch 1 and 8. The weights are the
/// builder's seeded initialisation: latency and size do not depend on training, and the output error is measured
/// against the float model on the same 64 random sequences.
/// With --save DIR it also writes float-input models (a [2, 64, 256] -> 1024 -> 256 MatMul pair as in a transformer
/// block, float, int8 and int4) with their input, for bench/Int8Avx2/int4.sh to compare native and emulated-AVX2 runs.
/// Usage: ModelCompression.Bench.Latency --int4 [--rounds 15] [--round-ms 150] [--threads 1,2] [--save DIR]
/// </summary>
internal static class Int4Sizes
{
    private const int SequenceLength = 64;
    private const int Vocabulary = 8000;
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    public static int Run(int rounds, double roundSeconds, int[] threadCounts, string? save)
    {
        var clock = Stopwatch.StartNew();
        Console.WriteLine($"# float vs int8 vs int4, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, ONNX Runtime {OrtEnv.Instance().GetVersionString()}");
        Console.WriteLine($"CPU: {File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim()}, nproc {Environment.ProcessorCount}");
        Console.WriteLine();
        if (save is not null)
        {
            Save(save);
        }

        var fp32 = TransformerBuilder.Build(
            new TransformerOptions { VocabSize = Vocabulary, Width = 256, Heads = 4, Layers = 4, FeedForward = 1024, MaxLength = SequenceLength, Seed = 1 },
            new ArchitectureInputs([SequenceLength], 4));
        var variants = new List<Program.Variant> { new("fp32", fp32, "original") };
        var (int8, report8) = DynamicQuantizer.Quantize(fp32, perChannel: true);
        variants.Add(new("int8 dynamic", int8, $"{report8.QuantizedNodes.Count} layers, per channel, target any"));
        foreach (var (block, symmetric) in new[] { (32, true), (128, true), (32, false) })
        {
            var (int4, report4) = Int4Quantizer.Quantize(fp32, block, symmetric, perChannelEmbeddings: true);
            var head = report4.Weights.Sum(w => w.Bytes);
            variants.Add(new($"int4 b{block} {(symmetric ? "sym" : "asym")}", int4, $"{report4.Weights.Count} weights: {head.ToString("N0", Invariant)} bytes 4-bit; table int8 per channel"));
        }

        var (names, values) = Program.Inputs(64, tokens: true);
        var reference = Outputs(fp32, names, values);
        Console.WriteLine("| variant | file bytes | vs fp32 | max abs(float - q) / output scale | argmax agreement (64 sequences) | what |");
        Console.WriteLine("|---|---:|---:|---:|---:|---|");
        foreach (var variant in variants)
        {
            var bytes = variant.Model.ToByteArray().Length;
            var outputs = Outputs(variant.Model, names, values);
            var error = reference.Zip(outputs, (e, a) => MathF.Abs(e - a)).Max() / reference.Max(MathF.Abs);
            var agreement = Enumerable.Range(0, 64).Count(i => ArgMax(reference, i) == ArgMax(outputs, i)) / 64.0;
            Console.WriteLine($"| {variant.Name} | {bytes.ToString("N0", Invariant)} | {((double)bytes / fp32.ToByteArray().Length).ToString("0.000", Invariant)}x | {error.ToString("0.0000", Invariant)} | {agreement.ToString("0.00", Invariant)} | {variant.Note} |");
        }

        Array.ForEach(values, v => v.Dispose());
        Console.WriteLine();
        int[] batches = [1, 8];
        var columns = threadCounts.SelectMany(t => batches.Select(b => $"{t} thr, batch {b}: p50 µs (speed-up)")).ToList();
        var results = new Dictionary<(string, int, int), (double P50, double Speedup)>();
        foreach (var threads in threadCounts)
        {
            foreach (var batch in batches)
            {
                foreach (var (name, result) in Program.Measure(variants, threads, batch, tokens: true, rounds, roundSeconds))
                {
                    results[(name, threads, batch)] = result;
                }
            }
        }

        Console.WriteLine($"| variant | {string.Join(" | ", columns)} |");
        Console.WriteLine($"|---|{string.Concat(columns.Select(_ => "---:|"))}");
        foreach (var variant in variants)
        {
            var cells = threadCounts.SelectMany(t => batches.Select(b => results[(variant.Name, t, b)]))
                .Select(r => $"{(r.P50 * 1e6).ToString("0", Invariant)} ({r.Speedup.ToString("0.00", Invariant)}x)");
            Console.WriteLine($"| {variant.Name} | {string.Join(" | ", cells)} |");
        }

        Console.WriteLine();
        OneToken(rounds);
        Console.WriteLine();
        Console.WriteLine($"wall time {clock.Elapsed.TotalSeconds:0} s");
        return 0;
    }

    /// <summary>
    /// A decoder's case: one token at a time through a feed-forward pair (width 1024, 4096 hidden: 32 MB of float
    /// weights, more than the caches hold), float vs int8 vs int4, one thread. Median of the rounds' medians.
    /// </summary>
    private static void OneToken(int rounds)
    {
        var random = new Random(3);
        float[] Matrix(int rows, int columns) => [.. Enumerable.Range(0, rows * columns).Select(_ => (random.NextSingle() - 0.5f) * 0.05f)];
        var model = new GraphBuilder()
            .Opset(17)
            .Input("x", TensorProto.Types.DataType.Float, 1, 1, 1024)
            .Output("y", TensorProto.Types.DataType.Float, 1, 1, 1024)
            .Initializer("up", Matrix(1024, 4096), [1024, 4096])
            .Initializer("down", Matrix(4096, 1024), [4096, 1024])
            .Node("MatMul", ["x", "up"], ["h"], "fc1", "")
            .Node("Relu", ["h"], ["r"], "relu", "")
            .Node("MatMul", ["r", "down"], ["y"], "fc2", "")
            .Build();
        var variants = new (string Name, ModelProto Model)[]
        {
            ("fp32", model),
            ("int8 dynamic", DynamicQuantizer.Quantize(model, perChannel: true).Model),
            ("int4 b32 sym", Int4Quantizer.Quantize(model, 32, symmetric: true).Model),
            ("int4 b128 sym", Int4Quantizer.Quantize(model, 128, symmetric: true).Model),
        };
        using var options = new SessionOptions { IntraOpNumThreads = 1, GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
        var sessions = variants.Select(v => new InferenceSession(v.Model.ToByteArray(), options)).ToList();
        using var input = OrtValue.CreateTensorValueFromMemory(Matrix(1, 1024), [1, 1, 1024]);
        using var runOptions = new RunOptions();
        var medians = variants.Select(_ => new List<double>()).ToArray();
        for (var round = 0; round < rounds; round++)
        {
            for (var k = 0; k < sessions.Count; k++)
            {
                var v = (k + round) % sessions.Count;
                var times = new double[50];
                for (var i = 0; i < times.Length; i++)
                {
                    var start = Stopwatch.GetTimestamp();
                    using var outputs = sessions[v].Run(runOptions, ["x"], [input], ["y"]);
                    times[i] = Stopwatch.GetElapsedTime(start).TotalSeconds;
                }

                medians[v].Add(times.Order().ElementAt(times.Length / 2));
            }
        }

        sessions.ForEach(s => s.Dispose());
        Console.WriteLine("One token ([1, 1, 1024] -> 4096 -> 1024), one thread:");
        Console.WriteLine();
        Console.WriteLine("| variant | file bytes | p50 µs | speed-up |");
        Console.WriteLine("|---|---:|---:|---:|");
        var baseline = medians[0].Order().ElementAt(rounds / 2);
        for (var v = 0; v < variants.Length; v++)
        {
            var p50 = medians[v].Order().ElementAt(rounds / 2);
            Console.WriteLine($"| {variants[v].Name} | {variants[v].Model.ToByteArray().Length.ToString("N0", Invariant)} | {(p50 * 1e6).ToString("0", Invariant)} | {(baseline / p50).ToString("0.00", Invariant)}x |");
        }
    }

    private static float[] Outputs(ModelProto model, string[] names, OrtValue[] values)
    {
        using var options = new SessionOptions { IntraOpNumThreads = 1 };
        using var session = new InferenceSession(model.ToByteArray(), options);
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, names, values, ["logits"]);
        return outputs[0].GetTensorDataAsSpan<float>().ToArray();
    }

    private static int ArgMax(float[] logits, int row)
    {
        var span = logits.AsSpan(row * 4, 4);
        return span.IndexOf(MaxOf(span));
    }

    private static float MaxOf(ReadOnlySpan<float> values)
    {
        var max = float.NegativeInfinity;
        foreach (var v in values)
        {
            max = MathF.Max(max, v);
        }

        return max;
    }

    /// <summary>A transformer block's feed-forward pair on [2, 64, 256] activations: float, int8 (target any) and int4 models, and the input.</summary>
    private static void Save(string dir)
    {
        Directory.CreateDirectory(dir);
        var random = new Random(7);
        float[] Matrix(int rows, int columns) => [.. Enumerable.Range(0, rows * columns).Select(_ => (random.NextSingle() - 0.5f) * 0.2f)];
        var model = new GraphBuilder()
            .Opset(17)
            .Input("x", TensorProto.Types.DataType.Float, 2, SequenceLength, 256)
            .Output("y", TensorProto.Types.DataType.Float, 2, SequenceLength, 256)
            .Initializer("up", Matrix(256, 1024), [256, 1024])
            .Initializer("down", Matrix(1024, 256), [1024, 256])
            .Node("MatMul", ["x", "up"], ["h"], "fc1", "")
            .Node("Relu", ["h"], ["r"], "relu", "")
            .Node("MatMul", ["r", "down"], ["y"], "fc2", "")
            .Build();
        OnnxModelFile.Save(model, Path.Join(dir, "ffn.float.onnx"));
        OnnxModelFile.Save(DynamicQuantizer.Quantize(model, perChannel: true).Model, Path.Join(dir, "ffn.int8.onnx"));
        OnnxModelFile.Save(Int4Quantizer.Quantize(model, 32, symmetric: true).Model, Path.Join(dir, "ffn.int4-b32-sym.onnx"));
        OnnxModelFile.Save(Int4Quantizer.Quantize(model, 128, symmetric: false).Model, Path.Join(dir, "ffn.int4-b128-asym.onnx"));
        var input = Matrix(2 * SequenceLength, 256);
        using var file = File.Create(Path.Join(dir, "ffn.input.bin"));
        file.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(input.AsSpan()));
        Console.WriteLine($"saved the feed-forward models and their input to {dir}");
    }
}
