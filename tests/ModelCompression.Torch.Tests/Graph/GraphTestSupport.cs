using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
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
