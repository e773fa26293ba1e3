using ModelCompression.Common;

namespace ModelCompression.Evaluation;

/// <summary>
/// Options of the evaluate stage: how the teacher and every stage's output are measured on the test data.
/// Every option changes the numbers (latency above all), so all of them are part of the evaluation's cache key.
/// </summary>
public sealed record EvaluateOptions
{
    /// <summary>Samples per ONNX Runtime call for the quality pass.</summary>
    [Option("batch_size", "Samples per ONNX Runtime call when scoring the test set.", Min = 1, Max = 1 << 20)]
    public int BatchSize { get; init; } = 256;

    /// <summary>Whether latency and peak memory are measured (they cost time; quality metrics do not need them).</summary>
    [Option("measure_latency", "Measure latency (p50/p95/p99 at batch 1 and at latency_batch_size) and peak memory; false leaves them null.")]
    public bool MeasureLatency { get; init; } = true;

    /// <summary>The second batch size latency is measured at.</summary>
    [Option("latency_batch_size", "The batch size of the second latency measurement (the first is batch 1).", Min = 1, Max = 1 << 16)]
    public int LatencyBatchSize { get; init; } = 64;

    /// <summary>Timed runs at batch 1.</summary>
    [Option("latency_runs", "Timed runs at batch 1, each on a real test sample.", Min = 1, Max = 1_000_000)]
    public int LatencyRuns { get; init; } = 100;

    /// <summary>Timed runs at <see cref="LatencyBatchSize"/>.</summary>
    [Option("latency_batch_runs", "Timed runs at latency_batch_size, each on real test samples.", Min = 1, Max = 1_000_000)]
    public int LatencyBatchRuns { get; init; } = 20;

    /// <summary>Untimed runs before each latency measurement.</summary>
    [Option("warmup_runs", "Untimed runs before each latency measurement (first-run allocations and caches are not latency).", Min = 0, Max = 10_000)]
    public int WarmupRuns { get; init; } = 5;

    /// <summary>ONNX Runtime intra-op threads of the latency session.</summary>
    [Option("threads", "ONNX Runtime intra-op threads for the latency measurement (1 is the most repeatable; 0 uses every core).", Min = 0, Max = 1024)]
    public int Threads { get; init; } = 1;
}
