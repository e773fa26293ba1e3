using System.Diagnostics;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using ModelCompression.Data;
using ModelCompression.Diagnostics;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Quantization;

/// <summary>
/// An in-memory model (a candidate the quantizers built, or a copy with extra outputs) opened in ONNX
/// Runtime's CPU provider, fed from a <see cref="Dataset"/> in the model's own sample shape.
/// </summary>
internal sealed class OrtModel : IDisposable
{
    private readonly InferenceSession _session;

    /// <summary>Opens <paramref name="model"/>; a model ONNX Runtime refuses is an internal error (MC5001) naming <paramref name="what"/>.</summary>
    public OrtModel(ModelProto model, string what, int threads = 0, GraphOptimizationLevel level = GraphOptimizationLevel.ORT_ENABLE_ALL, string? optimizedModelPath = null)
    {
        using var options = new SessionOptions
        {
            IntraOpNumThreads = threads > 0 ? threads : Environment.ProcessorCount,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = level,
        };
        if (optimizedModelPath is not null)
        {
            options.OptimizedModelFilePath = optimizedModelPath;
        }

        try
        {
            _session = new InferenceSession(model.ToByteArray(), options);
        }
        catch (OnnxRuntimeException e)
        {
            throw CompressionException.Error(DiagnosticCodes.Internal, $"ONNX Runtime cannot load the {what}: {e.Message}");
        }

        OutputNames = [.. _session.OutputMetadata.Keys];
    }

    /// <summary>The model's only input (the data-feeding methods take single-input models).</summary>
    public string InputName => _session.InputMetadata.Keys.Single();

    /// <summary>Every output, in graph order.</summary>
    public IReadOnlyList<string> OutputNames { get; }

    /// <summary>The element type of each output, as ONNX Runtime inferred it.</summary>
    public IReadOnlyDictionary<string, TensorElementType> OutputTypes =>
        _session.OutputMetadata.ToDictionary(o => o.Key, o => o.Value.ElementDataType, StringComparer.Ordinal);

    /// <summary>
    /// Runs every sample of <paramref name="data"/> in batches, handing each batch's input and the requested
    /// outputs to <paramref name="onBatch"/> (the values are only valid during the call).
    /// </summary>
    public void Run(Dataset data, long[] sampleShape, int batchSize, IReadOnlyList<string> outputs, Action<float[], int, IReadOnlyList<OrtValue>> onBatch)
    {
        using var runOptions = new RunOptions();
        for (var start = 0; start < data.Count; start += batchSize)
        {
            var rows = Math.Min(batchSize, data.Count - start);
            var input = new float[rows * data.SampleSize];
            Array.Copy(data.Inputs, (long)start * data.SampleSize, input, 0, input.Length);
            using var value = OrtValue.CreateTensorValueFromMemory(input, [rows, .. sampleShape]);
            using var results = _session.Run(runOptions, [InputName], [value], outputs);
            onBatch(input, rows, results);
        }
    }

    /// <summary>The first output over every sample, row-major.</summary>
    public float[] FirstOutput(Dataset data, long[] sampleShape, int batchSize = 256)
    {
        var collected = new List<float>();
        Run(data, sampleShape, batchSize, [OutputNames[0]], (_, _, results) => collected.AddRange(results[0].GetTensorDataAsSpan<float>()));
        return [.. collected];
    }

    /// <summary>Milliseconds of each of <paramref name="runs"/> calls on one batch, after <paramref name="warmup"/> untimed calls.</summary>
    public double[] Time(float[] input, long[] shape, int warmup, int runs)
    {
        using var runOptions = new RunOptions();
        using var value = OrtValue.CreateTensorValueFromMemory(input, shape);
        string[] inputNames = [InputName];
        string[] outputNames = [OutputNames[0]];
        var times = new double[runs];
        for (var i = -warmup; i < runs; i++)
        {
            var start = Stopwatch.GetTimestamp();
            using (_session.Run(runOptions, inputNames, [value], outputNames))
            {
            }

            if (i >= 0)
            {
                times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            }
        }

        return times;
    }

    /// <summary>
    /// The graph ONNX Runtime's CPU provider runs for <paramref name="model"/> at <paramref name="level"/>: its
    /// fusions (QDQ groups into QLinearConv, QGemm, …) and the Casts it inserts around nodes without a kernel
    /// for their types.
    /// </summary>
    public static ModelProto SessionGraph(ModelProto model, string what, GraphOptimizationLevel level)
    {
        var path = Path.Combine(Path.GetTempPath(), $"mc-session-{Guid.NewGuid():N}.onnx");
        try
        {
            using (new OrtModel(model, what, threads: 1, level, path))
            {
            }

            return OnnxModelFile.Load(path);
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <inheritdoc />
    public void Dispose() => _session.Dispose();
}
