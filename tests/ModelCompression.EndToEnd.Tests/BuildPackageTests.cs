using System.Security.Cryptography;
using System.Text;
using Microsoft.ML.OnnxRuntime;

namespace ModelCompression.EndToEnd.Tests;

/// <summary>
/// A project with &lt;CompressModel&gt; built by the real `dotnet build` against the packed package: the student
/// appears, a second build does not start the engine, a broken gate fails the build without replacing the last
/// good model (and keeps failing it, whatever the gate mode of the build before), each recipe is checked and
/// kept apart on its own (with its item's metadata over the properties), every recipe is checked before any runs,
/// nothing stale ships (reports only when asked), progress and results show under the terminal logger and in plain
/// logs, nothing lands in the source folder, and a design-time build runs nothing.
/// </summary>
public sealed class BuildPackageTests(PackedPackageFixture package) : IClassFixture<PackedPackageFixture>
{
    private const string StudentFile = "fashion.student.onnx";

    [Fact]
    public void Build_writes_the_student_and_a_second_build_skips_the_engine()
    {
        var project = CreateProject("incremental", gate: "accuracy >= 0.5");

        var first = Build(project, "-p:CompressModelThreads=1");
        Assert.True(first.ExitCode == 0, first.ToString());
        Assert.Contains("distill:", first.Output, StringComparison.Ordinal);
        Assert.Contains("Threads: 1 (--threads)", first.Output, StringComparison.Ordinal);
        var student = Path.Combine(project, "bin", "Debug", "net10.0", StudentFile);
        Assert.True(File.Exists(student), $"{student} missing after build:\n{first}");
        Assert.True(File.Exists(Path.Combine(project, "bin", "Debug", "net10.0", "fashion.student.data.json")));
        // Reports stay in the recipe's state folder unless the project asks to publish them.
        Assert.False(File.Exists(Path.Combine(project, "bin", "Debug", "net10.0", "fashion.student.report.json")));
        Assert.True(File.Exists(Path.Combine(StateFolder(project, "recipe.yaml"), "out", "fashion.student.report.json")));
        Assert.Contains("Summary: recipe.yaml: gates passed (1/1), accuracy ", first.Output, StringComparison.Ordinal);
        AssertRunsInOnnxRuntime(student);

        var second = Build(project);
        Assert.True(second.ExitCode == 0, second.ToString());
        Assert.Contains(NothingToRun(1), second.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("distill:", second.Output, StringComparison.Ordinal);
        Assert.True(File.Exists(student));

        // A changed input starts the engine again; every stage comes from the cache.
        File.AppendAllText(Path.Combine(project, "recipe.yaml"), "# touched\n");
        var third = Build(project);
        Assert.True(third.ExitCode == 0, third.ToString());
        Assert.Contains("distill: up to date (cached)", third.Output, StringComparison.Ordinal);
        Assert.Contains("quantize: up to date (cached)", third.Output, StringComparison.Ordinal);
    }

    [Fact]
    public void A_generation_recipe_builds_a_decoder_whose_folder_reaches_the_output_folder()
    {
        var math = Path.Combine(package.RepoRoot, "tests", "fixtures", "generation", "math");
        var project = CreateProject("generation", ("math.compress.yaml", $$"""
            task: generation
            data: { format: chat, train: {{math}}/train.jsonl, validation: {{math}}/validation.jsonl, test: {{math}}/test.jsonl }
            generation: { task_type: math, tokenizer: character, max_length: 160, max_new_tokens: 40 }
            student: { architecture: decoder, width: 32, heads: 2, layers: 1, feed_forward: 64 }
            stages:
              - finetune: { epochs: 2, batch_size: 8 }
            gates:
              - perplexity <= 1000
            outputs: { model: math.onnx }

            """));

        var build = Build(project, "-p:CompressModelThreads=1");

        Assert.True(build.ExitCode == 0, build.ToString());
        Assert.Contains("Summary: math.compress.yaml: gates passed (1/1), exact_match ", build.Output, StringComparison.Ordinal);
        var bin = Path.Combine(project, "bin", "Debug", "net10.0");
        foreach (var file in new[] { "math.onnx", "math/model.onnx", "math/tokenizer.compress.json", "math/generation.json", "math/genai_config.json" })
        {
            Assert.True(File.Exists(Path.Combine(bin, file)), $"{file} missing from the output folder:\n{build}");
        }

        var second = Build(project);
        Assert.True(second.ExitCode == 0, second.ToString());
        Assert.Contains(NothingToRun(1), second.Output, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(bin, "math", "generation.json")));
    }

