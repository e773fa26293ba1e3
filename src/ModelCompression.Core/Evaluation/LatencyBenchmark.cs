using ModelCompression.Data;
using ModelCompression.Inference;
using ModelCompression.Onnx.Proto;
using ModelCompression.Stages;

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
    /// Latency percentiles at batch 1 and at <see cref="EvaluateOptions.LatencyBatchSize"/>, and the process's
    /// peak resident-memory growth (MB, 10^6 bytes) while the session was created and run, or null where the
    /// operating system does not tell it (see <see cref="PeakMemoryTracker"/>).
    /// </summary>
    /// <param name="modelPath">The model.</param>
    /// <param name="samples">Real samples, taken in order (wrapping around when a batch needs more than there are).</param>
    /// <param name="options">Runs, warm-up, batch size and threads.</param>
    public static (LatencyReport Latency, double? PeakMemoryMb) Measure(string modelPath, Dataset samples, EvaluateOptions options)
    {
        ArgumentNullException.ThrowIfNull(samples);
        ArgumentNullException.ThrowIfNull(options);
        var memory = PeakMemoryTracker.Start();
        var threads = options.Threads > 0 ? options.Threads : Environment.ProcessorCount;
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
/// The growth of this process's resident memory (RSS) from a starting point to its peak, read from
/// /proc/self/status on Linux. Approximate and process-wide: anything else the process allocates meanwhile
/// counts too, and memory already resident (e.g. freed but kept by an allocator) is reused without counting.
/// Where the kernel allows it, the peak (VmHWM) is reset at the start (writing 5 to /proc/self/clear_refs), so
/// the kernel itself tracks the true peak; otherwise VmRSS is sampled after every run and the largest is kept.
/// </summary>
public sealed class PeakMemoryTracker
{
    private const string StatusFile = "/proc/self/status";
    private readonly long _startKb;
    private readonly bool _kernelTracksPeak;
    private long _sampledPeakKb;

    private PeakMemoryTracker(long startKb, bool kernelTracksPeak)
    {
        _startKb = startKb;
        _kernelTracksPeak = kernelTracksPeak;
        _sampledPeakKb = startKb;
    }

    /// <summary>Starts tracking from the current RSS; null where /proc/self/status cannot be read.</summary>
    public static PeakMemoryTracker? Start()
    {
        var kernelTracksPeak = TryResetPeak();
        return ReadKb("VmRSS") is { } rss ? new PeakMemoryTracker(rss, kernelTracksPeak) : null;
    }

    /// <summary>Records the current RSS when the kernel's peak could not be reset (a no-op otherwise).</summary>
    public void Sample()
    {
        if (!_kernelTracksPeak && ReadKb("VmRSS") is { } rss)
        {
            _sampledPeakKb = Math.Max(_sampledPeakKb, rss);
        }
    }

    /// <summary>Peak RSS since <see cref="Start"/> minus the RSS at the start, in bytes (never negative).</summary>
    public long PeakGrowthBytes()
    {
        Sample();
        var peak = _kernelTracksPeak ? ReadKb("VmHWM") ?? _sampledPeakKb : _sampledPeakKb;
        return Math.Max(0, peak - _startKb) * 1024;
    }

    private static bool TryResetPeak()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            return false;
        }
    }

    /// <summary>A "Name:   1234 kB" line of /proc/self/status, in kB (KiB, as the kernel means it).</summary>
    private static long? ReadKb(string field)
    {
        try
        {
            foreach (var line in File.ReadLines(StatusFile))
            {
                if (line.StartsWith(field + ":", StringComparison.Ordinal))
                {
                    var parts = line[(field.Length + 1)..].Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
                    return long.TryParse(parts[0], System.Globalization.CultureInfo.InvariantCulture, out var kb) ? kb : null;
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Not Linux, or /proc is not mounted: the caller reports no figure.
        }

        return null;
    }
}
