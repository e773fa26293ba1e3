using System.Text.Json.Nodes;
using ModelCompression.Common;
using ModelCompression.Diagnostics;
using ModelCompression.Pipeline;
using ModelCompression.Recipes;
using ModelCompression.Runs;

namespace ModelCompression.Cache.Tests;

/// <summary>
/// The fleet's scenarios, the same for every store (<see cref="FolderScenarios"/>, <see cref="AzuriteScenarios"/>):
/// machine A runs the recipe cold and uploads; machine B, with an empty folder, trains nothing; a file damaged in place
/// in the store is found and the entry rebuilt; read-only mode writes nothing; two machines racing on an empty store
/// both succeed and leave one whole entry each; a store that goes away mid-run leaves a warning and a run that
/// succeeds. Machines that share a store across processes are separate dotnet-compress processes; the others run the
/// engine in this process, where a test can act in the middle of a run.
/// </summary>
public abstract class RemoteCacheScenarios(StoreHarness harness)
{
    protected StoreHarness Harness => harness;

    [Fact]
    [Trait("Category", "Slow")] // trains, or starts machines that do: seconds each
    public void Machine_A_runs_cold_builds_every_entry_and_uploads_each_one()
    {
        var a = harness.Golden;

        Assert.True(a.Run.ExitCode == 0, a.Run.ToString());
        var report = ReadReport(a.Report);
        var total = report["cache"]!["total"]!;
        Assert.Equal(0, (int)total["remote_hits"]!);
        Assert.True((int)total["built"]! > 0);
        Assert.All(report["stages"]!.AsArray(), s => Assert.Equal("built", (string)s!["cache"]!["source"]!));
        // Every entry A made is in the store, whole, and the store says what it holds.
        var local = FolderCacheStore.ListFolder(a.Cache).Select(e => $"{e.Kind}-{e.Key}").Order().ToList();
        var stored = harness.Open(a.Store).List().Select(e => $"{e.Kind}-{e.Key}").Order().ToList();
        Assert.Equal(local, stored);
        Assert.Contains(stored, e => e.StartsWith("distill-", StringComparison.Ordinal));
        Assert.Contains(stored, e => e.StartsWith("quantize-", StringComparison.Ordinal));
        Assert.Contains(stored, e => e.StartsWith("teacher-logits-", StringComparison.Ordinal));
        Assert.Equal((long)total["bytes_up"]!, report["cache"]!["kinds"]!.AsArray().Sum(k => (long)k!["bytes_up"]!));
        Assert.Contains("uploaded", a.Run.Output, StringComparison.Ordinal);
    }

    [Fact]
    [Trait("Category", "Slow")] // trains, or starts machines that do: seconds each
    public void Machine_B_with_an_empty_folder_trains_nothing_and_writes_a_byte_identical_student()
    {
        var a = harness.Golden;
        var before = harness.Snapshot(a.Store);
        var folder = harness.Dir.Dir($"machine-b-{Guid.NewGuid():N}");
        var recipe = TinyRecipe.Write(folder);

        var b = CompressCli.Run(folder, harness.Environment, ["run", recipe, "--cache", Path.Join(folder, "cache"), "--output", Path.Join(folder, "out"), "--threads", "1", .. a.Store.Arguments("read")]);

        Assert.True(b.ExitCode == 0, b.ToString());
        // Nothing trained, the teacher never ran: every stage (and the labels-only twin) came from the store.
        Assert.DoesNotMatch(@"(?m)^\w+: epoch \d+/\d+", b.Output);
        Assert.DoesNotContain("Running the teacher", b.Output, StringComparison.Ordinal);
        Assert.DoesNotContain(": running", b.Output, StringComparison.Ordinal);
        var report = ReadReport(Path.Join(folder, "out", "tiny.student.report.json"));
        Assert.All(report["stages"]!.AsArray(), s => Assert.Equal(("remote", true), ((string)s!["cache"]!["source"]!, (bool)s["cached"]!)));
        Assert.Equal(0, (int)report["cache"]!["total"]!["built"]!);
        Assert.True((long)report["cache"]!["total"]!["bytes_down"]! > 0);
        Assert.Equal(File.ReadAllBytes(a.Student), File.ReadAllBytes(Path.Join(folder, "out", TinyRecipe.ModelName)));
        Assert.Equal(before, harness.Snapshot(a.Store));
    }

