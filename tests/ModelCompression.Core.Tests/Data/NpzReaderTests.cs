using System.IO.Compression;
using ModelCompression.Data;
using ModelCompression.Diagnostics;

namespace ModelCompression.Core.Tests.Data;

public sealed class NpzReaderTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData("stored.npz", false)]
    [InlineData("deflated.npz", true)]
    public void Reads_numpy_savez_and_savez_compressed(string name, bool compressed)
    {
        var path = Fixtures.Npy(name);

        var entries = NpzReader.List(path);
        var tensors = NpzReader.Open(path, ["input_ids", "attention_mask"]);

        Assert.Equal(["input_ids", "attention_mask", "labels"], entries.Select(e => e.Name));
        Assert.All(entries, e => Assert.Equal(compressed, e.Compressed));
        // Stored entries are mapped in place; deflated ones have to be decompressed into memory.
        Assert.All(tensors, t => Assert.Equal(!compressed, t.IsMapped));
        var ids = DataRecipe.Longs(tensors[0]);
        Assert.Equal(Enumerable.Range(0, 20).Select(i => (long)i), ids);
        Assert.Equal(ids.Select(i => i % 3 != 0 ? 1L : 0L), DataRecipe.Longs(tensors[1]));
        Assert.Equal([4L], tensors[0].SampleShape);
        Assert.Equal([1L, 0, 1, 0, 1], NpzReader.ReadLabels(path, "labels"));
    }

    [Fact]
    public void A_recipe_reads_the_labels_array_and_every_other_array_as_inputs()
    {
        File.Copy(Fixtures.Npy("stored.npz"), _dir.File("train.npz"));
        File.Copy(Fixtures.Npy("deflated.npz"), _dir.File("test.npz"));

        using var data = DataRecipe.Load(_dir, "train: train.npz\ntest: test.npz");

        Assert.Equal(["input_ids", "attention_mask"], data.Train.Tensors.Select(t => t.Name));
        Assert.Equal([1L, 0, 1, 0, 1], data.Test.Labels!);
        Assert.Equal(DataRecipe.Longs(data.Train.Tensors[0]), DataRecipe.Longs(data.Test.Tensors[0]));
        Assert.Equal($"{_dir.File("train.npz")} row 3", data.Train.LocateLabel(3));
    }

    [Fact]
    public void A_missing_array_is_MC2020_listing_the_arrays()
    {
        var path = Fixtures.Npy("stored.npz");

        var e = Assert.Throws<CompressionException>(() => NpzReader.Open(path, ["pixels"]));

        Assert.Equal(DiagnosticCodes.DataSchemaMismatch, e.Code);
        Assert.Contains("has no array 'pixels'. It has: input_ids, attention_mask, labels", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_file_that_is_not_a_zip_is_MC2021()
    {
        var path = _dir.Write("fake.npz", "just text");

        var e = Assert.Throws<CompressionException>(() => NpzReader.List(path));

        Assert.Equal((DiagnosticCodes.DataUnreadable, path), (e.Code, e.Diagnostics[0].File));
        Assert.Contains("not a zip archive", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_archive_written_by_dotnet_with_optimal_compression_reads_the_same()
    {
        // Another writer than numpy: entries deflated by System.IO.Compression, one stored.
        var path = _dir.File("dotnet.npz");
        using (var zip = ZipFile.Open(path, ZipArchiveMode.Create))
        {
            foreach (var (name, level) in new[] { ("a.npy", CompressionLevel.Optimal), ("b.npy", CompressionLevel.NoCompression) })
            {
                var entry = zip.CreateEntry(name, level);
                using var stream = entry.Open();
                stream.Write(File.ReadAllBytes(Fixtures.Npy("float32.npy")));
            }
        }

        var tensors = NpzReader.Open(path, ["a", "b"]);

        Assert.False(tensors[0].IsMapped);
        Assert.True(tensors[1].IsMapped);
        Assert.Equal(DataRecipe.Floats(tensors[0]), DataRecipe.Floats(tensors[1]));
        Assert.Equal(Enumerable.Range(0, 12).Select(i => (float)Fixtures.Expected('f', i)), DataRecipe.Floats(tensors[1]));
    }
}
