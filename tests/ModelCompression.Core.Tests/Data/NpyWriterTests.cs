using System.Diagnostics;
using ModelCompression.Data;

namespace ModelCompression.Core.Tests.Data;

public sealed class NpyWriterTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData(new long[] { 5 })]
    [InlineData(new long[] { 3, 4 })]
    [InlineData(new long[] { 3, 2, 2 })]
    public void Written_in_blocks_and_read_back_mapped_with_the_same_shape_and_values(long[] shape)
    {
        var path = _dir.File("x.npy");
        var values = Enumerable.Range(0, (int)shape.Aggregate(1L, (a, b) => a * b)).Select(i => (i * 0.5f) - 3).ToArray();
        using (var writer = new NpyWriter(path, shape))
        {
            writer.Write(values.AsSpan(0, 2));
            writer.Write(values.AsSpan(2));
        }

        var bytes = File.ReadAllBytes(path);
        var headerLength = bytes[8] | (bytes[9] << 8);
        Assert.Equal(0, (10 + headerLength) % 64); // numpy aligns the data to 64 bytes
        using var set = NpyReader.OpenSet([("x", path)], "test");
        var tensor = set.Tensor("x")!;
        Assert.True(tensor.IsMapped);
        Assert.Equal(shape[0], tensor.Count);
        Assert.Equal(shape.Length == 1 ? [1L] : shape[1..], tensor.SampleShape);
        Assert.Equal(values, tensor.ToFloatArray());
    }

    [Trait("Category", "Slow")] // starts python3 with numpy
    [Fact]
    public void Numpy_reads_what_it_writes()
    {
        var path = _dir.File("y.npy");
        using (var writer = new NpyWriter(path, [2, 3]))
        {
            writer.Write([1.5f, -2, 3, 4, 5, 6.25f]);
        }

        // Debian's python3-numpy, which build/test.sh installs.
        var start = new ProcessStartInfo("/usr/bin/python3", ["-c", $"import numpy as np; a = np.load('{path}'); print(a.dtype, a.shape, a.tolist())"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var python = Process.Start(start)!;
        var output = python.StandardOutput.ReadToEnd();
        var errors = python.StandardError.ReadToEnd();
        python.WaitForExit();
        Assert.True(python.ExitCode == 0, errors);
        Assert.Equal("float32 (2, 3) [[1.5, -2.0, 3.0], [4.0, 5.0, 6.25]]", output.Trim());
    }

    [Fact]
    public void Closing_before_every_value_is_written_is_an_error_and_too_many_values_are_refused()
    {
        var writer = new NpyWriter(_dir.File("z.npy"), [2, 2]);
        Assert.Throws<InvalidOperationException>(() => writer.Write(new float[5]));
        writer.Write(new float[3]);
        Assert.Throws<InvalidOperationException>(writer.Dispose);
    }

    [Fact]
    public void An_abandoned_writer_closes_its_file_without_the_check_that_would_hide_the_first_error()
    {
        var path = _dir.File("abandoned.npy");
        var writer = new NpyWriter(path, [4, 2]);
        writer.Write(new float[2]);

        writer.Abandon();

        // Closed: the file can be opened exclusively and removed.
        using (File.Open(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None))
        {
        }

        File.Delete(path);
        Assert.False(File.Exists(path));
    }
}