    [Fact]
    public void Impossible_gate_fails_the_build_naming_the_recipe_line_and_keeps_the_last_good_model()
    {
        var project = CreateProject("gate", gate: "accuracy >= 0.5");
        var good = Build(project);
        Assert.True(good.ExitCode == 0, good.ToString());
        var student = Path.Combine(project, "bin", "Debug", "net10.0", StudentFile);
        var produced = Path.Combine(StateFolder(project, "recipe.yaml"), "out", StudentFile);
        var goodHash = Hash(produced);

        var recipe = Path.Combine(project, "recipe.yaml");
        File.WriteAllText(recipe, File.ReadAllText(recipe).Replace("accuracy >= 0.5", "accuracy >= 0.999", StringComparison.Ordinal));
        var gateLine = Array.FindIndex(File.ReadAllLines(recipe), l => l.Contains("0.999", StringComparison.Ordinal)) + 1;

        var bad = Build(project);
        Assert.NotEqual(0, bad.ExitCode);
        Assert.Contains($"recipe.yaml({gateLine},", bad.Output, StringComparison.Ordinal);
        Assert.Contains("error MC3001", bad.Output, StringComparison.Ordinal);
        Assert.Contains("accuracy >= 0.999", bad.Output, StringComparison.Ordinal);
        Assert.Equal(goodHash, Hash(produced));
        Assert.Equal(goodHash, Hash(student));
    }

