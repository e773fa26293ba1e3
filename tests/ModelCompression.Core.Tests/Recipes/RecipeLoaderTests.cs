using ModelCompression.Architectures;
using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;
using ModelCompression.Gates;
using ModelCompression.Inference;
using ModelCompression.Recipes;
using ModelCompression.Stages;

namespace ModelCompression.Core.Tests.Recipes;

public sealed class RecipeLoaderTests : IDisposable
{
    private readonly TempDir _dir = new();

    public RecipeLoaderTests()
    {
        // The loader checks that named files exist; their contents do not matter here.
        foreach (var name in new[] { "train-images.gz", "train-labels.gz", "test-images.gz", "test-labels.gz", "teacher.onnx" })
        {
            File.WriteAllBytes(_dir.File(name), [0]);
        }
    }

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Sample_recipe_loads_with_its_values()
    {
        var recipe = RecipeLoader.Load(Repo.SampleRecipe);

        Assert.Equal(Path.GetFullPath(Repo.SampleRecipe), recipe.Path);
        Assert.Equal("idx", recipe.Data.Format);
        Assert.Equal(1f / 255f, recipe.Data.Scale, 1e-7f);
        Assert.Equal(Repo.SampleData("train-images-idx3-ubyte.gz"), recipe.Data.Train.Inputs);
        Assert.Equal(Repo.SampleData("train-labels-idx1-ubyte.gz"), recipe.Data.Train.Labels);
        Assert.Equal(Repo.SampleData("t10k-images-idx3-ubyte.gz"), recipe.Data.Test.Inputs);
        Assert.Equal(Repo.SampleData("t10k-labels-idx1-ubyte.gz"), recipe.Data.Test.Labels);
        Assert.Equal(Path.GetFullPath(Repo.Teacher), recipe.Teacher);

        Assert.Equal("mlp", recipe.Student.Architecture);
        var mlp = Assert.IsType<MlpOptions>(recipe.Student.Options);
        Assert.Equal([128], mlp.Hidden);
        Assert.Equal(Activation.Relu, mlp.Activation);
        Assert.Null(recipe.Student.ModelPath);

        Assert.Collection(
            recipe.Stages,
            s =>
            {
                Assert.Equal("distill", s.Kind);
                Assert.Equal(13, s.Line);
                var d = Assert.IsType<DistillOptions>(s.Options);
                Assert.Equal(new DistillOptions { Epochs = 8, Temperature = 4, Alpha = 0.7, LearningRate = 2e-3, BatchSize = 64 }, d);
            },
            s =>
            {
                Assert.Equal("quantize", s.Kind);
                Assert.Equal(14, s.Line);
                var q = Assert.IsType<QuantizeOptions>(s.Options);
                Assert.Equal(QuantizeMode.Dynamic, q.Mode);
                Assert.True(q.PerChannel);
            });

        Assert.Equal(["accuracy >= 0.78", "accuracy >= teacher.accuracy - 0.10", "size_mb <= 0.2"], recipe.Gates.Select(g => g.Text));
        Assert.Equal([16, 17, 18], recipe.Gates.Select(g => g.Line));
        Assert.All(recipe.Gates, g => Assert.Equal(5, g.Column));
        Assert.Equal(new GateExpression("accuracy", ">=", "teacher", "accuracy", -0.10), recipe.Gates[1].Expression);

        Assert.Equal("fashion.student.onnx", recipe.Outputs.Model);
        Assert.Equal(["json", "md"], recipe.Outputs.Reports);
        Assert.Contains(recipe.Teacher, recipe.InputFiles());
    }

