using System.Diagnostics;
using System.Globalization;
using ModelCompression.Architectures;
using ModelCompression.Data;
using ModelCompression.Diagnostics;
using ModelCompression.Inference;
using ModelCompression.Onnx.Proto;
using ModelCompression.Torch.Graph;
using ModelCompression.Torch.Native;
using ModelCompression.Torch.Training;
using Microsoft.ML.OnnxRuntime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ModelCompression.Bench;

/// <summary>
/// Training throughput of imported ONNX graphs (TrainableGraph) against the same architecture written by hand
/// as a TorchSharp module, on the same data, batch, threads and training loop; and resident memory per epoch
/// of a 20-epoch run through ClassificationTrainer.
/// Usage: ModelCompression.Bench [--students (see <see cref="StudentBench"/>)] [--decoder (see <see cref="DecoderThroughput"/>)] [--learn-math (see <see cref="LearnMath"/>)] [--teacher [--teacher-batch N]] [--reps N] [--samples N] [--cnn-reps N] [--cnn-samples N] [--memory-epochs N] [--threads N] [--data DIR]
/// </summary>
internal static class Program
{
    private const int BatchSize = 128;

    private static int Main(string[] args)
    {
        // First: ONNX Runtime reads its telemetry opt-out once, when it starts.
        ModelCompression.Inference.OnnxRuntimeEnvironment.EnsureTelemetryOff();
        if (args.Contains(StudentBench.MemoryFlag))
        {
            return StudentBench.Memory(args);
        }

        if (args.Contains(DecoderThroughput.Flag))
        {
            return DecoderThroughput.Run(args);
        }

        if (args.Contains(LearnMath.Flag))
        {
            return LearnMath.Run(args);
        }

        if (args.Contains("--students"))
        {
            return StudentBench.Run(args);
        }

        var reps = IntArg(args, "--reps", 21);
        var cnnSamples = IntArg(args, "--cnn-samples", 1500);
        var cnnReps = IntArg(args, "--cnn-reps", 5);
        var samples = IntArg(args, "--samples", 6000);
        var memoryEpochs = IntArg(args, "--memory-epochs", 20);
        var threads = IntArg(args, "--threads", Environment.ProcessorCount);
        var dataFolder = StringArg(args, "--data") ?? FindData();

        TorchNativeLoader.EnsureLoaded();
        torch.set_num_threads(threads);
        var train = IdxReader.LoadLabelled(
            Path.Join(dataFolder, "train-images-idx3-ubyte.gz"), Path.Join(dataFolder, "train-labels-idx1-ubyte.gz"), 1f / 255);
        train = train.Select([.. Enumerable.Range(0, Math.Min(samples, train.Count))], "bench");
        if (args.Contains("--teacher"))
        {
            TeacherThroughput(train, Path.Join(dataFolder, "..", "teacher", "teacher.onnx"), IntArg(args, "--teacher-batch", 256), reps);
            return 0;
        }
        var labels = train.Labels!;

        Console.WriteLine($"# ModelCompression training benchmark, {DateTime.UtcNow:yyyy-MM-dd}");
        Console.WriteLine($"machine: {Environment.ProcessorCount} logical CPUs, {CpuModel()}; torch threads {torch.get_num_threads()}");
        Console.WriteLine($"data: {train.Count} Fashion-MNIST samples, batch {BatchSize}, Adam 1e-3, one epoch per measurement, models alternating, {reps} pairs after one warm-up pair");
        Console.WriteLine();
        Console.WriteLine("| model | imported samples/s (median) | hand-written samples/s (median) | imported / hand-written (median of pairs) |");
        Console.WriteLine("|---|---|---|---|");

        var mlp = MlpBuilder.Build(new MlpOptions { Hidden = [256], Seed = 1 }, new ArchitectureInputs([784], 10));
        Compare("MLP 784-256-10", mlp, HandMlp, train.Inputs, [784], labels, reps);

        TrainerThroughput(mlp, train, reps);

        ModelProto? cnn = null;
        try
        {
            cnn = CnnBuilder.Build(new CnnOptions { Channels = [16, 32], BatchNorm = true, Head = CnnHead.Gap, Seed = 1 }, new ArchitectureInputs([28, 28], 10));
            using var probe = TrainableGraph.Import(cnn);
        }
        catch (CompressionException e)
        {
            Console.WriteLine($"| CNN | not importable: {e.Message.Split('\n')[0]} | | |");
            cnn = null;
        }

        if (cnn is not null)
        {
            // Convolutions on the CPU are ~100x slower per sample than the MLP: fewer samples and repetitions.
            var count = Math.Min(cnnSamples, train.Count);
            Compare(
                $"CNN conv16-bn-relu-maxpool, conv32-bn-relu-maxpool, gap, fc10 ({count} samples, {cnnReps} reps)",
                cnn, HandCnn, train.Inputs[..(count * 784)], [28, 28], labels[..count], cnnReps);
        }

        Console.WriteLine();
        Memory(mlp, train, memoryEpochs);
        return 0;
    }

