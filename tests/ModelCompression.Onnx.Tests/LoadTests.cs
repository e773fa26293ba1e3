using Google.Protobuf;
using ModelCompression.Diagnostics;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Onnx.Tests;

public sealed class LoadTests
{
    public static TheoryData<string> BadFiles => ["empty", "truncated", "random", "text", "tensor-proto", "graph-proto"];

    [Theory]
    [MemberData(nameof(BadFiles))]
    public void Unreadable_files_give_MC2001_naming_the_path(string kind)
    {
        using var dir = new TempDir();
        var path = dir.File(kind + ".onnx");
        var real = File.ReadAllBytes(Path.Join(Fixtures.Folder, "mlp_opset13.onnx"));
        var random = new byte[4096];
        new Random(42).NextBytes(random);
        File.WriteAllBytes(path, kind switch
        {
            "empty" => [],
            "truncated" => real[..(real.Length / 2)],
            "random" => random,
            "text" => "This is a README, not a model.\nIt has two lines.\n"u8.ToArray(),
            "tensor-proto" => TensorData.FromFloats("w", [1f, 2f, 3f], [3]).ToByteArray(),
            "graph-proto" => Models.Mlp().Graph.ToByteArray(),
            _ => throw new ArgumentOutOfRangeException(nameof(kind)),
        });

        var error = Assert.Throws<CompressionException>(() => OnnxModelFile.Load(path));

        Assert.Equal(DiagnosticCodes.ModelUnreadable, error.Code);
        Assert.Equal(path, error.Diagnostics[0].File);
        Assert.Contains(path, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_checked_load_reports_the_checker_s_problems_and_Verify_reports_every_file_at_once()
    {
        using var dir = new TempDir();
        var invalid = Models.Mlp();
        invalid.Graph.Node[1].Input[0] = "undefined_value";
        OnnxModelFile.Save(invalid, dir.File("invalid.onnx"));
        File.WriteAllBytes(dir.File("empty.onnx"), []);
        OnnxModelFile.Save(Models.Mlp(), dir.File("good.onnx"), new OnnxSaveOptions { ExternalData = ExternalDataMode.Always });
        var escaping = Models.Mlp();
        var tensor = escaping.Graph.Initializer[0];
        tensor.RawData = ByteString.Empty;
        tensor.DataLocation = TensorProto.Types.DataLocation.External;
        tensor.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = "../elsewhere/w.bin" });
        File.WriteAllBytes(dir.File("escaping.onnx"), escaping.ToByteArray());

        // Load alone takes the invalid graph; the checked load does not.
        Assert.Equal(invalid, OnnxModelFile.Load(dir.File("invalid.onnx")));
        var checkedError = Assert.Throws<CompressionException>(() => OnnxModelFile.LoadChecked(dir.File("invalid.onnx")));
        Assert.Equal(DiagnosticCodes.ModelInvalid, checkedError.Code);
        Assert.Contains("undefined_value", checkedError.Message, StringComparison.Ordinal);
        Assert.Equal(Models.Mlp(), OnnxModelFile.LoadChecked(dir.File("good.onnx")));

        var all = Assert.Throws<CompressionException>(() => OnnxModelFile.Verify(
            [dir.File("good.onnx"), dir.File("invalid.onnx"), dir.File("empty.onnx"), dir.File("escaping.onnx")]));

        Assert.Equal(
            [(DiagnosticCodes.ModelInvalid, dir.File("invalid.onnx")), (DiagnosticCodes.ModelUnreadable, dir.File("empty.onnx")), (DiagnosticCodes.ExternalDataOutsideModelFolder, dir.File("escaping.onnx"))],
            all.Diagnostics.Select(d => (d.Code, d.File)));
        OnnxModelFile.Verify([dir.File("good.onnx")]);
    }

    [Fact]
    public void A_missing_model_file_gives_MC2001()
    {
        using var dir = new TempDir();
        var error = Assert.Throws<CompressionException>(() => OnnxModelFile.Load(dir.File("nope.onnx")));
        Assert.Equal(DiagnosticCodes.ModelUnreadable, error.Code);
    }

    [Theory]
    [InlineData(6, 17, "IR version 6")]
    [InlineData(12, 17, "IR version 12")]
    [InlineData(8, 12, "Opset 12")]
    [InlineData(10, 22, "Opset 22")]
    public void Unsupported_versions_give_MC2005_with_the_numbers(long ir, long opset, string expected)
    {
        using var dir = new TempDir();
        var model = Models.Mlp();
        model.IrVersion = ir;
        model.OpsetImport[0].Version = opset;
        var path = dir.File("m.onnx");
        File.WriteAllBytes(path, model.ToByteArray());

        var error = Assert.Throws<CompressionException>(() => OnnxModelFile.Load(path));

        Assert.Equal(DiagnosticCodes.ModelUnsupportedVersion, error.Code);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.NotNull(OnnxModelFile.Load(path, new OnnxLoadOptions { CheckVersions = false }));
    }

    [Theory]
    [InlineData(7, 13, "")]
    [InlineData(11, 21, "ai.onnx")]
    public void Supported_versions_load(long ir, long opset, string domain)
    {
        using var dir = new TempDir();
        var model = Models.Mlp();
        model.IrVersion = ir;
        model.OpsetImport[0].Version = opset;
        model.OpsetImport[0].Domain = domain;
        var path = dir.File("m.onnx");
        File.WriteAllBytes(path, model.ToByteArray());

        Assert.Equal(model, OnnxModelFile.Load(path));
    }

    [Fact]
    public void Unknown_fields_from_newer_onnx_versions_survive_a_round_trip()
    {
        using var dir = new TempDir();
        var original = Models.Mlp();
        // ModelProto.configuration (field 26, IR 11) is not in our onnx.proto; append it by hand.
        var extra = new byte[] { 0xD2, 0x01, 0x02, 0x0A, 0x00 };
        var path = dir.File("m.onnx");
        File.WriteAllBytes(path, [.. original.ToByteArray(), .. extra]);

        OnnxModelFile.Save(OnnxModelFile.Load(path), dir.File("again.onnx"));

        Assert.Equal(File.ReadAllBytes(path), File.ReadAllBytes(dir.File("again.onnx")));
    }
}
