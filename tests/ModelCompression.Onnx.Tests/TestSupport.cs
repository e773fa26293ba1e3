using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;
using ModelCompression.Onnx.Proto;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Onnx.Tests;

/// <summary>A fresh folder under the system temp folder, deleted with everything in it on dispose.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir()
    {
        Path = System.IO.Path.Join(System.IO.Path.GetTempPath(), "mc-onnx-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Join(Path, name);

    public string Dir(string name) => Directory.CreateDirectory(File(name)).FullName;

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // Best effort on shared CI machines.
        }
    }
}

internal static class Fixtures
{
    public static string Folder => Path.Join(AppContext.BaseDirectory, "fixtures", "pytorch");

    public static string CopyTo(string fixture, TempDir dir)
    {
        var target = dir.File(fixture);
        File.Copy(Path.Join(Folder, fixture), target);
        return target;
    }

    /// <summary>Creates a named pipe: opening it for reading blocks until a writer appears, so a test can tell it was never opened.</summary>
    public static void MakeFifo(string path)
    {
        using var process = Process.Start(new ProcessStartInfo("mkfifo", [path]) { UseShellExecute = false })!;
        process.WaitForExit();
        Assert.Equal(0, process.ExitCode);
    }
}

internal static class Models
{
    /// <summary>y = Relu(x W1ᵀ + b1) W2ᵀ + b2 with fixed pseudo-random weights; x is [batch, 4], y is [batch, 3].</summary>
    public static ModelProto Mlp(int seed = 1, int hidden = 300)
    {
        var random = new Random(seed);
        float[] Values(int n) => Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        var b = new GraphBuilder("mlp").Producer("tests", "1");
        var h = b.Input("x", DataType.Float, "batch", 4)
            .Initializer("w1", Values(hidden * 4), [hidden, 4])
            .Initializer("b1", Values(hidden), [hidden])
            .Initializer("w2", Values(3 * hidden), [3, hidden])
            .Initializer("b2", Values(3), [3])
            .Op("Relu", [b.Op("Gemm", ["x", "w1", "b1"], Attr.Int("transB", 1))]);
        return b.Node("Gemm", [h, "w2", "b2"], ["y"], Attr.Int("transB", 1))
            .Output("y", DataType.Float, "batch", 3)
            .Build();
    }
}

/// <summary>Runs models in ONNX Runtime on one thread, so results are bit-for-bit repeatable.</summary>
internal static class Ort
{
    public sealed record Input(string Name, long[] Shape, float[]? Floats = null, long[]? Int64s = null);

    public static Dictionary<string, float[]> Run(string modelPath, params Input[] inputs)
    {
        using var options = new SessionOptions { IntraOpNumThreads = 1, InterOpNumThreads = 1 };
        using var session = new InferenceSession(modelPath, options);
        var values = inputs.Select(i => i.Floats is not null
            ? OrtValue.CreateTensorValueFromMemory(i.Floats, i.Shape)
            : OrtValue.CreateTensorValueFromMemory(i.Int64s!, i.Shape)).ToList();
        try
        {
            var outputNames = session.OutputNames.ToList();
            using var runOptions = new RunOptions();
            using var results = session.Run(runOptions, inputs.Select(i => i.Name).ToList(), values, outputNames);
            return outputNames.Zip(results).ToDictionary(p => p.First, p => p.Second.GetTensorDataAsSpan<float>().ToArray());
        }
        finally
        {
            values.ForEach(v => v.Dispose());
        }
    }

    public static Input RandomFloats(string name, long[] shape, int seed)
    {
        var random = new Random(seed);
        var data = new float[shape.Aggregate(1L, (a, b) => a * b)];
        for (var i = 0; i < data.Length; i++)
        {
            data[i] = (float)(random.NextDouble() * 2 - 1);
        }

        return new Input(name, shape, Floats: data);
    }
}
