using System.Text.Json;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using static ModelCompression.Core.Tests.Architectures.ArchitectureTestSupport;

namespace ModelCompression.Core.Tests.Pruning;

internal static class PruningTestSupport
{
    /// <summary>Replaces an initializer's values in place (same dims).</summary>
    public static void Set(ModelProto model, string name, float[] values)
    {
        var graph = model.Graph;
        var index = graph.Initializer.ToList().FindIndex(i => i.Name == name);
        Assert.True(index >= 0, $"no initializer '{name}'");
        graph.Initializer[index] = TensorData.FromFloats(name, values, [.. graph.Initializer[index].Dims]);
    }

    /// <summary>Changes an initializer's values with <paramref name="change"/>(flat index, value).</summary>
    public static void Update(ModelProto model, string name, Func<int, float, float> change)
    {
        var values = TensorData.ToFloats(model.Graph.Initializer.Single(i => i.Name == name));
        Set(model, name, [.. values.Select((v, i) => change(i, v))]);
    }

    /// <summary>Fills an initializer with seeded values in [low, high).</summary>
    public static void Randomize(ModelProto model, string name, int seed, double low, double high)
    {
        var random = new Random(seed);
        Update(model, name, (_, _) => (float)(low + (random.NextDouble() * (high - low))));
    }

    public static float[] RandomFloats(int count, int seed)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(_ => (float)((random.NextDouble() * 2) - 1))];
    }

    /// <summary>A file of tests/fixtures/pytorch.</summary>
    public static string PyTorchFixture(string file) => Path.Join(Repo.Root, "tests", "fixtures", "pytorch", file);

    /// <summary>The model's float initializer elements (the trainable parameters; shape constants are int64).</summary>
    public static long FloatParameters(ModelProto model) =>
        model.Graph.Initializer.Where(i => i.DataType == (int)TensorProto.Types.DataType.Float).Sum(TensorData.ElementCount);

    /// <summary>
    /// ONNX Runtime on <paramref name="model"/> gives the logits PyTorch recorded in <paramref name="expectedJson"/>
    /// (a fixture script's .expected.json: two cases of int64 inputs and the first output) within 1e-4.
    /// </summary>
    public static void AssertRecordedPyTorchLogits(ModelProto model, string expectedJson)
    {
        using var reference = JsonDocument.Parse(File.ReadAllText(PyTorchFixture(expectedJson)));
        var cases = reference.RootElement.GetProperty("cases").EnumerateArray().ToList();
        Assert.Equal(2, cases.Count);
        foreach (var recorded in cases)
        {
            var inputs = recorded.GetProperty("inputs").EnumerateArray().ToDictionary(
                input => input.GetProperty("name").GetString()!,
                input => ((Array)input.GetProperty("data").EnumerateArray().Select(v => v.GetInt64()).ToArray(),
                    input.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray()));
            var logits = recorded.GetProperty("outputs")[0];
            var (values, shape) = RunOrt(model, inputs);
            Assert.Equal(logits.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()), shape);
            AssertClose([.. logits.GetProperty("data").EnumerateArray().Select(v => v.GetSingle())], values, 1e-4);
        }
    }
}
