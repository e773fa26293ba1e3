using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using ModelCompression.Data;
using ModelCompression.Diagnostics;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;

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
        : this(modelPath, threads, null)
    {
    }

    /// <summary>Opens the model in <paramref name="model"/> (serialized), or the file when it is null; <paramref name="modelPath"/> names it in messages.</summary>
    private OnnxRunner(string modelPath, int threads, byte[]? model)
    {
        _modelPath = modelPath;
        using var options = new SessionOptions
        {
            IntraOpNumThreads = threads > 0 ? threads : Environment.ProcessorCount,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        try
        {
            _session = model is null ? new InferenceSession(modelPath, options) : new InferenceSession(model, options);
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
        var outputs = new float[(long)data.Count * OutputWidth];
        ForEachBatch(data, batchSize, [OutputName], progress, (start, size, results) =>
            results[0].GetTensorDataAsSpan<float>().CopyTo(outputs.AsSpan(start * OutputWidth, size * OutputWidth)));
        return outputs;
    }

    /// <summary>
    /// Runs every sample and hands each batch's values of <paramref name="tensors"/> (graph outputs; see
    /// <see cref="WithIntermediateOutputs"/> for intermediate values) to <paramref name="consume"/>, in order,
    /// with the batch's first sample and size. The values are valid only during the call.
    /// </summary>
    public void Run(Dataset data, int batchSize, IReadOnlyList<string> tensors, Action<int, int, IReadOnlyList<OrtValue>> consume, IProgress<double>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentNullException.ThrowIfNull(consume);
        ForEachBatch(data, batchSize, [.. tensors], progress, consume);
    }

    /// <summary>
    /// Opens <paramref name="modelPath"/> with <paramref name="tensors"/> (values inside the graph, such as a
    /// hidden layer's activations) added as outputs of an in-memory copy, so <see cref="Run(Dataset, int, IReadOnlyList{string}, Action{int, int, IReadOnlyList{OrtValue}}, IProgress{double}?)"/>
    /// can fetch them; the file is not changed. MC2020 when the graph has no such value.
    /// </summary>
    public static OnnxRunner WithIntermediateOutputs(string modelPath, IReadOnlyCollection<string> tensors, int threads = 0)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var model = OnnxModelFile.Load(modelPath);
        var made = model.Graph.Node.SelectMany(n => n.Output).Where(o => o.Length > 0).ToHashSet(StringComparer.Ordinal);
        var outputs = model.Graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var name in tensors)
        {
            if (!made.Contains(name))
            {
                throw CompressionException.Error(
                    DiagnosticCodes.DataSchemaMismatch,
                    $"Model '{modelPath}' has no intermediate tensor '{name}'. {DescribeValues(model)}",
                    modelPath);
            }

            if (outputs.Add(name))
            {
                // No type: ONNX Runtime infers it, which works for any intermediate value.
                model.Graph.Output.Add(new ValueInfoProto { Name = name });
            }
        }

        return new OnnxRunner(modelPath, threads, model.ToByteArray());
    }

    /// <summary>A short list of the values a graph's nodes make, for messages about a name that is not there.</summary>
    public static string DescribeValues(ModelProto model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var values = model.Graph.Node.SelectMany(n => n.Output).Where(o => o.Length > 0).ToList();
        const int Shown = 24;
        var list = string.Join(", ", values.Take(Shown).Select(v => $"'{v}'"));
        return values.Count <= Shown
            ? $"Its node outputs: {list}."
            : $"Its node outputs include: {list} (and {values.Count - Shown} more; a viewer such as Netron shows them all).";
    }

    private void ForEachBatch(Dataset data, int batchSize, string[] outputNames, IProgress<double>? progress, Action<int, int, IReadOnlyList<OrtValue>> consume)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        var bindings = Bind(data);
        var tensors = bindings.Select(b => data.Tensor(b.Tensor)!).ToArray();
        var names = bindings.Select(b => b.Input).ToArray();
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

                using var results = _session.Run(runOptions, names, values, outputNames);
                consume(start, size, [.. results]);
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