    /// <summary>Alternates one epoch of each model; the ratio is the median of the per-pair ratios.</summary>
    private static void Compare(string name, ModelProto model, Func<nn.Module<Tensor, Tensor>> hand, float[] inputs, long[] sampleShape, long[] labels, int reps)
    {
        using var imported = TrainableGraph.Import(model);
        using var written = hand();
        // Our optimizer for both: TorchSharp's pass temporary Scalars to native code and crash at random.
        using var importedOptimizer = new ParameterOptimizer(OptimizerKind.Adam, [.. imported.parameters()], 1e-3, 0, 0);
        using var writtenOptimizer = new ParameterOptimizer(OptimizerKind.Adam, [.. written.parameters()], 1e-3, 0, 0);
        var (importedRates, writtenRates) = AlternatingPairs(
            reps,
            rep => Epoch(imported.Forward, imported, importedOptimizer, inputs, sampleShape, labels, rep),
            rep => Epoch(written.forward, written, writtenOptimizer, inputs, sampleShape, labels, rep));
        var ratios = importedRates.Zip(writtenRates, (x, y) => x / y).ToList();
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"| {name} | {Median(importedRates):0} | {Median(writtenRates):0} | {Median(ratios):0.000} (min {ratios.Min():0.000}, max {ratios.Max():0.000}) |"));
    }

    /// <summary>One epoch of the same loop for both models: shuffled batches from arrays, cross-entropy, Adam. Returns samples/s.</summary>
    private static double Epoch(Func<Tensor, Tensor> forward, nn.Module module, ParameterOptimizer optimizer, float[] inputs, long[] sampleShape, long[] labels, int seed)
    {
        var count = labels.Length;
        var sampleSize = (int)sampleShape.Aggregate(1L, (x, y) => x * y);
        var order = Enumerable.Range(0, count).ToArray();
        new Random(seed).Shuffle(order);
        var batch = new float[BatchSize * sampleSize];
        var batchLabels = new long[BatchSize];
        module.train();
        var clock = Stopwatch.StartNew();
        for (var start = 0; start < count; start += BatchSize)
        {
            var size = Math.Min(BatchSize, count - start);
            for (var i = 0; i < size; i++)
            {
                Array.Copy(inputs, (long)order[start + i] * sampleSize, batch, (long)i * sampleSize, sampleSize);
                batchLabels[i] = labels[order[start + i]];
            }

            using var scope = torch.NewDisposeScope();
            var x = torch.tensor(batch.AsSpan(0, size * sampleSize).ToArray(), [size, .. sampleShape]);
            var y = torch.tensor(batchLabels.AsSpan(0, size).ToArray(), [size]);
            optimizer.ZeroGrad();
            var loss = nn.functional.cross_entropy(forward(x), y);
            loss.backward();
            optimizer.Step();
        }

        return count / clock.Elapsed.TotalSeconds;
    }

    private static nn.Module<Tensor, Tensor> HandMlp() => nn.Sequential(
        ("fc1", nn.Linear(784, 256)),
        ("relu", nn.ReLU()),
        ("fc2", nn.Linear(256, 10)));

    /// <summary>
    /// The two blocks of the built-in CNN written by hand (784 pixels as a 1x28x28 image, conv16 and conv32 with
    /// BatchNorm, ReLU and 2x2 max pooling), for the heads the benchmarks put after them.
    /// </summary>
    internal static (string, nn.Module<Tensor, Tensor>)[] HandConvBlocks() =>
    [
        ("image", nn.Unflatten(1, [1, 28])),
        ("conv1", nn.Conv2d(1, 16, 3, padding: 1, bias: false)),
        ("bn1", nn.BatchNorm2d(16)),
        ("relu1", nn.ReLU()),
        ("pool1", nn.MaxPool2d(2, 2)),
        ("conv2", nn.Conv2d(16, 32, 3, padding: 1, bias: false)),
        ("bn2", nn.BatchNorm2d(32)),
        ("relu2", nn.ReLU()),
        ("pool2", nn.MaxPool2d(2, 2)),
    ];

    private static nn.Module<Tensor, Tensor> HandCnn() => nn.Sequential(
    [
        .. HandConvBlocks(),
        ("gap", nn.AdaptiveAvgPool2d(1)),
        ("flatten", nn.Flatten()),
        ("fc", nn.Linear(32, 10)),
    ]);

    /// <summary>
    /// The teacher over the training data through our OnnxRunner (what distillation's cached logits come from) vs a
    /// bare ONNX Runtime loop over the same batches with the same session options and preallocated buffers.
    /// </summary>
    private static void TeacherThroughput(Dataset data, string teacherPath, int batch, int reps)
    {
        using var runner = new OnnxRunner(teacherPath);
        using var options = new SessionOptions { IntraOpNumThreads = Environment.ProcessorCount, GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
        using var bare = new InferenceSession(teacherPath, options);
        var (inputName, metadata) = bare.InputMetadata.First();
        var outputName = bare.OutputMetadata.Keys.First();
        long[] sampleShape = [.. metadata.Dimensions.Skip(1).Select(d => (long)d)];
        var inputs = data.Inputs;
        var outputs = new float[data.Count * 10];
        double Ours()
        {
            var clock = Stopwatch.StartNew();
            runner.Run(data, batch);
            return data.Count / clock.Elapsed.TotalSeconds;
        }

        double Bare()
        {
            var clock = Stopwatch.StartNew();
            var buffer = new float[batch * data.SampleSize];
            using var runOptions = new RunOptions();
            for (var start = 0; start < data.Count; start += batch)
            {
                var size = Math.Min(batch, data.Count - start);
                var slice = size == batch ? buffer : new float[size * data.SampleSize];
                Array.Copy(inputs, (long)start * data.SampleSize, slice, 0, (long)size * data.SampleSize);
                using var value = OrtValue.CreateTensorValueFromMemory(slice, [size, .. sampleShape]);
                using var results = bare.Run(runOptions, [inputName], [value], [outputName]);
                results[0].GetTensorDataAsSpan<float>().CopyTo(outputs.AsSpan(start * 10, size * 10));
            }

            return data.Count / clock.Elapsed.TotalSeconds;
        }

        Ours();
        Bare();
        var ratios = new List<double>();
        var ours = new List<double>();
        var plain = new List<double>();
        for (var rep = 0; rep < reps; rep++)
        {
            // Alternate which goes first, so load changes hit both alike.
            double a, b;
            if (rep % 2 == 0)
            {
                a = Ours();
                b = Bare();
            }
            else
            {
                b = Bare();
                a = Ours();
            }

            ours.Add(a);
            plain.Add(b);
            ratios.Add(a / b);
        }

        Console.WriteLine($"Teacher inference ({Path.GetFileName(teacherPath)}, {data.Count} samples, batch {batch}, {Environment.ProcessorCount} ORT threads, {reps} alternating pairs)");
        Console.WriteLine();
        Console.WriteLine("| runner | samples/s (median) |");
        Console.WriteLine("|---|---|");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| OnnxRunner.Run | {Median(ours):0} |"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| bare InferenceSession loop | {Median(plain):0} |"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| ratio (median of pairs) | {Median(ratios):0.000} (min {ratios.Min():0.000}, max {ratios.Max():0.000}) |"));
    }

    /// <summary>The same imported MLP through ClassificationTrainer (plain Adam, no validation or checkpoints): the trainer's own overhead.</summary>
    private static void TrainerThroughput(ModelProto model, Dataset train, int reps)
    {
        var data = new TrainingSet(train.Inputs, [784], train.Labels, null, 10);
        using var graph = TrainableGraph.Import(model);
        var rates = new List<double>();
        for (var rep = 0; rep <= reps; rep++)
        {
            var result = ClassificationTrainer.Train(graph, data, new DistillationLoss(0, 1), new TrainingOptions(1, BatchSize, 1e-3, rep));
            if (rep > 0)
            {
                rates.Add(data.Count / result.Duration.TotalSeconds);
            }
        }

        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"| MLP 784-256-10 through ClassificationTrainer (Adam, one epoch per call) | {Median(rates):0} | | |"));
    }

    /// <summary>RSS and live tensors at the first step of every epoch of one ClassificationTrainer run.</summary>
    private static void Memory(ModelProto model, Dataset train, int epochs)
    {
        var (data, validation) = new TrainingSet(train.Inputs, [784], train.Labels, null, 10).SplitRandom(0.1, seed: 1);
        var checkpoints = Path.Join(Path.GetTempPath(), $"mc-bench-{Environment.ProcessId}");
        var rows = new List<(int Epoch, long RssKb, long RetainedKb, long Tensors, double Seconds)>();
        var lastEpoch = 0;
        var clock = Stopwatch.StartNew();
        var progress = new Callback(p =>
        {
            if (p.Epoch != lastEpoch)
            {
                lastEpoch = p.Epoch;
                var rss = RssKb();
                // What survives a full compacting collection: garbage batch arrays (large-object heap) make the
                // plain RSS saw-tooth; a leak shows as growth of this column and of the live tensors.
                GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
                GC.WaitForPendingFinalizers();
                rows.Add((p.Epoch, rss, RssKb(), torch.Tensor.TotalCount, clock.Elapsed.TotalSeconds));
            }
        });
        using var graph = TrainableGraph.Import(model);
        var options = new TrainingOptions(epochs, BatchSize, 1e-3, 1)
        {
            Optimizer = OptimizerKind.AdamW,
            WeightDecay = 1e-2,
            Schedule = ScheduleKind.Cosine,
            WarmupFraction = 0.05,
            ClipGradNorm = 5,
            CheckpointDirectory = checkpoints,
        };
        var rssBefore = RssKb();
        var result = ClassificationTrainer.Train(graph, data, new DistillationLoss(0, 1), options, validation, progress);
        Directory.Delete(checkpoints, recursive: true);

        Console.WriteLine($"Memory: MLP 784-256-10 through ClassificationTrainer, {epochs} epochs of {data.Count} samples (AdamW, cosine, clipping, validation on {validation.Count}, checkpoint every epoch); RSS before training {rssBefore / 1024.0:0.0} MiB");
        Console.WriteLine();
        Console.WriteLine("| epoch | RSS MiB (at its first step) | RSS MiB after a full GC | live tensors | seconds |");
        Console.WriteLine("|---|---|---|---|---|");
        foreach (var (epoch, rss, retained, tensors, seconds) in rows)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {epoch} | {rss / 1024.0:0.0} | {retained / 1024.0:0.0} | {tensors} | {seconds:0.0} |"));
        }

        var tail = rows.Skip(2).Select(r => r.RetainedKb / 1024.0).ToList();
        var slope = Slope(tail);
        Console.WriteLine();
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"RSS after a full GC, epochs 3-{epochs}: min {tail.Min():0.0} MiB, max {tail.Max():0.0} MiB, epoch {epochs} - epoch 3 = {tail[^1] - tail[0]:+0.0;-0.0} MiB, least-squares trend {slope:+0.00;-0.00} MiB per epoch; best validation accuracy {result.BestValidationAccuracy:0.0000} at epoch {result.BestEpoch}; {data.Count * epochs / result.Duration.TotalSeconds:0} samples/s through the trainer"));
    }

    /// <summary>Least-squares slope of values over their index.</summary>
    private static double Slope(IReadOnlyList<double> values)
    {
        var meanX = (values.Count - 1) / 2.0;
        var meanY = values.Average();
        var covariance = values.Select((y, x) => (x - meanX) * (y - meanY)).Sum();
        var variance = values.Select((_, x) => (x - meanX) * (x - meanX)).Sum();
        return variance == 0 ? 0 : covariance / variance;
    }

    private static long RssKb()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
            }
        }

        return -1;
    }

    internal static string CpuModel() =>
        File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown CPU";

    /// <summary>
    /// Runs <paramref name="a"/> and <paramref name="b"/> once per rep (rep 0 is a warm-up pair, not kept), alternating
    /// which goes first so that drift (thermal, other processes' load) hits both alike; returns each side's rates.
    /// </summary>
    internal static (List<double> A, List<double> B) AlternatingPairs(int reps, Func<int, double> a, Func<int, double> b)
    {
        var (ratesA, ratesB) = (new List<double>(), new List<double>());
        for (var rep = 0; rep <= reps; rep++)
        {
            double x, y;
            if (rep % 2 == 0)
            {
                x = a(rep);
                y = b(rep);
            }
            else
            {
                y = b(rep);
                x = a(rep);
            }

            if (rep > 0)
            {
                ratesA.Add(x);
                ratesB.Add(y);
            }
        }

        return (ratesA, ratesB);
    }

    internal static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }

    internal static int IntArg(string[] args, string name, int fallback) =>
        StringArg(args, name) is { } text ? int.Parse(text, CultureInfo.InvariantCulture) : fallback;

    internal static string? StringArg(string[] args, string name)
    {
        var index = Array.IndexOf(args, name);
        return index >= 0 && index + 1 < args.Length ? args[index + 1] : null;
    }

    internal static string FindData() => FindUp(Path.Join("samples", "FashionMnist", "data"));

    /// <summary>The first <paramref name="relativePath"/> (file or folder) found in the program's folder or above it.</summary>
    internal static string FindUp(string relativePath)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Join(dir.FullName, relativePath);
            if (Directory.Exists(candidate) || File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new FileNotFoundException($"No {relativePath} above the program (for the Fashion-MNIST data: pass --data DIR).");
    }

    private sealed class Callback(Action<TrainingProgress> action) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => action(value);
    }
}
