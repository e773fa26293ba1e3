using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;
using ModelCompression.Data;
using ModelCompression.Diagnostics;
using ModelCompression.Stages;

namespace ModelCompression.Evaluation;

/// <summary>
/// Measures a model's latency the way a service would see it: one ONNX Runtime session with a fixed number of
/// intra-op threads (sequential execution, all graph optimizations), fed real test samples, warm-up runs first,
/// then the wall-clock time of each <c>Run</c> call (building the input and freeing the output are not timed).
/// </summary>
public static class LatencyBenchmark
{
    /// <summary>
    /// Latency percentiles at batch 1 and at <see cref="EvaluateOptions.LatencyBatchSize"/>, and the process's
    /// peak resident-memory growth (MB, 10^6 bytes) while the session was created and run, or null where the
    /// operating system does not tell it (see <see cref="PeakMemoryTracker"/>).
    /// </summary>
    /// <param name="modelPath">The model.</param>
    /// <param name="samples">Real samples, taken in order (wrapping around when a batch needs more than there are).</param>
    /// <param name="sampleShape">One sample's shape as the model takes it (no batch axis).</param>
    /// <param name="options">Runs, warm-up, batch size and threads.</param>
    public static (LatencyReport Latency, double? PeakMemoryMb) Measure(string modelPath, Dataset samples, long[] sampleShape, EvaluateOptions options)
    {
        ArgumentNullException.ThrowIfNull(samples);
        ArgumentNullException.ThrowIfNull(options);
        var memory = PeakMemoryTracker.Start();
        var threads = options.Threads > 0 ? options.Threads : Environment.ProcessorCount;
        using var sessionOptions = new SessionOptions
        {
            IntraOpNumThreads = threads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        InferenceSession session;
        try
        {
            session = new InferenceSession(modelPath, sessionOptions);
        }
        catch (OnnxRuntimeException e)
        {
            throw CompressionException.Error(DiagnosticCodes.ModelInvalid, $"ONNX Runtime cannot load '{modelPath}': {e.Message}", modelPath);
        }

        using (session)
        {
            memory?.Sample();
            var batch1 = Time(session, samples, sampleShape, 1, options.WarmupRuns, options.LatencyRuns, memory);
            var batch = Time(session, samples, sampleShape, options.LatencyBatchSize, options.WarmupRuns, options.LatencyBatchRuns, memory);
            return (new LatencyReport(threads, batch1, batch), memory?.PeakGrowthBytes() / 1e6);
        }
    }

    private static LatencyStats Time(InferenceSession session, Dataset samples, long[] sampleShape, int batchSize, int warmupRuns, int runs, PeakMemoryTracker? memory)
    {
        var inputName = session.InputMetadata.Keys.First();
        var outputName = session.OutputMetadata.Keys.First();
        var input = new float[(long)batchSize * samples.SampleSize];
        var milliseconds = new double[runs];
        var next = 0;
        using var runOptions = new RunOptions();
        for (var run = -warmupRuns; run < runs; run++)
        {
            for (var i = 0; i < batchSize; i++)
            {
                Array.Copy(samples.Inputs, (long)next * samples.SampleSize, input, (long)i * samples.SampleSize, samples.SampleSize);
                next = (next + 1) % samples.Count;
            }

            using var value = OrtValue.CreateTensorValueFromMemory(input, [batchSize, .. sampleShape]);
            var start = Stopwatch.GetTimestamp();
            using var results = session.Run(runOptions, [inputName], [value], [outputName]);
            var elapsed = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            if (run >= 0)
            {
                milliseconds[run] = elapsed;
            }

            memory?.Sample();
        }

        Array.Sort(milliseconds);
        return new LatencyStats(
            batchSize,
            Statistics.Percentile(milliseconds, 50),
            Statistics.Percentile(milliseconds, 95),
            Statistics.Percentile(milliseconds, 99),
            runs);
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
