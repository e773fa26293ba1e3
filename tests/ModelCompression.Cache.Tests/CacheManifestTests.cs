using System.Text;
using ModelCompression.Common;
using ModelCompression.Diagnostics;

namespace ModelCompression.Cache.Tests;

/// <summary>Every entry is checked against its manifest when read: any change of its files, or a manifest that lies about where it belongs, is a miss.</summary>
public sealed class CacheManifestTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void A_whole_entry_passes_and_each_kind_of_damage_is_named()
    {
        Assert.Null(CacheManifest.Problem(Entry("whole"), "distill", "abc123"));

        var flipped = Entry("flipped");
        var model = File.ReadAllBytes(Path.Join(flipped, "model.onnx"));
        model[3] ^= 1;
        File.WriteAllBytes(Path.Join(flipped, "model.onnx"), model);
        Assert.Equal("model.onnx does not have the SHA-256 its manifest gives", CacheManifest.Problem(flipped, "distill", "abc123"));

        var truncated = Entry("truncated");
        File.WriteAllBytes(Path.Join(truncated, "sub/logits.bin"), [1, 2]);
        Assert.Equal("sub/logits.bin has 2 bytes, its manifest says 4096", CacheManifest.Problem(truncated, "distill", "abc123"));

        var missing = Entry("missing");
        File.Delete(Path.Join(missing, "result.json"));
        Assert.Equal("result.json is missing", CacheManifest.Problem(missing, "distill", "abc123"));

        var added = Entry("added");
        File.WriteAllText(Path.Join(added, "extra.onnx"), "planted");
        Assert.Equal("extra.onnx is not in its manifest", CacheManifest.Problem(added, "distill", "abc123"));

        var unreadable = Entry("unreadable");
        File.WriteAllText(Path.Join(unreadable, CacheManifest.FileName), "{ \"format\": 1, ");
        Assert.StartsWith("its manifest.json is not a manifest", CacheManifest.Problem(unreadable, "distill", "abc123"), StringComparison.Ordinal);

        Assert.Equal("it has no manifest.json", CacheManifest.Problem(_dir.Dir("none"), "distill", "abc123"));
    }

    [Fact]
    public void An_entry_under_another_name_or_of_another_engine_is_not_trusted()
    {
        var entry = Entry("moved");

        // A copy of a valid entry placed under another key (or kind) would otherwise pass every file check.
        Assert.Equal("its manifest names the entry distill-abc123", CacheManifest.Problem(entry, "distill", "def456"));
        Assert.Equal("its manifest names the entry distill-abc123", CacheManifest.Problem(entry, "quantize", "abc123"));

        var manifest = Path.Join(entry, CacheManifest.FileName);
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(manifest))!;
        json["engine"] = "0.9.0+old";
        File.WriteAllText(manifest, json.ToJsonString());
        Assert.Equal($"it was made by engine 0.9.0+old, this is {EngineInfo.Version}", CacheManifest.Problem(entry, "distill", "abc123"));
    }

    [Theory]
    [InlineData("../../outside.txt")]
    [InlineData("/etc/passwd")]
    [InlineData("a/../../b")]
    [InlineData("manifest.json")]
    public void A_manifest_naming_a_file_outside_its_entry_is_refused_before_anything_is_copied(string path)
    {
        var json = $$"""{ "format": 1, "engine": "x", "kind": "distill", "key": "abc", "created_utc": "2026-12-01T00:00:00Z", "files": [ { "path": "{{path}}", "length": 1, "sha256": "00" } ] }""";

        Assert.Null(CacheManifest.Parse(Encoding.UTF8.GetBytes(json), out var problem));
        Assert.Equal($"its manifest.json names '{path}', which is not a file inside the entry", problem);
    }

    [Fact]
    public void The_local_cache_warns_about_a_damaged_entry_and_makes_it_again()
    {
        var reporter = new RecordingReporter();
        var cache = new ArtifactCache(_dir.File("cache"), null, reporter);
        var entry = cache.Put("distill", "abc123", folder =>
        {
            File.WriteAllText(Path.Join(folder, ArtifactCache.ModelFile), "trained weights");
            return new { summary = "trained" };
        });
        Assert.Equal(entry, cache.TryGet("distill", "abc123"));
        File.WriteAllText(Path.Join(entry, ArtifactCache.ModelFile), "trained weightZ");

        // A new process (a later run) checks again: the damage is a miss with a warning, never a wrong model.
        var later = new ArtifactCache(_dir.File("cache"), null, reporter);

        Assert.Null(later.TryGet("distill", "abc123"));
        var warning = Assert.Single(reporter.Diagnostics);
        Assert.Equal((DiagnosticCodes.CacheEntryDamaged, DiagnosticSeverity.Warning, entry), (warning.Code, warning.Severity, warning.File));
        Assert.Contains("model.onnx does not have the SHA-256 its manifest gives", warning.Message, StringComparison.Ordinal);

        var again = later.Put("distill", "abc123", folder =>
        {
            File.WriteAllText(Path.Join(folder, ArtifactCache.ModelFile), "trained weights");
            return new { summary = "trained again" };
        });

        Assert.Equal(entry, again);
        Assert.Equal("trained weights", File.ReadAllText(Path.Join(again, ArtifactCache.ModelFile)));
        Assert.Null(CacheManifest.Problem(again, "distill", "abc123"));
        Assert.Equal(CacheSource.Built, later.UseOf("distill", "abc123")!.Source);
        Assert.Equal(1, later.Summary().Total.Damaged);
    }

    [Theory]
    [InlineData("Distill", "abc")]
    [InlineData("distill", "../x")]
    [InlineData("dis/till", "abc")]
    [InlineData("distill", "ABC")]
    public void Kinds_and_keys_that_cannot_name_an_entry_folder_are_refused(string kind, string key)
    {
        var cache = new ArtifactCache(_dir.File("cache"));

        Assert.Throws<ArgumentException>(() => cache.TryGet(kind, key));
    }

    /// <summary>An entry folder made as the cache makes one: model, result, a file in a sub-folder, then the manifest.</summary>
    private string Entry(string name)
    {
        var folder = _dir.Dir(name);
        File.WriteAllText(Path.Join(folder, "model.onnx"), "weights, not really");
        File.WriteAllText(Path.Join(folder, "result.json"), "{}");
        Directory.CreateDirectory(Path.Join(folder, "sub"));
        File.WriteAllBytes(Path.Join(folder, "sub", "logits.bin"), new byte[4096]);
        CacheManifest.Write(folder, "distill", "abc123");
        return folder;
    }
}
