using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Onnx.Tests;

/// <summary>A fact that runs only when MC_LARGE_TESTS=1: it needs several GB of memory and disk and a minute.</summary>
public sealed class LargeFactAttribute : FactAttribute
{
    public LargeFactAttribute()
    {
        if (Environment.GetEnvironmentVariable("MC_LARGE_TESTS") != "1")
        {
            Skip = "Set MC_LARGE_TESTS=1 to run tests with models over 2 GB.";
        }
    }
}

public sealed class LargeModelTests
{
    [LargeFact]
    public void Models_over_2_GB_save_external_automatically_and_load_hash_and_run()
    {
        using var dir = new TempDir();
        const int Count = 300_000_000; // 1.2 GB per tensor, 2.4 GB in all
        var model = new GraphBuilder("big")
            .Input("idx", DataType.Int64, "n")
            .Initializer(Filled("w1", Count, 1))
            .Initializer(Filled("w2", Count, 2))
            .Node("Gather", ["w1", "idx"], ["a"])
            .Node("Gather", ["w2", "idx"], ["b"])
            .Node("Add", ["a", "b"], ["y"])
            .Output("y", DataType.Float, "n")
            .Build();
        var path = dir.File("big.onnx");

        OnnxModelFile.Save(model, path);

        Assert.True(new FileInfo(path).Length < 4096);
        Assert.True(new FileInfo(path + ".data").Length >= 2L * Count * 4);
        var hash = ModelHash.Compute(model);
        Assert.Equal(hash, ModelHash.ComputeFile(path));
        var loaded = OnnxModelFile.Load(path);
        Assert.Equal(hash, ModelHash.Compute(loaded));
        loaded = null;
        GC.Collect();

        var y = Ort.Run(path, new Ort.Input("idx", [3], Int64s: [0, 12_345_678, Count - 1]))["y"];
        Assert.Equal([Value(0, 1) + Value(0, 2), Value(12_345_678, 1) + Value(12_345_678, 2), Value(Count - 1, 1) + Value(Count - 1, 2)], y);
    }

    private static float Value(long i, int salt) => (i * salt % 1000) / 1000f;

    private static Proto.TensorProto Filled(string name, int count, int salt)
    {
        var values = new float[count];
        for (var i = 0; i < count; i++)
        {
            values[i] = Value(i, salt);
        }

        return TensorData.FromFloats(name, values);
    }
}
