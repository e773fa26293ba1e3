using System.Globalization;
using ModelCompression.Diagnostics;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Onnx.Tests;

public sealed class SaveTests : IDisposable
{
    private static readonly OnnxSaveOptions External = new() { ExternalData = ExternalDataMode.Always };
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Inline_round_trip_gives_the_same_model_and_no_side_file()
    {
        var model = Models.Mlp();
        var path = _dir.File("m.onnx");

        OnnxModelFile.Save(model, path);

        Assert.Equal(model, OnnxModelFile.Load(path));
        Assert.Equal(["m.onnx"], Entries());
    }

    [Fact]
    public void External_save_moves_large_initializers_to_the_side_file_and_loads_back()
    {
        var model = Models.Mlp();
        var path = _dir.File("m.onnx");

        OnnxModelFile.Save(model, path, External);

        Assert.Equal(["m.onnx", "m.onnx.data"], Entries());
        var raw = OnnxModelFile.Load(path, new OnnxLoadOptions { LoadExternalData = false });
        var external = raw.Graph.Initializer.Where(TensorData.IsExternal).Select(t => t.Name).ToList();
        Assert.Equal(["w1", "b1", "w2"], external); // b2 (12 bytes) stays inline
    }

    [Fact]
    public void Threshold_alignment_and_file_name_are_honoured()
    {
        var model = Models.Mlp();
        var path = _dir.File("m.onnx");
        var options = new OnnxSaveOptions
        {
            ExternalData = ExternalDataMode.Always,
            ExternalDataFileName = "weights.bin",
            ExternalDataThreshold = 2000,
            Alignment = 4096,
        };

        OnnxModelFile.Save(model, path, options);

        Assert.Equal(["m.onnx", "weights.bin"], Entries());
        var raw = OnnxModelFile.Load(path, new OnnxLoadOptions { LoadExternalData = false });
        var external = raw.Graph.Initializer.Where(TensorData.IsExternal).ToList();
        Assert.Equal(["w1", "w2"], external.Select(t => t.Name));
        Assert.All(external, t =>
        {
            var entries = t.ExternalData.ToDictionary(e => e.Key, e => e.Value);
            Assert.Equal("weights.bin", entries["location"]);
            Assert.Equal(0, long.Parse(entries["offset"], CultureInfo.InvariantCulture) % 4096);
        });
        Assert.Equal(model, OnnxModelFile.Load(path));
    }

    [Fact]
    public void External_models_run_in_onnx_runtime_like_inline_ones()
    {
        var model = Models.Mlp();
        OnnxModelFile.Save(model, _dir.File("inline.onnx"));
        OnnxModelFile.Save(model, _dir.File("external.onnx"), External);
        var x = Ort.RandomFloats("x", [5, 4], seed: 3);

        Assert.Equal(Ort.Run(_dir.File("inline.onnx"), x)["y"], Ort.Run(_dir.File("external.onnx"), x)["y"]);
    }

    [Fact]
    public void Save_does_not_change_the_callers_model()
    {
        var model = Models.Mlp();
        var before = model.Clone();

        OnnxModelFile.Save(model, _dir.File("m.onnx"), External);

        Assert.Equal(before, model);
        Assert.False(TensorData.IsExternal(model.Graph.Initializer[0]));
    }

    [Fact]
    public void Output_bytes_are_deterministic()
    {
        var a = Directory.CreateDirectory(_dir.File("a")).FullName;
        var b = Directory.CreateDirectory(_dir.File("b")).FullName;

        OnnxModelFile.Save(Models.Mlp(), Path.Join(a, "m.onnx"), External);
        OnnxModelFile.Save(Models.Mlp(), Path.Join(b, "m.onnx"), External);

        Assert.Equal(File.ReadAllBytes(Path.Join(a, "m.onnx")), File.ReadAllBytes(Path.Join(b, "m.onnx")));
        Assert.Equal(File.ReadAllBytes(Path.Join(a, "m.onnx.data")), File.ReadAllBytes(Path.Join(b, "m.onnx.data")));
    }

