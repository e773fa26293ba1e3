using ModelCompression.Common;
using ModelCompression.Pipeline;
using ModelCompression.Recipes;
using ModelCompression.Runs;

namespace ModelCompression.Core.Tests.Pipeline;

public sealed partial class CompressionPipelineTests
{
    /// <summary>
    /// A run with nothing to do trusts its inputs by size and timestamp (the hash memo) and takes everything it needs
    /// of them from the cache. To prove it reads no byte of them, the data files and the teacher are overwritten with
    /// garbage of the same size and their timestamps put back: a run that read any of them (the data for its shape,
    /// labels or .data.json, the teacher for its checks) would fail on the garbage.
    /// </summary>
    [Fact]
    public void A_run_with_every_result_cached_reads_no_data_or_model_file_and_loads_no_runtime_assembly()
    {
        // The fixture's inputs copied beside a recipe of their own (same contents, so the same hashes and cache
        // entries), dated an hour back so the memo trusts them.
        var folder = fixture.Dir.Dir("cached-copy");
        var data = Directory.CreateDirectory(Path.Join(folder, "data")).FullName;
        var inputs = new List<string>();
        foreach (var file in Directory.GetFiles(fixture.Dir.File("data")))
        {
            inputs.Add(Path.Join(data, Path.GetFileName(file)));
            File.Copy(file, inputs[^1]);
        }

        inputs.Add(Path.Join(folder, "teacher.onnx"));
        File.Copy(Repo.Teacher, inputs[^1]);
        var hourAgo = DateTime.UtcNow.AddHours(-1);
        inputs.ForEach(f => File.SetLastWriteTimeUtc(f, hourAgo));
        var recipePath = Path.Join(folder, "copy.compress.yaml");
        File.WriteAllText(recipePath, File.ReadAllText(fixture.FirstRecipe.Path).Replace($"teacher: {Repo.Teacher}", "teacher: teacher.onnx", StringComparison.Ordinal));
        var first = CompressionRun.Run(RecipeLoader.Load(recipePath), new PipelineOptions(fixture.Cache, fixture.Dir.Dir("out-copy-first"), NullPipelineReporter.Instance));
        Assert.All(first.Stages, s => Assert.True(s.Cached));

        foreach (var file in inputs)
        {
            var length = new FileInfo(file).Length;
            File.WriteAllBytes(file, Enumerable.Repeat((byte)0xA5, (int)length).ToArray());
            File.SetLastWriteTimeUtc(file, hourAgo);
        }

        var output = fixture.Dir.Dir("out-copy-garbage");
        var (exitCode, stdout, errors) = Safety.ChildProcessProgram.Run(["run", recipePath, fixture.Cache, output], new Dictionary<string, string?>());

        Assert.True(exitCode == 0, $"exit {exitCode}\n{stdout}\n{errors}");
        Assert.Contains("cached: True, True", stdout, StringComparison.Ordinal);
        Assert.Contains("assembly: ModelCompression.Core", stdout, StringComparison.Ordinal); // the listing works
        Assert.DoesNotContain("assembly: Microsoft.ML.OnnxRuntime", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("assembly: TorchSharp", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("onnxruntime", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("libtorch", stdout, StringComparison.Ordinal);
        // The model's input contract comes from the cache as the run that read the data wrote it.
        Assert.Equal(
            File.ReadAllText(first.DataDescription!),
            File.ReadAllText(Path.Join(output, "slice.student.data.json")));
        Assert.Equal(File.ReadAllBytes(first.OutputModel!), File.ReadAllBytes(Path.Join(output, PipelineSliceFixture.ModelName)));
    }
}
