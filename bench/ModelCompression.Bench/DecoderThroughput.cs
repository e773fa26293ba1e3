using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using ModelCompression.Architectures;
using ModelCompression.Onnx;
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
/// Training throughput of the built-in decoder (DecoderBuilder imported by TrainableGraph) against the same decoder
/// written by hand as a TorchSharp module, initialised from the same initializers, trained by the same loop (byte
/// windows of text, next-token cross-entropy, Adam, a dispose scope per step); alternating pairs, median of per-pair
/// ratios. Before timing, both sides are checked to compute the same function: logits on one batch and the losses of
/// three optimizer steps.
/// Usage: ModelCompression.Bench --decoder [--sizes small,large] [--reps N] [--steps N] [--large-reps N]
/// [--large-steps N] [--threads N] [--no-cache-graph] [--profile] [--text FILE.jsonl]
/// </summary>
internal static class DecoderThroughput
{
    /// <summary>The switch that runs this benchmark.</summary>
    public const string Flag = "--decoder";

    private const double LearningRate = 1e-3;

    /// <summary>Bytes are the tokens: the vocabulary of a byte-level model without special tokens.</summary>
    private const int Vocabulary = 256;

    private static readonly Size[] Sizes =
    [
        new("small", new DecoderOptions { Width = 128, Heads = 4, Layers = 4, FeedForward = 512, Dropout = 0, Seed = 1 }, 128, 16),
        new("large", new DecoderOptions { Width = 256, Heads = 4, Layers = 6, FeedForward = 1024, Dropout = 0, Seed = 1 }, 128, 16),
    ];

