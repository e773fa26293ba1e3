using ModelCompression.Core.Tests.Data;
using ModelCompression.Diagnostics;
using ModelCompression.Pipeline;
using ModelCompression.Recipes;
using ModelCompression.Runs;
using Xunit.Abstractions;

namespace ModelCompression.Core.Tests.Pipeline;

/// <summary>
/// Token ids past a model's embedding table, found when the data is loaded: cl100k_base ids of real mail (up to
/// about 100k) without a compact vocabulary, fed to a 5,000-row built-in student or to the 100-row table of a
/// teacher exported by real PyTorch. Before the check the student failed in training with MC5001 and a libtorch
/// stack, the teacher in ONNX Runtime with its raw log line.
/// </summary>
public sealed class TokenRangeTests : IDisposable
{
    private const string Data = """
        data:
          file: spam.jsonl
          split: { test: 0.2, seed: 7 }
          text: { tokenizer: cl100k_base, max_length: 64, compact_vocabulary: false }
        """;

    private readonly TempDir _dir = new();
    private readonly ITestOutputHelper _output;

    public TokenRangeTests(ITestOutputHelper output)
    {
        _output = output;
        File.Copy(Fixtures.Text("spam.jsonl"), _dir.File("spam.jsonl"));
    }

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Ids_beyond_a_built_in_students_table_are_MC2020_naming_the_file_the_largest_id_and_the_fix()
    {
        var recipe = _dir.Write("small-table.compress.yaml", Data + """

            student: { architecture: transformer, width: 16, heads: 2, layers: 1, feed_forward: 32, max_length: 64, vocab_size: 5000 }
            stages:
              - finetune: { epochs: 1, batch_size: 16 }
              - evaluate: { measure_latency: false }
            outputs: { model: student.onnx, report: [json] }
            """);
        var reporter = new RecordingReporter();

        var e = Assert.Throws<CompressionException>(() =>
            CompressionRun.Run(RecipeLoader.Load(recipe), new PipelineOptions(_dir.Dir("cache"), _dir.Dir("out"), reporter)));

        var d = Assert.Single(e.Diagnostics);
        _output.WriteLine(d.ToString());
        Assert.Equal(DiagnosticCodes.DataSchemaMismatch, d.Code);
        Assert.Equal(_dir.File("spam.jsonl"), d.File);
        Assert.NotNull(d.Line);
        var largest = LargestId();
        Assert.True(largest >= 5000, $"the slice's largest cl100k id is {largest}");
        Assert.Contains($"token id {largest}", d.Message, StringComparison.Ordinal);
        Assert.Contains("5000 rows", d.Message, StringComparison.Ordinal);
        Assert.Contains($"compact_vocabulary: true or the student's vocab_size >= {largest + 1}", d.Message, StringComparison.Ordinal);
        Assert.Empty(reporter.Stages);
        Assert.Empty(Directory.GetFiles(_dir.File("out"), "*.onnx"));
    }

    [Fact]
    public void A_second_run_that_takes_the_id_range_from_the_cache_still_names_the_file_and_line_of_the_largest_id()
    {
        var recipe = _dir.Write("cached-range.compress.yaml", Data + """

            student: { architecture: transformer, width: 16, heads: 2, layers: 1, feed_forward: 32, max_length: 64, vocab_size: 5000 }
            stages:
              - finetune: { epochs: 1, batch_size: 16 }
            outputs: { model: student.onnx, report: [json] }
            """);
        CompressionException Fail() => Assert.Throws<CompressionException>(() =>
            CompressionRun.Run(RecipeLoader.Load(recipe), new PipelineOptions(_dir.Dir("cache"), _dir.Dir("out"), new RecordingReporter())));

        var first = Assert.Single(Fail().Diagnostics);
        Assert.Single(Directory.GetDirectories(_dir.File("cache"), "data-summary-*"));
        var second = Assert.Single(Fail().Diagnostics);

        Assert.Equal(first.ToString(), second.ToString());
        Assert.Equal(_dir.File("spam.jsonl"), second.File);
        Assert.NotNull(second.Line);
    }

