using System.Diagnostics;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using ModelCompression.Data;
using ModelCompression.Diagnostics;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Threading;

namespace ModelCompression.Inference;

/// <summary>
/// The engine's one ONNX Runtime runner (sequential execution; the CPU provider, or CUDA where a caller asks for
/// it: see <see cref="ExecutionProviders"/>): opens a model file or an
/// in-memory <see cref="ModelProto"/> (a candidate a quantizer built, a copy with intermediate values exposed),
/// feeds it a <see cref="Dataset"/> in batches and returns the outputs asked for, or times its calls.
/// The model may take several named float32 or int64 inputs (e.g. <c>input_ids</c> and <c>attention_mask</c>);
/// <see cref="Bind"/> matches them to the data's tensors (see <see cref="DataSchema"/>), and a mismatch is
/// MC2020 showing both sides. A sample of 784 values feeds [batch, 784] or [batch, 1, 28, 28] alike.
/// </summary>
public sealed partial class OnnxRunner : IDisposable
{
    private readonly InferenceSession _session;

    /// <summary>The model file, or for an in-memory model what it is ("quantized model"), for messages.</summary>
    private readonly string _modelName;

    /// <summary>Why the first output is not a classifier's [batch, classes] float output; null when it is.</summary>
    private readonly string? _notClassifier;

    private readonly int _outputWidth;

    /// <summary>
    /// Opens <paramref name="modelPath"/>; <paramref name="threads"/> 0 uses the engine's thread budget
    /// (<see cref="EngineThreads"/>). The first output must be a classifier's float [batch, classes] (MC2020 otherwise). The file is checked first as
    /// <see cref="OnnxModelFile.LoadChecked"/> checks it (MC2001 to MC2005); one ONNX Runtime still refuses is MC2002.
    /// <paramref name="provider"/> is where it runs (CUDA only after <see cref="ExecutionProviders.Use(ExecutionProvider)"/> checked it).
    /// </summary>
    public OnnxRunner(string modelPath, int threads = 0, ExecutionProvider provider = ExecutionProvider.Cpu)
        : this(Open(modelPath, modelPath, null, threads, GraphOptimizationLevel.ORT_ENABLE_ALL, null, provider), modelPath)
    {
        ThrowIfNotClassifier();
    }

    private OnnxRunner(InferenceSession session, string modelName)
    {
        _session = session;
        _modelName = modelName;
        Inputs = Describe(session);
        OutputTypes = session.OutputMetadata.ToDictionary(o => o.Key, o => o.Value.ElementDataType, StringComparer.Ordinal);
        (OutputName, var output) = session.OutputMetadata.First();
        if (output.ElementDataType != TensorElementType.Float)
        {
            _notClassifier = $"output '{OutputName}' is {output.ElementDataType}; a classifier's output is float";
        }
        else if (output.Dimensions.Length == 2 && output.Dimensions[1] > 0)
        {
            _outputWidth = output.Dimensions[1];
        }
        else
        {
            _notClassifier = $"output '{OutputName}' has shape [{string.Join(", ", output.Dimensions.Select(d => d < 0 ? "batch" : d.ToString(System.Globalization.CultureInfo.InvariantCulture)))}]; a classifier's output is [batch, classes]";
        }
    }

    /// <summary>The model's inputs as declared.</summary>
    public IReadOnlyList<ModelInput> Inputs { get; }

    /// <summary>The model's first input name.</summary>
    public string InputName => Inputs[0].Name;

    /// <summary>The model's first output name.</summary>
    public string OutputName { get; }

    /// <summary>The element type of each output (intermediate values exposed by <c>WithIntermediateOutputs</c> included), as ONNX Runtime inferred it.</summary>
    public IReadOnlyDictionary<string, TensorElementType> OutputTypes { get; }

    /// <summary>Width of the output (number of classes); MC2020 when the first output is not a classifier's.</summary>
    public int OutputWidth => _notClassifier is null ? _outputWidth : throw Mismatch(_notClassifier);

    /// <summary>
    /// Opens the in-memory <paramref name="model"/>; <paramref name="what"/> names it in messages. The model is
    /// one the engine built, so ONNX Runtime refusing it is an internal error (MC5001). Its outputs may be of
    /// any kind; <see cref="Run(Dataset, int, IProgress{double}?)"/> and <see cref="OutputWidth"/> check for a
    /// classifier's when used.
    /// </summary>
    public static OnnxRunner FromModel(ModelProto model, string what, int threads = 0, GraphOptimizationLevel level = GraphOptimizationLevel.ORT_ENABLE_ALL)
    {
        ArgumentNullException.ThrowIfNull(model);
        return new OnnxRunner(Open(what, null, model.ToByteArray(), threads, level, null), what);
    }

