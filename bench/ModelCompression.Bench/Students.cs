using System.Diagnostics;
using System.Globalization;
using ModelCompression.Architectures;
using ModelCompression.Data;
using ModelCompression.Inference;
using ModelCompression.Onnx.Proto;
using ModelCompression.Torch;
using ModelCompression.Torch.Graph;
using ModelCompression.Torch.Native;
using ModelCompression.Torch.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ModelCompression.Bench;

/// <summary>
/// The students the engine trains, distilled (alpha 0.5, T 4) through the engine's own
/// <see cref="ClassificationTrainer"/> against the same student written by hand as a TorchSharp module and trained
/// by a bare loop (the same loss written out, our <see cref="ParameterOptimizer"/>'s Adam): training throughput as
/// the median of alternating one-epoch pairs, and peak resident memory (VmHWM) of each side in a process of its own.
/// Usage: ModelCompression.Bench --students [--only mlp64,mlp256,cnn,transformer] [--reps N] [--cnn-reps N] [--text-reps N]
/// [--samples N] [--cnn-samples N] [--text-samples N] [--text-activation gelu|relu] [--memory-epochs N] [--threads N] [--data DIR]
/// [--profile]: instead, milliseconds per step of each phase (batch, forward, loss, backward, optimizer, ...) on both sides.
/// </summary>
internal static class StudentBench
{
    /// <summary>The child mode: one student, one side, one memory measurement.</summary>
    public const string MemoryFlag = "--student-memory";

    private const int BatchSize = 128;
    private const double LearningRate = 1e-3;
    private const int SequenceLength = 64;
    private const string MemoryLinePrefix = "student-memory:";

    private static readonly DistillationLoss Loss = new(Alpha: 0.5, Temperature: 4);

    private static readonly string[] StudentKeys = ["mlp64", "mlp256", "cnn", "transformer"];

    /// <summary>Throughput pairs in this process, then two child processes (engine, bare loop) per student for memory.</summary>
    public static int Run(string[] args)
    {
        var threads = Program.IntArg(args, "--threads", 2);
        var memoryEpochs = Program.IntArg(args, "--memory-epochs", 2);
        var only = Program.StringArg(args, "--only")?.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries) ?? StudentKeys;
        TorchNativeLoader.EnsureLoaded();
        torch.set_num_threads(threads);

