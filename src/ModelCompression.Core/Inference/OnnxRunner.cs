using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using ModelCompression.Data;
using ModelCompression.Diagnostics;

namespace ModelCompression.Inference;

/// <summary>
/// Runs a single-input, float classifier ONNX model over a <see cref="Dataset"/> in batches with ONNX
/// Runtime, using all cores. The data's samples are fed in the model's own input shape: a sample of 784
/// values feeds [batch, 784] or [batch, 1, 28, 28] alike, and a mismatch is MC2020 showing both sides.
/// </summary>
public sealed class OnnxRunner : IDisposable
{
    private readonly InferenceSession _session;
    private readonly string _modelPath;

    /// <summary>Opens <paramref name="modelPath"/>; <paramref name="threads"/> 0 uses every core.</summary>
    public OnnxRunner(string modelPath, int threads = 0)
    {
        _modelPath = modelPath;
        using var options = new SessionOptions
        {
            IntraOpNumThreads = threads > 0 ? threads : Environment.ProcessorCount,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        try
        {
            _session = new InferenceSession(modelPath, options);
        }
        catch (OnnxRuntimeException e)
        {
            throw CompressionException.Error(DiagnosticCodes.ModelInvalid, $"ONNX Runtime cannot load '{modelPath}': {e.Message}", modelPath);
        }

        if (_session.InputMetadata.Count != 1)
        {
            throw Mismatch($"the model has {_session.InputMetadata.Count} inputs ({string.Join(", ", _session.InputMetadata.Keys)}); this version feeds models with one input");
        }

        (InputName, var input) = _session.InputMetadata.First();
        (OutputName, var output) = _session.OutputMetadata.First();
        if (input.ElementDataType != TensorElementType.Float || output.ElementDataType != TensorElementType.Float)
        {
            throw Mismatch($"input '{InputName}' is {input.ElementDataType} and output '{OutputName}' is {output.ElementDataType}; float inputs and outputs are needed");
        }

        InputDimensions = input.Dimensions;
        OutputWidth = output.Dimensions.Length == 2 && output.Dimensions[1] > 0
            ? output.Dimensions[1]
            : throw Mismatch($"output '{OutputName}' has shape {Describe(output.Dimensions)}; a classifier's output is [batch, classes]");
    }

    /// <summary>The model's input name.</summary>
    public string InputName { get; }

    /// <summary>The model's input dimensions as declared (-1 where symbolic).</summary>
    public int[] InputDimensions { get; }

    /// <summary>The model's first output name.</summary>
    public string OutputName { get; }

    /// <summary>Width of the output (number of classes).</summary>
    public int OutputWidth { get; }

    /// <summary>
    /// The shape of one sample (no batch axis) as this model takes it, checked against the data set:
    /// MC2020 when the element counts differ.
    /// </summary>
    public long[] SampleShapeFor(Dataset data)
    {
        if (InputDimensions.Length < 2 || InputDimensions.Skip(1).Any(d => d <= 0))
        {
            throw Mismatch($"input '{InputName}' has shape {Describe(InputDimensions)}; the sample dimensions (all but the first) must be fixed");
        }

        long[] shape = [.. InputDimensions.Skip(1).Select(d => (long)d)];
        var size = shape.Aggregate(1L, (a, b) => a * b);
        if (size != data.SampleSize)
        {
            throw Mismatch($"input '{InputName}' takes {Describe(InputDimensions)} ({size} values per sample) but the data '{data.Source}' has samples of [{string.Join(", ", data.SampleShape)}] ({data.SampleSize} values)");
        }

        return shape;
    }

    /// <summary>Runs every sample; returns the outputs row-major, <see cref="OutputWidth"/> per sample.</summary>
    public float[] Run(Dataset data, int batchSize, IProgress<double>? progress = null)
    {
        var sampleShape = SampleShapeFor(data);
        var outputs = new float[(long)data.Count * OutputWidth];
        var batch = new float[batchSize * data.SampleSize];
        using var runOptions = new RunOptions();
        for (var start = 0; start < data.Count; start += batchSize)
        {
            var size = Math.Min(batchSize, data.Count - start);
            var input = size == batchSize ? batch : new float[size * data.SampleSize];
            Array.Copy(data.Inputs, (long)start * data.SampleSize, input, 0, (long)size * data.SampleSize);
            using var value = OrtValue.CreateTensorValueFromMemory(input, [size, .. sampleShape]);
            using var results = _session.Run(runOptions, [InputName], [value], [OutputName]);
            var span = results[0].GetTensorDataAsSpan<float>();
            span.CopyTo(outputs.AsSpan(start * OutputWidth, size * OutputWidth));
            progress?.Report((double)(start + size) / data.Count);
        }

        return outputs;
    }

    /// <inheritdoc />
    public void Dispose() => _session.Dispose();

    private CompressionException Mismatch(string why) =>
        CompressionException.Error(DiagnosticCodes.DataSchemaMismatch, $"Model '{_modelPath}' does not fit: {why}.", _modelPath);

    private static string Describe(int[] dims) => $"[{string.Join(", ", dims.Select(d => d < 0 ? "batch" : d.ToString(System.Globalization.CultureInfo.InvariantCulture)))}]";
}
