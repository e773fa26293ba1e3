using ModelCompression.Common;

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

    [Fact]
    public void A_killed_runs_old_temporary_folder_is_removed_but_a_live_or_recent_one_is_kept()
    {
        var cache = new ArtifactCache(_dir.File("cache"));
        var old = DateTime.UtcNow - ArtifactCache.StaleAfter - TimeSpan.FromMinutes(1);
        // A process id above Linux's largest (4194304) and Windows' usual ones: no process has it.
        var dead = Temporary(cache, "teacher-logits", 2_000_000_000, old);
        var live = Temporary(cache, "distill", Environment.ProcessId, old);
        var recent = Temporary(cache, "quantize", 2_000_000_000, DateTime.UtcNow);
        var foreign = Directory.CreateDirectory(Path.Join(cache.Root, ".tmp-not-ours")).FullName;
        Directory.SetLastWriteTimeUtc(foreign, old);
        var entry = cache.Put("distill", "k1", _ => new Result("trained", 1));

        Assert.Equal([dead], cache.RemoveStaleTemporaries());

        Assert.False(Directory.Exists(dead));
        Assert.True(Directory.Exists(live));
        Assert.True(Directory.Exists(recent));
        Assert.True(Directory.Exists(foreign));
        Assert.Equal(entry, cache.TryGet("distill", "k1"));
    }

    [Fact]
    public void Removing_stale_temporaries_of_a_cache_not_yet_made_does_nothing()
    {
        var cache = new ArtifactCache(_dir.File("none"));

        Assert.Empty(cache.RemoveStaleTemporaries());
        Assert.False(Directory.Exists(cache.Root));
    }

    [Fact]
    public void The_lock_of_an_output_lives_in_the_cache_one_per_output_path()
    {
        var cache = new ArtifactCache(_dir.File("cache"));

        var a = cache.LockFile(_dir.File("out/a.onnx"));
        Assert.StartsWith(Path.Join(cache.Root, "locks") + Path.DirectorySeparatorChar, a, StringComparison.Ordinal);
        Assert.Equal(a, cache.LockFile(_dir.File("out/../out/a.onnx")));
        Assert.NotEqual(a, cache.LockFile(_dir.File("other/a.onnx")));
    }

    [Fact]
    public void The_default_cache_of_a_recipe_is_under_the_users_cache_folder_not_the_source_tree()
    {
        var previous = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        try
        {
            Environment.SetEnvironmentVariable("XDG_CACHE_HOME", _dir.File("xdg"));
            var recipe = _dir.File("src/models/fashion.compress.yaml");

            var root = ArtifactCache.DefaultRoot(recipe);

            Assert.StartsWith(Path.Join(_dir.File("xdg"), "modelcompression", "fashion-"), root, StringComparison.Ordinal);
            Assert.Equal(root, ArtifactCache.DefaultRoot(_dir.File("src/models/./fashion.compress.yaml")));
            Assert.NotEqual(root, ArtifactCache.DefaultRoot(_dir.File("other/models/fashion.compress.yaml")));

            // A relative XDG_CACHE_HOME is invalid by the XDG spec and ignored.
            Environment.SetEnvironmentVariable("XDG_CACHE_HOME", "relative");
            Assert.DoesNotContain("relative", ArtifactCache.DefaultRoot(recipe), StringComparison.Ordinal);
        }
        finally
        {
            Environment.SetEnvironmentVariable("XDG_CACHE_HOME", previous);
        }
    }

    private static string Temporary(ArtifactCache cache, string kind, int processId, DateTime written)
    {
        var folder = Directory.CreateDirectory(Path.Join(cache.Root, $".tmp-{kind}-0123456789abcdef0123456789abcdef-{processId}-{Guid.NewGuid():N}")).FullName;
        File.WriteAllText(Path.Join(folder, ArtifactCache.ModelFile), "half a model");
        Directory.SetLastWriteTimeUtc(folder, written);
        return folder;
    }
}
