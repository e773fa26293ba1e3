using ModelCompression.Common;

namespace ModelCompression.Cache.Tests;

/// <summary>
/// <c>dotnet compress cache ls | stats | prune | push | pull</c>, run as a CI step runs them, on cache folders whose
/// entries the engine's own cache wrote (no training: the verbs move and count entries, whatever is in them).
/// </summary>
[Trait("Category", "Slow")] // child processes
public sealed class CacheCommandTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Ls_and_stats_list_each_entry_and_sum_them_by_kind()
    {
        var cache = Filled("cache", ("distill", "aa11", 3000), ("distill", "bb22", 2000), ("evaluate", "cc33", 500));

        var ls = Cli("cache", "ls", "--cache", cache);
        var stats = Cli("cache", "stats", "--cache", cache);

        Assert.True(ls.ExitCode == 0, ls.ToString());
        Assert.Equal(4, ls.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        Assert.Matches(@"(?m)^distill +aa11 +3\.\d+ kB +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", ls.Stdout);
        Assert.Contains($"3 entries, ", ls.Stdout, StringComparison.Ordinal);
        Assert.True(stats.ExitCode == 0, stats.ToString());
        Assert.Matches(@"(?m)^distill +2 +[56](\.\d+)? kB$", stats.Stdout);
        Assert.Matches(@"(?m)^evaluate +1 +\d+(\.\d+)? k?B$", stats.Stdout);
    }

    [Fact]
    public void Prune_removes_old_entries_then_the_least_recently_used_down_to_the_size_and_a_dry_run_removes_nothing()
    {
        var cache = Filled("cache", ("distill", "aa11", 3000), ("distill", "bb22", 3000), ("evaluate", "cc33", 3000), ("quantize", "dd44", 3000));
        Age(cache, "distill-aa11", TimeSpan.FromDays(40));
        Age(cache, "distill-bb22", TimeSpan.FromDays(10));
        Age(cache, "evaluate-cc33", TimeSpan.FromDays(5));
        // A killed run's temporary folder, long dead (its process id is no running process).
        var leftover = Directory.CreateDirectory(Path.Join(cache, ".tmp-distill-ee55-2000000000-0123")).FullName;
        Directory.SetLastWriteTimeUtc(leftover, DateTime.UtcNow - TimeSpan.FromHours(2));

        var dryRun = Cli("cache", "prune", "--cache", cache, "--older-than", "30d", "--max-size", "8kB", "--dry-run");

        Assert.True(dryRun.ExitCode == 0, dryRun.ToString());
        Assert.Contains("would remove distill-aa11", dryRun.Stdout, StringComparison.Ordinal);
        Assert.Equal(4, FolderCacheStore.ListFolder(cache).Count);

        var pruned = Cli("cache", "prune", "--cache", cache, "--older-than", "30d", "--max-size", "8kB");

        Assert.True(pruned.ExitCode == 0, pruned.ToString());
        Assert.Contains("removed distill-aa11 (", pruned.Stdout, StringComparison.Ordinal);
        Assert.Contains("not used for 40 days", pruned.Stdout, StringComparison.Ordinal);
        Assert.Contains("removed distill-bb22 (", pruned.Stdout, StringComparison.Ordinal);
        Assert.Contains("least recently used over --max-size", pruned.Stdout, StringComparison.Ordinal);
        Assert.Equal(["evaluate-cc33", "quantize-dd44"], FolderCacheStore.ListFolder(cache).Select(e => $"{e.Kind}-{e.Key}").Order());
        Assert.False(Directory.Exists(leftover));
    }

    [Fact]
    public void Push_uploads_the_whole_entries_and_pull_brings_them_to_another_folder_as_they_were()
    {
        var cache = Filled("cache", ("distill", "aa11", 3000), ("evaluate", "cc33", 500), ("quantize", "dd44", 800));
        var damaged = Path.Join(cache, "quantize-dd44", ArtifactCache.ModelFile);
        File.WriteAllText(damaged, File.ReadAllText(damaged) + "!");
        var share = _dir.Dir("share");

        var push = Cli("cache", "push", "--cache", cache, "--remote-cache", share);
        var again = Cli("cache", "push", "--cache", cache, "--remote-cache", share);
        var pull = Cli("cache", "pull", "--cache", _dir.File("other"), "--remote-cache", share);

        Assert.True(push.ExitCode == 0, push.ToString());
        Assert.Contains("Pushed 2 entries", push.Stdout, StringComparison.Ordinal);
        Assert.Contains("1 damaged, not pushed", push.Stdout, StringComparison.Ordinal);
        Assert.Contains("warning MC2098", push.Stderr, StringComparison.Ordinal);
        Assert.Contains("Pushed 0 entries (0 B)", again.Stdout, StringComparison.Ordinal);
        Assert.Contains("2 were there already", again.Stdout, StringComparison.Ordinal);
        Assert.True(pull.ExitCode == 0, pull.ToString());
        Assert.Contains("Pulled 2 entries", pull.Stdout, StringComparison.Ordinal);
        foreach (var name in new[] { "distill-aa11", "evaluate-cc33" })
        {
            Assert.Equal(File.ReadAllBytes(Path.Join(cache, name, ArtifactCache.ModelFile)), File.ReadAllBytes(Path.Join(_dir.File("other"), name, ArtifactCache.ModelFile)));
        }
    }

    [Theory]
    [InlineData("error MC1010: cache prune needs --max-size, --older-than or both.", "cache", "prune", "--cache", ".")]
    [InlineData("--max-size takes a size such as 500MB or 5GB, not '5XB'", "cache", "prune", "--cache", ".", "--max-size", "5XB")]
    [InlineData("--older-than takes an age such as 30d, 12h or 2w, not '30'", "cache", "prune", "--cache", ".", "--older-than", "30")]
    [InlineData("cache ls: give a recipe or --cache to name the local cache folder.", "cache", "ls")]
    [InlineData("cache push: give --remote-cache, or a recipe with 'cache: { remote: … }', to name the remote cache.", "cache", "push", "--cache", ".")]
    [InlineData("--remote-cache-mode must be one of read, read-write, off, not 'write'", "run", "x.yaml", "--remote-cache", "/tmp", "--remote-cache-mode", "write")]
    [InlineData("--remote-cache: 'My_Cache' is not a blob container name", "run", "x.yaml", "--remote-cache", "azure://My_Cache/ci")]
    [InlineData("a SAS token goes in the credential variable", "run", "x.yaml", "--remote-cache", "https://acct.blob.core.windows.net/cache?sv=2024&sig=abc")]
    [InlineData("--remote-cache-credential-env takes the name of an environment variable", "run", "x.yaml", "--remote-cache", "/tmp", "--remote-cache-credential-env", "AccountKey=abc")]
    public void Mistakes_are_usage_errors_that_say_what_is_expected(string expected, params string[] arguments)
    {
        var result = Cli(arguments);

        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.Contains(expected, result.Stderr, StringComparison.Ordinal);
    }

    private CompressCli.Result Cli(params string[] arguments) => CompressCli.Run(_dir.Path, null, arguments);

    /// <summary>A cache folder holding entries written through the engine's cache, each with a model of about <c>bytes</c> bytes.</summary>
    private string Filled(string name, params (string Kind, string Key, int Bytes)[] entries)
    {
        var cache = new ArtifactCache(_dir.File(name));
        foreach (var (kind, key, bytes) in entries)
        {
            cache.Put(kind, key, folder =>
            {
                File.WriteAllText(Path.Join(folder, ArtifactCache.ModelFile), new string('m', bytes));
                return new { kind };
            });
        }

        return cache.Root;
    }

    private static void Age(string cache, string entry, TimeSpan age) =>
        Directory.SetLastWriteTimeUtc(Path.Join(cache, entry), DateTime.UtcNow - age);
}
