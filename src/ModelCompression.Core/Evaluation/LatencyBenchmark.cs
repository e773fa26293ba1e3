using System.Runtime.InteropServices;
using ModelCompression.Data;
using ModelCompression.Inference;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Evaluation;

/// <summary>The p50 latencies of the float and the quantized model at one batch size and thread count.</summary>
/// <param name="BatchSize">Samples per call.</param>
/// <param name="Threads">ONNX Runtime intra-op threads.</param>
/// <param name="FloatMs">The float model's median milliseconds per call.</param>
/// <param name="QuantizedMs">The quantized model's median milliseconds per call.</param>
public sealed record LatencyMeasurement(int BatchSize, int Threads, double FloatMs, double QuantizedMs)
{
    /// <summary>How many times faster the quantized model is (below 1: slower).</summary>
    public double Speedup => FloatMs / QuantizedMs;
}

/// <summary>
/// Measures a model's latency the way a service would see it: one ONNX Runtime session with a fixed number of
/// intra-op threads (sequential execution, all graph optimizations), fed real samples through every input the
/// model has (token ids and mask alike), warm-up runs first, then the wall-clock time of each <c>Run</c> call
/// (building the input and freeing the output are not timed; see <see cref="OnnxRunner.Time"/>).
/// </summary>
public static class LatencyBenchmark
{
    /// <summary>Untimed calls before a comparison: the first calls allocate and pack weights.</summary>
    public const int ComparisonWarmupRuns = 5;

    /// <summary>
    /// Latency percentiles at batch 1 and at <see cref="EvaluateOptions.LatencyBatchSize"/>, and the native memory
    /// (MB, 10^6 bytes) ONNX Runtime held for the session at its largest, after runs at both batch sizes, or null
    /// where the C library does not tell it (see <see cref="PeakMemoryTracker"/>).
    /// </summary>
    /// <param name="modelPath">The model.</param>
    /// <param name="samples">Real samples, taken in order (wrapping around when a batch needs more than there are).</param>
    /// <param name="options">Runs, warm-up, batch size and threads.</param>
    public static (LatencyReport Latency, double? PeakMemoryMb) Measure(string modelPath, Dataset samples, EvaluateOptions options)
    {
        ArgumentNullException.ThrowIfNull(samples);
        ArgumentNullException.ThrowIfNull(options);
        var threads = options.Threads > 0 ? options.Threads : Environment.ProcessorCount;
        // ONNX Runtime's first sessions in a process set up state that stays (environment, kernel registries, the
        // thread pool; 8 MB measured): a throw-away session of the same model at the same batch first, so none of
        // it counts as this model's. A session or tensor of earlier work left to the finalizer would free its native
        // memory mid-measurement and hide as much of this one's: collected first.
        using (var warm = new OnnxRunner(modelPath, threads))
        {
            warm.Time(samples, options.LatencyBatchSize, 0, 1);
        }

        GC.Collect();
        GC.WaitForPendingFinalizers();
        var memory = PeakMemoryTracker.Start();
        using var runner = new OnnxRunner(modelPath, threads);
        memory?.Sample();
        Action? sample = memory is null ? null : memory.Sample;
        var batch1 = Stats(1, runner.Time(samples, 1, options.WarmupRuns, options.LatencyRuns, sample));
        var batch = Stats(options.LatencyBatchSize, runner.Time(samples, options.LatencyBatchSize, options.WarmupRuns, options.LatencyBatchRuns, sample));
        return (new LatencyReport(threads, batch1, batch), memory?.PeakGrowthBytes() / 1e6);
    }