    [Fact]
    public void Every_mistake_is_reported_at_once_with_code_and_line()
    {
        var path = _dir.Write("broken.compress.yaml", """
            task: classification
            data:
              format: idx
              train: { inputs: train-images.gz, labels: train-labels.gz }
              test: { inputs: test-images.gz, labels: test-labels.gz }
              scale: 0.5
            teacher: missing-teacher.onnx
            student: { architecture: mlp, hidden: [32] }
            colour: blue
            stages:
              - distill: { epochs: ten, alpha: 1.5 }
              - sharpen: { amount: 2 }
              - quantize: { per_channel: true }
            gates:
              - accuracy >= 0.8
              - accuracy >> 0.9
            """);

        var e = Assert.Throws<CompressionException>(() => RecipeLoader.Load(path));

        var found = e.Diagnostics.Select(d => (d.Code, d.Line)).OrderBy(p => p.Line).ThenBy(p => p.Code).ToList();
        Assert.Equal(
            [
                (DiagnosticCodes.RecipeFileNotFound, (int?)7),
                (DiagnosticCodes.RecipeUnknownKey, 9),
                (DiagnosticCodes.RecipeInvalidValue, 11),
                (DiagnosticCodes.RecipeInvalidValue, 11),
                (DiagnosticCodes.RecipeInvalidValue, 12),
                (DiagnosticCodes.RecipeInvalidGate, 16),
            ],
            found);
        Assert.All(e.Diagnostics, d =>
        {
            Assert.Equal(DiagnosticSeverity.Error, d.Severity);
            Assert.Equal(path, d.File);
            Assert.NotNull(d.Column);
        });

        var byLine = e.Diagnostics.ToLookup(d => d.Line);
        Assert.Contains("missing-teacher.onnx", byLine[7].Single().Message, StringComparison.Ordinal);
        Assert.Contains("colour", byLine[9].Single().Message, StringComparison.Ordinal);
        Assert.Contains(byLine[11], d => d.Message.Contains("'ten' is not a number", StringComparison.Ordinal) && d.Column == 24);
        Assert.Contains(byLine[11], d => d.Message.Contains("1.5 is out of range [0, 1]", StringComparison.Ordinal) && d.Column == 36);
        Assert.Contains("sharpen", byLine[12].Single().Message, StringComparison.Ordinal);
        Assert.Contains("accuracy >> 0.9", byLine[16].Single().Message, StringComparison.Ordinal);

        // The canonical MSBuild form carries file, line and column.
        Assert.StartsWith($"{path}(9,1): error MC1002:", byLine[9].Single().ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Valid_recipe_with_local_files_loads()
    {
        var path = _dir.Write("ok.compress.yaml", """
            data:
              format: idx
              train: { inputs: train-images.gz, labels: train-labels.gz }
              test: { inputs: test-images.gz, labels: test-labels.gz }
            teacher: teacher.onnx
            student: { architecture: mlp, hidden: [16, 8], activation: tanh, seed: 7 }
            stages:
              - distill
              - evaluate: { batch_size: 32 }
            """);

        var recipe = RecipeLoader.Load(path);

        Assert.Equal(1f, recipe.Data.Scale);
        Assert.Equal(_dir.File("teacher.onnx"), recipe.Teacher);
        var mlp = Assert.IsType<MlpOptions>(recipe.Student.Options);
        Assert.Equal(new[] { 16, 8 }, mlp.Hidden);
        Assert.Equal(Activation.Tanh, mlp.Activation);
        Assert.Equal(7, mlp.Seed);
        Assert.Equal(new DistillOptions(), recipe.Stages[0].Options);
        Assert.Equal(32, Assert.IsType<EvaluateOptions>(recipe.Stages[1].Options).BatchSize);
        Assert.Empty(recipe.Gates);
        Assert.Equal("ok.student.onnx", recipe.Outputs.Model);
    }

    [Theory]
    [InlineData("task: classification\ndata:\n  format: idx\n   train: x\nteacher: t.onnx\n", 4)]
    [InlineData("task: classification\nteacher: t.onnx\n  student: x\n", 3)]
    [InlineData("task: classification\nstages:\n  - distill: { epochs: 3\ngates: []\n", 3)] // at the '{' never closed, not the end
    [InlineData("task: classification\ndata:\n  train: [inputs, labels\nteacher: teacher.onnx", 3)]
    [InlineData("task: \"classification\nteacher: t.onnx\n", 1)] // the unclosed quote starts on line 1
    public void Invalid_yaml_is_MC1001_with_its_line(string text, int line)
    {
        var path = _dir.Write("bad.compress.yaml", text);

        var e = Assert.Throws<CompressionException>(() => RecipeLoader.Load(path));

        var d = Assert.Single(e.Diagnostics);
        Assert.Equal(DiagnosticCodes.RecipeSyntax, d.Code);
        Assert.Equal(path, d.File);
        Assert.Equal(line, d.Line);
        Assert.NotNull(d.Column);
        Assert.StartsWith("Invalid YAML: ", d.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_recipe_that_is_not_a_mapping_is_MC1001()
    {
        var path = _dir.Write("list.compress.yaml", "- just\n- a list\n");

        var e = Assert.Throws<CompressionException>(() => RecipeLoader.Load(path));

        Assert.Equal(DiagnosticCodes.RecipeSyntax, e.Code);
        Assert.Equal(1, e.Diagnostics[0].Line);
    }

    [Fact]
    public void Missing_recipe_file_is_MC1005()
    {
        var path = _dir.File("nowhere.compress.yaml");

        var e = Assert.Throws<CompressionException>(() => RecipeLoader.Load(path));

        var d = Assert.Single(e.Diagnostics);
        Assert.Equal(DiagnosticCodes.RecipeFileNotFound, d.Code);
        Assert.Equal(path, d.File);
        Assert.Contains("nowhere.compress.yaml", d.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_required_sections_are_MC1004()
    {
        var path = _dir.Write("empty.compress.yaml", "task: classification\n");

        var e = Assert.Throws<CompressionException>(() => RecipeLoader.Load(path));

        var missing = e.Diagnostics.Where(d => d.Code == DiagnosticCodes.RecipeMissingKey).Select(d => d.Message).ToList();
        Assert.Contains(missing, m => m.Contains("'data'", StringComparison.Ordinal));
        // A teacher is optional: a recipe may train on the labels alone.
        Assert.DoesNotContain(missing, m => m.Contains("'teacher'", StringComparison.Ordinal));
        Assert.Contains(missing, m => m.Contains("'student'", StringComparison.Ordinal));
        Assert.Contains(missing, m => m.Contains("'stages'", StringComparison.Ordinal));
    }

    [Fact]
    public void Unknown_architecture_and_unknown_architecture_option_are_reported_with_lines()
    {
        _dir.Write("teacher.onnx", "x");
        var unknown = _dir.Write("unknown.compress.yaml", "data: { format: idx, train: { inputs: teacher.onnx, labels: teacher.onnx }, test: { inputs: teacher.onnx, labels: teacher.onnx } }\nteacher: teacher.onnx\nstudent: { architecture: resnet }\nstages: [distill]\n");
        var e = Assert.Throws<CompressionException>(() => RecipeLoader.Load(unknown));
        var d = Assert.Single(e.Diagnostics);
        Assert.Equal((DiagnosticCodes.RecipeInvalidValue, 3), (d.Code, d.Line!.Value));
        Assert.Contains("cnn", d.Message, StringComparison.Ordinal);

        var badOption = _dir.Write("option.compress.yaml", "data: { format: idx, train: { inputs: teacher.onnx, labels: teacher.onnx }, test: { inputs: teacher.onnx, labels: teacher.onnx } }\nteacher: teacher.onnx\nstudent:\n  architecture: cnn\n  chanels: [8]\nstages: [distill]\n");
        e = Assert.Throws<CompressionException>(() => RecipeLoader.Load(badOption));
        d = Assert.Single(e.Diagnostics);
        Assert.Equal((DiagnosticCodes.RecipeUnknownKey, 5), (d.Code, d.Line!.Value));
        Assert.Contains("channels", d.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_built_in_student_must_be_trained_first_but_a_model_file_may_go_straight_to_quantize()
    {
        const string Data = "data: { format: idx, train: { inputs: teacher.onnx, labels: teacher.onnx }, test: { inputs: teacher.onnx, labels: teacher.onnx } }\nteacher: teacher.onnx\n";
        var untrained = _dir.Write("untrained.compress.yaml", Data + "student: { architecture: mlp }\nstages:\n  - quantize\n  - finetune\n");
        var e = Assert.Throws<CompressionException>(() => RecipeLoader.Load(untrained));
        var d = Assert.Single(e.Diagnostics);
        Assert.Equal((DiagnosticCodes.RecipeInvalidValue, 5), (d.Code, d.Line!.Value));
        Assert.Contains("'distill' or 'finetune'", d.Message, StringComparison.Ordinal);

        var finetuned = RecipeLoader.Load(_dir.Write("finetune.compress.yaml", Data + "student: { architecture: mlp }\nstages:\n  - finetune: { epochs: 2 }\n"));
        Assert.Equal(new FinetuneOptions { Epochs = 2 }, Assert.Single(finetuned.Stages).Options);

        var file = RecipeLoader.Load(_dir.Write("file.compress.yaml", Data + "student: { model: teacher.onnx }\nstages: [quantize]\n"));
        Assert.Equal("quantize", Assert.Single(file.Stages).Kind);
    }

    [Fact]
    public void Several_teachers_are_a_list_of_files_or_of_models_with_weights()
    {
        File.WriteAllBytes(_dir.File("second.onnx"), [0]);
        const string Data = "data: { format: idx, train: { inputs: teacher.onnx, labels: teacher.onnx }, test: { inputs: teacher.onnx, labels: teacher.onnx } }\n";
        var recipe = RecipeLoader.Load(_dir.Write("two.compress.yaml", Data + "teacher:\n  - teacher.onnx\n  - { model: second.onnx, weight: 3 }\nstudent: { architecture: mlp }\nstages: [distill]\n"));
        Assert.Equal([new TeacherSpec(_dir.File("teacher.onnx"), 1), new TeacherSpec(_dir.File("second.onnx"), 3)], recipe.Teachers);
        Assert.Equal(_dir.File("teacher.onnx"), recipe.Teacher);
        Assert.Contains(_dir.File("second.onnx"), recipe.InputFiles());

        var bad = _dir.Write("bad-teachers.compress.yaml", Data + "teacher:\n  - missing.onnx\n  - { model: second.onnx, weight: 0 }\n  - { model: second.onnx, wieght: 2 }\nstudent: { architecture: mlp }\nstages: [distill]\n");
        var e = Assert.Throws<CompressionException>(() => RecipeLoader.Load(bad));
        Assert.Equal(
            [(DiagnosticCodes.RecipeUnknownKey, 5), (DiagnosticCodes.RecipeInvalidValue, 4), (DiagnosticCodes.RecipeFileNotFound, 3)],
            e.Diagnostics.Select(d => (d.Code, d.Line!.Value)).Order());
    }

    [Fact]
    public void Options_that_conflict_are_reported_at_the_stage_line_before_any_work()
    {
        const string Data = "data: { format: idx, train: { inputs: teacher.onnx, labels: teacher.onnx }, test: { inputs: teacher.onnx, labels: teacher.onnx } }\nteacher: teacher.onnx\nstudent: { architecture: mlp }\n";
        var path = _dir.Write("conflicts.compress.yaml", Data + "stages:\n  - distill\n  - prune: { method: nm, n: 4, m: 4 }\n  - factorize: { rank_ratio: 0.5, params_ratio: 0.5 }\n");

        var e = Assert.Throws<CompressionException>(() => RecipeLoader.Load(path));

        Assert.Equal(
            [(DiagnosticCodes.RecipeInvalidValue, 6), (DiagnosticCodes.RecipeInvalidValue, 7)],
            e.Diagnostics.Select(d => (d.Code, d.Line!.Value)));
        Assert.Contains("n below m", e.Diagnostics[0].Message, StringComparison.Ordinal);
        Assert.Contains("rank_ratio or params_ratio", e.Diagnostics[1].Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_recipe_without_a_teacher_loads_when_every_stage_and_gate_works_on_labels_alone()
    {
        var path = _dir.Write("labels-only.compress.yaml", """
            data:
              format: idx
              train: { inputs: train-images.gz, labels: train-labels.gz }
              test: { inputs: test-images.gz, labels: test-labels.gz }
            student: { architecture: mlp, hidden: [32] }
            stages:
              - finetune: { epochs: 1 }
              - prune: { method: magnitude, sparsity: 0.5, alpha: 0 }
              - factorize: { energy: 0.9 }
              - quantize: { mode: dynamic }
              - evaluate
            gates:
              - accuracy >= 0.8
              - size_mb <= baseline.size_mb
            """);

        var recipe = RecipeLoader.Load(path);

        Assert.False(recipe.HasTeacher);
        Assert.Empty(recipe.Teachers);
        var e = Assert.Throws<InvalidOperationException>(() => recipe.Teacher);
        Assert.Contains("has no teacher", e.Message, StringComparison.Ordinal);
        Assert.Equal(["finetune", "prune", "factorize", "quantize", "evaluate"], recipe.Stages.Select(s => s.Kind));
        Assert.Equal(["accuracy >= 0.8", "size_mb <= baseline.size_mb"], recipe.Gates.Select(g => g.Text));
        Assert.Equal(
            [path, _dir.File("train-images.gz"), _dir.File("train-labels.gz"), _dir.File("test-images.gz"), _dir.File("test-labels.gz")],
            recipe.InputFiles());
    }

    [Fact]
    public void Without_a_teacher_every_stage_and_gate_that_needs_one_is_an_error_at_its_line()
    {
        const string Recipe = """
            data:
              format: idx
              train: { inputs: train-images.gz, labels: train-labels.gz }
              test: { inputs: test-images.gz, labels: test-labels.gz }
            student: { architecture: mlp }
            stages:
              - finetune: { epochs: 1 }
              - distill: { alpha: 0.5 }
              - sweep: { alpha: [0.5, 0.9] }
              - finetune: { init_from_teacher: true }
              - prune: { method: magnitude, alpha: 0.5 }
              - prune: { method: magnitude, alpha: 0 }
              - factorize: { alpha: 0.3 }
              - factorize: { alpha: 0.3, recovery_teacher: dense }
              - quantize
            gates:
              - accuracy >= 0.5
              - accuracy >= teacher.accuracy - 0.03
              - agreement_with_teacher >= 0.9
              - { gate: kl_to_teacher <= 0.5 }
              - size_mb <= 1
            """;
        var path = _dir.Write("needs-teacher.compress.yaml", Recipe);

        var e = Assert.Throws<CompressionException>(() => RecipeLoader.Load(path));

        // Every problem at once, each at its own line: the stages (MC1003) and the gates (MC1006).
        // Line 14 (factorize learning from the dense model) needs no teacher.
        Assert.Equal(
            [
                (DiagnosticCodes.RecipeInvalidValue, 8, 5),
                (DiagnosticCodes.RecipeInvalidValue, 9, 5),
                (DiagnosticCodes.RecipeInvalidValue, 10, 5),
                (DiagnosticCodes.RecipeInvalidValue, 11, 5),
                (DiagnosticCodes.RecipeInvalidValue, 13, 5),
                (DiagnosticCodes.RecipeInvalidGate, 18, 5),
                (DiagnosticCodes.RecipeInvalidGate, 19, 5),
                (DiagnosticCodes.RecipeInvalidGate, 20, 13),
            ],
            e.Diagnostics.Select(d => (d.Code, d.Line!.Value, d.Column!.Value)));
        Assert.All(e.Diagnostics, d => Assert.Equal(path, d.File));
        Assert.All(e.Diagnostics, d => Assert.Contains("names none", d.Message, StringComparison.Ordinal));
        var byLine = e.Diagnostics.ToDictionary(d => d.Line!.Value, d => d.Message);
        Assert.StartsWith("Stage 'distill' needs a teacher", byLine[8], StringComparison.Ordinal);
        Assert.Contains("finetune trains on the labels alone", byLine[8], StringComparison.Ordinal);
        Assert.StartsWith("Stage 'sweep' needs a teacher", byLine[9], StringComparison.Ordinal);
        Assert.Contains("init_from_teacher", byLine[10], StringComparison.Ordinal);
        Assert.Contains("alpha above 0", byLine[11], StringComparison.Ordinal);
        Assert.StartsWith("Stage 'factorize' needs a teacher", byLine[13], StringComparison.Ordinal);
        Assert.StartsWith("Gate 'accuracy >= teacher.accuracy - 0.03' compares with the teacher", byLine[18], StringComparison.Ordinal);
        Assert.StartsWith($"{path}(8,5): error MC1003: Stage 'distill'", e.Diagnostics[0].ToString(), StringComparison.Ordinal);

        // The same recipe with a teacher is valid: only the missing teacher made those lines errors.
        var withTeacher = RecipeLoader.Load(_dir.Write("with-teacher.compress.yaml", Recipe.Replace("stages:", "teacher: teacher.onnx\nstages:", StringComparison.Ordinal)));
        Assert.True(withTeacher.HasTeacher);
        Assert.Equal(9, withTeacher.Stages.Count);
        Assert.Equal(5, withTeacher.Gates.Count);
    }

    [Fact]
    public void Threads_is_optional_and_a_whole_number_from_0_to_the_maximum()
    {
        const string Data = "data: { format: idx, train: { inputs: teacher.onnx, labels: teacher.onnx }, test: { inputs: teacher.onnx, labels: teacher.onnx } }\nteacher: teacher.onnx\nstudent: { architecture: mlp }\nstages: [distill]\n";
        Assert.Equal(0, RecipeLoader.Load(_dir.Write("auto.compress.yaml", Data)).Threads);
        Assert.Equal(3, RecipeLoader.Load(_dir.Write("three.compress.yaml", Data + "threads: 3\n")).Threads);

        foreach (var bad in new[] { "-1", "two", "1.5", "100000", "[2]" })
        {
            var path = _dir.Write("bad.compress.yaml", Data + $"threads: {bad}\n");
            var e = Assert.Throws<CompressionException>(() => RecipeLoader.Load(path));
            var d = Assert.Single(e.Diagnostics);
            Assert.Equal((DiagnosticCodes.RecipeInvalidValue, 5, path), (d.Code, d.Line!.Value, d.File));
            Assert.Contains("'threads'", d.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Execution_provider_is_optional_cpu_by_default_and_cpu_or_cuda()
    {
        const string Data = "data: { format: idx, train: { inputs: teacher.onnx, labels: teacher.onnx }, test: { inputs: teacher.onnx, labels: teacher.onnx } }\nteacher: teacher.onnx\nstudent: { architecture: mlp }\nstages: [distill]\n";
        Assert.Equal(ExecutionProvider.Cpu, RecipeLoader.Load(_dir.Write("default.compress.yaml", Data)).ExecutionProvider);
        Assert.Equal(ExecutionProvider.Cuda, RecipeLoader.Load(_dir.Write("cuda.compress.yaml", Data + "execution_provider: cuda\n")).ExecutionProvider);
        Assert.Equal(ExecutionProvider.Cpu, RecipeLoader.Load(_dir.Write("cpu.compress.yaml", Data + "execution_provider: cpu\n")).ExecutionProvider);

        foreach (var bad in new[] { "gpu", "[cuda]", "{ cuda: 0 }", "''" })
        {
            var path = _dir.Write("bad.compress.yaml", Data + $"execution_provider: {bad}\n");
            var e = Assert.Throws<CompressionException>(() => RecipeLoader.Load(path));
            var d = Assert.Single(e.Diagnostics);
            Assert.Equal((DiagnosticCodes.RecipeInvalidValue, 5, path), (d.Code, d.Line!.Value, d.File));
            Assert.Contains("'execution_provider' must be one of cpu, cuda", d.Message, StringComparison.Ordinal);
        }
    }
}
