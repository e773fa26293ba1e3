using ModelCompression.Data;
using ModelCompression.Diagnostics;

namespace ModelCompression.Core.Tests.Data;

public sealed class NpyReaderTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData("float32", 'f', StorageType.Float32)]
    [InlineData("float64", 'f', StorageType.Float64)]
    [InlineData("float16", 'f', StorageType.Float16)]
    [InlineData("int64", 'i', StorageType.Int64)]
    [InlineData("int32", 'i', StorageType.Int32)]
    [InlineData("int16", 'i', StorageType.Int16)]
    [InlineData("int8", 'i', StorageType.Int8)]
    [InlineData("uint8", 'u', StorageType.UInt8)]
    [InlineData("uint16", 'u', StorageType.UInt16)]
    [InlineData("uint32", 'u', StorageType.UInt32)]
    [InlineData("uint64", 'u', StorageType.UInt64)]
    [InlineData("bool", 'b', StorageType.Bool)]
    public void Reads_every_numeric_dtype_numpy_writes(string name, char kind, StorageType type)
    {
        var tensor = NpyReader.Open(Fixtures.Npy(name + ".npy"), "x");

        Assert.Equal(type, tensor.StorageType);
        Assert.True(tensor.IsMapped);
        Assert.Equal(4, tensor.Count);
        Assert.Equal([3L], tensor.SampleShape);
        Assert.Equal(kind == 'f' ? DataElementType.Float32 : DataElementType.Int64, tensor.ElementType);
        var floats = DataRecipe.Floats(tensor);
        Assert.Equal(Enumerable.Range(0, 12).Select(i => (float)Fixtures.Expected(kind, i)), floats);
        if (kind != 'f')
        {
            Assert.Equal(Enumerable.Range(0, 12).Select(i => (long)Fixtures.Expected(kind, i)), DataRecipe.Longs(tensor));
        }
        else
        {
            Assert.Throws<InvalidOperationException>(() => tensor.CopyRange(0, 1, new long[3]));
        }
    }

    [Theory]
    [InlineData("v2.npy", 2)]
    [InlineData("v3.npy", 3)]
    [InlineData("float32.npy", 1)]
    public void Reads_format_versions_1_2_and_3(string name, int version)
    {
        using var file = File.OpenRead(Fixtures.Npy(name));

        var header = NpyReader.ReadHeader(file, name);

        Assert.Equal(version, header.Version);
        Assert.Equal([4L, 3L], header.Shape);
        Assert.Equal(0, header.DataOffset % 64); // numpy aligns the data
        Assert.Equal(Enumerable.Range(0, 12).Select(i => (float)Fixtures.Expected('f', i)), DataRecipe.Floats(NpyReader.Open(Fixtures.Npy(name), "x")));
    }

    [Fact]
    public void The_first_axis_is_the_sample_axis_and_rows_copy_in_any_order()
    {
        var images = NpyReader.Open(Fixtures.Npy("images.npy"), "pixels");

        Assert.Equal(5, images.Count);
        Assert.Equal([2L, 3L], images.SampleShape);
        var batch = new float[2 * 6];
        images.CopyRows([4, 1], batch);
        Assert.Equal(Enumerable.Range(24, 6).Concat(Enumerable.Range(6, 6)).Select(i => (float)Fixtures.Expected('f', i)), batch);
    }

    [Fact]
    public void Labels_are_integers_or_whole_floats()
    {
        Assert.Equal([0L, 2, 1, 1, 0], NpyReader.ReadLabels(Fixtures.Npy("labels.npy")));
        Assert.Equal([0L, 2, 1, 1, 0], NpyReader.ReadLabels(Fixtures.Npy("float-labels.npy")));
    }

    [Fact]
    public void Fractional_labels_are_bad_rows_with_their_row()
    {
        var path = _dir.File("fractional.npy");
        File.WriteAllBytes(path, Npy.Encode(Npy.Header("<f8", [3]), System.Runtime.InteropServices.MemoryMarshal.AsBytes<double>([1.0, 0.5, double.NaN])));

        var e = Assert.Throws<CompressionException>(() => NpyReader.ReadLabels(path));

        Assert.Equal(DiagnosticCodes.DataBadRows, e.Code);
        Assert.Equal(path, e.Diagnostics[0].File);
        Assert.Contains($"{path} row 1: label 0.5 is not a whole number", e.Message, StringComparison.Ordinal);
        Assert.Contains($"{path} row 2: label NaN", e.Message, StringComparison.Ordinal);
        Assert.Contains("2 bad rows", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("fortran.npy", "Fortran (column-major) order")]
    [InlineData("big-endian.npy", "big-endian")]
    [InlineData("complex.npy", "'<c8' is not supported")]
    public void Unsupported_layouts_are_MC2023_with_the_path(string name, string why)
    {
        var path = Fixtures.Npy(name);

        var e = Assert.Throws<CompressionException>(() => NpyReader.Open(path, "x"));

        var d = Assert.Single(e.Diagnostics);
        Assert.Equal(DiagnosticCodes.DataUnsupportedLayout, d.Code);
        Assert.Equal(path, d.File);
        Assert.Contains(why, d.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Truncated_and_foreign_files_are_MC2021()
    {
        var good = File.ReadAllBytes(Fixtures.Npy("float32.npy"));
        var truncated = _dir.File("truncated.npy");
        File.WriteAllBytes(truncated, good[..^4]);
        var header = _dir.File("header.npy");
        File.WriteAllBytes(header, good[..20]);
        var foreign = _dir.File("foreign.npy");
        File.WriteAllText(foreign, "not numpy at all");

        var e = Assert.Throws<CompressionException>(() => NpyReader.Open(truncated, "x"));
        Assert.Equal(DiagnosticCodes.DataUnreadable, e.Code);
        Assert.Contains("truncated: the header promises 12 values of Float32 (48 bytes) but 44 bytes follow it", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<CompressionException>(() => NpyReader.Open(header, "x"));
        Assert.Contains("ends inside the header", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<CompressionException>(() => NpyReader.Open(foreign, "x"));
        Assert.Equal((DiagnosticCodes.DataUnreadable, foreign), (e.Code, e.Diagnostics[0].File));
        Assert.Contains("NPY magic", e.Message, StringComparison.Ordinal);
    }

    [Trait("Category", "Slow")] // writes and maps a file larger than the allocation limit
    [Fact]
    public void A_set_larger_than_we_allow_to_allocate_is_read_through_the_mapping_not_loaded()
    {
        // 200 MB of float32: 51,200 samples of 1,024 values. The file is sparse (zeros) except for the samples
        // written below, so making it is quick and takes no real disk space.
        const int Samples = 51_200;
        const int Width = 1_024;
        var path = _dir.File("large.npy");
        var header = Npy.Encode(Npy.Header("<f4", [Samples, Width]), []);
        using (var file = File.Create(path))
        {
            file.Write(header);
            file.SetLength(header.Length + ((long)Samples * Width * 4));
            foreach (var row in new[] { 7, 25_000, Samples - 1 })
            {
                file.Position = header.Length + ((long)row * Width * 4);
                file.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(Enumerable.Range(0, Width).Select(i => row + (i / 1000f)).ToArray().AsSpan()));
            }
        }

        var labels = Npy.WriteLongs(_dir.File("large-labels.npy"), [.. Enumerable.Range(0, Samples).Select(i => (long)(i % 10))], Samples);
        var before = GC.GetAllocatedBytesForCurrentThread();
        var batch = new float[3 * Width];
        using (var data = DataRecipe.Load(_dir, "format: npy\ntrain: { inputs: large.npy, labels: large-labels.npy }\nsplit: { test: 0.1, seed: 3 }\nscale: 0.5"))
        {
            var train = data.Train.Tensors[0];
            Assert.True(train.IsMapped);
            Assert.Equal(Samples, data.Train.Count + data.Test.Count);
            var all = NpyReader.Open(path, "x");
            all.CopyRows([Samples - 1, 7, 25_000], batch);
        }

        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < 16_000_000, $"{allocated:N0} bytes allocated to open, check and read a 200 MB set");
        Assert.Equal(Samples - 1, batch[0]);
        Assert.Equal(7 + (999 / 1000f), batch[Width + 999]);
        Assert.Equal(25_000 + (5 / 1000f), batch[(2 * Width) + 5]);
    }
}
