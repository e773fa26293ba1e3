using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;

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
}
