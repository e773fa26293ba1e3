using ModelCompression.Diagnostics;
using ModelCompression.Recipes;

namespace ModelCompression.Core.Tests.Recipes;

/// <summary>
/// How a recipe's mistakes read: YAML syntax errors at the line and column of the mistake, "did you mean" for
/// misspelled keys, options, stages and architectures, and one error per mistake.
/// </summary>
public sealed class RecipeErrorTests : IDisposable
{
    private const string Data = "data: { format: idx, train: { inputs: teacher.onnx, labels: teacher.onnx }, test: { inputs: teacher.onnx, labels: teacher.onnx } }\n";

    private readonly TempDir _dir = new();

    public RecipeErrorTests() => File.WriteAllBytes(_dir.File("teacher.onnx"), [0]);

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void An_unclosed_brace_is_reported_at_the_brace_not_at_the_end_of_the_file()
    {
        // The '{' on line 10 is never closed; YamlDotNet notices only when the file ends, four lines later.
        var path = _dir.Write("brace.compress.yaml", """
            # A recipe with an unclosed brace.
            task: classification
            data:
              format: idx
              train: { inputs: teacher.onnx, labels: teacher.onnx }
              test: { inputs: teacher.onnx, labels: teacher.onnx }
              scale: 0.5
            teacher: teacher.onnx
            stages: [distill]
            student: { architecture: mlp, hidden: [64]
            outputs:
              model: x.onnx
            gates:
              - accuracy >= 0.8
            """);

        var d = Assert.Single(Assert.Throws<CompressionException>(() => RecipeLoader.Load(path)).Diagnostics);

        Assert.Equal((DiagnosticCodes.RecipeSyntax, path, 10, 10), (d.Code, d.File, d.Line, d.Column));
        Assert.Contains("'{' is never closed", d.Message, StringComparison.Ordinal);
        Assert.StartsWith($"{path}(10,10): error MC1001: Invalid YAML:", d.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void The_innermost_unclosed_bracket_is_the_one_reported()
    {
        var path = _dir.Write("nested.compress.yaml", "task: classification\nstudent: { architecture: mlp, hidden: [64, 32\n");

        var d = Assert.Single(Assert.Throws<CompressionException>(() => RecipeLoader.Load(path)).Diagnostics);

        Assert.Equal((DiagnosticCodes.RecipeSyntax, 2, 39), (d.Code, d.Line, d.Column));
        Assert.Contains("'[' is never closed", d.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("task: classification\ndata:\n\tformat: idx\nteacher: teacher.onnx\n", 3, 1)] // YamlDotNet says (1,1)
    [InlineData("task: classification\ndata:\n  format: idx\n\ttrain: x\nteacher: teacher.onnx\n", 4, 1)] // YamlDotNet says (3,11)
    [InlineData("task: classification\n\ndata:\n  format: idx\n  \t train: x\n", 5, 3)]
    public void A_tab_in_the_indentation_is_reported_at_the_tab(string text, int line, int column)
    {
        var path = _dir.Write("tab.compress.yaml", text);

        var d = Assert.Single(Assert.Throws<CompressionException>(() => RecipeLoader.Load(path)).Diagnostics);

        Assert.Equal((DiagnosticCodes.RecipeSyntax, path, line, column), (d.Code, d.File, d.Line, d.Column));
        Assert.Contains("tab", d.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Misspelled_keys_options_stages_and_architectures_get_the_closest_valid_name()
    {
        // 'techer' is a teacher misspelled: no "distill needs a teacher" beside it.
        var path = _dir.Write("typos.compress.yaml", Data + """
            techer: teacher.onnx
            student: { architecture: mpl }
            stages:
              - distill: { epoch: 3, temprature: 2 }
              - quantise: { mode: statc }
              - quantize: { mode: statc }
            """);

        var e = Assert.Throws<CompressionException>(() => RecipeLoader.Load(path));

        var messages = e.Diagnostics.OrderBy(d => d.Line).ThenBy(d => d.Column).Select(d => (d.Line!.Value, d.Message)).ToList();
        Assert.Equal(
            [
                (2, "Unknown key 'techer' in the recipe: did you mean 'teacher'?"),
                (3, "student architecture 'mpl' is not built in: did you mean 'mlp'?"),
                (5, "Unknown option 'epoch' for stage 'distill': did you mean 'epochs'?"),
                (5, "Unknown option 'temprature' for stage 'distill': did you mean 'temperature'?"),
                (6, "Unknown stage 'quantise': did you mean 'quantize'?"),
                (7, "Option 'mode' of stage 'quantize': 'statc' is not one of dynamic, static, fp16, int4 (did you mean 'static'?)."),
            ],
            messages);
    }

    [Fact]
    public void A_misspelled_data_format_gets_the_closest_format()
    {
        var path = _dir.Write("format.compress.yaml", Data.Replace("format: idx", "format: ixd", StringComparison.Ordinal) + "teacher: teacher.onnx\nstudent: { architecture: mlp }\nstages: [distill]\n");

        var e = Assert.Throws<CompressionException>(() => RecipeLoader.Load(path));

        Assert.Contains(e.Diagnostics, d => d.Line == 1 && d.Message == "data format 'ixd' is not supported: did you mean 'idx'?");
    }

    [Fact]
    public void Without_a_close_name_every_valid_one_is_listed()
    {
        var path = _dir.Write("far.compress.yaml", Data + "teacher: teacher.onnx\ncolour: blue\nstudent: { architecture: mlp }\nstages:\n  - distill: { sharpness: 3 }\n  - sharpen\n");

        var e = Assert.Throws<CompressionException>(() => RecipeLoader.Load(path));

        var byLine = e.Diagnostics.ToDictionary(d => d.Line!.Value, d => d.Message);
        Assert.Equal(3, byLine.Count);
        Assert.StartsWith("Unknown key 'colour' in the recipe. Known keys: task, data, generation, teacher, student, stages, gates", byLine[3], StringComparison.Ordinal);
        Assert.StartsWith("Unknown option 'sharpness' for stage 'distill'. Options: ", byLine[6], StringComparison.Ordinal);
        Assert.Contains("temperature", byLine[6], StringComparison.Ordinal);
        Assert.Equal($"Unknown stage 'sharpen'. Stages: {string.Join(", ", RecipeLoader.StageOptionTypes.Keys)}.", byLine[7]);
        Assert.DoesNotContain("did you mean", string.Concat(byLine.Values), StringComparison.Ordinal);
    }

    [Fact]
    public void A_misspelled_first_stage_is_one_error_not_also_an_untrained_student()
    {
        var path = _dir.Write("distil.compress.yaml", Data + "teacher: teacher.onnx\nstudent: { architecture: mlp }\nstages:\n  - distil: { epochs: 3 }\n  - quantize\n");

        var d = Assert.Single(Assert.Throws<CompressionException>(() => RecipeLoader.Load(path)).Diagnostics);

        Assert.Equal((DiagnosticCodes.RecipeInvalidValue, 5, 5), (d.Code, d.Line!.Value, d.Column!.Value));
        Assert.Equal("Unknown stage 'distil': did you mean 'distill'?", d.Message);

        // A known first stage that cannot come first is still reported, beside a misspelled later one.
        var second = _dir.Write("second.compress.yaml", Data + "teacher: teacher.onnx\nstudent: { architecture: mlp }\nstages:\n  - quantize\n  - distil\n");
        var e = Assert.Throws<CompressionException>(() => RecipeLoader.Load(second));
        Assert.Equal(2, e.Diagnostics.Count);
        Assert.Contains(e.Diagnostics, x => x.Message.Contains("must be trained first", StringComparison.Ordinal));
    }
}