    /// <summary>The inputs of the ONNX model at <paramref name="modelPath"/> as ONNX Runtime reads them.</summary>
    public static IReadOnlyList<ModelInput> ReadInputs(string modelPath)
    {
        using var session = Open(modelPath, modelPath, null, 1, GraphOptimizationLevel.ORT_DISABLE_ALL, null);
        return Describe(session);
    }

    /// <summary>
    /// Opens <paramref name="modelPath"/> with <paramref name="tensors"/> (values inside the graph, such as a
    /// hidden layer's activations) added as outputs of an in-memory copy, so <see cref="Run(Dataset, int, IReadOnlyList{string}, Action{int, int, IReadOnlyList{OrtValue}}, IProgress{double}?)"/>
    /// can fetch them; the file is not changed. MC2020 when the graph has no such value. <paramref name="provider"/> as for the constructor.
    /// </summary>
    public static OnnxRunner WithIntermediateOutputs(string modelPath, IReadOnlyCollection<string> tensors, int threads = 0, ExecutionProvider provider = ExecutionProvider.Cpu)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var model = OnnxModelFile.LoadChecked(modelPath);
        var made = model.Graph.Node.SelectMany(n => n.Output).Where(o => o.Length > 0).ToHashSet(StringComparer.Ordinal);
        if (tensors.FirstOrDefault(t => !made.Contains(t)) is { } missing)
        {
            throw CompressionException.Error(
                DiagnosticCodes.DataSchemaMismatch,
                $"Model '{modelPath}' has no intermediate tensor '{missing}'. {DescribeValues(model)}",
                modelPath);
        }

