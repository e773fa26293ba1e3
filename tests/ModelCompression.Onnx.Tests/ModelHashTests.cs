using Google.Protobuf;
using ModelCompression.Onnx.Proto;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Onnx.Tests;

public sealed class ModelHashTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Hash_is_32_hex_digits_and_repeatable()
    {
        var hash = ModelHash.Compute(Models.Mlp());
        Assert.Matches("^[0-9a-f]{32}$", hash);
        Assert.Equal(hash, ModelHash.Compute(Models.Mlp()));
    }

    [Fact]
    public void Hash_is_stable_across_inline_and_external_round_trips()
    {
        var model = Models.Mlp();
        var hash = ModelHash.Compute(model);
        OnnxModelFile.Save(model, _dir.File("inline.onnx"));
        OnnxModelFile.Save(model, _dir.File("external.onnx"), new OnnxSaveOptions { ExternalData = ExternalDataMode.Always, Alignment = 4096 });

        Assert.Equal(hash, ModelHash.ComputeFile(_dir.File("inline.onnx")));
        Assert.Equal(hash, ModelHash.ComputeFile(_dir.File("external.onnx")));
        Assert.Equal(hash, ModelHash.Compute(OnnxModelFile.Load(_dir.File("external.onnx"))));

        // Load and save again, external to inline and back: nothing changes.
        OnnxModelFile.Save(OnnxModelFile.Load(_dir.File("external.onnx")), _dir.File("again.onnx"), new OnnxSaveOptions { ExternalData = ExternalDataMode.Never });
        OnnxModelFile.Save(OnnxModelFile.Load(_dir.File("again.onnx")), _dir.File("again2.onnx"), new OnnxSaveOptions { ExternalData = ExternalDataMode.Always });
        Assert.Equal(hash, ModelHash.ComputeFile(_dir.File("again.onnx")));
        Assert.Equal(hash, ModelHash.ComputeFile(_dir.File("again2.onnx")));
    }

    [Fact]
    public void Changing_one_weight_changes_the_hash()
    {
        var model = Models.Mlp();
        var changed = model.Clone();
        var w2 = TensorData.ToFloats(changed.Graph.Initializer[2]);
        w2[123] = BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(w2[123]) ^ 1); // one bit
        changed.Graph.Initializer[2] = TensorData.FromFloats("w2", w2, [3, 300]);

        Assert.NotEqual(ModelHash.Compute(model), ModelHash.Compute(changed));

        OnnxModelFile.Save(changed, _dir.File("changed.onnx"), new OnnxSaveOptions { ExternalData = ExternalDataMode.Always });
        Assert.NotEqual(ModelHash.Compute(model), ModelHash.ComputeFile(_dir.File("changed.onnx")));
    }

    [Fact]
    public void Graph_changes_change_the_hash()
    {
        var model = Models.Mlp();
        var renamed = model.Clone();
        renamed.Graph.Node[0].OpType = "MatMul";

        Assert.NotEqual(ModelHash.Compute(model), ModelHash.Compute(renamed));
    }

    [Fact]
    public void Typed_fields_and_raw_data_with_the_same_values_hash_alike()
    {
        var raw = new GraphBuilder().Initializer("w", [1f, 2f, 3f]).Input("x", DataType.Float, 3).Node("Add", ["x", "w"], ["y"]).Output("y", DataType.Float, 3).Build();
        var typed = raw.Clone();
        typed.Graph.Initializer[0].RawData = ByteString.Empty;
        typed.Graph.Initializer[0].FloatData.Add([1f, 2f, 3f]);

        Assert.Equal(ModelHash.Compute(raw), ModelHash.Compute(typed));
    }

    [Fact]
    public void Compute_refuses_a_model_whose_external_data_was_not_loaded()
    {
        OnnxModelFile.Save(Models.Mlp(), _dir.File("m.onnx"), new OnnxSaveOptions { ExternalData = ExternalDataMode.Always });
        var model = OnnxModelFile.Load(_dir.File("m.onnx"), new OnnxLoadOptions { LoadExternalData = false });

        Assert.Throws<ArgumentException>(() => ModelHash.Compute(model));
        Assert.Equal(ModelHash.Compute(Models.Mlp()), ModelHash.ComputeFile(_dir.File("m.onnx")));
    }
}
