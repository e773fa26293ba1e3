using System.Diagnostics;
using ModelCompression.Torch.Native;

namespace ModelCompression.Torch.Tests.Native;

[Trait("Category", "Slow")] // starts child processes
public sealed class NativeFileCacheTests
{
    private const string FileName = "libLibTorchSharp.so";

    private static byte[] PatchedContent()
    {
        var image = ElfImage.Load(NativeTestFiles.LibTorchSharp());
        return image.WithWeakVersions(["GLIBCXX_3.4.32"]);
    }

    [Fact]
    public void Materialize_writes_once_then_reuses()
    {
        using var temp = NativeTestFiles.NewTempDir();
        var content = PatchedContent();

        var first = NativeFileCache.Materialize(temp.Path, FileName, content, out var reusedFirst);
        var second = NativeFileCache.Materialize(temp.Path, FileName, content, out var reusedSecond);

        Assert.Equal(first, second);
        Assert.False(reusedFirst);
        Assert.True(reusedSecond);
        Assert.Equal(content, File.ReadAllBytes(first));
        Assert.Equal(NativeFileCache.PathFor(temp.Path, FileName, content), first);
    }

    [Fact]
    public async Task Many_threads_at_once_end_with_one_valid_file_and_no_temps()
    {
        using var temp = NativeTestFiles.NewTempDir();
        var content = PatchedContent();
        const int threads = 16;
        using var start = new Barrier(threads);

        var paths = Enumerable.Range(0, threads)
            .Select(_ => Task.Factory.StartNew(
                () =>
                {
                    start.SignalAndWait();
                    return NativeFileCache.Materialize(temp.Path, FileName, content, out bool _);
                },
                TaskCreationOptions.LongRunning))
            .ToArray();
        var results = await Task.WhenAll(paths);

        AssertOneValidFile(temp.Path, content, results);
    }

    [Fact]
    public void Many_processes_at_once_end_with_one_valid_file_and_no_temps()
    {
        using var temp = NativeTestFiles.NewTempDir();
        var content = PatchedContent();
        var source = Path.Combine(temp.Path, "source.bin");
        File.WriteAllBytes(source, content);
        var cache = Path.Combine(temp.Path, "cache");
        var go = Path.Combine(temp.Path, "go");

        var children = Enumerable.Range(0, 6)
            .Select(_ => NativeProbeProgram.StartChild(["materialize", cache, source, go], environment: null))
            .ToList();
        // Every child is waiting on the go file before any starts writing.
        Thread.Sleep(TimeSpan.FromSeconds(1));
        File.WriteAllText(go, "go");

        var paths = new List<string>();
        foreach (var child in children)
        {
            using (child)
            {
                var output = child.StandardOutput.ReadToEnd();
                var errors = child.StandardError.ReadToEnd();
                Assert.True(child.WaitForExit(TimeSpan.FromMinutes(2)), "child did not finish");
                Assert.True(child.ExitCode == 0, $"child failed ({child.ExitCode}): {output} {errors}");
                paths.Add(output.Trim());
            }
        }

        AssertOneValidFile(cache, content, paths);
    }

    [Fact]
    public void A_corrupted_copy_is_detected_and_replaced()
    {
        using var temp = NativeTestFiles.NewTempDir();
        var content = PatchedContent();
        var path = NativeFileCache.Materialize(temp.Path, FileName, content, out bool _);

        // Same length, one byte flipped (the weak flag cleared again): only a content check notices.
        var corrupt = (byte[])content.Clone();
        var flags = ElfImage.Read(content).VersionNeeds.Single(n => n.Version == "GLIBCXX_3.4.32").FlagsOffset;
        corrupt[flags] = 0;
        File.WriteAllBytes(path, corrupt);
        Assert.False(NativeFileCache.HasContent(path, content));

        var again = NativeFileCache.Materialize(temp.Path, FileName, content, out var reused);

        Assert.Equal(path, again);
        Assert.False(reused);
        Assert.Equal(content, File.ReadAllBytes(path));
    }

    [Fact]
    public void A_truncated_copy_is_replaced()
    {
        using var temp = NativeTestFiles.NewTempDir();
        var content = PatchedContent();
        var path = NativeFileCache.PathFor(temp.Path, FileName, content);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, content[..1000]);

        NativeFileCache.Materialize(temp.Path, FileName, content, out var reused);

        Assert.False(reused);
        Assert.Equal(content, File.ReadAllBytes(path));
    }

    [Fact]
    public void Stale_temps_of_crashed_writers_are_removed_and_fresh_ones_kept()
    {
        using var temp = NativeTestFiles.NewTempDir();
        var content = PatchedContent();
        var dir = Path.GetDirectoryName(NativeFileCache.PathFor(temp.Path, FileName, content))!;
        Directory.CreateDirectory(dir);
        var stale = Path.Combine(dir, $".{FileName}.1.dead.tmp");
        var fresh = Path.Combine(dir, $".{FileName}.2.live.tmp");
        File.WriteAllText(stale, "half");
        File.WriteAllText(fresh, "half");
        File.SetLastWriteTimeUtc(stale, DateTime.UtcNow.AddDays(-1));

        NativeFileCache.Materialize(temp.Path, FileName, content, out bool _);

        Assert.False(File.Exists(stale));
        Assert.True(File.Exists(fresh));
    }

    [Fact]
    public void Different_content_goes_to_a_different_folder()
    {
        using var temp = NativeTestFiles.NewTempDir();
        var a = NativeFileCache.PathFor(temp.Path, FileName, [1, 2, 3]);
        var b = NativeFileCache.PathFor(temp.Path, FileName, [1, 2, 4]);
        Assert.NotEqual(Path.GetDirectoryName(a), Path.GetDirectoryName(b));
    }

    private static void AssertOneValidFile(string cacheRoot, byte[] content, IEnumerable<string> reportedPaths)
    {
        var expected = NativeFileCache.PathFor(cacheRoot, FileName, content);
        Assert.All(reportedPaths, p => Assert.Equal(expected, p));
        var files = Directory.GetFiles(cacheRoot, "*", SearchOption.AllDirectories);
        Assert.Equal([expected], files);
        Assert.Equal(content, File.ReadAllBytes(expected));
        Debug.Assert(files.Length == 1);
    }
}
