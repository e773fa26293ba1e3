using Google.Protobuf;
using ModelCompression.Diagnostics;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Onnx.Tests;

/// <summary>
/// Locations that leave the model's folder must be refused before anything is opened. The target in these
/// tests is a named pipe: opening it for reading blocks until a writer appears, so a loader that opened it
/// would hang instead of answering MC2003. (<see cref="Opening_the_fifo_blocks"/> shows the detector works.)
/// </summary>
public sealed class ExternalDataTests : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);
    private readonly TempDir _dir = new();
    private readonly string _modelDir;
    private readonly string _outsideDir;
    private readonly string _fifo;

    public ExternalDataTests()
    {
        _modelDir = _dir.Dir("model");
        _outsideDir = _dir.Dir("outside");
        _fifo = Path.Join(_outsideDir, "secret.data");
        Fixtures.MakeFifo(_fifo);
    }

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Opening_the_fifo_blocks()
    {
        var read = Task.Run(() => File.ReadAllBytes(_fifo));
        var first = await Task.WhenAny(read, Task.Delay(300));
        await Unblock(read);
        Assert.NotSame(read, first);
    }

    [Fact]
    public Task Dot_dot_out_of_the_folder_gives_MC2003_without_opening_the_file() =>
        AssertRefused("../outside/secret.data");

    [Fact]
    public Task Dot_dot_through_a_subfolder_gives_MC2003() =>
        AssertRefused("sub/../../outside/secret.data");

    [Fact]
    public Task Backslash_dot_dot_gives_MC2003() =>
        AssertRefused("..\\outside\\secret.data");

    [Fact]
    public Task An_absolute_location_gives_MC2003_without_opening_the_file() =>
        AssertRefused(_fifo);

    [Fact]
    public async Task A_symlink_to_a_file_outside_gives_MC2003_without_opening_it()
    {
        File.CreateSymbolicLink(Path.Join(_modelDir, "link.data"), "../outside/secret.data");
        await AssertRefused("link.data");
    }

    [Fact]
    public async Task A_symlinked_folder_pointing_outside_gives_MC2003_without_opening_the_file()
    {
        Directory.CreateSymbolicLink(Path.Join(_modelDir, "weights"), _outsideDir);
        await AssertRefused("weights/secret.data");
    }

    [Fact]
    public async Task Dot_dot_after_a_symlinked_folder_follows_the_real_path()
    {
        // Lexically "deep/.." stays inside, but the OS resolves ".." from the link's target, outside.
        var deep = Directory.CreateDirectory(Path.Join(_outsideDir, "deep")).FullName;
        Directory.CreateSymbolicLink(Path.Join(_modelDir, "deep"), deep);
        await AssertRefused("deep/../secret.data");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_symlink_out_of_the_folder_is_refused_from_its_text_without_looking_at_the_outside_target(bool absolute)
    {
        // The outside target is a link to itself: following it at all (readlink, stat) would end in "too many levels
        // of symbolic links" at that outside path. Refused from the link's text, the loader never gets there.
        var loop = Path.Join(_outsideDir, "loop");
        File.CreateSymbolicLink(loop, "loop");
        File.CreateSymbolicLink(Path.Join(_modelDir, "w.data"), absolute ? loop : "../outside/loop");
        var path = WriteModel("w.data", 4800);

        var error = Assert.Throws<CompressionException>(() => OnnxModelFile.Load(path));

        var diagnostic = Assert.Single(error.Diagnostics);
        Assert.Equal(DiagnosticCodes.ExternalDataOutsideModelFolder, diagnostic.Code);
        Assert.Equal(path, diagnostic.File);
        Assert.Contains($"resolves through a symbolic link to '{loop}', outside the model folder", diagnostic.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("levels of symbolic links", diagnostic.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_link_that_climbs_through_the_model_folders_own_parents_and_back_in_is_fine()
    {
        // ../model/real/w.bin passes the folder above the model's, a real folder of the model's own path.
        var model = Models.Mlp();
        var w1 = TensorData.GetBytes(model.Graph.Initializer[0]).ToArray();
        Directory.CreateDirectory(Path.Join(_modelDir, "real"));
        File.WriteAllBytes(Path.Join(_modelDir, "real", "w.bin"), w1);
        File.CreateSymbolicLink(Path.Join(_modelDir, "w.data"), "../model/real/w.bin");
        var path = WriteModel("w.data", w1.Length);

        Assert.Equal(model, OnnxModelFile.Load(path));
    }

    [Fact]
    public void Links_and_dot_dot_that_stay_inside_the_folder_are_fine()
    {
        var model = Models.Mlp();
        var w1 = TensorData.GetBytes(model.Graph.Initializer[0]).ToArray();
        Directory.CreateDirectory(Path.Join(_modelDir, "real"));
        File.WriteAllBytes(Path.Join(_modelDir, "real", "w.bin"), w1);
        Directory.CreateSymbolicLink(Path.Join(_modelDir, "alias"), "real");
        var path = WriteModel("alias/../real/./w.bin", w1.Length);

        var loaded = OnnxModelFile.Load(path);

        Assert.Equal(model, loaded);
    }

    [Fact]
    public void The_model_folder_itself_may_be_reached_through_a_symlink()
    {
        var model = Models.Mlp();
        OnnxModelFile.Save(model, Path.Join(_modelDir, "m.onnx"), new OnnxSaveOptions { ExternalData = ExternalDataMode.Always });
        var link = Path.Join(_dir.Path, "model-link");
        Directory.CreateSymbolicLink(link, _modelDir);

        Assert.Equal(ModelHash.Compute(model), ModelHash.Compute(OnnxModelFile.Load(Path.Join(link, "m.onnx"))));
    }

    [Fact]
    public void A_missing_external_file_gives_MC2004()
    {
        var path = WriteModel("absent.data", 4800);

        var error = Assert.Throws<CompressionException>(() => OnnxModelFile.Load(path));

        Assert.Equal(DiagnosticCodes.ExternalDataMissing, error.Code);
        Assert.Contains("absent.data", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_short_external_file_gives_MC2004()
    {
        File.WriteAllBytes(Path.Join(_modelDir, "short.data"), new byte[100]);
        var path = WriteModel("short.data", 4800);

        var error = Assert.Throws<CompressionException>(() => OnnxModelFile.Load(path));

        Assert.Equal(DiagnosticCodes.ExternalDataMissing, error.Code);
    }

    [Fact]
    public void A_length_that_contradicts_the_dims_gives_MC2002()
    {
        File.WriteAllBytes(Path.Join(_modelDir, "w.data"), new byte[10000]);
        var path = WriteModel("w.data", 12);

        Assert.Equal(DiagnosticCodes.ModelInvalid, Assert.Throws<CompressionException>(() => OnnxModelFile.Load(path)).Code);
    }

    [Fact]
    public void All_escaping_tensors_are_reported_at_once()
    {
        var model = Models.Mlp();
        MakeExternal(model.Graph.Initializer[0], "../a.data", 4800);
        MakeExternal(model.Graph.Initializer[2], "/etc/passwd", 3600);
        var path = Path.Join(_modelDir, "m.onnx");
        File.WriteAllBytes(path, model.ToByteArray());

        var error = Assert.Throws<CompressionException>(() => OnnxModelFile.Load(path));

        Assert.Equal(2, error.Diagnostics.Count);
        Assert.All(error.Diagnostics, d => Assert.Equal(DiagnosticCodes.ExternalDataOutsideModelFolder, d.Code));
    }

    [Fact]
    public void Without_loading_external_data_tensors_stay_external_but_are_still_checked()
    {
        var path = Path.Join(_modelDir, "m.onnx");
        OnnxModelFile.Save(Models.Mlp(), path, new OnnxSaveOptions { ExternalData = ExternalDataMode.Always });

        var model = OnnxModelFile.Load(path, new OnnxLoadOptions { LoadExternalData = false });

        Assert.True(TensorData.IsExternal(model.Graph.Initializer[0]));
        Assert.Null(OnnxModelFile.GetExternalDataInfo(model));
        Assert.Throws<ArgumentException>(() => OnnxModelFile.Save(model, Path.Join(_modelDir, "copy.onnx")));

        File.Delete(path + ".data");
        Assert.Equal(DiagnosticCodes.ExternalDataMissing,
            Assert.Throws<CompressionException>(() => OnnxModelFile.Load(path, new OnnxLoadOptions { LoadExternalData = false })).Code);
    }

    private async Task AssertRefused(string location)
    {
        var path = WriteModel(location, 4800);
        var load = Task.Run(() => OnnxModelFile.Load(path));
        var hash = Task.Run(() => ModelHash.ComputeFile(path));
        var both = Task.WhenAll(load, hash);
        var finished = await Task.WhenAny(both, Task.Delay(Patience)) == both;
        await Unblock(load);
        await Unblock(hash);

        Assert.True(finished, $"Loading blocked on '{location}': it opened the file outside the model folder.");
        foreach (var task in new Task[] { load, hash })
        {
            var error = Assert.IsType<CompressionException>(task.Exception?.InnerException);
            Assert.Equal(DiagnosticCodes.ExternalDataOutsideModelFolder, error.Code);
            Assert.Equal(path, error.Diagnostics[0].File);
        }
    }

    /// <summary>If a task is stuck opening the FIFO, connect a writer so it wakes up and the test run can end.</summary>
    private async Task Unblock(Task task)
    {
        if (task.IsCompleted)
        {
            return;
        }

        var writer = Task.Run(() =>
        {
            using var stream = new FileStream(_fifo, FileMode.Open, FileAccess.Write);
        });
        await Task.WhenAny(writer, Task.Delay(Patience));
        await Task.WhenAny(task, Task.Delay(Patience));
    }

    /// <summary>The test MLP with w1 (300x4 floats, 4800 bytes) marked external at <paramref name="location"/>.</summary>
    private string WriteModel(string location, long length)
    {
        var model = Models.Mlp();
        MakeExternal(model.Graph.Initializer[0], location, length);
        var path = Path.Join(_modelDir, "m.onnx");
        File.WriteAllBytes(path, model.ToByteArray());
        return path;
    }

    private static void MakeExternal(TensorProto tensor, string location, long length)
    {
        tensor.RawData = ByteString.Empty;
        tensor.DataLocation = TensorProto.Types.DataLocation.External;
        tensor.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = location });
        tensor.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = "0" });
        tensor.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = length.ToString(System.Globalization.CultureInfo.InvariantCulture) });
    }
}