    public static int Run(string[] args)
    {
        var threads = Program.IntArg(args, "--threads", Environment.ProcessorCount);
        var only = (Program.StringArg(args, "--sizes") ?? "small,large").Split(',', StringSplitOptions.RemoveEmptyEntries);
        var withCache = !args.Contains("--no-cache-graph");
        var profile = args.Contains("--profile");
        var text = Program.StringArg(args, "--text") ?? Program.FindUp(Path.Join("tests", "fixtures", "text", "spam.jsonl"));
        TorchNativeLoader.EnsureLoaded();
        torch.set_num_threads(threads);
        var corpus = ReadBytes(text);

        Console.WriteLine($"# Decoder training throughput, built-in (imported) vs hand-written TorchSharp, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        Console.WriteLine($"machine: {Environment.ProcessorCount} logical CPUs, {Program.CpuModel()}; torch threads {torch.get_num_threads()}; load average {LoadAverage()}");
        Console.WriteLine($"data: byte windows of {Path.GetFileName(text)} ({corpus.Length} bytes), vocabulary {Vocabulary}, Adam {LearningRate}, dropout 0; graph {(withCache ? "with cache inputs/outputs (the registry's; empty past)" : "without cache inputs/outputs")}");
        Console.WriteLine();
        foreach (var size in Sizes.Where(s => only.Contains(s.Name)))
        {
            var large = size.Name == "large";
            var reps = Program.IntArg(args, large ? "--large-reps" : "--reps", large ? 5 : 9);
            var steps = Program.IntArg(args, large ? "--large-steps" : "--steps", large ? 3 : 8);
            Measure(size, corpus, withCache, reps, steps, profile);
        }

        return 0;
    }

    private static void Measure(Size size, byte[] corpus, bool withCache, int reps, int steps, bool profile)
    {
        var options = size.Options with { MaxLength = size.Sequence };
        var inputs = new ArchitectureInputs([size.Sequence], 1, Vocabulary);
        var model = DecoderBuilder.Build(options, inputs, withCache);
        var parameterCount = DecoderBuilder.ParameterCount(options, inputs);
        using var imported = TrainableGraph.Import(model);
        using var written = new HandDecoder(options, Vocabulary, size.Sequence);
        written.CopyFrom(imported.ParametersByName);
        var description = string.Create(
            CultureInfo.InvariantCulture,
            $"{size.Name}: width {options.Width}, {options.Heads} heads, {options.Layers} layers, feed-forward {options.FeedForward}, sequence {size.Sequence}, batch {size.Batch}, {parameterCount / 1e6:0.00}M parameters");
        Console.WriteLine($"## {description}");
        Console.WriteLine();
        Console.WriteLine($"plan: {imported.PlanStepTypes.Count} steps ({string.Join(", ", imported.PlanStepTypes.GroupBy(t => t).OrderByDescending(g => g.Count()).Select(g => $"{g.Key} {g.Count()}"))})");
        CheckSameFunction(imported, written, size, corpus);

        using var importedOptimizer = new ParameterOptimizer(OptimizerKind.Adam, [.. imported.parameters()], LearningRate, 0, 0);
        using var writtenOptimizer = new ParameterOptimizer(OptimizerKind.Adam, [.. written.parameters()], LearningRate, 0, 0);
        var importedForward = ImportedForward(imported);
        var (importedProfile, writtenProfile) = (new StepProfile(), new StepProfile());
        // Tokens per second of the process's CPU time beside the wall-clock rate: on a machine shared with other
        // builds, wall time includes waiting for a core (and, with 2 threads, for the second thread to be scheduled at
        // every parallel region); CPU time counts only the work done.
        var (importedCpuRates, writtenCpuRates) = (new List<double>(), new List<double>());
        var (importedRates, writtenRates) = Program.AlternatingPairs(
            reps,
            rep => Rate(importedCpuRates, rep, () => Steps(importedForward, imported, importedOptimizer, size, corpus, steps, rep, profile && rep > 0 ? importedProfile : null)),
            rep => Rate(writtenCpuRates, rep, () => Steps(written.forward, written, writtenOptimizer, size, corpus, steps, rep, profile && rep > 0 ? writtenProfile : null)));
        var ratios = importedRates.Zip(writtenRates, (x, y) => x / y).ToList();
        var cpuRatios = importedCpuRates.Zip(writtenCpuRates, (x, y) => x / y).ToList();
        Console.WriteLine();
        Console.WriteLine("| model | threads | pairs x steps | built-in tokens/s (median) | hand-written tokens/s (median) | built-in / hand-written, wall (median of pairs) | built-in / hand-written, process CPU time (median of pairs) |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"| {size.Name} ({parameterCount / 1e6:0.00}M) | {torch.get_num_threads()} | {reps} x {steps} | {Program.Median(importedRates):0} | {Program.Median(writtenRates):0} | {Program.Median(ratios):0.000} (min {ratios.Min():0.000}, max {ratios.Max():0.000}) | {Program.Median(cpuRatios):0.000} (min {cpuRatios.Min():0.000}, max {cpuRatios.Max():0.000}) |"));
        Console.WriteLine($"load average after: {LoadAverage()}");
        if (profile)
        {
            PrintProfile(importedProfile, writtenProfile);
        }

        Console.WriteLine();
    }

    /// <summary>
    /// Both modules on the same batch: the largest difference of the logits, then three Adam steps on each (same
    /// batches) with the loss of every step and the logits' difference after them. Printed, and the benchmark stops
    /// if the two are not the same function (float32 rounding of differently ordered kernels aside).
    /// </summary>
    private static void CheckSameFunction(TrainableGraph imported, HandDecoder written, Size size, byte[] corpus)
    {
        var forward = ImportedForward(imported);
        double LogitsDifference()
        {
            using var scope = torch.NewDisposeScope();
            using var noGrad = torch.no_grad();
            var batch = Batch(size, corpus, new Random(99));
            return forward(batch.Ids, batch.Mask, batch.Positions).Plus(written.forward(batch.Ids, batch.Mask, batch.Positions).neg()).abs().max().item<float>();
        }

        imported.eval();
        written.eval();
        var before = LogitsDifference();
        using var importedOptimizer = new ParameterOptimizer(OptimizerKind.Adam, [.. imported.parameters()], LearningRate, 0, 0);
        using var writtenOptimizer = new ParameterOptimizer(OptimizerKind.Adam, [.. written.parameters()], LearningRate, 0, 0);
        var losses = new List<(double Imported, double Written)>();
        var snapshot = imported.ParametersByName.ToDictionary(p => p.Key, p => p.Value.detach().clone(), StringComparer.Ordinal);
        for (var step = 0; step < 3; step++)
        {
            losses.Add((
                OneStep(forward, imported, importedOptimizer, Batch(size, corpus, new Random(step))),
                OneStep(written.forward, written, writtenOptimizer, Batch(size, corpus, new Random(step)))));
        }

        imported.eval();
        written.eval();
        var after = LogitsDifference();

        // Back to the initial weights, so the timed runs start where a real training run would.
        using (torch.no_grad())
        {
            foreach (var (name, parameter) in imported.ParametersByName)
            {
                parameter.copy_(snapshot[name]);
            }
        }

        written.CopyFrom(imported.ParametersByName);
        foreach (var value in snapshot.Values)
        {
            value.Dispose();
        }

        var lossDifference = losses.Max(l => Math.Abs(l.Imported - l.Written));
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"same function: max |logits difference| {before:0.0e+0} before training, {after:0.0e+0} after 3 Adam steps; losses built-in {string.Join(" ", losses.Select(l => l.Imported.ToString("0.000000", CultureInfo.InvariantCulture)))}, hand-written {string.Join(" ", losses.Select(l => l.Written.ToString("0.000000", CultureInfo.InvariantCulture)))} (max difference {lossDifference:0.0e+0})"));
        if (before > 1e-3 || after > 1e-2 || lossDifference > 1e-4)
        {
            throw new InvalidOperationException("The hand-written decoder does not compute the built-in decoder's function; the comparison would be meaningless.");
        }
    }

    /// <summary>Runs <paramref name="steps"/>; returns tokens per wall second and adds tokens per CPU second (after the warm-up pair) to <paramref name="cpuRates"/>.</summary>
    private static double Rate(List<double> cpuRates, int rep, Func<(TimeSpan Wall, long Tokens)> steps)
    {
        using var self = Process.GetCurrentProcess();
        var cpu = self.TotalProcessorTime;
        var (wall, tokens) = steps();
        self.Refresh();
        if (rep > 0)
        {
            cpuRates.Add(tokens / (self.TotalProcessorTime - cpu).TotalSeconds);
        }

        return tokens / wall.TotalSeconds;
    }

    private static double OneStep(Func<Tensor, Tensor, Tensor, Tensor> forward, nn.Module module, ParameterOptimizer optimizer, DecoderBatch batch)
    {
        using var scope = torch.NewDisposeScope();
        module.train();
        optimizer.ZeroGrad();
        var loss = Loss(forward(batch.Ids, batch.Mask, batch.Positions), batch.Targets);
        loss.backward();
        optimizer.Step();
        return loss.item<float>();
    }

    /// <summary>
    /// <paramref name="steps"/> training steps of the same loop for both sides: a batch of random byte windows (seeded by
    /// <paramref name="seed"/>, so both sides see the same batches in a pair), forward, next-token cross-entropy, backward,
    /// Adam; a dispose scope per step. Returns the time and the tokens, the loss read back once at the end (as a trainer would for its log).
    /// </summary>
    private static (TimeSpan Wall, long Tokens) Steps(Func<Tensor, Tensor, Tensor, Tensor> forward, nn.Module module, ParameterOptimizer optimizer, Size size, byte[] corpus, int steps, int seed, StepProfile? profile)
    {
        var random = new Random(seed);
        module.train();
        var clock = Stopwatch.StartNew();
        profile?.Start();
        var last = 0.0;
        for (var step = 0; step < steps; step++)
        {
            var scope = torch.NewDisposeScope();
            var batch = Batch(size, corpus, random);
            profile?.Mark(StepPhase.Batch);
            optimizer.ZeroGrad();
            profile?.Mark(StepPhase.Optimizer);
            var logits = forward(batch.Ids, batch.Mask, batch.Positions);
            profile?.Mark(StepPhase.Forward);
            var loss = Loss(logits, batch.Targets);
            profile?.Mark(StepPhase.Loss);
            loss.backward();
            profile?.Mark(StepPhase.Backward);
            optimizer.Step();
            profile?.Mark(StepPhase.Optimizer);
            profile?.CountTensors(scope.DisposablesCount);
            if (step == steps - 1)
            {
                last = loss.item<float>();
            }

            scope.Dispose();
            profile?.Mark(StepPhase.Finish);
        }

        return double.IsFinite(last) ? (clock.Elapsed, (long)steps * size.Batch * size.Sequence) : throw new InvalidOperationException("The loss is not finite.");
    }

    private static Tensor Loss(Tensor logits, Tensor targets) =>
        nn.functional.cross_entropy(logits.reshape(-1, logits.shape[^1]), targets.reshape(-1));

    /// <summary>
    /// <see cref="Size.Batch"/> windows of <see cref="Size.Sequence"/> + 1 bytes at random offsets: the first
    /// sequence bytes are the input, the last sequence bytes the next-token targets; no padding.
    /// </summary>
    private static DecoderBatch Batch(Size size, byte[] corpus, Random random)
    {
        var (batch, length) = (size.Batch, size.Sequence);
        var ids = new long[batch * length];
        var targets = new long[batch * length];
        var positions = new long[batch * length];
        for (var b = 0; b < batch; b++)
        {
            var start = random.Next(corpus.Length - length - 1);
            for (var i = 0; i < length; i++)
            {
                ids[(b * length) + i] = corpus[start + i];
                targets[(b * length) + i] = corpus[start + i + 1];
                positions[(b * length) + i] = i;
            }
        }

        long[] shape = [batch, length];
        return new DecoderBatch(torch.tensor(ids, shape), torch.ones(shape, ScalarType.Int64), torch.tensor(positions, shape), torch.tensor(targets, shape));
    }

    private static Func<Tensor, Tensor, Tensor, Tensor> ImportedForward(TrainableGraph graph) => (ids, mask, positions) => graph.Forward(new Dictionary<string, Tensor>
    {
        [DecoderConvention.InputIds] = ids,
        [DecoderConvention.AttentionMask] = mask,
        [DecoderConvention.PositionIds] = positions,
    })[DecoderConvention.Logits];

    /// <summary>The "text" field of every JSON line, UTF-8, joined by newlines.</summary>
    private static byte[] ReadBytes(string path)
    {
        var text = new StringBuilder();
        foreach (var line in File.ReadLines(path).Where(l => l.Length > 0))
        {
            using var document = JsonDocument.Parse(line);
            text.Append(document.RootElement.GetProperty("text").GetString()).Append('\n');
        }

        return Encoding.UTF8.GetBytes(text.ToString());
    }

    private static void PrintProfile(StepProfile imported, StepProfile written)
    {
        Console.WriteLine();
        Console.WriteLine($"ms per step ({imported.Steps} steps per side), wall and process CPU: built-in / hand-written (difference)");
        Console.WriteLine();
        Console.WriteLine("| phase | wall | process CPU |");
        Console.WriteLine("|---|---:|---:|");
        foreach (var phase in new[] { StepPhase.Batch, StepPhase.Forward, StepPhase.Loss, StepPhase.Backward, StepPhase.Optimizer, StepPhase.Finish })
        {
            Console.WriteLine($"| {phase} | {Cell(imported.Seconds(phase), written.Seconds(phase))} | {Cell(imported.ProcessCpuSeconds(phase), written.ProcessCpuSeconds(phase))} |");
        }

        Console.WriteLine();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"tensors made per step: built-in {(double)imported.Tensors / imported.Steps:0.0}, hand-written {(double)written.Tensors / written.Steps:0.0}"));

        string Cell(double a, double b) => string.Create(
            CultureInfo.InvariantCulture,
            $"{1000 * a / imported.Steps:0.00} / {1000 * b / written.Steps:0.00} ({1000 * ((a / imported.Steps) - (b / written.Steps)):+0.00;-0.00})");
    }

    private static string LoadAverage() => string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));

    private sealed record Size(string Name, DecoderOptions Options, int Sequence, int Batch);

    private sealed record DecoderBatch(Tensor Ids, Tensor Mask, Tensor Positions, Tensor Targets);
}