    [Fact]
    [Trait("Category", "Slow")] // trains, or starts machines that do: seconds each
    public void A_file_damaged_in_place_in_the_store_is_found_and_its_entry_rebuilt_and_replaced()
    {
        var store = harness.Copy(harness.Golden.Store, "damaged");
        harness.Damage(store, "distill", ArtifactCache.ModelFile);

        var (c, cReporter) = RunHere("machine-c", store, RemoteCacheMode.ReadWrite);

        var warning = Assert.Single(cReporter.WithCode(DiagnosticCodes.CacheEntryDamaged));
        Assert.Contains("distill-", warning.Message, StringComparison.Ordinal);
        Assert.Contains("model.onnx does not have the SHA-256 its manifest gives", warning.Message, StringComparison.Ordinal);
        Assert.True(c.GatesPassed);
        Assert.Equal(CacheSource.Built, c.Stages[0].Cache!.Source);
        Assert.True(cReporter.TrainingSteps > 0);
        Assert.Equal(1, c.Cache!.Kinds.Single(k => k.Kind == "distill").Damaged);

        // The rebuilt entry replaced the damaged one: the next machine takes it, whole, with no warning.
        var (d, dReporter) = RunHere("machine-d", store, RemoteCacheMode.Read);

        Assert.Empty(dReporter.WithCode(DiagnosticCodes.CacheEntryDamaged));
        Assert.All(d.Stages, s => Assert.Equal(CacheSource.Remote, s.Cache!.Source));
        Assert.Equal(0, dReporter.TrainingSteps);
        Assert.Equal(File.ReadAllBytes(c.OutputModel!), File.ReadAllBytes(d.OutputModel!));
        Assert.All(harness.UploadsPerEntry(store), e => Assert.True(e.Value == 1, $"{e.Key} keeps {e.Value} uploads"));
    }

    [Fact]
    [Trait("Category", "Slow")] // trains, or starts machines that do: seconds each
    public void Read_only_mode_never_writes_to_the_store_even_when_it_builds()
    {
        var store = harness.Copy(harness.Golden.Store, "read-only");
        var before = harness.Snapshot(store);

        // Another quantize option: distill comes from the store, quantize and its evaluation are built here.
        var (e, reporter) = RunHere("machine-e", store, RemoteCacheMode.Read, perChannel: true);

        Assert.True(e.GatesPassed);
        Assert.Equal([CacheSource.Remote, CacheSource.Built], e.Stages.Select(s => s.Cache!.Source));
        Assert.Equal(0, e.Cache!.Total.BytesUp);
        Assert.Empty(reporter.Diagnostics);
        Assert.Equal(before, harness.Snapshot(store));
    }

    [Fact]
    [Trait("Category", "Slow")] // trains, or starts machines that do: seconds each
    public void Two_machines_racing_on_an_empty_store_both_succeed_and_leave_one_whole_entry_each()
    {
        var store = harness.NewStore("race");
        var machines = new[] { "racer-1", "racer-2" }.Select(name =>
        {
            var folder = harness.Dir.Dir($"{name}-{Guid.NewGuid():N}");
            var recipe = TinyRecipe.Write(folder);
            return (Folder: folder, Run: CompressCli.Start(folder, harness.Environment, ["run", recipe, "--cache", Path.Join(folder, "cache"), "--output", Path.Join(folder, "out"), "--threads", "1", .. store.Arguments("read-write")]));
        }).ToList();

        var results = machines.Select(m => m.Run.Wait()).ToList();

        Assert.All(results, r => Assert.True(r.ExitCode == 0, r.ToString()));
        Assert.All(results, r => Assert.DoesNotContain("warning MC", r.Output, StringComparison.Ordinal));
        var entries = harness.Open(store).List();
        Assert.Equal(entries.Count, entries.Select(e => (e.Kind, e.Key)).Distinct().Count());
        Assert.Equal(FolderCacheStore.ListFolder(Path.Join(machines[0].Folder, "cache")).Count, entries.Count);
        // Each entry is one writer's, whole: a third machine takes every one with no damage found.
        var reporter = new RecordingReporter();
        var third = new ArtifactCache(harness.Dir.Dir($"third-{Guid.NewGuid():N}"), new RemoteCache(harness.Open(store), RemoteCacheMode.Read, reporter), reporter);
        Assert.All(entries, e => Assert.NotNull(third.TryGet(e.Kind, e.Key)));
        Assert.Empty(reporter.Diagnostics);
        Assert.All(harness.UploadsPerEntry(store), e => Assert.True(e.Value == 1, $"{e.Key} keeps {e.Value} uploads: the loser's were not removed"));
    }

