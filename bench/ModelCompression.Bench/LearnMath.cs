using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using ModelCompression.Architectures;
using ModelCompression.Evaluation;
using ModelCompression.Generation;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Text;
using ModelCompression.Threading;
using ModelCompression.Torch.Graph;
using ModelCompression.Torch.Native;
using ModelCompression.Torch.Training;
using ModelCompression.Training;

namespace ModelCompression.Bench;

/// <summary>
/// How fast the engine's own trainer teaches the built-in decoder the generated math task: greedy exact match on
/// held-out problems at checkpoints, against wall time, CPU time, steps and tokens. The data are MathProblems splits
/// written as chat JSONL and read back with ChatReader; the tokenizer is the character or byte one with the default
/// chat template's markers; the model is DecoderBuilder's decoder; training is the one TrainingFlow with the
/// LanguageModelObjective (kd_ratio 0: fine-tuning), as DecoderFinetune.Run calls it, plus an after-step hook that
/// writes the weights back at each checkpoint and scores them with GenerationEvaluator in ONNX Runtime.
/// Usage: ModelCompression.Bench --learn-math --out DIR [--level 1-5] [--steps-range MIN-MAX] [--max-number N]
/// [--operations +-*/] [--train N] [--test N] [--seed N] [--tokenizer char|byte] [--width N] [--heads N] [--layers N]
/// [--ff N] [--dropout X] [--batch N] [--lr X] [--warmup N] [--schedule constant|cosine|linear] [--clip X]
/// [--steps N] [--eval-every N] [--minutes X] [--stop-at X] [--threads N] [--label TEXT].
/// </summary>
internal static class LearnMath
{
    /// <summary>The switch that runs this benchmark.</summary>
    public const string Flag = "--learn-math";