    [Fact]
    public void Gate_broken_in_warning_mode_is_reported_again_by_every_build_after()
    {
        var project = CreateProject("gate-mode", ("recipe.yaml", SmallRecipe("gatemode.student.onnx", "accuracy >= 0.999")));

        var warned = Build(project, "-p:CompressModelGateFailuresAsWarnings=true");
        Assert.True(warned.ExitCode == 0, warned.ToString());
        Assert.Contains("warning MC3001", warned.Output, StringComparison.Ordinal);

        // Nothing changed but the gate mode: the gate is still broken, and now it is an error, build after build.
        var failed = Build(project);
        Assert.True(failed.ExitCode != 0, failed.ToString());
        Assert.Contains("error MC3001", failed.Output, StringComparison.Ordinal);
        Assert.Contains("distill: up to date (cached)", failed.Output, StringComparison.Ordinal);
        var again = Build(project);
        Assert.True(again.ExitCode != 0, again.ToString());
        Assert.Contains("error MC3001", again.Output, StringComparison.Ordinal);

        var warnedAgain = Build(project, "-p:CompressModelGateFailuresAsWarnings=true");
        Assert.True(warnedAgain.ExitCode == 0, warnedAgain.ToString());
        Assert.Contains("warning MC3001", warnedAgain.Output, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(project, "bin", "Debug", "net10.0", "gatemode.student.onnx")));
    }

    [Fact]
    public void Recipes_of_one_name_in_two_folders_are_checked_apart_and_run_in_one_engine_process()
    {
        var project = CreateProject(
            "per-recipe",
            ("one/model.compress.yaml", SmallRecipe("one.student.onnx", "accuracy >= 0.3", dataFolder: "data")),
            ("two/model.compress.yaml", SmallRecipe("two.student.onnx", "accuracy >= 0.3")));
        var sampleData = Path.Combine(package.RepoRoot, "samples", "FashionMnist", "data");
        Directory.CreateDirectory(Path.Combine(project, "one", "data"));
        foreach (var file in new[] { "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz" })
        {
            File.Copy(Path.Combine(sampleData, file), Path.Combine(project, "one", "data", file));
        }

        var first = Build(project);
        Assert.True(first.ExitCode == 0, first.ToString());
        Assert.Equal(1, EngineStarts(first));
        var one = StateFolder(project, "one/model.compress.yaml");
        var two = StateFolder(project, "two/model.compress.yaml");
        Assert.NotEqual(one, two);
        Assert.Equal(["one.student.data.json", "one.student.onnx", "one.student.report.json"], FileNames(Path.Combine(one, "out")));
        Assert.Equal(["two.student.data.json", "two.student.onnx", "two.student.report.json"], FileNames(Path.Combine(two, "out")));
        Assert.True(File.Exists(Path.Combine(project, "bin", "Debug", "net10.0", "one.student.onnx")), first.ToString());
        Assert.True(File.Exists(Path.Combine(project, "bin", "Debug", "net10.0", "two.student.onnx")), first.ToString());

        // Only the recipe whose data changed runs; the other's stamp is left alone.
        var twoStamp = File.GetLastWriteTimeUtc(Path.Combine(two, "stamp"));
        File.SetLastWriteTimeUtc(Path.Combine(project, "one", "data", "t10k-labels-idx1-ubyte.gz"), DateTime.UtcNow);
        var second = Build(project);
        Assert.True(second.ExitCode == 0, second.ToString());
        Assert.Equal(1, EngineStarts(second));
        Assert.Contains($"Recipe 1/1: {Path.Combine(project, "one", "model.compress.yaml")}", second.Output, StringComparison.Ordinal);
        Assert.Contains($"{Path.Combine(project, "two", "model.compress.yaml")}: up to date.", second.Output, StringComparison.Ordinal);
        Assert.Equal(twoStamp, File.GetLastWriteTimeUtc(Path.Combine(two, "stamp")));

        var third = Build(project);
        Assert.True(third.ExitCode == 0, third.ToString());
        Assert.Equal(0, EngineStarts(third));
        Assert.Contains(NothingToRun(2), third.Output, StringComparison.Ordinal);
    }

    [Fact]
    public void Renamed_output_and_removed_recipe_leave_nothing_stale_in_bin_or_publish()
    {
        var project = CreateProject(
            "stale",
            ("a.compress.yaml", SmallRecipe("a.student.onnx", "accuracy >= 0.3")),
            ("b.compress.yaml", SmallRecipe("b.student.onnx", "accuracy >= 0.3")));
        var bin = Path.Combine(project, "bin", "Debug", "net10.0");
        SetProperty(project, "CompressModelPublishReports", "true");
        var first = Build(project);
        Assert.True(first.ExitCode == 0, first.ToString());
        Assert.Equal(["a.student.data.json", "a.student.onnx", "a.student.report.json", "b.student.data.json", "b.student.onnx", "b.student.report.json"], ModelFiles(bin));

        var recipe = Path.Combine(project, "a.compress.yaml");
        File.WriteAllText(recipe, File.ReadAllText(recipe).Replace("model: a.student.onnx", "model: a.renamed.onnx", StringComparison.Ordinal));
        var renamed = Build(project);
        Assert.True(renamed.ExitCode == 0, renamed.ToString());
        Assert.Equal(["a.renamed.data.json", "a.renamed.onnx", "a.renamed.report.json", "b.student.data.json", "b.student.onnx", "b.student.report.json"], ModelFiles(bin));
        Assert.Equal(["a.renamed.data.json", "a.renamed.onnx", "a.renamed.report.json"], FileNames(Path.Combine(StateFolder(project, "a.compress.yaml"), "out")));

        var csproj = Path.Combine(project, "App.csproj");
        File.WriteAllText(csproj, File.ReadAllText(csproj).Replace("<CompressModel Include=\"b.compress.yaml\" />", string.Empty, StringComparison.Ordinal));
        var removed = Build(project);
        Assert.True(removed.ExitCode == 0, removed.ToString());
        Assert.Equal(["a.renamed.data.json", "a.renamed.onnx", "a.renamed.report.json"], ModelFiles(bin));
        Assert.False(Directory.Exists(StateFolder(project, "b.compress.yaml")));

        var publish = Path.Combine(project, "published");
        var published = DotnetCli.Run(project, Environment(), "publish", "-o", publish, "-v:n", "--disable-build-servers", "-nologo");
        Assert.True(published.ExitCode == 0, published.ToString());
        Assert.Equal(["a.renamed.data.json", "a.renamed.onnx", "a.renamed.report.json"], ModelFiles(publish));

        // Reports no longer asked for leave bin/ (the model stays, nothing runs again); the state folder keeps them.
        SetProperty(project, "CompressModelPublishReports", "false");
        var unpublished = Build(project);
        Assert.True(unpublished.ExitCode == 0, unpublished.ToString());
        Assert.Contains(NothingToRun(1), unpublished.Output, StringComparison.Ordinal);
        Assert.Equal(["a.renamed.data.json", "a.renamed.onnx"], ModelFiles(bin));
        Assert.Equal(["a.renamed.data.json", "a.renamed.onnx", "a.renamed.report.json"], FileNames(Path.Combine(StateFolder(project, "a.compress.yaml"), "out")));
    }

    [Fact]
    public void Item_metadata_wins_over_the_properties_and_a_changed_one_reruns_only_its_recipe()
    {
        var project = CreateProject(
            "metadata",
            ("strict.compress.yaml", SmallRecipe("strict.student.onnx", "accuracy >= 0.999")),
            ("plain.compress.yaml", SmallRecipe("plain.student.onnx", "accuracy >= 0.3")));
        // The project's properties say otherwise; each item's metadata wins for its recipe.
        SetProperty(project, "CompressModelGateFailuresAsWarnings", "false");
        SetProperty(project, "CompressModelThreads", "0");
        // A shared folder as the remote cache, read-write for the project; the plain recipe's metadata makes it read-only.
        var share = Directory.CreateDirectory(Path.Combine(package.Root, "metadata-share")).FullName;
        SetProperty(project, "CompressModelRemoteCache", "../metadata-share");
        SetProperty(project, "CompressModelRemoteCacheMode", "read-write");
        SetProperty(project, "CompressModelRemoteCacheCredentialEnv", "CI_CACHE_CREDENTIAL");
        SetMetadata(project, "strict.compress.yaml", """GateFailuresAsWarnings="true" Threads="1" CacheDirectory="../metadata-cache" """);
        SetMetadata(project, "plain.compress.yaml", """PublishReports="true" RemoteCacheMode="read" """);

        var first = Build(project);
        Assert.True(first.ExitCode == 0, first.ToString());
        Assert.Contains("warning MC3001", first.Output, StringComparison.Ordinal);
        Assert.Contains("Threads: 1 (--threads)", first.Output, StringComparison.Ordinal);
        Assert.True(Directory.Exists(Path.Combine(package.Root, "metadata-cache")), first.ToString());
        // The settings reach each recipe's line (the variable's name, never a value), and the engine used the share.
        var lines = File.ReadAllLines(Path.Combine(project, "obj", "Debug", "net10.0", "compress", "recipes.rsp"));
        Assert.Contains(lines, l => l.Contains("strict.compress.yaml", StringComparison.Ordinal) && l.Contains($"--remote-cache {share} --remote-cache-mode read-write --remote-cache-credential-env CI_CACHE_CREDENTIAL", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("plain.compress.yaml", StringComparison.Ordinal) && l.Contains("--remote-cache-mode read ", StringComparison.Ordinal));
        Assert.Contains($"Remote cache: {share} (read-write)", first.Output, StringComparison.Ordinal);
        Assert.NotEmpty(Directory.GetDirectories(share, "distill-*"));
        var bin = Path.Combine(project, "bin", "Debug", "net10.0");
        Assert.Equal(["plain.student.data.json", "plain.student.onnx", "plain.student.report.json"], ModelFiles(bin));
        var plainStamp = File.GetLastWriteTimeUtc(Path.Combine(StateFolder(project, "plain.compress.yaml"), "stamp"));

        // The strict recipe's gate mode changes: only it runs (from the cache), and its broken gate is now an error.
        SetMetadata(project, "strict.compress.yaml", """GateFailuresAsWarnings="false" Threads="1" CacheDirectory="../metadata-cache" """);
        var second = Build(project);
        Assert.True(second.ExitCode != 0, second.ToString());
        Assert.Contains("error MC3001", second.Output, StringComparison.Ordinal);
        Assert.Contains($"Recipe 1/1: {Path.Combine(project, "strict.compress.yaml")}", second.Output, StringComparison.Ordinal);
        Assert.Contains("distill: up to date (cached)", second.Output, StringComparison.Ordinal);
        Assert.Contains($"{Path.Combine(project, "plain.compress.yaml")}: up to date.", second.Output, StringComparison.Ordinal);
        Assert.Equal(plainStamp, File.GetLastWriteTimeUtc(Path.Combine(StateFolder(project, "plain.compress.yaml"), "stamp")));

        // A value the metadata cannot take: an error at the project naming the item and the metadata, and no engine.
        SetMetadata(project, "strict.compress.yaml", """Threads="many" RemoteCacheMode="sometimes" """);
        var invalid = Build(project);
        Assert.True(invalid.ExitCode != 0, invalid.ToString());
        Assert.True(invalid.Output.Contains("App.csproj : error MC4007: <CompressModel Include=\"strict.compress.yaml\"> has Threads=\"many\"", StringComparison.Ordinal), invalid.ToString());
        Assert.True(invalid.Output.Contains("App.csproj : error MC4007: <CompressModel Include=\"strict.compress.yaml\"> metadata RemoteCacheMode is \"sometimes\": it must be read, read-write or off.", StringComparison.Ordinal), invalid.ToString());
        Assert.Equal(0, EngineStarts(invalid));
    }

    [Fact]
    public void Every_recipe_is_checked_before_any_runs()
    {
        var project = CreateProject(
            "checked-first",
            ("good.compress.yaml", SmallRecipe("good.student.onnx", "accuracy >= 0.3")),
            ("bad.compress.yaml", SmallRecipe("bad.student.onnx", "accuracy >= 0.3").Replace("stages:", "stagez:", StringComparison.Ordinal)));
        var badLine = Array.FindIndex(File.ReadAllLines(Path.Combine(project, "bad.compress.yaml")), l => l.StartsWith("stagez:", StringComparison.Ordinal)) + 1;

        var build = Build(project);
        Assert.True(build.ExitCode != 0, build.ToString());
        Assert.Contains($"bad.compress.yaml({badLine},", build.Output, StringComparison.Ordinal);
        Assert.Contains("1 of 2 recipe(s) have errors: none was run.", build.Output, StringComparison.Ordinal);
        // The good recipe did not train first.
        Assert.DoesNotContain("distill: running", build.Output, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(project, "bin", "Debug", "net10.0", "good.student.onnx")));
    }

    [Fact]
    public void Terminal_logger_shows_progress_live_and_the_summary_after_and_plain_logs_keep_plain_lines()
    {
        var project = CreateProject("terminal", ("recipe.yaml", SmallRecipe("terminal.student.onnx", "accuracy >= 0.3")));
        // A cache of its own: the point is to watch training, which the other tests' cached runs of this recipe would skip.
        SetProperty(project, "CompressModelCacheDirectory", Path.Combine(package.Root, "terminal-cache"));

        // Redirected output, as in CI: the console logger's plain lines, no terminal control sequences from us.
        var plain = Build(project, "-tl:off");
        Assert.True(plain.ExitCode == 0, plain.ToString());
        Assert.True(plain.Output.Contains("distill: epoch 2/2", StringComparison.Ordinal), plain.ToString());
        Assert.Contains("Summary: recipe.yaml: gates passed (1/1), accuracy ", plain.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("\u001b7", plain.Output, StringComparison.Ordinal);

        // In a terminal (a pseudo-terminal made by script(1)) with the terminal logger, which hides task messages at
        // this verbosity: the training progress is drawn live on the status line, the summary printed after the build.
        var recipe = Path.Combine(project, "recipe.yaml");
        File.WriteAllText(recipe, File.ReadAllText(recipe).Replace("epochs: 2", "epochs: 3", StringComparison.Ordinal));
        var typescript = Path.Combine(package.Root, "terminal.typescript");
        var terminal = DotnetCli.RunProgram("script", project, Environment(), "-q", "-e", "-f", "-c", "dotnet build -tl:on --disable-build-servers -nologo", typescript);
        var screen = File.ReadAllText(typescript);
        Assert.True(terminal.ExitCode == 0, terminal + "\n" + screen);
        Assert.Matches(@"\u001b7\r\u001b\[2K  \[1/1 recipe\.yaml\] distill: epoch 1/3 ", screen);
        var end = screen.LastIndexOf("Build ", StringComparison.Ordinal);
        Assert.True(end > 0, screen);
        Assert.Contains("Summary: recipe.yaml: gates passed (1/1), accuracy ", screen[end..], StringComparison.Ordinal);
    }

    [Fact]
    public void Two_recipes_writing_one_file_name_fail_the_build_naming_both()
    {
        var project = CreateProject(
            "clash",
            ("left/model.compress.yaml", SmallRecipe("same.student.onnx", "accuracy >= 0.3")),
            ("right/model.compress.yaml", SmallRecipe("same.student.onnx", "accuracy >= 0.3")));

        var build = Build(project);
        Assert.True(build.ExitCode != 0, build.ToString());
        Assert.Contains("error MC4004", build.Output, StringComparison.Ordinal);
        Assert.Contains(Path.Combine(project, "left", "model.compress.yaml"), build.Output, StringComparison.Ordinal);
        Assert.Contains("'same.student.onnx'", build.Output, StringComparison.Ordinal);
    }

    [Fact]
    public void A_build_and_a_cli_run_leave_nothing_in_the_source_folder_to_ignore()
    {
        var project = CreateProject("clean-tree", ("model.compress.yaml", SmallRecipe("clean.student.onnx", "accuracy >= 0.3")));
        // The default cache (under obj/), not the tests' shared one.
        var csproj = Path.Combine(project, "App.csproj");
        File.WriteAllText(csproj, System.Text.RegularExpressions.Regex.Replace(File.ReadAllText(csproj), @"\s*<CompressModelCacheDirectory>[^<]*</CompressModelCacheDirectory>", string.Empty));

        // git status --porcelain, in effect: what a build adds outside bin/ and obj/ would need a .gitignore entry.
        var before = Tree(project);
        var build = Build(project);
        Assert.True(build.ExitCode == 0, build.ToString());
        Assert.DoesNotContain(Tree(project).Except(before), p => p is not ("bin" or "obj") && !p.StartsWith("bin/", StringComparison.Ordinal) && !p.StartsWith("obj/", StringComparison.Ordinal));

        // The engine at a terminal with its defaults: the outputs the recipe asks for land next to it; its cache and
        // locks go to the user's cache folder, and nothing else (no lock, cache or temporary folder) is left here.
        var engine = Path.Combine(package.Packages, "modelcompression.build", package.Version, "tools", "net10.0", "dotnet-compress.dll");
        var libTorch = new[] { package.Packages, PackedPackageFixture.MachinePackages }
            .Select(f => Path.Combine(f, "libtorch-cpu-linux-x64", "2.10.0", "runtimes", "linux-x64", "native"))
            .First(Directory.Exists);
        var userCache = Path.Combine(package.Root, "user-cache");
        before = Tree(project);
        var run = DotnetCli.RunProgram(
            "dotnet",
            project,
            new Dictionary<string, string> { ["XDG_CACHE_HOME"] = userCache, ["MODELCOMPRESSION_LIBTORCH_DIR"] = libTorch, ["CI"] = "true" },
            "exec",
            engine,
            "run",
            "model.compress.yaml");
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal(["clean.student.data.json", "clean.student.onnx", "clean.student.report.json"], Tree(project).Except(before).Order(StringComparer.Ordinal));
        Assert.True(Directory.Exists(Path.Combine(userCache, "modelcompression")), run.ToString());
    }

    [Fact]
    public void Cuda_property_downloads_the_gpu_build_and_reaches_the_engine()
    {
        var project = CreateProject("cuda", ("recipe.yaml", SmallRecipe("cuda.student.onnx", "accuracy >= 0.3")));
        var gpuBuild = Path.Combine(package.Packages, "microsoft.ml.onnxruntime.gpu.linux", "1.32.0", "runtimes", "linux-x64", "native");
        var before = Directory.Exists(gpuBuild);

        var build = Build(project, "-p:CompressModelExecutionProvider=cuda");

        // The build fetched ONNX Runtime's GPU build into its packages folder (unless an earlier build did), and the
        // task passed the choice on.
        Assert.True(File.Exists(Path.Combine(gpuBuild, "libonnxruntime_providers_cuda.so")), build.ToString());
        Assert.Equal(!before, build.Output.Contains("package download Microsoft.ML.OnnxRuntime.Gpu.Linux@1.32.0", StringComparison.Ordinal));
        Assert.Contains("--execution-provider cuda", build.Output, StringComparison.Ordinal);
        if (!File.Exists("/proc/driver/nvidia/version"))
        {
            // No NVIDIA driver here: the engine found the GPU build and stops before any work, saying what is missing.
            Assert.True(build.ExitCode != 0, build.ToString());
            Assert.Contains("error MC4008: execution provider cuda", build.Output, StringComparison.Ordinal);
            Assert.Contains("libcuda.so.1 (the NVIDIA driver)", build.Output, StringComparison.Ordinal);
            Assert.DoesNotContain("distill:", build.Output, StringComparison.Ordinal);
        }
        else
        {
            Assert.True(build.ExitCode == 0, build.ToString());
        }

        // A second build finds it there and downloads nothing.
        var again = Build(project, "-p:CompressModelExecutionProvider=cuda");
        Assert.False(again.Output.Contains("package download", StringComparison.Ordinal), again.ToString());
    }

    [Fact]
    public void Design_time_build_runs_nothing_of_ours()
    {
        var project = CreateProject("design-time", ("recipe.yaml", SmallRecipe("designtime.student.onnx", "accuracy >= 0.3")));

        var build = Build(project, "-p:DesignTimeBuild=true");
        Assert.True(build.ExitCode == 0, build.ToString());
        Assert.Equal(0, EngineStarts(build));
        Assert.DoesNotContain("distill:", build.Output, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(project, "obj", "Debug", "net10.0", "compress")), build.ToString());
        Assert.False(File.Exists(Path.Combine(project, "bin", "Debug", "net10.0", "designtime.student.onnx")));
    }

    /// <summary>Sets <paramref name="name"/> in the project's first PropertyGroup (replacing an earlier value).</summary>
    private static void SetProperty(string project, string name, string value)
    {
        var csproj = Path.Combine(project, "App.csproj");
        var text = System.Text.RegularExpressions.Regex.Replace(File.ReadAllText(csproj), $@"\s*<{name}>[^<]*</{name}>", string.Empty);
        File.WriteAllText(csproj, text.Replace("<PropertyGroup>", $"<PropertyGroup>\n    <{name}>{value}</{name}>", StringComparison.Ordinal));
    }

    /// <summary>Gives the <c>CompressModel</c> item of <paramref name="recipe"/> exactly the metadata attributes <paramref name="attributes"/>.</summary>
    private static void SetMetadata(string project, string recipe, string attributes)
    {
        var csproj = Path.Combine(project, "App.csproj");
        var text = System.Text.RegularExpressions.Regex.Replace(File.ReadAllText(csproj), $@"<CompressModel Include=""{System.Text.RegularExpressions.Regex.Escape(recipe)}""[^>]*/>", $"<CompressModel Include=\"{recipe}\" {attributes.Trim()} />");
        File.WriteAllText(csproj, text);
    }

    /// <summary>Every file and folder under <paramref name="folder"/>, relative, with '/' separators.</summary>
    private static HashSet<string> Tree(string folder) =>
        [.. Directory.EnumerateFileSystemEntries(folder, "*", SearchOption.AllDirectories).Select(p => Path.GetRelativePath(folder, p).Replace('\\', '/'))];

    /// <summary>What the task says when every recipe is up to date and no engine starts.</summary>
    private static string NothingToRun(int recipes) => $"All {recipes} recipe(s) are up to date: the engine is not started.";

    /// <summary>How many engine processes the build started (ToolTask logs each command line).</summary>
    private static int EngineStarts(DotnetCli.Result build) =>
        build.Output.Split('\n').Count(l => l.Contains("dotnet-compress.dll run", StringComparison.Ordinal));

    /// <summary>
    /// The state folder under obj/ of the recipe at <paramref name="recipe"/> (relative to the project): its file
    /// name and a hash of that relative path, so two recipes of one name in different folders never share one.
    /// </summary>
    private static string StateFolder(string project, string recipe)
    {
        var hash = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(recipe)), 0, 4).ToLowerInvariant();
        return Path.Combine(project, "obj", "Debug", "net10.0", "compress", $"{Path.GetFileName(recipe)}-{hash}");
    }

    private static string[] FileNames(string folder) =>
        [.. Directory.GetFiles(folder).Select(f => Path.GetFileName(f)).Where(n => !n.StartsWith('.')).Order(StringComparer.Ordinal)];

    /// <summary>The compressed models and their companions in an output folder (not the app's own files).</summary>
    private static string[] ModelFiles(string folder) =>
        [.. FileNames(folder).Where(n => n.EndsWith(".onnx", StringComparison.Ordinal) || n.Contains(".report.", StringComparison.Ordinal) || n.EndsWith(".data.json", StringComparison.Ordinal))];

    /// <summary>
    /// A quick recipe: the sample's small test slice for training and testing, two epochs of a tiny MLP (about 60%).
    /// <paramref name="dataFolder"/> (relative to the recipe) holds a copy of the slice when set.
    /// </summary>
    private string SmallRecipe(string model, string gate, string? dataFolder = null)
    {
        var sample = Path.Combine(package.RepoRoot, "samples", "FashionMnist");
        var data = dataFolder ?? Path.Combine(sample, "data");
        return $"""
            task: classification
            data:
              format: idx
              train: {"{"} inputs: {data}/t10k-images-idx3-ubyte.gz, labels: {data}/t10k-labels-idx1-ubyte.gz {"}"}
              test:  {"{"} inputs: {data}/t10k-images-idx3-ubyte.gz, labels: {data}/t10k-labels-idx1-ubyte.gz {"}"}
              scale: 0.00392156862745098
            teacher: {sample}/teacher/teacher.onnx
            student: {"{"} architecture: mlp, hidden: [16] {"}"}
            stages:
              - distill: {"{"} epochs: 2, learning_rate: 5e-3, batch_size: 64, baseline: false {"}"}
            gates:
              - {gate}
            outputs: {"{"} model: {model}, report: [json] {"}"}

            """;
    }

    private string CreateProject(string name, string gate)
    {
        var sample = Path.Combine(package.RepoRoot, "samples", "FashionMnist");
        return CreateProject(name, ("recipe.yaml", $"""
            task: classification
            data:
              format: idx
              train: {"{"} inputs: {sample}/data/train-images-idx3-ubyte.gz, labels: {sample}/data/train-labels-idx1-ubyte.gz {"}"}
              test:  {"{"} inputs: {sample}/data/t10k-images-idx3-ubyte.gz,  labels: {sample}/data/t10k-labels-idx1-ubyte.gz {"}"}
              scale: 0.00392156862745098
            teacher: {sample}/teacher/teacher.onnx
            student: {"{"} architecture: mlp, hidden: [32] {"}"}
            stages:
              - distill:  {"{"} epochs: 1, temperature: 4, alpha: 0.5, batch_size: 128 {"}"}
              - quantize: {"{"} mode: dynamic {"}"}
            gates:
              - {gate}
            outputs: {"{"} model: {StudentFile} {"}"}

            """));
    }

    /// <summary>A project with the packed package and <paramref name="recipes"/> (paths relative to it) as CompressModel items.</summary>
    private string CreateProject(string name, params (string Path, string Yaml)[] recipes)
    {
        var project = Path.Combine(package.Root, name);
        Directory.CreateDirectory(project);
        var items = string.Concat(recipes.Select(r => $"\n    <CompressModel Include=\"{r.Path}\" />"));
        File.WriteAllText(Path.Combine(project, "App.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <TargetFramework>net10.0</TargetFramework>
                <CompressModelCacheDirectory>{package.SharedCache}/</CompressModelCacheDirectory>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="ModelCompression.Build" Version="{package.Version}" />{items}
              </ItemGroup>
            </Project>
            """);
        package.WriteRestoreFiles(project);
        foreach (var (path, yaml) in recipes)
        {
            var file = Path.Combine(project, path);
            Directory.CreateDirectory(Path.GetDirectoryName(file)!);
            File.WriteAllText(file, yaml);
        }

        return project;
    }

    private Dictionary<string, string> Environment() => new() { ["NUGET_PACKAGES"] = package.Packages };

    private DotnetCli.Result Build(string project, params string[] properties) => DotnetCli.Run(
        project,
        Environment(),
        ["build", "-v:n", "--disable-build-servers", "-nologo", .. properties]);

    private static void AssertRunsInOnnxRuntime(string modelPath)
    {
        using var session = new InferenceSession(modelPath);
        // The built-in student takes the data's own sample shape ([batch, 28, 28] here): feed one sample of it.
        long[] shape = [.. session.InputMetadata.Values.First().Dimensions.Select(d => d < 0 ? 1L : d)];
        var input = new float[shape.Aggregate(1L, (a, b) => a * b)];
        using var value = OrtValue.CreateTensorValueFromMemory(input, shape);
        using var results = session.Run(new RunOptions(), [session.InputMetadata.Keys.First()], [value], [session.OutputMetadata.Keys.First()]);
        Assert.Equal(10, results[0].GetTensorDataAsSpan<float>().Length);
    }

    private static string Hash(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));
}