    [Fact]
    [Trait("Category", "Slow")] // trains, or starts machines that do: seconds each
    public void A_store_that_goes_away_mid_run_is_one_warning_and_the_run_succeeds_with_its_local_cache()
    {
        var store = harness.NewStoreToTakeDown("mid-run", out var takeDown);

        var (f, reporter) = RunHere("machine-f", store, RemoteCacheMode.ReadWrite, onStage: stage =>
        {
            if (stage == "quantize")
            {
                takeDown();
            }
        });

        Assert.True(f.GatesPassed);
        Assert.True(File.Exists(f.OutputModel));
        var warning = Assert.Single(reporter.WithCode(DiagnosticCodes.RemoteCacheUnavailable));
        Assert.Contains("local cache only", warning.Message, StringComparison.Ordinal);
        Assert.False(f.Cache!.RemoteAvailable);
        // Uploaded before the store went: the distill stage's entry; after: nothing.
        Assert.True(f.Cache.Kinds.Single(k => k.Kind == "distill").BytesUp > 0);
        Assert.Equal(0, f.Cache.Kinds.Single(k => k.Kind == "quantize").BytesUp);
    }

    [Fact]
    public void Writers_racing_on_one_entry_both_succeed_and_the_store_keeps_one_whole_entry()
    {
        var store = harness.NewStore("writers");
        const int Rounds = 4;
        for (var round = 0; round < Rounds; round++)
        {
            // Both writers finish making the entry, then publish at the same moment: the store's rename or
            // create-if-absent decides, and the loser must still succeed.
            using var bothMade = new Barrier(2);
            var key = $"{round}0123456789abcdef";
            var writers = new[] { "left", "right" }.Select(side => Task.Run(() =>
            {
                var reporter = new RecordingReporter();
                var cache = new ArtifactCache(harness.Dir.Dir($"{side}-{key}-{Guid.NewGuid():N}"), new RemoteCache(harness.Open(store), RemoteCacheMode.ReadWrite, reporter), reporter);
                var entry = cache.Put("distill", key, folder =>
                {
                    File.WriteAllText(Path.Join(folder, ArtifactCache.ModelFile), $"{side} weights {new string('w', 4000)}");
                    bothMade.SignalAndWait(TimeSpan.FromSeconds(30));
                    return new { side };
                });
                return (Entry: entry, Reporter: reporter);
            })).ToArray();

            var results = writers.Select(w => w.Result).ToList();

            Assert.All(results, r => Assert.Empty(r.Reporter.Diagnostics));
            Assert.All(results, r => Assert.Null(CacheManifest.Problem(r.Entry, "distill", key)));
            Assert.Single(harness.Open(store).List(), e => e.Key == key);
            var reader = new RecordingReporter();
            var third = new ArtifactCache(harness.Dir.Dir($"reader-{key}"), new RemoteCache(harness.Open(store), RemoteCacheMode.Read, reader), reader);
            var fetched = File.ReadAllText(Path.Join(third.TryGet("distill", key)!, ArtifactCache.ModelFile));
            Assert.Contains(fetched, results.Select(r => File.ReadAllText(Path.Join(r.Entry, ArtifactCache.ModelFile))));
            Assert.Empty(reader.Diagnostics);
        }

        Assert.All(harness.UploadsPerEntry(store), e => Assert.True(e.Value == 1, $"{e.Key} keeps {e.Value} uploads"));
    }

    [Fact]
    public void A_read_only_cache_asks_the_store_once_per_missing_entry_and_writes_nothing()
    {
        var store = harness.NewStore("asks-once");
        var before = harness.Snapshot(store);
        var reporter = new RecordingReporter();
        var cache = new ArtifactCache(harness.Dir.Dir($"asks-{Guid.NewGuid():N}"), new RemoteCache(harness.Open(store), RemoteCacheMode.Read, reporter), reporter);

        Assert.Null(cache.TryGet("evaluate", "feed"));
        cache.Put("evaluate", "feed", _ => new { accuracy = 0.5 });

        Assert.Equal(CacheSource.Built, cache.UseOf("evaluate", "feed")!.Source);
        Assert.Equal(0, cache.Summary().Total.BytesUp);
        Assert.Equal(before, harness.Snapshot(store));
        Assert.Empty(reporter.Diagnostics);
    }

    /// <summary>A run of <see cref="TinyRecipe"/> in this process, with its own empty cache folder and <paramref name="store"/> behind it.</summary>
    protected (PipelineResult Result, RecordingReporter Reporter) RunHere(string machine, StoreRef store, RemoteCacheMode mode, bool perChannel = false, Action<string>? onStage = null)
    {
        var folder = harness.Dir.Dir($"{machine}-{Guid.NewGuid():N}");
        var reporter = new RecordingReporter { OnStageStarted = onStage };
        var recipe = RecipeLoader.Load(TinyRecipe.Write(folder, perChannel));
        var options = new PipelineOptions(Path.Join(folder, "cache"), Path.Join(folder, "out"), reporter) { Threads = 1, RemoteCache = store.Options(mode) };
        return (CompressionRun.Run(recipe, options), reporter);
    }