    [Fact]
    public void Auto_keeps_a_loaded_external_model_external_and_builder_models_inline()
    {
        var path = _dir.File("m.onnx");
        OnnxModelFile.Save(Models.Mlp(), path, External);
        var loaded = OnnxModelFile.Load(path);

        var info = OnnxModelFile.GetExternalDataInfo(loaded);
        Assert.NotNull(info);
        Assert.Equal(["m.onnx.data"], info.Files);
        Assert.Equal(["w1", "b1", "w2"], info.TensorNames);

        OnnxModelFile.Save(loaded, _dir.File("again.onnx"));
        OnnxModelFile.Save(Models.Mlp(), _dir.File("inline.onnx"));

        Assert.Equal(["again.onnx", "again.onnx.data", "inline.onnx", "m.onnx", "m.onnx.data"], Entries());
    }

    [Fact]
    public void Auto_goes_external_over_the_protobuf_limit_and_never_refuses_with_MC2002()
    {
        // The limit is 2 GB; a lowered one exercises the same path with a small model.
        var path = _dir.File("m.onnx");
        OnnxModelFile.Save(Models.Mlp(), path, new OnnxSaveOptions { InlineSizeLimit = 8000 });
        Assert.True(File.Exists(path + ".data"));
        Assert.True(new FileInfo(path).Length < 8000);

        var error = Assert.Throws<CompressionException>(() => OnnxModelFile.Save(
            Models.Mlp(), _dir.File("n.onnx"), new OnnxSaveOptions { ExternalData = ExternalDataMode.Never, InlineSizeLimit = 8000 }));
        Assert.Equal(DiagnosticCodes.ModelInvalid, error.Code);
        Assert.False(File.Exists(_dir.File("n.onnx")));
    }

    [Fact]
    public void Overwriting_an_external_model_replaces_both_files_and_leaves_no_temp_files()
    {
        var path = _dir.File("m.onnx");
        OnnxModelFile.Save(Models.Mlp(seed: 1), path, External);
        var second = Models.Mlp(seed: 2);

        OnnxModelFile.Save(second, path, External);

        Assert.Equal(second, OnnxModelFile.Load(path));
        Assert.Equal(["m.onnx", "m.onnx.data"], Entries());
    }

    [Fact]
    public void A_failed_save_leaves_the_previous_files_untouched_and_no_temp_files()
    {
        var path = _dir.File("m.onnx");
        OnnxModelFile.Save(Models.Mlp(seed: 1), path);
        var before = File.ReadAllBytes(path);

        // The side file's name is taken by a folder, so the rename into place fails after everything was written.
        Directory.CreateDirectory(Path.Join(_dir.Path, "m.onnx.data", "in-the-way"));
        Assert.ThrowsAny<IOException>(() => OnnxModelFile.Save(Models.Mlp(seed: 2), path, External));

        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Equal(["m.onnx", "m.onnx.data"], Entries());

        // The model's own name taken by a folder: nothing written remains.
        var folder = Directory.CreateDirectory(_dir.File("taken.onnx")).FullName;
        File.WriteAllText(Path.Join(folder, "keep.txt"), "x");
        Assert.ThrowsAny<IOException>(() => OnnxModelFile.Save(Models.Mlp(), folder));
        Assert.Equal(["m.onnx", "m.onnx.data", "taken.onnx"], Entries());
    }

    [Fact]
    public void Bad_options_are_refused()
    {
        var model = Models.Mlp();
        Assert.Throws<ArgumentException>(() => OnnxModelFile.Save(model, _dir.File("m.onnx"), External with { Alignment = 3 }));
        Assert.Throws<ArgumentException>(() => OnnxModelFile.Save(model, _dir.File("m.onnx"), External with { ExternalDataFileName = "../x.data" }));
        Assert.Throws<ArgumentException>(() => OnnxModelFile.Save(model, _dir.File("m.onnx"), External with { ExternalDataFileName = "m.onnx" }));
        Assert.Empty(Entries());
    }

    /// <summary>Everything in the temp folder (hidden temp files included), sorted.</summary>
    private List<string> Entries() =>
        Directory.EnumerateFileSystemEntries(_dir.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList()!;
}