        var total = Stopwatch.StartNew();
        Console.WriteLine($"# Student training benchmark, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        Console.WriteLine($"machine: {Environment.ProcessorCount} logical CPUs, {Program.CpuModel()}; torch threads {torch.get_num_threads()}; load average at start {LoadAverage()}");
        if (args.Contains("--profile"))
        {
            foreach (var key in only)
            {
                using var student = Prepare(key, args);
                Profile(student);
            }

            Console.WriteLine($"wall time {total.Elapsed.TotalSeconds:0} s; load average at the end {LoadAverage()}");
            return 0;
        }

        Console.WriteLine($"loss: distillation alpha {Loss.Alpha.ToString(CultureInfo.InvariantCulture)}, T {Loss.Temperature.ToString(CultureInfo.InvariantCulture)}; Adam {LearningRate.ToString(CultureInfo.InvariantCulture)}, batch {BatchSize}; one epoch per measurement, engine and bare loop alternating (which goes first alternates), one warm-up pair");
        Console.WriteLine();
        Console.WriteLine("| student | data | teacher logits | pairs | ClassificationTrainer samples/s (median) | bare loop samples/s (median) | trainer / bare (median of pairs) |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        foreach (var key in only)
        {
            using var student = Prepare(key, args);
            Throughput(student);
        }

        Console.WriteLine();
        Console.WriteLine($"Peak memory: each cell a fresh process (this executable, {MemoryFlag}): torch loaded and one op run (baseline), then the data read, teacher logits made, the model built (the bare loop: also its optimizer and arrays; the trainer makes its Adam state inside Train); VmHWM reset (/proc/self/clear_refs 5); {memoryEpochs} epochs trained; VmHWM read.");
        Console.WriteLine();
        Console.WriteLine("| student | side | baseline RSS MiB (torch loaded) | RSS MiB ready to train | peak RSS MiB while training | peak - baseline MiB | peak - ready MiB | peak of the set-up before training MiB |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|");
        foreach (var key in only)
        {
            foreach (var side in new[] { "engine", "bare" })
            {
                var result = RunMemoryChild(key, side, memoryEpochs, args);
                Console.WriteLine(string.Create(
                    CultureInfo.InvariantCulture,
                    $"| {key} | {(side == "engine" ? "ClassificationTrainer" : "bare loop")} | {Mib(result.BaselineKb)} | {Mib(result.ReadyKb)} | {Mib(result.TrainingPeakKb)} | {Mib(result.TrainingPeakKb - result.BaselineKb)} | {Mib(result.TrainingPeakKb - result.ReadyKb)} | {Mib(result.SetUpPeakKb)} |"));
            }
        }

        Console.WriteLine();
        Console.WriteLine($"wall time {total.Elapsed.TotalSeconds:0} s; load average at the end {LoadAverage()}");
        return 0;
    }

    /// <summary>The child: prints one line with the four memory readings of one student and side.</summary>
    public static int Memory(string[] args)
    {
        var key = Program.StringArg(args, MemoryFlag) ?? throw new ArgumentException($"{MemoryFlag} needs a student.");
        var side = Program.StringArg(args, "--side") ?? "engine";
        if (side is not ("engine" or "bare"))
        {
            throw new ArgumentException($"--side is engine or bare, not '{side}'.");
        }

        var epochs = Program.IntArg(args, "--memory-epochs", 2);
        TorchNativeLoader.EnsureLoaded();
        torch.set_num_threads(Program.IntArg(args, "--threads", 2));
        using (var probe = torch.ones(4, 4))
        {
            probe.matmul(probe).Dispose();
        }

        var baseline = Status("VmRSS:");
        using var student = Prepare(key, args);
        var clock = Stopwatch.StartNew();
        if (side == "engine")
        {
            using var graph = TrainableGraph.Import(student.Model);
            var ready = Status("VmRSS:");
            var setUpPeak = ResetPeak();
            ClassificationTrainer.Train(graph, student.EngineData, Loss, new TrainingOptions(epochs, BatchSize, LearningRate, 1));
            Report(Status("VmHWM:"), ready, setUpPeak);
        }
        else
        {
            var hand = student.Hand();
            using var module = hand.Module;
            using var optimizer = new ParameterOptimizer(OptimizerKind.Adam, [.. module.parameters()], LearningRate, 0, 0);
            // Its arrays are data, made before training as the engine's are: not part of the training peak.
            _ = student.Bare.Value;
            var ready = Status("VmRSS:");
            var setUpPeak = ResetPeak();
            for (var epoch = 1; epoch <= epochs; epoch++)
            {
                BareEpoch(hand, optimizer, student, epoch);
            }

            Report(Status("VmHWM:"), ready, setUpPeak);
        }

        return 0;

        void Report(long peak, long ready, long setUpPeak) => Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"{MemoryLinePrefix} {baseline} {ready} {peak} {setUpPeak} {clock.Elapsed.TotalSeconds:0.0}"));
    }

    /// <summary>Alternates one engine epoch and one bare epoch; the ratio is the median of per-pair ratios.</summary>
    private static void Throughput(Student student)
    {
        using var graph = TrainableGraph.Import(student.Model);
        var hand = student.Hand();
        using var module = hand.Module;
        using var optimizer = new ParameterOptimizer(OptimizerKind.Adam, [.. module.parameters()], LearningRate, 0, 0);
        var count = student.EngineData.Count;
        double Engine(int rep)
        {
            // Timed around the whole call: the trainer's per-run set-up (optimizer state, fingerprint) is its cost too.
            var clock = Stopwatch.StartNew();
            ClassificationTrainer.Train(graph, student.EngineData, Loss, new TrainingOptions(1, BatchSize, LearningRate, rep));
            return count / clock.Elapsed.TotalSeconds;
        }

        double Bare(int rep) => count / BareEpoch(hand, optimizer, student, rep).TotalSeconds;

        var (engineRates, bareRates) = Program.AlternatingPairs(student.Reps, Engine, Bare);
        var ratios = engineRates.Zip(bareRates, (x, y) => x / y).ToList();
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"| {student.Name} | {student.DataDescription} | {student.TeacherDescription} | {student.Reps} | {Program.Median(engineRates):0} | {Program.Median(bareRates):0} | {Program.Median(ratios):0.000} (min {ratios.Min():0.000}, max {ratios.Max():0.000}) |"));
    }

    /// <summary>
    /// Where a step's time goes on each side: alternating epochs as for throughput, each phase's wall time summed
    /// over all steps of all pairs (warm-up pair left out), as milliseconds per step.
    /// </summary>
    private static void Profile(Student student)
    {
        using var graph = TrainableGraph.Import(student.Model);
        var hand = student.Hand();
        using var module = hand.Module;
        using var optimizer = new ParameterOptimizer(OptimizerKind.Adam, [.. module.parameters()], LearningRate, 0, 0);
        var (engine, bare) = (new StepProfile(), new StepProfile());
        var (engineSeconds, bareSeconds) = (0.0, 0.0);
        Program.AlternatingPairs(
            student.Reps,
            rep =>
            {
                var clock = Stopwatch.StartNew();
                StepProfile.Current = rep == 0 ? null : engine;
                try
                {
                    ClassificationTrainer.Train(graph, student.EngineData, Loss, new TrainingOptions(1, BatchSize, LearningRate, rep));
                }
                finally
                {
                    StepProfile.Current = null;
                }

                engineSeconds += rep == 0 ? 0 : clock.Elapsed.TotalSeconds;
                return 0;
            },
            rep =>
            {
                var clock = Stopwatch.StartNew();
                BareEpoch(hand, optimizer, student, rep, rep == 0 ? null : bare);
                bareSeconds += rep == 0 ? 0 : clock.Elapsed.TotalSeconds;
                return 0;
            });

        Console.WriteLine($"## Profile: {student.Name}, {student.Reps} pairs, {engine.Steps} steps per side, load average {LoadAverage()}");
        Console.WriteLine();
        Console.WriteLine("ms per step; wall, CPU of the training thread, CPU of the whole process; trainer / bare loop (difference)");
        Console.WriteLine();
        Console.WriteLine("| phase | wall | thread CPU | process CPU |");
        Console.WriteLine("|---|---:|---:|---:|");
        var sums = new double[6];
        foreach (var phase in Enum.GetValues<StepPhase>())
        {
            double[] row =
            [
                engine.Seconds(phase), bare.Seconds(phase), engine.CpuSeconds(phase), bare.CpuSeconds(phase),
                engine.ProcessCpuSeconds(phase), bare.ProcessCpuSeconds(phase),
            ];
            for (var i = 0; i < row.Length; i++)
            {
                row[i] = 1000 * row[i] / (i % 2 == 0 ? engine.Steps : bare.Steps);
                sums[i] += row[i];
            }

            Console.WriteLine($"| {phase} | {Cell(row, 0)} | {Cell(row, 2)} | {Cell(row, 4)} |");
        }

        (sums[0], sums[1]) = (1000 * engineSeconds / engine.Steps, 1000 * bareSeconds / bare.Steps);
        Console.WriteLine($"| whole epoch call (wall), sum of phases (CPU) | {Cell(sums, 0)} | {Cell(sums, 2)} | {Cell(sums, 4)} |");
        Console.WriteLine();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"tensors made per step (the step's dispose scope): trainer {(double)engine.Tensors / engine.Steps:0.0}, bare loop {(double)bare.Tensors / bare.Steps:0.0}"));

        static string Cell(double[] row, int at) =>
            string.Create(CultureInfo.InvariantCulture, $"{row[at]:0.000} / {row[at + 1]:0.000} ({row[at] - row[at + 1]:+0.000;-0.000})");
        Console.WriteLine();
    }

    /// <summary>
    /// One epoch of the plain loop a TorchSharp user would write: shuffled rows gathered from arrays, the module's
    /// forward, alpha T² KL(teacher || student) + (1 - alpha) CE written out, Adam. Returns the time it took.
    /// </summary>
    private static TimeSpan BareEpoch(HandStudent hand, ParameterOptimizer optimizer, Student student, int seed, StepProfile? profile = null)
    {
        profile?.Start();
        var bare = student.Bare.Value;
        var count = bare.Labels.Length;
        var classes = student.Classes;
        var order = Enumerable.Range(0, count).ToArray();
        new Random(seed).Shuffle(order);
        var floatBatches = bare.Inputs.Select(i => i.Floats is null ? null : new float[BatchSize * i.SampleSize]).ToArray();
        var longBatches = bare.Inputs.Select(i => i.Longs is null ? null : new long[BatchSize * i.SampleSize]).ToArray();
        var labels = new long[BatchSize];
        var teacher = new float[BatchSize * classes];
        using var alpha = Loss.Alpha.ToScalar();
        using var oneMinusAlpha = (1 - Loss.Alpha).ToScalar();
        using var inverseTemperature = (1 / Loss.Temperature).ToScalar();
        using var temperatureSquared = (Loss.Temperature * Loss.Temperature).ToScalar();
        hand.Module.train();
        var clock = Stopwatch.StartNew();
        profile?.Mark(StepPhase.SetUp);
        for (var start = 0; start < count; start += BatchSize)
        {
            profile?.Mark(StepPhase.Other);
            var size = Math.Min(BatchSize, count - start);
            for (var i = 0; i < size; i++)
            {
                var row = order[start + i];
                for (var k = 0; k < bare.Inputs.Count; k++)
                {
                    var input = bare.Inputs[k];
                    if (input.Floats is { } floats)
                    {
                        Array.Copy(floats, (long)row * input.SampleSize, floatBatches[k]!, (long)i * input.SampleSize, input.SampleSize);
                    }
                    else
                    {
                        Array.Copy(input.Longs!, (long)row * input.SampleSize, longBatches[k]!, (long)i * input.SampleSize, input.SampleSize);
                    }
                }

                labels[i] = bare.Labels[row];
                Array.Copy(student.EngineData.TeacherLogits!, (long)row * classes, teacher, (long)i * classes, classes);
            }

            // Disposed explicitly, not by using, so the profile can charge freeing the step's tensors to Finish.
            var scope = torch.NewDisposeScope();
            var inputs = new Tensor[bare.Inputs.Count];
            for (var k = 0; k < inputs.Length; k++)
            {
                var input = bare.Inputs[k];
                long[] shape = [size, .. input.SampleShape];
                inputs[k] = input.Floats is null
                    ? torch.tensor(longBatches[k].AsSpan(0, size * input.SampleSize).ToArray(), shape)
                    : torch.tensor(floatBatches[k].AsSpan(0, size * input.SampleSize).ToArray(), shape);
            }

            var y = torch.tensor(labels.AsSpan(0, size).ToArray(), [size]);
            var t = torch.tensor(teacher.AsSpan(0, size * classes).ToArray(), [size, classes]);
            profile?.Mark(StepPhase.Batch);
            optimizer.ZeroGrad();
            profile?.Mark(StepPhase.Optimizer);
            var logits = hand.Forward(inputs);
            profile?.Mark(StepPhase.Forward);
            var teacherLogProbs = nn.functional.log_softmax(t.mul(inverseTemperature), 1);
            var studentLogProbs = nn.functional.log_softmax(logits.mul(inverseTemperature), 1);
            var kl = (teacherLogProbs.exp() * (teacherLogProbs - studentLogProbs)).sum(1).mean().mul(temperatureSquared);
            var ce = nn.functional.cross_entropy(logits, y);
            var loss = kl.mul(alpha).Plus(ce.mul(oneMinusAlpha));
            profile?.Mark(StepPhase.Loss);
            loss.backward();
            profile?.Mark(StepPhase.Backward);
            optimizer.Step();
            profile?.Mark(StepPhase.Optimizer);
            profile?.CountTensors(scope.DisposablesCount);
            scope.Dispose();
            profile?.Mark(StepPhase.Finish);
        }

        profile?.Mark(StepPhase.Other);
        return clock.Elapsed;
    }

    /// <summary>Builds one student with its data, the engine's training set and the bare loop's arrays.</summary>
    private static Student Prepare(string key, string[] args) => key switch
    {
        "mlp64" => ImageStudent(
            "MLP 784-64-10",
            MlpBuilder.Build(new MlpOptions { Hidden = [64], Seed = 1 }, new ArchitectureInputs([784], 10)),
            [784],
            () => Sequential(nn.Sequential(("fc1", nn.Linear(784, 64)), ("relu", nn.ReLU()), ("fc2", nn.Linear(64, 10)))),
            Program.IntArg(args, "--samples", 6000),
            Program.IntArg(args, "--reps", 21),
            args),
        "mlp256" => ImageStudent(
            "MLP 784-256-10",
            MlpBuilder.Build(new MlpOptions { Hidden = [256], Seed = 1 }, new ArchitectureInputs([784], 10)),
            [784],
            () => Sequential(nn.Sequential(("fc1", nn.Linear(784, 256)), ("relu", nn.ReLU()), ("fc2", nn.Linear(256, 10)))),
            Program.IntArg(args, "--samples", 6000),
            Program.IntArg(args, "--reps", 21),
            args),
        // bench/DistillParity/teacher-cnn.compress.yaml's CNN: conv16-bn-relu-maxpool, conv32-bn-relu-maxpool, flatten,
        // dropout 0.25, fc128-relu, fc10.
        "cnn" => ImageStudent(
            "CNN conv16-bn-maxpool, conv32-bn-maxpool, flatten, dropout 0.25, fc128, fc10",
            CnnBuilder.Build(
                new CnnOptions { Channels = [16, 32], BatchNorm = true, Pooling = "max", Head = CnnHead.Flatten, HeadHidden = 128, Dropout = 0.25, Seed = 1 },
                new ArchitectureInputs([28, 28], 10)),
            [28, 28],
            HandCnn,
            Program.IntArg(args, "--cnn-samples", 1500),
            Program.IntArg(args, "--cnn-reps", 9),
            args),
        "transformer" => TextStudent(
            Program.IntArg(args, "--text-samples", 1280),
            Program.IntArg(args, "--text-reps", 9),
            Program.StringArg(args, "--text-activation") == "relu" ? Activation.Relu : Activation.Gelu),
        _ => throw new ArgumentException($"Unknown student '{key}'; known: {string.Join(", ", StudentKeys)}."),
    };

    /// <summary>The Fashion-MNIST slice with the sample teacher's real logits (OnnxRunner, what distillation caches).</summary>
    private static Student ImageStudent(string name, ModelProto model, long[] sampleShape, Func<HandStudent> hand, int samples, int reps, string[] args)
    {
        var folder = Program.StringArg(args, "--data") ?? Program.FindData();
        var all = IdxReader.LoadLabelled(
            Path.Join(folder, "train-images-idx3-ubyte.gz"), Path.Join(folder, "train-labels-idx1-ubyte.gz"), 1f / 255);
        var data = all.Select([.. Enumerable.Range(0, Math.Min(samples, all.Count))], "bench");
        var teacherPath = Path.GetFullPath(Path.Join(folder, "..", "teacher", "teacher.onnx"));
        float[] teacherLogits;
        using (var runner = new OnnxRunner(teacherPath))
        {
            teacherLogits = runner.Run(data, 256);
        }

        var input = data.Tensors[0];
        var engine = data.ToTrainingSet([new InputBinding(input.Name, input.Name, DataElementType.Float32, sampleShape)], teacherLogits, 10);
        var bare = new Lazy<BareData>(() => new BareData([new BareInput(data.Inputs, null, sampleShape)], data.Labels!));
        return new Student(
            name, model, engine, bare, 10, hand, reps,
            $"Fashion-MNIST slice, {data.Count} images",
            $"real: samples/FashionMnist/teacher/teacher.onnx via OnnxRunner",
            [all, data]);
    }

    /// <summary>
    /// The SpamAssassin slice (tests/fixtures/text/spam.jsonl) as the text case reads it: cl100k_base ids, 64 tokens,
    /// a compact vocabulary, a test fifth carved off; its training mails repeated to <paramref name="samples"/> rows.
    /// </summary>
    private static Student TextStudent(int samples, int reps, Activation activation)
    {
        var path = Program.FindUp(Path.Join("tests", "fixtures", "text", "spam.jsonl"));
        var file = new DataSplit(path, path);
        var spec = new DataSpec("jsonl", file, file, 1f)
        {
            File = file,
            Split = new SplitRatios(0.2, 0, 0, 7),
            Text = new TextSpec("text", "label", new TokenizerSpec(TokenizerKind.Tiktoken, "cl100k_base"), SequenceLength, CompactVocabulary: true),
        };
        var loaded = ModelCompression.Data.DataLoader.Load(spec);
        var mails = loaded.Train;
        var data = mails.Select([.. Enumerable.Range(0, samples).Select(i => i % mails.Count)], "bench");
        var classes = (int)data.Labels!.Max() + 1;
        var vocabulary = loaded.Description.VocabularySize ?? throw new InvalidOperationException("The text data has no vocabulary size.");
        var options = new TransformerOptions { Width = 64, Heads = 4, Layers = 2, FeedForward = 128, MaxLength = SequenceLength, Activation = activation, Dropout = 0.1, Seed = 1 };
        var model = TransformerBuilder.Build(options, new ArchitectureInputs([SequenceLength], classes, VocabSize: vocabulary));

        // No text teacher is committed: seeded random logits (N(0, 2²)) stand in. The work per step does not depend on their values.
        var random = new Random(5);
        var teacherLogits = new float[data.Count * classes];
        for (var i = 0; i < teacherLogits.Length; i++)
        {
            teacherLogits[i] = (float)(2 * Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()));
        }

        long[] shape = [SequenceLength];
        var engine = data.ToTrainingSet(
            [
                new InputBinding(TransformerBuilder.InputIdsName, TransformerBuilder.InputIdsName, DataElementType.Int64, shape),
                new InputBinding(TransformerBuilder.AttentionMaskName, TransformerBuilder.AttentionMaskName, DataElementType.Int64, shape),
            ],
            teacherLogits,
            classes);
        var bare = new Lazy<BareData>(() => new BareData(
            [new BareInput(null, Longs(data, TransformerBuilder.InputIdsName), shape), new BareInput(null, Longs(data, TransformerBuilder.AttentionMaskName), shape)],
            data.Labels!));
        return new Student(
            $"transformer width {options.Width}, {options.Heads} heads, {options.Layers} layers, feed-forward {options.FeedForward} ({activation.ToString().ToLowerInvariant()}), vocabulary {vocabulary}",
            model, engine, bare, classes,
            () => new HandStudent(new HandTransformer(vocabulary, SequenceLength, options.Width, options.Heads, options.Layers, options.FeedForward, classes, options.Dropout, activation)),
            reps,
            $"SpamAssassin slice: {mails.Count} training mails x {SequenceLength} tokens, repeated to {data.Count}",
            "random N(0, 2²), seeded (no text teacher committed)",
            [loaded]);
    }

    private static long[] Longs(Dataset data, string tensor)
    {
        var source = data.Tensor(tensor)!;
        var values = new long[(long)data.Count * source.SampleSize];
        source.CopyRange(0, data.Count, values);
        return values;
    }

    private static HandStudent Sequential(Sequential module) => new(module);

    private static HandStudent HandCnn() => Sequential(nn.Sequential(
    [
        .. Program.HandConvBlocks(),
        ("flatten", nn.Flatten()),
        ("dropout", nn.Dropout(0.25)),
        ("hidden", nn.Linear(32 * 7 * 7, 128)),
        ("hidden_relu", nn.ReLU()),
        ("fc", nn.Linear(128, 10)),
    ]));

    private static MemoryResult RunMemoryChild(string key, string side, int epochs, string[] args)
    {
        var program = Environment.ProcessPath ?? throw new InvalidOperationException("No process path to re-launch.");
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(program) == "dotnet")
        {
            // Started as 'dotnet ModelCompression.Bench.dll': the child needs the assembly too.
            start.ArgumentList.Add(typeof(StudentBench).Assembly.Location);
        }

        foreach (var argument in new[] { MemoryFlag, key, "--side", side, "--memory-epochs", epochs.ToString(CultureInfo.InvariantCulture) })
        {
            start.ArgumentList.Add(argument);
        }

        // The data and size options apply to the child as to this process.
        foreach (var option in new[] { "--threads", "--samples", "--cnn-samples", "--text-samples", "--text-activation", "--data" })
        {
            if (Program.StringArg(args, option) is { } value)
            {
                start.ArgumentList.Add(option);
                start.ArgumentList.Add(value);
            }
        }

        using var child = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {program}.");
        var errors = child.StandardError.ReadToEndAsync();
        var output = child.StandardOutput.ReadToEnd();
        child.WaitForExit();
        var line = output.Split('\n').FirstOrDefault(l => l.StartsWith(MemoryLinePrefix, StringComparison.Ordinal));
        if (child.ExitCode != 0 || line is null)
        {
            throw new InvalidOperationException($"The memory child for {key} ({side}) exited {child.ExitCode}:\n{output}\n{errors.Result}");
        }

        var fields = line[MemoryLinePrefix.Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return new MemoryResult(
            long.Parse(fields[0], CultureInfo.InvariantCulture),
            long.Parse(fields[1], CultureInfo.InvariantCulture),
            long.Parse(fields[2], CultureInfo.InvariantCulture),
            long.Parse(fields[3], CultureInfo.InvariantCulture));
    }

    /// <summary>Resets VmHWM to the current RSS (Linux 4.0+), so the next reading is the peak of what follows; returns the peak so far.</summary>
    private static long ResetPeak()
    {
        var peak = Status("VmHWM:");
        File.WriteAllText("/proc/self/clear_refs", "5");
        return peak;
    }

    private static long Status(string field)
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith(field, StringComparison.Ordinal))
            {
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
            }
        }

        throw new InvalidOperationException($"/proc/self/status has no {field}");
    }

    private static string LoadAverage() => File.ReadAllText("/proc/loadavg").Split(' ') is var parts ? $"{parts[0]} {parts[1]} {parts[2]}" : "?";

    private static string Mib(long kb) => (kb / 1024.0).ToString("0.0", CultureInfo.InvariantCulture);

    /// <summary>VmRSS after torch loaded, VmRSS ready to train, VmHWM while training, VmHWM before training; all kB.</summary>
    private sealed record MemoryResult(long BaselineKb, long ReadyKb, long TrainingPeakKb, long SetUpPeakKb);

    /// <summary>One input of the bare loop, held as a plain array.</summary>
    private sealed record BareInput(float[]? Floats, long[]? Longs, long[] SampleShape)
    {
        public int SampleSize { get; } = (int)SampleShape.Aggregate(1L, (a, b) => a * b);
    }

    private sealed record BareData(IReadOnlyList<BareInput> Inputs, long[] Labels);

    /// <summary>
    /// A student ready for both sides; disposing it releases its data sets. The bare loop's arrays are made on first
    /// use, so an engine-only process never holds them (float images are 4x the bytes the engine reads from).
    /// </summary>
    private sealed record Student(
        string Name,
        ModelProto Model,
        TrainingSet EngineData,
        Lazy<BareData> Bare,
        int Classes,
        Func<HandStudent> Hand,
        int Reps,
        string DataDescription,
        string TeacherDescription,
        IReadOnlyList<IDisposable> Owned) : IDisposable
    {
        public void Dispose()
        {
            foreach (var owned in Owned)
            {
                owned.Dispose();
            }
        }
    }

    /// <summary>A hand-written TorchSharp student: one forward over the batch's input tensors.</summary>
    private sealed class HandStudent
    {
        public HandStudent(Sequential module)
        {
            Module = module;
            Forward = inputs => module.forward(inputs[0]);
        }

        public HandStudent(HandTransformer module)
        {
            Module = module;
            Forward = inputs => module.forward(inputs[0], inputs[1]);
        }

        public nn.Module Module { get; }

        public Func<Tensor[], Tensor> Forward { get; }
    }

    /// <summary>
    /// TransformerBuilder's graph written as a TorchSharp module: token + position embeddings, pre-LayerNorm encoder
    /// layers (attention with the mask added as (mask - 1) x 10000 before the softmax, GELU or ReLU feed-forward), a final
    /// LayerNorm, the mean over unpadded tokens, dropout, the classifier.
    /// </summary>
    private sealed class HandTransformer : nn.Module<Tensor, Tensor, Tensor>
    {
        private readonly Embedding embedding;
        private readonly Parameter position_embedding;
        private readonly ModuleList<HandEncoderLayer> layers;
        private readonly LayerNorm final_norm;
        private readonly Dropout dropout;
        private readonly Linear classifier;
        private readonly Scalar _maskedScore = 10000.ToScalar();
        private readonly Scalar _minusOne = (-1).ToScalar();
        private readonly Scalar _one = 1.ToScalar();

        public HandTransformer(int vocabulary, int maxLength, int width, int heads, int layerCount, int feedForward, int classes, double dropoutProbability, Activation activation)
            : base("transformer")
        {
            embedding = nn.Embedding(vocabulary, width);
            position_embedding = nn.Parameter(torch.randn(maxLength, width).Times(0.02));
            layers = nn.ModuleList([.. Enumerable.Range(0, layerCount).Select(_ => new HandEncoderLayer(width, heads, feedForward, dropoutProbability, activation))]);
            final_norm = nn.LayerNorm(width);
            dropout = nn.Dropout(dropoutProbability);
            classifier = nn.Linear(width, classes);
            RegisterComponents();
        }

        public override Tensor forward(Tensor ids, Tensor mask)
        {
            var length = ids.shape[1];
            var x = dropout.forward(embedding.forward(ids).Plus(position_embedding.narrow(0, 0, length)));
            var maskFloat = mask.to_type(ScalarType.Float32);
            var scoreBias = maskFloat.add(_minusOne, _one).mul(_maskedScore).unsqueeze(1).unsqueeze(1);
            foreach (var layer in layers)
            {
                x = layer.forward(x, scoreBias);
            }

            x = final_norm.forward(x);
            var weights = maskFloat.unsqueeze(2);
            var pooled = (x * weights).sum(1) / weights.sum(1).clamp_min(_one);
            return classifier.forward(dropout.forward(pooled));
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _maskedScore.Dispose();
                _minusOne.Dispose();
                _one.Dispose();
            }

            base.Dispose(disposing);
        }
    }

    private sealed class HandEncoderLayer : nn.Module<Tensor, Tensor, Tensor>
    {
        private readonly LayerNorm attention_norm;
        private readonly Linear query;
        private readonly Linear key;
        private readonly Linear value;
        private readonly Linear output;
        private readonly LayerNorm feed_forward_norm;
        private readonly Linear fc1;
        private readonly nn.Module<Tensor, Tensor> activation;
        private readonly Linear fc2;
        private readonly Dropout dropout;
        private readonly int _heads;
        private readonly int _headWidth;
        private readonly double _scale;

        public HandEncoderLayer(int width, int heads, int feedForward, double dropoutProbability, Activation activationKind)
            : base("layer")
        {
            attention_norm = nn.LayerNorm(width);
            query = nn.Linear(width, width);
            key = nn.Linear(width, width);
            value = nn.Linear(width, width);
            output = nn.Linear(width, width);
            feed_forward_norm = nn.LayerNorm(width);
            fc1 = nn.Linear(width, feedForward);
            activation = activationKind == Activation.Relu ? nn.ReLU() : nn.GELU();
            fc2 = nn.Linear(feedForward, width);
            dropout = nn.Dropout(dropoutProbability);
            _heads = heads;
            _headWidth = width / heads;
            _scale = 1 / Math.Sqrt(_headWidth);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x, Tensor scoreBias)
        {
            var (batch, length, width) = (x.shape[0], x.shape[1], x.shape[2]);
            var h = attention_norm.forward(x);
            var q = query.forward(h).view(batch, length, _heads, _headWidth).permute(0, 2, 1, 3);
            var k = key.forward(h).view(batch, length, _heads, _headWidth).permute(0, 2, 3, 1);
            var v = value.forward(h).view(batch, length, _heads, _headWidth).permute(0, 2, 1, 3);
            var probabilities = q.matmul(k).Times(_scale).Plus(scoreBias).softmax(-1);
            var context = probabilities.matmul(v).permute(0, 2, 1, 3).reshape(batch, length, width);
            x = x.Plus(dropout.forward(output.forward(context)));
            h = fc2.forward(activation.forward(fc1.forward(feed_forward_norm.forward(x))));
            return x.Plus(dropout.forward(h));
        }
    }
}