        var runner = new OnnxRunner(Open(modelPath, modelPath, Expose(model, tensors), threads, GraphOptimizationLevel.ORT_ENABLE_ALL, null, provider), modelPath);
        runner.ThrowIfNotClassifier();
        return runner;
    }

    /// <summary>
    /// Opens a copy of the in-memory <paramref name="model"/> with <paramref name="tensors"/> (node outputs or
    /// graph inputs) fetchable by <see cref="Run(Dataset, int, IReadOnlyList{string}, Action{int, int, IReadOnlyList{OrtValue}}, IProgress{double}?)"/>:
    /// what calibration and shape probes read. A name the graph does not have is an <see cref="ArgumentException"/>.
    /// </summary>
    public static OnnxRunner WithIntermediateOutputs(ModelProto model, string what, IReadOnlyCollection<string> tensors, int threads = 0, GraphOptimizationLevel level = GraphOptimizationLevel.ORT_ENABLE_ALL)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tensors);
        var known = model.Graph.Node.SelectMany(n => n.Output).Concat(model.Graph.Input.Select(i => i.Name)).ToHashSet(StringComparer.Ordinal);
        if (tensors.FirstOrDefault(t => !known.Contains(t)) is { } missing)
        {
            throw new ArgumentException($"The {what} has no value '{missing}'.", nameof(tensors));
        }

        return new OnnxRunner(Open(what, null, Expose(model.Clone(), tensors), threads, level, null), what);
    }

    /// <summary>
    /// The graph ONNX Runtime's CPU provider runs for <paramref name="model"/> at <paramref name="level"/>: its
    /// fusions (QDQ groups into QLinearConv, QGemm, …) and the Casts it inserts around nodes without a kernel
    /// for their types.
    /// </summary>
    public static ModelProto SessionGraph(ModelProto model, string what, GraphOptimizationLevel level)
    {
        ArgumentNullException.ThrowIfNull(model);
        var path = Path.Combine(Path.GetTempPath(), $"mc-session-{Guid.NewGuid():N}.onnx");
        try
        {
            using (Open(what, null, model.ToByteArray(), 1, level, path))
            {
            }

            return OnnxModelFile.Load(path);
        }
        finally
        {
            File.Delete(path);
        }
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
            : $"Its node outputs include: {list} (and {values.Count - Shown} more; 'dotnet compress inspect' lists them all with their shapes).";
    }

    /// <summary>Matches the data's tensors to this model's inputs; MC2020 naming <paramref name="role"/> when they do not fit.</summary>
    public IReadOnlyList<InputBinding> Bind(Dataset data, string role = "model") => DataSchema.Bind(data, Inputs, role, _modelName);

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
        var width = OutputWidth;
        var outputs = new float[(long)data.Count * width];
        ForEachBatch(data, batchSize, [OutputName], progress, (start, size, results) =>
            results[0].GetTensorDataAsSpan<float>().CopyTo(outputs.AsSpan(start * width, size * width)));
        return outputs;
    }

    /// <summary>
    /// Runs every sample and hands each batch's values of <paramref name="tensors"/> (graph outputs, graph
    /// inputs as fed, and intermediate values exposed by <c>WithIntermediateOutputs</c>) to
    /// <paramref name="consume"/>, in order, with the batch's first sample and size. The values are valid only
    /// during the call.
    /// </summary>
    public void Run(Dataset data, int batchSize, IReadOnlyList<string> tensors, Action<int, int, IReadOnlyList<OrtValue>> consume, IProgress<double>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentNullException.ThrowIfNull(consume);
        ForEachBatch(data, batchSize, [.. tensors], progress, consume);
    }

    /// <summary>
    /// The wall-clock milliseconds of each of <paramref name="runs"/> calls of <paramref name="batchSize"/>
    /// samples, after <paramref name="warmupRuns"/> untimed calls (the first calls allocate and pack weights).
    /// Each call takes the next samples of <paramref name="data"/> in order, from the first, wrapping around;
    /// only the <c>Run</c> call is timed (building its inputs and freeing its output are not).
    /// <paramref name="afterEachRun"/> is called after every call, warm-up included, outside the timing.
    /// </summary>
    public double[] Time(Dataset data, int batchSize, int warmupRuns, int runs, Action? afterEachRun = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(warmupRuns);
        ArgumentOutOfRangeException.ThrowIfLessThan(runs, 1);
        if (data.Count == 0)
        {
            throw new ArgumentException($"The data '{data.Source}' has no samples to time the model on.", nameof(data));
        }

        var feed = new BatchFeed(Bind(data), data, batchSize);
        string[] outputNames = [OutputName];
        var milliseconds = new double[runs];
        var rows = new int[batchSize];
        var next = 0;
        using var runOptions = new RunOptions();
        for (var run = -warmupRuns; run < runs; run++)
        {
            for (var i = 0; i < batchSize; i++)
            {
                rows[i] = next;
                next = (next + 1) % data.Count;
            }

            var values = feed.Fill(rows);
            try
            {
                var start = Stopwatch.GetTimestamp();
                using var results = _session.Run(runOptions, feed.Names, values, outputNames);
                var elapsed = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                if (run >= 0)
                {
                    milliseconds[run] = elapsed;
                }
            }
            finally
            {
                BatchFeed.Free(values);
            }

            afterEachRun?.Invoke();
        }

        return milliseconds;
    }

    /// <inheritdoc />
    public void Dispose() => _session.Dispose();

    private void ForEachBatch(Dataset data, int batchSize, string[] requested, IProgress<double>? progress, Action<int, int, IReadOnlyList<OrtValue>> consume)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        var feed = new BatchFeed(Bind(data), data, batchSize);
        // A requested graph input is handed over as fed; the rest come from the session, which needs at least one output to run.
        var inputIndex = requested.Select(name => Array.IndexOf(feed.Names, name)).ToArray();
        string[] fetched = [.. requested.Where((_, i) => inputIndex[i] < 0)];
        var outputNames = fetched.Length > 0 ? fetched : [OutputName];
        var rows = new int[batchSize];
        using var runOptions = new RunOptions();
        for (var start = 0; start < data.Count; start += batchSize)
        {
            var size = Math.Min(batchSize, data.Count - start);
            var batchRows = rows.AsSpan(0, size);
            for (var i = 0; i < size; i++)
            {
                batchRows[i] = start + i;
            }

            var values = feed.Fill(batchRows);
            try
            {
                using var results = _session.Run(runOptions, feed.Names, values, outputNames);
                var handed = new OrtValue[requested.Length];
                for (int i = 0, output = 0; i < requested.Length; i++)
                {
                    handed[i] = inputIndex[i] >= 0 ? values[inputIndex[i]] : results[output++];
                }

                consume(start, size, handed);
            }
            finally
            {
                BatchFeed.Free(values);
            }

            progress?.Report((double)(start + size) / data.Count);
        }
    }

    private void ThrowIfNotClassifier()
    {
        if (_notClassifier is not null)
        {
            _session.Dispose();
            throw Mismatch(_notClassifier);
        }
    }

    private CompressionException Mismatch(string why) =>
        CompressionException.Error(DiagnosticCodes.DataSchemaMismatch, $"Model '{_modelName}' does not fit: {why}.", _modelName);
}
