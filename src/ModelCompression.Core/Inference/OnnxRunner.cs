using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using ModelCompression.Data;
using ModelCompression.Diagnostics;

namespace ModelCompression.Inference;

/// <summary>
/// Runs a classifier ONNX model over a <see cref="Dataset"/> in batches with ONNX Runtime, using all cores.
/// The model may take several named float32 or int64 inputs (e.g. <c>input_ids</c> and <c>attention_mask</c>);
/// <see cref="Bind"/> matches them to the data's tensors (see <see cref="DataSchema"/>), and a mismatch is
/// MC2020 showing both sides. A sample of 784 values feeds [batch, 784] or [batch, 1, 28, 28] alike.
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

        Inputs = Describe(_session);
        (OutputName, var output) = _session.OutputMetadata.First();
        if (output.ElementDataType != TensorElementType.Float)
        {
            throw Mismatch($"output '{OutputName}' is {output.ElementDataType}; a classifier's output is float");
        }

        OutputWidth = output.Dimensions.Length == 2 && output.Dimensions[1] > 0
            ? output.Dimensions[1]
            : throw Mismatch($"output '{OutputName}' has shape [{string.Join(", ", output.Dimensions.Select(d => d < 0 ? "batch" : d.ToString(System.Globalization.CultureInfo.InvariantCulture)))}]; a classifier's output is [batch, classes]");
    }

    /// <summary>The model's inputs as declared.</summary>
    public IReadOnlyList<ModelInput> Inputs { get; }

    /// <summary>The model's first input name.</summary>
    public string InputName => Inputs[0].Name;

    /// <summary>The model's first input's dimensions as declared (-1 where symbolic).</summary>
    public int[] InputDimensions => Inputs[0].Dimensions;

    /// <summary>The model's first output name.</summary>
    public string OutputName { get; }

    /// <summary>Width of the output (number of classes).</summary>
    public int OutputWidth { get; }

    /// <summary>The inputs of the ONNX model at <paramref name="modelPath"/> as ONNX Runtime reads them.</summary>
    public static IReadOnlyList<ModelInput> ReadInputs(string modelPath)
    {
        try
        {
            using var session = new InferenceSession(modelPath);
            return Describe(session);
        }
        catch (OnnxRuntimeException e)
        {
            throw CompressionException.Error(DiagnosticCodes.ModelInvalid, $"ONNX Runtime cannot load '{modelPath}': {e.Message}", modelPath);
        }
    }

    /// <summary>Matches the data's tensors to this model's inputs; MC2020 naming <paramref name="role"/> when they do not fit.</summary>
    public IReadOnlyList<InputBinding> Bind(Dataset data, string role = "model") => DataSchema.Bind(data, Inputs, role, _modelPath);

    /// <summary>
    /// The shape of one sample (no batch axis) as this single-input model takes it, checked against the data
    /// set: MC2020 when they do not fit.
    /// </summary>
    public long[] SampleShapeFor(Dataset data)
    {
        var bindings = Bind(data);
        return bindings.Count == 1
            ? bindings[0].SampleShape
            : throw Mismatch($"the model has {bindings.Count} inputs ({string.Join(", ", bindings.Select(b => b.Input))}); use Bind for several");
    }

    /// <summary>Runs every sample; returns the outputs row-major, <see cref="OutputWidth"/> per sample.</summary>
    public float[] Run(Dataset data, int batchSize, IProgress<double>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        var bindings = Bind(data);
        var tensors = bindings.Select(b => data.Tensor(b.Tensor)!).ToArray();
        var names = bindings.Select(b => b.Input).ToArray();
        var outputs = new float[(long)data.Count * OutputWidth];
        var floats = new float[bindings.Count][];
        var longs = new long[bindings.Count][];
        using var runOptions = new RunOptions();
        for (var start = 0; start < data.Count; start += batchSize)
        {
            var size = Math.Min(batchSize, data.Count - start);
            var values = new OrtValue[bindings.Count];
            try
            {
                for (var i = 0; i < bindings.Count; i++)
                {
                    long[] shape = [size, .. bindings[i].SampleShape];
                    var length = size * tensors[i].SampleSize;
                    // ONNX Runtime takes a whole array as the tensor: the last, smaller batch gets arrays of its own.
                    if (bindings[i].ElementType == DataElementType.Float32)
                    {
                        var buffer = size == batchSize ? floats[i] ??= new float[length] : new float[length];
                        tensors[i].CopyRange(start, size, buffer);
                        values[i] = OrtValue.CreateTensorValueFromMemory(buffer, shape);
                    }
                    else
                    {
                        var buffer = size == batchSize ? longs[i] ??= new long[length] : new long[length];
                        tensors[i].CopyRange(start, size, buffer);
                        values[i] = OrtValue.CreateTensorValueFromMemory(buffer, shape);
                    }
                }

                using var results = _session.Run(runOptions, names, values, [OutputName]);
                results[0].GetTensorDataAsSpan<float>().CopyTo(outputs.AsSpan(start * OutputWidth, size * OutputWidth));
            }
            finally
            {
                foreach (var value in values)
                {
                    value?.Dispose();
                }
            }

            progress?.Report((double)(start + size) / data.Count);
        }

        return outputs;
    }

    /// <inheritdoc />
    public void Dispose() => _session.Dispose();

    private static List<ModelInput> Describe(InferenceSession session) =>
    [
        .. session.InputMetadata.Select(p => new ModelInput(
            p.Key,
            p.Value.ElementDataType switch
            {
                TensorElementType.Float => "float32",
                TensorElementType.Int64 => "int64",
                var other => other.ToString().ToLowerInvariant(),
            },
            p.Value.Dimensions,
            p.Value.SymbolicDimensions ?? [])),
    ];

    private CompressionException Mismatch(string why) =>
        CompressionException.Error(DiagnosticCodes.DataSchemaMismatch, $"Model '{_modelPath}' does not fit: {why}.", _modelPath);
}