    protected static JsonNode ReadReport(string path) => JsonNode.Parse(File.ReadAllText(path))!;
}

/// <summary>The scenarios on a shared folder.</summary>
public sealed class FolderScenarios(FolderHarness harness) : RemoteCacheScenarios(harness), IClassFixture<FolderHarness>;

/// <summary>The scenarios on blob storage (Azurite).</summary>
[Trait("Category", "Slow")] // starts Azurite (node) as a child process, even for the tests that train nothing
public sealed class AzuriteScenarios(AzuriteHarness harness) : RemoteCacheScenarios(harness), IClassFixture<AzuriteHarness>
{
    [Fact]
    [Trait("Category", "Slow")] // reads machine A's run
    public void The_connection_string_is_never_printed_nor_written_to_reports_or_cache_entries()
    {
        var a = Harness.Golden;
        Assert.True(a.Run.ExitCode == 0, a.Run.ToString());

        // The key and the whole connection string appear nowhere machine A wrote or printed.
        Assert.DoesNotContain(Azurite.AccountKey, a.Run.Output, StringComparison.Ordinal);
        foreach (var file in Directory.EnumerateFiles(a.Folder, "*", SearchOption.AllDirectories))
        {
            var text = File.ReadAllText(file);
            Assert.False(text.Contains(Azurite.AccountKey, StringComparison.Ordinal) || text.Contains("AccountKey", StringComparison.Ordinal), $"{file} holds the credential");
        }

        // A wrong key fails (403) and the message names the store and the status, not the key that was tried.
        var wrongKey = Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes("not-the-account-key-but-long-enough-to-spot-0123456789"));
        var environment = new Dictionary<string, string> { ["WRONG_KEY"] = harness.ConnectionString.Replace(Azurite.AccountKey, wrongKey, StringComparison.Ordinal) };
        var refused = CompressCli.Run(a.Folder, environment, "cache", "ls", "--remote", "--remote-cache", a.Store.Location, "--remote-cache-credential-env", "WRONG_KEY");

        Assert.True(refused.ExitCode == 1, refused.ToString());
        Assert.Contains("error MC4020", refused.Stderr, StringComparison.Ordinal);
        Assert.Contains("HTTP 403", refused.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain(wrongKey, refused.Output, StringComparison.Ordinal);
    }

    [Fact]
    [Trait("Category", "Slow")] // reads machine A's run
    public void A_container_url_with_a_sas_token_in_its_variable_lists_the_store_and_a_bad_signature_is_not_printed()
    {
        var a = Harness.Golden;
        var container = harness.Container;
        var sas = container.GenerateSasUri(Azure.Storage.Sas.BlobContainerSasPermissions.Read | Azure.Storage.Sas.BlobContainerSasPermissions.List, DateTimeOffset.UtcNow.AddHours(1));
        var prefix = a.Store.Location["azure://fleet/".Length..];
        var url = $"http://127.0.0.1:{harness.Azurite.Port}/{Azurite.Account}/fleet/{prefix}";
        var signature = System.Web.HttpUtility.ParseQueryString(sas.Query)["sig"]!;

        var listed = CompressCli.Run(a.Folder, new Dictionary<string, string> { ["CACHE_SAS"] = sas.Query }, "cache", "ls", "--remote", "--remote-cache", url, "--remote-cache-credential-env", "CACHE_SAS");
        var forged = sas.Query.Replace(Uri.EscapeDataString(signature), Uri.EscapeDataString("AAAA" + signature[4..]), StringComparison.Ordinal);
        var refused = CompressCli.Run(a.Folder, new Dictionary<string, string> { ["CACHE_SAS"] = forged }, "cache", "ls", "--remote", "--remote-cache", url, "--remote-cache-credential-env", "CACHE_SAS");

        Assert.True(listed.ExitCode == 0, listed.ToString());
        Assert.Contains("distill ", listed.Stdout, StringComparison.Ordinal);
        Assert.Matches(@"\d+ entries, .* in http://127\.0\.0\.1", listed.Stdout);
        Assert.DoesNotContain(signature, listed.Output, StringComparison.Ordinal);
        Assert.True(refused.ExitCode == 1, refused.ToString());
        Assert.Contains("error MC4020", refused.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("AAAA" + signature[4..], refused.Output, StringComparison.Ordinal);
        Assert.DoesNotContain(Uri.EscapeDataString("AAAA" + signature[4..]), refused.Output, StringComparison.Ordinal);
    }
}
