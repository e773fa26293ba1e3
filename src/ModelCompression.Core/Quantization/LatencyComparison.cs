using ModelCompression.Data;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Quantization;

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
/// Times a float model against its quantized version in ONNX Runtime's CPU provider, because int8 does not
/// always pay: on a small layer the cost of quantizing activations outweighs the faster integer product.
/// </summary>
public static class LatencyComparison
{
    /// <summary>Untimed calls before timing: the first calls allocate and pack weights.</summary>
    public const int WarmupRuns = 5;

    /// <summary>
    /// Measures both models at every batch size and thread count. The two models' calls alternate, so a
    /// change in machine load during the measurement hits both alike.
    /// </summary>
    public static IReadOnlyList<LatencyMeasurement> Measure(
        ModelProto floatModel,
        ModelProto quantizedModel,
        Dataset samples,
        long[] sampleShape,
        IReadOnlyList<int> batchSizes,
        IReadOnlyList<int> threads,
        int runs)
    {
        ArgumentNullException.ThrowIfNull(samples);
        ArgumentOutOfRangeException.ThrowIfLessThan(runs, 1);
        var measurements = new List<LatencyMeasurement>();
        foreach (var threadCount in threads)
        {
            using var floatSession = new OrtModel(floatModel, "float model", threadCount);
            using var quantizedSession = new OrtModel(quantizedModel, "quantized model", threadCount);
            foreach (var batch in batchSizes)
            {
                var input = Batch(samples, batch);
                long[] shape = [batch, .. sampleShape];
                floatSession.Time(input, shape, WarmupRuns, 1);
                quantizedSession.Time(input, shape, WarmupRuns, 1);
                var floatTimes = new double[runs];
                var quantizedTimes = new double[runs];
                for (var i = 0; i < runs; i++)
                {
                    floatTimes[i] = floatSession.Time(input, shape, 0, 1)[0];
                    quantizedTimes[i] = quantizedSession.Time(input, shape, 0, 1)[0];
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

    /// <summary>The first <paramref name="size"/> samples, repeated when there are fewer.</summary>
    private static float[] Batch(Dataset samples, int size)
    {
        var input = new float[(long)size * samples.SampleSize];
        for (var i = 0; i < size; i++)
        {
            Array.Copy(samples.Inputs, (long)(i % samples.Count) * samples.SampleSize, input, (long)i * samples.SampleSize, samples.SampleSize);
        }

        return input;
    }

    private static double Median(double[] values)
    {
        var sorted = values.Order().ToArray();
        var middle = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
    }
}
