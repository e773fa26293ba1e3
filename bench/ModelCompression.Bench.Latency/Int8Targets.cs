using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.OnnxRuntime;
using ModelCompression.Data;
using ModelCompression.Evaluation;
using ModelCompression.Inference;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Quantization;

namespace ModelCompression.Bench.Latency;

/// <summary>
/// What quantize's target any (int8 weights with |q_a| + |q_b| &lt;= 128 per output channel, exact on every x86-64
/// CPU) costs against target vnni (full-range weights, exact only with VNNI), on real models: the PyTorch-exported
/// fixtures and the trained Fashion-MNIST teacher. Reports the weights' quantization error (and that of 7-bit
/// weights, ONNX Runtime's reduce_range, for comparison), each model's largest output error against float, the
/// teacher's test accuracy, and the latency of the two int8 models, alternating in one run.
/// With --save DIR it also writes, for the models with one float input, the float, full-range and target-any
/// models with their inputs, for bench/Int8Avx2/run.sh to run on an emulated AVX2 CPU.
/// Usage: ModelCompression.Bench.Latency --int8-targets [--rounds 15] [--round-ms 150] [--save DIR]
/// </summary>
internal static class Int8Targets
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    public static int Run(string repo, int rounds, double roundSeconds, string? save)
    {
        var clock = Stopwatch.StartNew();
        Console.WriteLine($"# int8 target any vs vnni, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, ONNX Runtime {OrtEnv.Instance().GetVersionString()}");
        Console.WriteLine($"CPU flags: {CpuFlags()}");
        Console.WriteLine();

        var fixtures = Path.Join(repo, "tests", "fixtures", "pytorch");
        var teacher = OnnxModelFile.Load(Path.Join(repo, "samples", "FashionMnist", "teacher", "teacher.onnx"));
        var (train, test) = Fashion(repo);
        var calibration = train.Select([.. Enumerable.Range(0, 256)], "calibration");
        var models = new (string Name, ModelProto Model, Dataset Data, string Mode)[]
        {
            ("Fashion CNN teacher (trained)", teacher, test, "static"),
            ("Fashion CNN teacher (trained)", teacher, test, "dynamic"),
            ("mlp_opset13", OnnxModelFile.Load(Path.Join(fixtures, "mlp_opset13.onnx")), Floats(256, 20), "dynamic"),
            ("transformer_opset13", OnnxModelFile.Load(Path.Join(fixtures, "transformer_opset13.onnx")), Tokens(256, 16, mask: true), "dynamic"),
            ("transformer_tied_opset13", OnnxModelFile.Load(Path.Join(fixtures, "transformer_tied_opset13.onnx")), Tokens(256, 16, mask: true), "dynamic"),
            ("bert_opset13", OnnxModelFile.Load(Path.Join(fixtures, "bert_opset13.onnx")), Tokens(256, 12, mask: true), "dynamic"),
        };

        Console.WriteLine("| model | mode | weights: mean relative L2 error, full range / target any / 7-bit | max pair sum, full range / any | max abs(float - int8) / output scale, full range / any | test accuracy, float / full range / any | latency any / full range (p50, batch 1; batch 64) |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        foreach (var (name, model, data, mode) in models)
        {
            ModelProto Quantize(Int8Target target)
            {
                if (mode == "dynamic")
                {
                    return DynamicQuantizer.Quantize(model, perChannel: true, target: target).Model;
                }

                var plan = StaticQuantizer.Plan(model, QuantizationScheme.Asymmetric);
                var ranges = ActivationCalibration.Collect(plan.Model, plan.TensorsToCalibrate, calibration, CalibrationMethod.MinMax, 99.99, QuantizationScheme.Asymmetric);
                return StaticQuantizer.Quantize(plan, ranges, plan.Candidates, perChannel: true, target).Model;
            }

            var (full, any) = (Quantize(Int8Target.Vnni), Quantize(Int8Target.Any));
            SaturationCheck.ThrowIfUnproven(any, name);
            var pairSums = $"{SaturationCheck.Analyze(full).Max(b => b.MaxPairSum)} / {SaturationCheck.Analyze(any).Max(b => b.MaxPairSum)}";
            var (expected, fullOut, anyOut) = (Outputs(model, data), Outputs(full, data), Outputs(any, data));
            var scale = expected.Max(MathF.Abs);
            string Error(float[] actual) => (expected.Zip(actual, (e, a) => MathF.Abs(e - a)).Max() / scale).ToString("0.0000", Invariant);
            var accuracy = data.Labels is null
                ? "-"
                : $"{Accuracy(expected, data):0.0000} / {Accuracy(fullOut, data):0.0000} / {Accuracy(anyOut, data):0.0000}";
            var latency = Latency(any, full, data, rounds, roundSeconds);
            if (save is not null && data.Tensors.Count == 1 && data.Tensors[0].ElementType == DataElementType.Float32)
            {
                Save(save, $"{name.Split(' ')[0].ToLowerInvariant()}-{mode}", model, full, any, data);
            }

            Console.WriteLine($"| {name} | {mode} | {WeightErrors(model)} | {pairSums} | {Error(fullOut)} / {Error(anyOut)} | {accuracy} | {latency} |");
        }

        Console.WriteLine();
        Console.WriteLine($"wall time {clock.Elapsed.TotalSeconds:0} s");
        return 0;
    }

    /// <summary>
    /// The mean over weight tensors (MatMul, Gemm and Conv weights, per output channel) of |w - w_q| / |w| for
    /// full-range int8, the pair-bounded int8 of target any, and 7-bit int8 (scale max|w| / 64).
    /// </summary>
    private static string WeightErrors(ModelProto model)
    {
        var constants = model.Graph.Initializer.ToDictionary(i => i.Name, StringComparer.Ordinal);
        var errors = new List<(double Full, double Any, double SevenBit)>();
        foreach (var node in model.Graph.Node.Where(n => n.OpType is "MatMul" or "Gemm" or "Conv" && n.Input.Count > 1))
        {
            if (!constants.TryGetValue(node.Input[1], out var weight) || weight.DataType != (int)TensorProto.Types.DataType.Float || weight.Dims.Count < 2)
            {
                continue;
            }

            var axis = node.OpType == "Conv" || (node.OpType == "Gemm" && node.Attribute.Any(a => a.Name == "transB" && a.I == 1)) ? 0 : weight.Dims.Count - 1;
            var w = TensorData.ToFloats(weight);
            var (fullValues, fullScales) = QuantizationParameters.QuantizeWeight(w, weight.Dims, axis);
            var (anyValues, anyScales) = QuantizationParameters.QuantizeWeight(w, weight.Dims, axis, axis);
            var channels = (int)weight.Dims[axis];
            var stride = (int)weight.Dims.Skip(axis + 1).Aggregate(1L, (a, b) => a * b);
            var maxima = new float[channels];
            for (var i = 0; i < w.Length; i++)
            {
                maxima[(i / stride) % channels] = Math.Max(maxima[(i / stride) % channels], Math.Abs(w[i]));
            }

            double norm = 0, full = 0, any = 0, seven = 0;
            for (var i = 0; i < w.Length; i++)
            {
                var c = (i / stride) % channels;
                var sevenScale = maxima[c] > 0 ? maxima[c] / 64 : 1;
                norm += w[i] * (double)w[i];
                full += Square(w[i] - (fullValues[i] * fullScales[c]));
                any += Square(w[i] - (anyValues[i] * anyScales[c]));
                seven += Square(w[i] - (MathF.Round(w[i] / sevenScale, MidpointRounding.ToEven) * sevenScale));
            }

            errors.Add((Math.Sqrt(full / norm), Math.Sqrt(any / norm), Math.Sqrt(seven / norm)));
        }

        return $"{errors.Average(e => e.Full):0.00000} / {errors.Average(e => e.Any):0.00000} / {errors.Average(e => e.SevenBit):0.00000} ({errors.Count} tensors)";

        static double Square(double x) => x * x;
    }

    /// <summary>
    /// Median over rounds of the any model's round median over the full-range one's, at batch 1 and 64 (one
    /// thread); the two alternate which goes first, so load on a shared machine hits both alike.
    /// </summary>
    private static string Latency(ModelProto any, ModelProto full, Dataset data, int rounds, double roundSeconds)
    {
        using var a = OnnxRunner.FromModel(any, "target any", threads: 1);
        using var f = OnnxRunner.FromModel(full, "full range", threads: 1);
        var cells = new List<string>();
        foreach (var batch in new[] { 1, 64 })
        {
            var slice = data.Select([.. Enumerable.Range(0, batch)], "latency");
            double Once(OnnxRunner runner)
            {
                var start = Stopwatch.GetTimestamp();
                runner.Run(slice, batch);
                return Stopwatch.GetElapsedTime(start).TotalSeconds;
            }

            double RoundMedian(OnnxRunner runner, int n) => Enumerable.Range(0, n).Select(_ => Once(runner)).Order().ElementAt(n / 2);
            var iterations = Math.Clamp((int)(roundSeconds / RoundMedian(a, 5)), 3, 2000);
            var ratios = new List<double>();
            for (var round = 0; round < rounds; round++)
            {
                var (x, y) = round % 2 == 0
                    ? (RoundMedian(a, iterations), RoundMedian(f, iterations))
                    : Swap(RoundMedian(f, iterations), RoundMedian(a, iterations));
                ratios.Add(x / y);
            }

            cells.Add($"{ratios.Order().ElementAt(ratios.Count / 2).ToString("0.00", Invariant)}x");
        }

        return string.Join("; ", cells);

        static (double, double) Swap(double fullTime, double anyTime) => (anyTime, fullTime);
    }

    /// <summary>The three models, the first 1000 inputs (float32, with their shape) and labels (int64), raw.</summary>
    private static void Save(string folder, string stem, ModelProto model, ModelProto full, ModelProto any, Dataset data)
    {
        Directory.CreateDirectory(folder);
        var rows = data.Select([.. Enumerable.Range(0, Math.Min(1000, data.Count))], "saved");
        OnnxModelFile.Save(model, Path.Join(folder, $"{stem}.float.onnx"));
        OnnxModelFile.Save(full, Path.Join(folder, $"{stem}.full.onnx"));
        OnnxModelFile.Save(any, Path.Join(folder, $"{stem}.any.onnx"));
        var tensor = rows.Tensors[0];
        var values = new float[rows.Count * tensor.SampleSize];
        tensor.CopyRows([.. Enumerable.Range(0, rows.Count)], values);
        File.WriteAllBytes(Path.Join(folder, $"{stem}.input.bin"), System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray());
        var inputDims = model.Graph.Input[0].Type.TensorType.Shape.Dim.Skip(1).Select(d => d.DimValue);
        File.WriteAllText(Path.Join(folder, $"{stem}.dims"), string.Join(" ", inputDims.Prepend(rows.Count)) + "\n");
        if (rows.Labels is { } labels)
        {
            File.WriteAllBytes(Path.Join(folder, $"{stem}.labels.bin"), System.Runtime.InteropServices.MemoryMarshal.AsBytes(labels.AsSpan()).ToArray());
        }
    }

    private static float[] Outputs(ModelProto model, Dataset data)
    {
        using var runner = OnnxRunner.FromModel(model, "model", threads: 1);
        return runner.Run(data, 256);
    }

    private static double Accuracy(float[] logits, Dataset data)
    {
        var width = logits.Length / data.Count;
        return (double)Enumerable.Range(0, data.Count).Count(i => ModelEvaluation.ArgMax(logits.AsSpan(i * width, width)) == data.Labels![i]) / data.Count;
    }

    /// <summary>The full Fashion-MNIST (Debian's dataset-fashion-mnist) when installed, else the committed sample slice.</summary>
    private static (Dataset Train, Dataset Test) Fashion(string repo)
    {
        var folder = Directory.Exists("/usr/share/datasets/fashion-mnist") ? "/usr/share/datasets/fashion-mnist" : Path.Join(repo, "samples", "FashionMnist", "data");
        Dataset Load(string set) => IdxReader.LoadLabelled(Path.Join(folder, $"{set}-images-idx3-ubyte.gz"), Path.Join(folder, $"{set}-labels-idx1-ubyte.gz"), 1 / 255f);
        var test = Load("t10k");
        Console.WriteLine($"Fashion-MNIST from {folder}: {test.Count} test images");
        return (Load("train"), test);
    }

    private static Dataset Floats(int count, int width)
    {
        var random = new Random(3);
        return new Dataset([.. Enumerable.Range(0, count * width).Select(_ => (float)((random.NextDouble() * 4) - 2))], [width], null, "random inputs");
    }

    private static Dataset Tokens(int count, int sequence, bool mask)
    {
        var random = new Random(11);
        var ids = new long[count * sequence];
        var attention = new long[count * sequence];
        for (var i = 0; i < count; i++)
        {
            var length = i % 2 == 0 ? sequence : Math.Max(2, sequence / 2);
            for (var t = 0; t < length; t++)
            {
                ids[(i * sequence) + t] = random.Next(1, 100);
                attention[(i * sequence) + t] = 1;
            }
        }

        DataTensor[] tensors = mask
            ? [DataTensor.FromInt64("input_ids", ids, [sequence]), DataTensor.FromInt64("attention_mask", attention, [sequence])]
            : [DataTensor.FromInt64("input_ids", ids, [sequence])];
        return new Dataset(tensors, null, "random token ids");
    }

    private static string CpuFlags() =>
        File.Exists("/proc/cpuinfo")
            ? string.Join(" ", File.ReadLines("/proc/cpuinfo").First(l => l.StartsWith("flags", StringComparison.Ordinal)).Split(':', 2)[1]
                .Split(' ', StringSplitOptions.RemoveEmptyEntries).Where(f => f is "avx2" or "avx_vnni" || f.StartsWith("avx512", StringComparison.Ordinal)).Order(StringComparer.Ordinal))
            : "unknown";
}