    public static int Run(string[] args)
    {
        var output = Program.StringArg(args, "--out") ?? throw new ArgumentException("--learn-math needs --out DIR (data, checkpoints and the log go there).");
        var label = Program.StringArg(args, "--label") ?? Path.GetFileName(Path.GetFullPath(output));
        var threads = Program.IntArg(args, "--threads", 1);
        var difficulty = Difficulty(args);
        var (trainCount, testCount, seed) = (Program.IntArg(args, "--train", 20000), Program.IntArg(args, "--test", 200), Program.IntArg(args, "--seed", 1));
        var tokenizerKind = (Program.StringArg(args, "--tokenizer") ?? "char") switch
        {
            "char" => GenerationTokenizerKind.Character,
            "byte" => GenerationTokenizerKind.Byte,
            var other => throw new ArgumentException($"--tokenizer is char or byte, not '{other}'."),
        };
        var batch = Program.IntArg(args, "--batch", 32);
        var steps = Program.IntArg(args, "--steps", 4000);
        var evalEvery = Program.IntArg(args, "--eval-every", 250);
        var minutes = DoubleArg(args, "--minutes", 60);
        var stopAt = DoubleArg(args, "--stop-at", 1.01);
        var settings = new TrainingSettings
        {
            // An "epoch" is one checkpoint interval of full batches drawn from back-to-back shuffled passes.
            Epochs = Math.Max(1, steps / evalEvery),
            StepsPerEpoch = evalEvery,
            BatchSize = batch,
            LearningRate = DoubleArg(args, "--lr", 2e-3),
            WarmupSteps = Program.IntArg(args, "--warmup", 100),
            Schedule = Enum.Parse<ScheduleKind>(Program.StringArg(args, "--schedule") ?? "cosine", ignoreCase: true),
            ClipGradNorm = DoubleArg(args, "--clip", 1.0),
            Optimizer = OptimizerKind.AdamW,
            WeightDecay = DoubleArg(args, "--weight-decay", 0.0),
            Seed = seed,
        };

        // One thread for libtorch and ONNX Runtime: the machine is shared with other engineers' builds and benches.
        EngineThreads.Use(new CpuBudget(threads, "--threads"));
        TorchNativeLoader.EnsureLoaded();
        Directory.CreateDirectory(output);

        var (train, test) = WriteAndRead(output, difficulty, trainCount, testCount, seed);
        var markers = new ChatTemplateOptions();
        var tokenizer = GenerationTokenizer.Create(
            new GenerationTokenizerOptions(tokenizerKind, Specials: markers.Markers), ChatTemplate.Texts(markers, [.. train, .. test]));
        var template = new ChatTemplate(markers, tokenizer);
        tokenizer.Save(Path.Join(output, GenerationTokenizer.DefaultFileName));
        var trainSet = ChatTrainingSet.Render(train, template);
        var longestTest = test.Max(r => template.RenderForTraining(r.Messages, int.MaxValue).Ids.Length);
        var longestAnswer = test.Concat(train).Max(r => tokenizer.Encode(r.Answer!).Count);
        // Room for every training and test sequence, and for an answer that runs on a little past the longest gold one.
        var maxLength = Math.Max(trainSet.SequenceLength, longestTest) + 16;
        var decoder = new DecoderOptions
        {
            VocabSize = tokenizer.VocabularySize,
            MaxLength = maxLength,
            Width = Program.IntArg(args, "--width", 128),
            Heads = Program.IntArg(args, "--heads", 4),
            Layers = Program.IntArg(args, "--layers", 4),
            FeedForward = Program.IntArg(args, "--ff", 4 * Program.IntArg(args, "--width", 128)),
            Dropout = DoubleArg(args, "--dropout", 0),
            Seed = seed,
        };
        var inputs = new ArchitectureInputs([0], 1);
        var model = DecoderBuilder.Build(decoder, inputs);
        var parameters = DecoderBuilder.ParameterCount(decoder, inputs);
        var modelPath = Path.Join(output, "initial.onnx");
        OnnxModelFile.Save(model, modelPath);

        var realTokens = Sum(trainSet.AttentionMask) / (double)trainSet.Count;
        var answerTokens = trainSet.TrainedTokens / (double)trainSet.Count;
        Console.WriteLine($"# learn-math {label}, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        Console.WriteLine($"machine: {Environment.ProcessorCount} logical CPUs, {Program.CpuModel()}; threads {threads} (libtorch and ONNX Runtime); load average {LoadAverage()}");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"data: math {difficulty}, seed {seed}, {train.Count} train / {test.Count} test; {tokenizerKind} tokenizer, vocabulary {tokenizer.VocabularySize}; sequences {realTokens:0.0} tokens on average ({answerTokens:0.0} trained), longest {trainSet.SequenceLength}"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"decoder: width {decoder.Width}, {decoder.Heads} heads, {decoder.Layers} layers, feed-forward {decoder.FeedForward}, dropout {decoder.Dropout}, max_length {maxLength}, {parameters} parameters ({parameters / 1e6:0.000}M)"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"training: {settings.Optimizer} lr {settings.LearningRate} warm-up {settings.WarmupSteps} {settings.Schedule} over {settings.Epochs * evalEvery} steps, batch {batch}, clip {settings.ClipGradNorm}; evaluation every {evalEvery} steps on {test.Count} test problems (greedy, up to {longestAnswer + 16} new tokens); stop at {minutes} training minutes or exact match >= {stopAt}"));
        Console.WriteLine();
        Console.WriteLine("| step | examples seen | train wall min | train CPU min | tokens/s (wall) | tokens/s (CPU) | loss | test perplexity | exact match | parse failures | eval s | load |");
        Console.WriteLine("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");

        var evaluation = new GenerationEvaluationOptions
        {
            Threads = threads,
            Samples = 3,
            Generation = new GenerationOptions { MaxNewTokens = longestAnswer + 16, BatchSize = 16 },
        };
        var task = new GenerativeTask(GenerativeTaskType.Math);
        var clock = new RunClock();
        var lastLoss = double.NaN;
        var best = (Step: 0L, ExactMatch: -1.0);
        using var cancel = new CancellationTokenSource();
        var job = new TrainingJob("finetune", model, modelPath, trainSet.ToTrainingSet(), new LanguageModelObjective(0), settings)
        {
            Progress = new Callback(p => lastLoss = p.Loss),
            AfterStep = graph => step =>
            {
                if (step % evalEvery != 0)
                {
                    return;
                }

                clock.Pause();
                var checkpoint = Path.Join(output, "checkpoint.onnx");
                OnnxModelFile.Save(graph.WriteBack(), checkpoint);
                var scored = GenerationEvaluator.Evaluate(checkpoint, template, test, task, evaluation);
                var exactMatch = scored.Metrics[GenerationMetricNames.ExactMatch];
                var tokens = step * batch * realTokens;
                Console.WriteLine(string.Create(
                    CultureInfo.InvariantCulture,
                    $"| {step} | {step * batch} | {clock.Wall.TotalMinutes:0.00} | {clock.Cpu.TotalMinutes:0.00} | {tokens / clock.Wall.TotalSeconds:0} | {tokens / clock.Cpu.TotalSeconds:0} | {lastLoss:0.0000} | {scored.Perplexity:0.0000} | {exactMatch:0.000} | {scored.Scores.ParseFailureCount} | {clock.PausedSeconds:0} | {LoadAverage()} |"));
                if (exactMatch > best.ExactMatch)
                {
                    best = (step, exactMatch);
                    File.Copy(checkpoint, Path.Join(output, "best.onnx"), overwrite: true);
                }

                if (scored.Scores.Correct?.ToList().IndexOf(false) is >= 0 and var wrong)
                {
                    Console.WriteLine($"<!-- first wrong answer: {Escape(test[wrong].Prompt[^1].Content)} -> {Escape(scored.Predictions[wrong])} (gold {Escape(test[wrong].Answer!)}) -->");
                }

                if (exactMatch >= stopAt || clock.Wall.TotalMinutes >= minutes)
                {
                    cancel.Cancel();
                }

                clock.Resume();
            },
        };

        try
        {
            TrainingFlow.Run(job, cancel.Token);
        }
        catch (OperationCanceledException)
        {
            // The hook stopped the run: the target was reached or the time was up.
        }

        Console.WriteLine();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"best exact match {best.ExactMatch:0.000} at step {best.Step}; {clock.Wall.TotalMinutes:0.0} training minutes (wall), {clock.Cpu.TotalMinutes:0.0} (CPU); load average at the end {LoadAverage()}"));
        return 0;
    }

    /// <summary>Writes the splits as chat JSONL (with their hashes printed) and reads them back as the engine reads chat data.</summary>
    private static (IReadOnlyList<ChatRecord> Train, IReadOnlyList<ChatRecord> Test) WriteAndRead(string output, MathDifficulty difficulty, int train, int test, int seed)
    {
        var splits = SyntheticDataset.Generate(new MathProblems(difficulty), new SplitSizes(train, 0, 0, test), seed);
        var paths = GeneratedSplitsWriter.WriteSplits(Path.Join(output, "data"), splits);
        var byName = paths.ToDictionary(p => Path.GetFileName(p), StringComparer.Ordinal);
        foreach (var name in new[] { "train.jsonl", "test.jsonl" })
        {
            Console.WriteLine($"{name}: SHA-256 {Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(byName[name])))}");
        }

        return (ChatReader.Read(byName["train.jsonl"]).Labelled, ChatReader.Read(byName["test.jsonl"]).Labelled);
    }

    /// <summary>A level, optionally changed as GenerativeData's options change it.</summary>
    private static MathDifficulty Difficulty(string[] args)
    {
        var difficulty = MathDifficulty.Level(Program.IntArg(args, "--level", 2));
        if (Program.StringArg(args, "--steps-range") is { } range)
        {
            var ends = range.Split('-');
            difficulty = difficulty with { MinSteps = int.Parse(ends[0], CultureInfo.InvariantCulture), MaxSteps = int.Parse(ends[^1], CultureInfo.InvariantCulture) };
        }

        difficulty = difficulty with { MaxNumber = Program.IntArg(args, "--max-number", difficulty.MaxNumber) };
        if (Program.StringArg(args, "--operations") is { } operations)
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

        difficulty.Check();
        return difficulty;
    }

    private static string Escape(string text) => text.Replace("\n", "\\n", StringComparison.Ordinal).Replace("--", "- -", StringComparison.Ordinal);

    private static long Sum(ReadOnlySpan<long> values)
    {
        var sum = 0L;
        foreach (var value in values)
        {
            sum += value;
        }

        return sum;
    }

    private static double DoubleArg(string[] args, string name, double fallback) =>
        Program.StringArg(args, name) is { } text ? double.Parse(text, CultureInfo.InvariantCulture) : fallback;

    private static string LoadAverage() => string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));

    /// <summary>Training time without the evaluations: wall time and this process's CPU time, both paused while a checkpoint is scored.</summary>
    private sealed class RunClock
    {
        private readonly Stopwatch _wall = Stopwatch.StartNew();
        private readonly Stopwatch _paused = new();

        // Data generation, rendering and start-up before training do not count.
        private TimeSpan _cpuPaused = Process.GetCurrentProcess().TotalProcessorTime;
        private TimeSpan _cpuAtPause;

        public TimeSpan Wall => _wall.Elapsed;

        public TimeSpan Cpu => (_paused.IsRunning ? _cpuAtPause : Process.GetCurrentProcess().TotalProcessorTime) - _cpuPaused;

        /// <summary>Seconds of the last pause (the last evaluation), once resumed; of the current one while paused.</summary>
        public double PausedSeconds => _paused.Elapsed.TotalSeconds;

        public void Pause()
        {
            _wall.Stop();
            _cpuAtPause = Process.GetCurrentProcess().TotalProcessorTime;
            _paused.Restart();
        }

        public void Resume()
        {
            _paused.Stop();
            _cpuPaused += Process.GetCurrentProcess().TotalProcessorTime - _cpuAtPause;
            _wall.Start();
        }
    }

    private sealed class Callback(Action<TrainingProgress> action) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => action(value);
    }
}
