using ModelCompression.Pipeline;

namespace ModelCompression.Core.Tests.Pipeline;

public sealed class ArtifactCacheTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private sealed record Result(string Summary, int Count);

    [Fact]
    public void Put_makes_a_complete_entry_that_TryGet_finds()
    {
        var cache = new ArtifactCache(_dir.File("cache"));
        Assert.Null(cache.TryGet("distill", "k1"));

        var entry = cache.Put("distill", "k1", folder =>
        {
            File.WriteAllText(Path.Combine(folder, ArtifactCache.ModelFile), "model");
            return new Result("trained", 3);
        });

        Assert.Equal(entry, cache.TryGet("distill", "k1"));
        Assert.Equal("model", File.ReadAllText(Path.Combine(entry, ArtifactCache.ModelFile)));
        Assert.Equal(new Result("trained", 3), ArtifactCache.ReadResult<Result>(entry));
        Assert.Null(cache.TryGet("quantize", "k1"));
        Assert.Null(cache.TryGet("distill", "k2"));
        Assert.Equal([entry], Directory.GetDirectories(cache.Root));
    }

    [Fact]
    public void A_failing_producer_leaves_no_entry_and_no_temporary_folder()
    {
        var cache = new ArtifactCache(_dir.File("cache"));
        string? seen = null;

        var e = Assert.Throws<InvalidOperationException>(() => cache.Put<Result>("distill", "k1", folder =>
        {
            seen = folder;
            File.WriteAllText(Path.Combine(folder, ArtifactCache.ModelFile), "half a model");
            throw new InvalidOperationException("training diverged");
        }));

        Assert.Equal("training diverged", e.Message);
        Assert.NotNull(seen);
        Assert.False(Directory.Exists(seen));
        Assert.Null(cache.TryGet("distill", "k1"));
        Assert.Empty(Directory.GetFileSystemEntries(cache.Root));
    }

    [Fact]
    public void An_entry_without_result_json_is_not_trusted_and_is_replaced()
    {
        var cache = new ArtifactCache(_dir.File("cache"));
        var entry = cache.Put("distill", "k1", folder =>
        {
            File.WriteAllText(Path.Combine(folder, ArtifactCache.ModelFile), "old");
            return new Result("old", 1);
        });

        // A killed run (or a person) left the model but not result.json.
        File.Delete(Path.Combine(entry, ArtifactCache.ResultFile));
        Assert.Null(cache.TryGet("distill", "k1"));

        var again = cache.Put("distill", "k1", folder =>
        {
            File.WriteAllText(Path.Combine(folder, ArtifactCache.ModelFile), "new");
            return new Result("new", 2);
        });

        Assert.Equal(entry, again);
        Assert.Equal("new", File.ReadAllText(Path.Combine(again, ArtifactCache.ModelFile)));
        Assert.Equal(new Result("new", 2), ArtifactCache.ReadResult<Result>(again));
        Assert.Equal([again], Directory.GetFileSystemEntries(cache.Root));
    }
}
