using ModelCompression.Data;
using ModelCompression.Diagnostics;

namespace ModelCompression.Core.Tests.Data;

public sealed class IdxReaderTests : IDisposable
{
    private static readonly byte[] Pixels = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255];
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData("images.idx")]
    [InlineData("images.idx.gz")]
    public void Reads_a_tiny_file(string name)
    {
        var path = Idx.Write(_dir.File(name), [3, 2, 2], Pixels);

        var array = IdxReader.Read(path);

        Assert.Equal([3, 2, 2], array.Dimensions);
        Assert.Equal(Pixels, array.Data);
    }

    [Theory]
    [InlineData(".idx")]
    [InlineData(".gz")]
    public void Loads_a_labelled_set_scaled(string extension)
    {
        var images = Idx.Write(_dir.File("images" + extension), [3, 2, 2], Pixels);
        var labels = Idx.Write(_dir.File("labels" + extension), [3], [2, 0, 1]);

        var data = IdxReader.LoadLabelled(images, labels, 0.5f);

        Assert.Equal(3, data.Count);
        Assert.Equal([2L, 2L], data.SampleShape);
        Assert.Equal(4, data.SampleSize);
        Assert.Equal(Pixels.Select(p => p * 0.5f), data.Inputs);
        Assert.Equal([2L, 0L, 1L], data.Labels!);
        Assert.Equal(images, data.Source);
    }

    [Fact]
    public void Loads_an_unlabelled_set()
    {
        var images = Idx.Write(_dir.File("images.idx"), [3, 4], Pixels);

        var data = IdxReader.LoadLabelled(images, null, 1f);

        Assert.Null(data.Labels);
        Assert.Equal(3, data.Count);
        Assert.Equal([4L], data.SampleShape);
    }

    public static TheoryData<string, byte[], string> BadFiles()
    {
        var good = Idx.Encode([3, 2, 2], Pixels);
        var wrongMagic = (byte[])good.Clone();
        wrongMagic[0] = 0x1f;
        var wrongType = (byte[])good.Clone();
        wrongType[2] = 0x0d; // float
        return new()
        {
            { "truncated-data.idx", good[..^3], "truncated: the header promises 12 values" },
            { "truncated-data.gz", good[..^3], "truncated: the header promises 12 values" },
            { "truncated-header.idx", good[..6], "ends inside the header" },
            { "wrong-magic.idx", wrongMagic, "does not start with an IDX magic number" },
            { "wrong-type.idx", wrongType, "element type 0x0d is not supported" },
            { "no-dims.idx", [0, 0, 8, 0], "declares no dimensions" },
            { "empty.idx", [], "ends inside the header" },
        };
    }

    [Theory]
    [MemberData(nameof(BadFiles))]
    public void Bad_files_are_MC2021_with_the_path(string name, byte[] bytes, string why)
    {
        var path = Idx.WriteBytes(_dir.File(name), bytes);

        var e = Assert.Throws<CompressionException>(() => IdxReader.Read(path));

        var d = Assert.Single(e.Diagnostics);
        Assert.Equal(DiagnosticCodes.DataUnreadable, d.Code);
        Assert.Equal(path, d.File);
        Assert.Contains(path, d.Message, StringComparison.Ordinal);
        Assert.Contains(why, d.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_gz_name_on_a_file_that_is_not_gzip_is_MC2021()
    {
        var path = _dir.File("plain.gz");
        File.WriteAllBytes(path, Idx.Encode([3, 2, 2], Pixels));

        var e = Assert.Throws<CompressionException>(() => IdxReader.Read(path));

        Assert.Equal(DiagnosticCodes.DataUnreadable, e.Code);
        Assert.Equal(path, e.Diagnostics[0].File);
    }

    [Fact]
    public void A_missing_file_is_MC2021_with_the_path()
    {
        var path = _dir.File("absent.idx");

        var e = Assert.Throws<CompressionException>(() => IdxReader.Read(path));

        Assert.Equal(DiagnosticCodes.DataUnreadable, e.Code);
        Assert.Equal(path, e.Diagnostics[0].File);
    }

    [Theory]
    [InlineData(new[] { 4 })]
    [InlineData(new[] { 3, 1 })]
    public void Label_count_or_shape_mismatch_is_MC2020_naming_the_labels(int[] labelDims)
    {
        var images = Idx.Write(_dir.File("images.idx"), [3, 2, 2], Pixels);
        var labels = Idx.Write(_dir.File("labels.idx"), labelDims, new byte[labelDims.Aggregate(1, (a, b) => a * b)]);

        var e = Assert.Throws<CompressionException>(() => IdxReader.LoadLabelled(images, labels, 1f));

        var d = Assert.Single(e.Diagnostics);
        Assert.Equal(DiagnosticCodes.DataSchemaMismatch, d.Code);
        Assert.Equal(labels, d.File);
        Assert.Contains(labels, d.Message, StringComparison.Ordinal);
        Assert.Contains("expected [3]", d.Message, StringComparison.Ordinal);
    }
}
