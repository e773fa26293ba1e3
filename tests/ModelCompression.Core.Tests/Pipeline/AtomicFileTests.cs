using ModelCompression.Common;

namespace ModelCompression.Core.Tests.Pipeline;

public sealed class AtomicFileTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Writes_and_replaces_leaving_no_temporary_files()
    {
        var target = _dir.File("out/report.md");

        AtomicFile.WriteAllText(target, "first");
        Assert.Equal("first", File.ReadAllText(target));
        AtomicFile.WriteAllText(target, "second");
        Assert.Equal("second", File.ReadAllText(target));

        var source = _dir.Write("model.onnx", "model bytes");
        var copy = _dir.File("out/student.onnx");
        AtomicFile.Copy(source, copy);
        Assert.Equal("model bytes", File.ReadAllText(copy));

        Assert.Equal(["report.md", "student.onnx"], Directory.GetFiles(_dir.File("out")).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void A_failed_copy_keeps_the_old_file_and_leaves_no_temporary_file()
    {
        var target = _dir.Write("out/student.onnx", "the last good model");

        Assert.Throws<FileNotFoundException>(() => AtomicFile.Copy(_dir.File("missing.onnx"), target));

        Assert.Equal("the last good model", File.ReadAllText(target));
        Assert.Equal([target], Directory.GetFiles(_dir.File("out")));
    }

    [Fact]
    public void A_failed_copy_onto_a_directory_name_changes_nothing()
    {
        var source = _dir.Write("model.onnx", "model bytes");
        var target = _dir.Dir("out/student.onnx");

        Assert.ThrowsAny<IOException>(() => AtomicFile.Copy(source, target));

        Assert.True(Directory.Exists(target));
        Assert.Empty(Directory.GetFiles(_dir.File("out")));
    }
}
