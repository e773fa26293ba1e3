using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using TensorElementType = Microsoft.ML.OnnxRuntime.Tensors.TensorElementType;
using ModelCompression.Onnx.Proto;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelCompression.Torch.Tests.Graph;

/// <summary>Shared helpers of the graph and training tests: fixtures, ONNX Runtime as the reference, tensors.</summary>
internal static class GraphTestSupport
{
    private static readonly Lazy<string> FixturesFolder = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Join(dir.FullName, "tests", "fixtures", "pytorch");
            if (File.Exists(Path.Join(candidate, "mlp_opset13.onnx")))
            {
                return candidate;
            }
        }

        throw new InvalidOperationException($"No tests/fixtures/pytorch above {AppContext.BaseDirectory}.");
    });

    /// <summary>A PyTorch-exported fixture (tests/fixtures/pytorch).</summary>
    public static string Fixture(string name) => Path.Join(FixturesFolder.Value, name);

    public static float[] RandomFloats(int count, int seed, double bound = 1.0)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(_ => (float)(((random.NextDouble() * 2) - 1) * bound))];
    }

    /// <summary>Runs the model's first output in ONNX Runtime on one thread (bit-for-bit repeatable).</summary>
    public static float[] RunOrt(ModelProto model, float[] input, long[] shape)
    {
        using var options = new SessionOptions { IntraOpNumThreads = 1, GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL };
        using var session = new InferenceSession(model.ToByteArray(), options);
        var inputName = session.InputMetadata.Keys.Single();
        var outputName = session.OutputMetadata.Keys.First();
        using var value = OrtValue.CreateTensorValueFromMemory(input, shape);
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, [inputName], [value], [outputName]);
        return outputs[0].GetTensorDataAsSpan<float>().ToArray();
    }

    /// <summary>
    /// Runs every output of the model in ONNX Runtime on named torch tensors (float, double, int64, int32, bool)
    /// and returns each output's values as doubles with its shape.
    /// </summary>
    public static List<(double[] Data, long[] Shape)> RunOrtAll(ModelProto model, IReadOnlyDictionary<string, Tensor> inputs)
    {
        using var options = new SessionOptions { IntraOpNumThreads = 1, GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL };
        using var session = new InferenceSession(model.ToByteArray(), options);
        var names = session.InputMetadata.Keys.ToList();
        var values = names.Select(n => ToOrt(inputs[n])).ToList();
        try
        {
            var outputNames = session.OutputMetadata.Keys.ToList();
            using var runOptions = new RunOptions();
            using var outputs = session.Run(runOptions, names, values, outputNames);
            return [.. outputs.Select(o => (ReadOrt(o), o.GetTensorTypeAndShape().Shape))];
        }
        finally
        {
            values.ForEach(v => v.Dispose());
        }
    }

    private static OrtValue ToOrt(Tensor tensor)
    {
        var t = tensor.detach().cpu().contiguous();
        var shape = t.shape;
        // TorchSharp's accessor cannot copy out zero elements (an empty past); an empty array gives ONNX Runtime the same.
        if (t.numel() == 0)
        {
            return t.dtype switch
            {
                ScalarType.Float32 => OrtValue.CreateTensorValueFromMemory(Array.Empty<float>(), shape),
                ScalarType.Int64 => OrtValue.CreateTensorValueFromMemory(Array.Empty<long>(), shape),
                var other => throw new NotSupportedException(other.ToString()),
            };
        }

        return t.dtype switch
        {
            ScalarType.Float32 => OrtValue.CreateTensorValueFromMemory(t.data<float>().ToArray(), shape),
            ScalarType.Float64 => OrtValue.CreateTensorValueFromMemory(t.data<double>().ToArray(), shape),
            ScalarType.Int64 => OrtValue.CreateTensorValueFromMemory(t.data<long>().ToArray(), shape),
            ScalarType.Int32 => OrtValue.CreateTensorValueFromMemory(t.data<int>().ToArray(), shape),
            ScalarType.Bool => OrtValue.CreateTensorValueFromMemory(t.data<bool>().ToArray(), shape),
            var other => throw new NotSupportedException(other.ToString()),
        };
    }

    private static double[] ReadOrt(OrtValue value) => value.GetTensorTypeAndShape().ElementDataType switch
    {
        TensorElementType.Float => [.. value.GetTensorDataAsSpan<float>().ToArray().Select(v => (double)v)],
        TensorElementType.Double => value.GetTensorDataAsSpan<double>().ToArray(),
        TensorElementType.Int64 => [.. value.GetTensorDataAsSpan<long>().ToArray().Select(v => (double)v)],
        TensorElementType.Int32 => [.. value.GetTensorDataAsSpan<int>().ToArray().Select(v => (double)v)],
        TensorElementType.Bool => [.. value.GetTensorDataAsSpan<bool>().ToArray().Select(v => v ? 1.0 : 0.0)],
        var other => throw new NotSupportedException(other.ToString()),
    };

    /// <summary>A tensor's values as doubles (any element type).</summary>
    public static double[] ToDoubles(Tensor tensor) => tensor.numel() == 0 ? [] : tensor.detach().cpu().to_type(ScalarType.Float64).contiguous().data<double>().ToArray();

    /// <summary>max |actual - expected| / max(max |expected|, 1e-6), over doubles.</summary>
    public static double RelativeError(double[] actual, double[] expected)
    {
        Assert.Equal(expected.Length, actual.Length);
        if (expected.Length == 0)
        {
            return 0;
        }

        var scale = Math.Max(expected.Max(Math.Abs), 1e-6);
        return actual.Zip(expected, (a, e) => double.IsNaN(a) && double.IsNaN(e) ? 0 : a == e ? 0 : Math.Abs(a - e)).Max() / scale;
    }

    public static float[] ToArray(Tensor tensor) => tensor.detach().cpu().contiguous().data<float>().ToArray();

    /// <summary>max |actual - expected| / max |expected|: the error relative to the output's scale.</summary>
    public static double RelativeError(float[] actual, float[] expected)
    {
        Assert.Equal(expected.Length, actual.Length);
        var scale = Math.Max(expected.Max(v => Math.Abs((double)v)), 1e-6);
        return actual.Zip(expected, (a, e) => Math.Abs((double)a - e)).Max() / scale;
    }

    /// <summary>A copy with every initializer's values removed, to compare everything else.</summary>
    public static ModelProto WithoutInitializerValues(ModelProto model)
    {
        var copy = model.Clone();
        foreach (var initializer in copy.Graph.Initializer)
        {
            initializer.RawData = ByteString.Empty;
            initializer.FloatData.Clear();
            initializer.Int64Data.Clear();
        }

        return copy;
    }
}