    [Fact]
    public void Ids_beyond_a_pytorch_teachers_table_are_MC2020_before_the_teacher_runs()
    {
        File.Copy(Path.Join(Repo.Root, "tests", "fixtures", "pytorch", "text_opset13.onnx"), _dir.File("teacher.onnx"));
        var recipe = _dir.Write("teacher-table.compress.yaml", Data + """

            teacher: teacher.onnx
            student: { architecture: transformer, width: 16, heads: 2, layers: 1, feed_forward: 32, max_length: 64 }
            stages:
              - distill: { epochs: 1, batch_size: 16 }
              - evaluate: { measure_latency: false }
            outputs: { model: student.onnx, report: [json] }
            """);
        var reporter = new RecordingReporter();

        var e = Assert.Throws<CompressionException>(() =>
            CompressionRun.Run(RecipeLoader.Load(recipe), new PipelineOptions(_dir.Dir("cache"), _dir.Dir("out"), reporter)));

        var d = Assert.Single(e.Diagnostics);
        _output.WriteLine(d.ToString());
        Assert.Equal(DiagnosticCodes.DataSchemaMismatch, d.Code);
        Assert.Equal(_dir.File("spam.jsonl"), d.File);
        Assert.Contains($"token id {LargestId()}", d.Message, StringComparison.Ordinal);
        Assert.StartsWith("The teacher ", d.Message, StringComparison.Ordinal);
        Assert.Contains("tokenize as the model was trained", d.Message, StringComparison.Ordinal);
        Assert.Contains("'emb.weight' has 100 rows", d.Message, StringComparison.Ordinal);
        Assert.Empty(reporter.Stages);
    }

    [Fact]
    public void Ids_beyond_a_pytorch_students_table_are_MC2020_before_training()
    {
        File.Copy(Path.Join(Repo.Root, "tests", "fixtures", "pytorch", "transformer_opset13.onnx"), _dir.File("student.onnx"));
        // The exported transformer takes 16 tokens.
        var recipe = _dir.Write("student-table.compress.yaml", Data.Replace("max_length: 64", "max_length: 16", StringComparison.Ordinal) + """

            student: { model: student.onnx }
            stages:
              - finetune: { epochs: 1, batch_size: 16 }
            outputs: { model: out.onnx, report: [json] }
            """);
        var reporter = new RecordingReporter();

        var e = Assert.Throws<CompressionException>(() =>
            CompressionRun.Run(RecipeLoader.Load(recipe), new PipelineOptions(_dir.Dir("cache"), _dir.Dir("out"), reporter)));

        var d = Assert.Single(e.Diagnostics);
        _output.WriteLine(d.ToString());
        Assert.Equal(DiagnosticCodes.DataSchemaMismatch, d.Code);
        Assert.Equal(_dir.File("spam.jsonl"), d.File);
        Assert.StartsWith($"The student '{_dir.File("student.onnx")}' cannot look up token id {LargestId(maxLength: 16)}", d.Message, StringComparison.Ordinal);
        Assert.Contains("'tok.weight' has 100 rows", d.Message, StringComparison.Ordinal);
        Assert.Empty(reporter.Stages);
    }

    /// <summary>The largest id of the whole slice, tokenized as the recipe does (every split is checked).</summary>
    private long LargestId(int maxLength = 64)
    {
        using var data = DataRecipe.Load(_dir, $"file: spam.jsonl\nsplit: {{ test: 0.2, seed: 7 }}\ntext: {{ tokenizer: cl100k_base, max_length: {maxLength}, compact_vocabulary: false }}");
        return new[] { data.Train, data.Test }.Max(s => DataRecipe.Longs(s.Tensor("input_ids")!).Max());
    }
}