    /// <summary>
    /// Times a float model against its quantized version at every batch size and thread count (int8 does not
    /// always pay: on a small layer the cost of quantizing activations outweighs the faster integer product).
    /// Both take the same first samples; their calls alternate, so a change in machine load during the
    /// measurement hits both alike.
    /// </summary>
    public static IReadOnlyList<LatencyMeasurement> Compare(
        ModelProto floatModel,
        ModelProto quantizedModel,
        Dataset samples,
        IReadOnlyList<int> batchSizes,
        IReadOnlyList<int> threads,
        int runs)
    {
        ArgumentNullException.ThrowIfNull(samples);
        ArgumentNullException.ThrowIfNull(batchSizes);
        ArgumentNullException.ThrowIfNull(threads);
        ArgumentOutOfRangeException.ThrowIfLessThan(runs, 1);
        var measurements = new List<LatencyMeasurement>();
        foreach (var threadCount in threads)
        {
            using var floatRunner = OnnxRunner.FromModel(floatModel, "float model", threadCount);
            using var quantizedRunner = OnnxRunner.FromModel(quantizedModel, "quantized model", threadCount);
            foreach (var batch in batchSizes)
            {
                floatRunner.Time(samples, batch, ComparisonWarmupRuns, 1);
                quantizedRunner.Time(samples, batch, ComparisonWarmupRuns, 1);
                var floatTimes = new double[runs];
                var quantizedTimes = new double[runs];
                for (var i = 0; i < runs; i++)
                {
                    floatTimes[i] = floatRunner.Time(samples, batch, 0, 1)[0];
                    quantizedTimes[i] = quantizedRunner.Time(samples, batch, 0, 1)[0];
                }

                measurements.Add(new LatencyMeasurement(batch, threadCount, Median(floatTimes), Median(quantizedTimes)));
            }
        }

        return measurements;
    }

    /// <summary>The geometric mean of the speed-ups: above 1 when the quantized model is faster overall.</summary>
    public static double GeometricMeanSpeedup(IReadOnlyList<LatencyMeasurement> measurements)
    {
        ArgumentNullException.ThrowIfNull(measurements);
        return measurements.Count == 0 ? 1 : Math.Exp(measurements.Average(m => Math.Log(m.Speedup)));
    }

    private static LatencyStats Stats(int batchSize, double[] milliseconds)
    {
        Array.Sort(milliseconds);
        return new LatencyStats(
            batchSize,
            Statistics.Percentile(milliseconds, 50),
            Statistics.Percentile(milliseconds, 95),
            Statistics.Percentile(milliseconds, 99),
            milliseconds.Length);
    }

    private static double Median(double[] values)
    {
        Array.Sort(values);
        return Statistics.Percentile(values, 50);
    }
}

/// <summary>
/// The native memory ONNX Runtime holds for a session, from the C heap's own count of the bytes it has handed out
/// and not had back (glibc's mallinfo2, every arena: uordblks + hblkhd), sampled after each run while the session
/// is alive, minus the count before the session was created. ONNX Runtime allocates its copy of the weights, the
/// pre-packed weights and its activation arena there, and the arena keeps its largest size between runs, so after
/// a run at a batch size the count holds what that batch needed. Unlike the process's resident memory it is not
/// hidden when freed memory is reused, nor moved by the .NET heap, which does not use malloc.
/// </summary>
public sealed class PeakMemoryTracker
{
    private readonly ulong _startBytes;
    private ulong _peakBytes;

    private PeakMemoryTracker(ulong startBytes)
    {
        _startBytes = startBytes;
        _peakBytes = startBytes;
    }

    /// <summary>Starts from the bytes in use now; null where the C library is not glibc (2.33 or later).</summary>
    public static PeakMemoryTracker? Start() => InUseBytes() is { } bytes ? new PeakMemoryTracker(bytes) : null;

    /// <summary>Records the bytes in use now; call it while the session is alive.</summary>
    public void Sample()
    {
        if (InUseBytes() is { } bytes)
        {
            _peakBytes = Math.Max(_peakBytes, bytes);
        }
    }

    /// <summary>The largest sample minus the bytes in use at <see cref="Start"/> (never negative).</summary>
    public long PeakGrowthBytes() => (long)(_peakBytes - Math.Min(_peakBytes, _startBytes));

    private static ulong? InUseBytes()
    {
        try
        {
            var info = mallinfo2();
            return info.Uordblks + info.Hblkhd;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // musl, macOS, Windows, or a glibc before 2.33: the caller reports no figure.
            return null;
        }
    }

    // DllImport rather than LibraryImport: the source generator would need unsafe code enabled for the project.
    [DllImport("libc", ExactSpelling = true)]
    private static extern MallInfo2 mallinfo2();

    /// <summary>glibc's struct mallinfo2: ten size_t fields, in this order.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private readonly struct MallInfo2
    {
        public readonly nuint Arena;
        public readonly nuint Ordblks;
        public readonly nuint Smblks;
        public readonly nuint Hblks;
        public readonly nuint Hblkhd;
        public readonly nuint Usmblks;
        public readonly nuint Fsmblks;
        public readonly nuint Uordblks;
        public readonly nuint Fordblks;
        public readonly nuint Keepcost;
    }
}
