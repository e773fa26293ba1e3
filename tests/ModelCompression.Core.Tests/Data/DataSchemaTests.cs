using ModelCompression.Architectures;
using ModelCompression.Data;
using ModelCompression.Diagnostics;
using ModelCompression.Inference;
using ModelCompression.Onnx;
using ModelCompression.Pipeline;
using ModelCompression.Runs;
using ModelCompression.Torch.Graph;
using ModelCompression.Torch.Training;
using ModelCompression.Tasks;

namespace ModelCompression.Core.Tests.Data;

[Trait("Category", "Slow")] // runs whole pipelines and the trainer on real data
public sealed class DataSchemaTests : IDisposable
{
    private static readonly DataTensor Ids = DataTensor.FromInt64("input_ids", new long[2 * 128], [128]);
    private static readonly DataTensor Mask = DataTensor.FromInt64("attention_mask", new long[2 * 128], [128]);
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static ModelInput Input(string name, string type, params int[] dims) =>
        new(name, type, dims, [.. dims.Select((d, i) => d >= 0 ? "" : i == 0 ? "batch" : "sequence")]);

    [Fact]
    public void A_mismatch_is_MC2020_printing_both_sides()
    {
        var text = new Dataset([Ids, Mask], null, "mails.jsonl");

        var e = Assert.Throws<CompressionException>(() => DataSchema.Bind(text, [Input("input_ids", "int64", -1, 64)], "teacher", "teacher.onnx"));

        var d = Assert.Single(e.Diagnostics);
        Assert.Equal((DiagnosticCodes.DataSchemaMismatch, "teacher.onnx"), (d.Code, d.File));
        Assert.Contains("input 'input_ids' takes 64 values per sample but 'input_ids' has 128", d.Message, StringComparison.Ordinal);
        Assert.Contains("data: input_ids int64 [128], attention_mask int64 [128]; teacher: input_ids int64 [batch, 64]", d.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Tensors_bind_by_name_and_symbolic_dimensions_take_the_datas()
    {
        var text = new Dataset([Ids, Mask], null, "mails.jsonl");

        var bindings = DataSchema.Bind(text, [Input("attention_mask", "int64", -1, -1), Input("input_ids", "int64", -1, 128)], "student", "student.onnx");

        Assert.Equal(
            [("attention_mask", "attention_mask", DataElementType.Int64, "128"), ("input_ids", "input_ids", DataElementType.Int64, "128")],
            bindings.Select(b => (b.Tensor, b.Input, b.ElementType, string.Join(",", b.SampleShape))));
    }

    [Fact]
    public void One_tensor_feeds_one_input_by_position_reshaped_and_int64_data_feeds_float_inputs()
    {
        var images = new Dataset([DataTensor.FromInt64("pixels", new long[3 * 784], [784])], null, "images.npy");

        var binding = Assert.Single(DataSchema.Bind(images, [Input("x", "float32", -1, 1, 28, 28)], "teacher", "t.onnx"));

        Assert.Equal(("pixels", "x", DataElementType.Float32), (binding.Tensor, binding.Input, binding.ElementType));
        Assert.Equal([1L, 28, 28], binding.SampleShape);
    }

    [Theory]
    [InlineData("float", "int64", "takes int64 but 'input_ids' holds Float32 values")]
    [InlineData("rank", "int64", "takes samples of rank 2 but 'input_ids' has rank 1")]
    [InlineData("missing", "int64", "student input 'token_type_ids' has no data tensor of that name")]
    [InlineData("type", "int32", "takes int32; data feeds float32 and int64 inputs")]
    public void Type_rank_and_name_mismatches_are_explained(string kind, string type, string why)
    {
        var ids = kind == "float" ? DataTensor.FromFloats("input_ids", new float[256], [128]) : Ids;
        var data = new Dataset([ids, Mask], null, "x");
        ModelInput[] inputs = kind switch
        {
            "rank" => [Input("input_ids", type, -1, -1, 4)],
            "missing" => [Input("input_ids", type, -1, -1), Input("token_type_ids", type, -1, -1)],
            _ => [Input("input_ids", type, -1, -1)],
        };

        var e = Assert.Throws<CompressionException>(() => DataSchema.Bind(data, inputs, "student", "s.onnx"));

        Assert.Equal(DiagnosticCodes.DataSchemaMismatch, e.Code);
        Assert.Contains(why, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_runner_gives_the_same_outputs_for_mapped_npy_and_in_memory_idx_data_at_any_batch_size()
    {
        var test = IdxReader.LoadLabelled(Repo.SampleData("t10k-images-idx3-ubyte.gz"), Repo.SampleData("t10k-labels-idx1-ubyte.gz"), 1 / 255f)
            .Select([.. Enumerable.Range(0, 23)], "slice");
        Npy.WriteFloats(_dir.File("slice.npy"), test.Inputs, 23, 784);
        using var mapped = new Dataset([NpyReader.Open(_dir.File("slice.npy"), "images")], test.Labels, "slice.npy");
        using var runner = new OnnxRunner(Repo.Teacher, threads: 1);

        var fromIdx = runner.Run(test, 23);
        var fromNpy = runner.Run(mapped, 5);

        Assert.True(mapped.Tensors[0].IsMapped);
        Assert.Equal(23 * runner.OutputWidth, fromIdx.Length);
        Assert.Equal(fromIdx, fromNpy);
    }

    [Fact]
    public void Text_data_runs_through_a_two_input_model_and_an_image_teacher_rejects_it_showing_both_sides()
    {
        File.Copy(Fixtures.Text("spam.jsonl"), _dir.File("spam.jsonl"));
        using var data = DataRecipe.Load(_dir, "file: spam.jsonl\nsplit: { test: 0.2, seed: 7 }\ntext: { tokenizer: cl100k_base, max_length: 32, compact_vocabulary: true }");
        var model = _dir.File("transformer.onnx");
        OnnxModelFile.Save(ArchitectureRegistry.Build("transformer", new TransformerOptions { Width = 16, Heads = 2, Layers = 1, FeedForward = 32 }, new([32], 2, data.Description.VocabularySize!.Value)), model);
        using var runner = new OnnxRunner(model, threads: 1);
        using var teacher = new OnnxRunner(Repo.Teacher, threads: 1);

        var whole = runner.Run(data.Test, 60);
        var batched = runner.Run(data.Test, 7);
        var e = Assert.Throws<CompressionException>(() => teacher.Bind(data.Test, "teacher"));

        Assert.Equal(60 * 2, whole.Length);
        Assert.All(whole, v => Assert.True(float.IsFinite(v)));
        Assert.Equal(whole, batched, (a, b) => MathF.Abs(a - b) < 1e-5f);
        Assert.Contains($"data: input_ids int64 [32], attention_mask int64 [32]; teacher: {teacher.InputName} float32 [", e.Message, StringComparison.Ordinal);

        // The trainer gets both named int64 inputs from the same tensors and agrees with ONNX Runtime.
        var set = data.Test.ToTrainingSet(runner.Bind(data.Test, "student"), null, 2);
        Torch.Native.TorchNativeLoader.EnsureLoaded();
        using var graph = TrainableGraph.Import(OnnxModelFile.Load(model), modelPath: model);
        var onnxAccuracy = Enumerable.Range(0, 60).Count(i => ModelCompression.Evaluation.ModelEvaluation.ArgMax(whole.AsSpan(i * 2, 2)) == data.Test.Labels![i]) / 60.0;
        Assert.Equal(["input_ids", "attention_mask"], set.Inputs.Select(i => i.Name));
        Assert.Equal(onnxAccuracy, ClassificationTrainer.Accuracy(graph, set), 6);
    }

    [Fact]
    public void A_training_set_made_from_a_mapped_dataset_feeds_the_trainer_and_matches_onnx_runtime()
    {
        var source = IdxReader.LoadLabelled(Repo.SampleData("t10k-images-idx3-ubyte.gz"), Repo.SampleData("t10k-labels-idx1-ubyte.gz"), 1 / 255f)
            .Select([.. Enumerable.Range(0, 300)], "slice");
        Npy.WriteFloats(_dir.File("x.npy"), source.Inputs, 300, 28, 28);
        Npy.WriteLongs(_dir.File("y.npy"), source.Labels!, 300);
        using var data = DataRecipe.Load(_dir, "train: { inputs: x.npy, labels: y.npy }\ntest: { inputs: x.npy, labels: y.npy }");
        var modelPath = _dir.File("mlp.onnx");
        OnnxModelFile.Save(ArchitectureRegistry.Build("mlp", new MlpOptions { Hidden = [16] }, new([28, 28], 10)), modelPath);
        using var runner = new OnnxRunner(modelPath, threads: 1);
        var bindings = runner.Bind(data.Train, "student");

        var set = data.Train.ToTrainingSet(bindings, null, 10);
        Torch.Native.TorchNativeLoader.EnsureLoaded();
        using var graph = TrainableGraph.Import(OnnxModelFile.Load(modelPath), modelPath: modelPath);
        var before = ClassificationTrainer.Accuracy(graph, set);
        var result = ClassificationTrainer.Train(graph, set, new DistillationLoss(0, 1), new TrainingOptions(2, 32, 3e-3, 1));
        var after = ClassificationTrainer.Accuracy(graph, set);
        var trained = _dir.File("trained.onnx");
        OnnxModelFile.Save(graph.WriteBack(), trained);
        using var trainedRunner = new OnnxRunner(trained, threads: 1);
        var outputs = trainedRunner.Run(data.Train, 64);

        Assert.True(data.Train.Tensors[0].IsMapped);
        Assert.Equal([28L, 28], bindings[0].SampleShape);
        Assert.True(result.EpochLosses[1] < result.EpochLosses[0], "the loss fell");
        Assert.True(after > before + 0.2, $"accuracy {before} -> {after}");
        var onnxAccuracy = Enumerable.Range(0, 300).Count(i => ModelCompression.Evaluation.ModelEvaluation.ArgMax(outputs.AsSpan(i * 10, 10)) == data.Train.Labels![i]) / 300.0;
        Assert.Equal(after, onnxAccuracy, 2);

        // A validation split of the copier-backed set reads the same rows as the same split of the data set.
        var (_, validationSet) = set.SplitRandom(0.2, 5);
        var (_, validationData) = data.Train.SplitRandom(0.2, 5, "validation");
        var validationOutputs = trainedRunner.Run(validationData, 64);
        var validationAccuracy = Enumerable.Range(0, 60).Count(i => ModelCompression.Evaluation.ModelEvaluation.ArgMax(validationOutputs.AsSpan(i * 10, 10)) == validationData.Labels![i]) / 60.0;
        Assert.Equal(60, validationSet.Count);
        Assert.Equal(validationData.Labels, validationSet.Labels);
        Assert.Equal(validationAccuracy, ClassificationTrainer.Accuracy(graph, validationSet), 6);
    }

    [Fact]
    public void Labels_outside_the_teachers_classes_are_listed_with_file_and_line()
    {
        _dir.Write("train.csv", DataRecipe.Csv([.. new[] { "x,label" }.Concat(Enumerable.Range(0, 40).Select(i => $"{i},{i % 14}"))]));
        using var data = DataRecipe.Load(_dir, "train: train.csv\ntest: train.csv");

        var e = Assert.Throws<CompressionException>(() => ClassificationTask.Instance.CheckLabels(data.Train, 10, "teacher"));

        var d = Assert.Single(e.Diagnostics);
        Assert.Equal((DiagnosticCodes.DataSchemaMismatch, _dir.File("train.csv"), 12), (d.Code, d.File, d.Line));
        Assert.StartsWith("10 labels are outside the teacher's 10 classes (0 to 9): Label 10 of sample 10 (", d.Message, StringComparison.Ordinal);
        Assert.Contains($"Label 13 of sample 13 ({_dir.File("train.csv")}:15)", d.Message, StringComparison.Ordinal);
        ClassificationTask.Instance.CheckLabels(data.Train, 14, "teacher");
    }

    [Fact]
    public void The_pipeline_checks_the_teacher_and_an_onnx_student_against_the_data_before_any_work()
    {
        _dir.Write("five.csv", DataRecipe.Csv([.. Enumerable.Range(0, 20).Select(i => $"{i},1,2,3,4,{i % 10}")]));
        var student = _dir.File("text-student.onnx");
        OnnxModelFile.Save(ArchitectureRegistry.Build("embedding_bag", null, new([16], 10, 50)), student);
        var images = IdxReader.LoadLabelled(Repo.SampleData("t10k-images-idx3-ubyte.gz"), Repo.SampleData("t10k-labels-idx1-ubyte.gz"), 1 / 255f)
            .Select([.. Enumerable.Range(0, 20)], "slice");
        Npy.WriteFloats(_dir.File("x.npy"), images.Inputs, 20, 784);
        Npy.WriteLongs(_dir.File("y.npy"), images.Labels!, 20);
        string Recipe(string name, string data, string studentLine) => _dir.Write(name, $"""
            data:
            {data}
            teacher: {Repo.Teacher}
            student: {studentLine}
            stages: [distill]
            """);
        var csv = ModelCompression.Recipes.RecipeLoader.Load(Recipe("csv.compress.yaml", "  train: five.csv\n  test: five.csv", "{ architecture: mlp, hidden: [8] }"));
        var npy = ModelCompression.Recipes.RecipeLoader.Load(Recipe("npy.compress.yaml", "  train: { inputs: x.npy, labels: y.npy }\n  test: { inputs: x.npy, labels: y.npy }", $"{{ model: {student} }}"));

        var teacherError = Assert.Throws<CompressionException>(() => CompressionRun.Run(csv, new PipelineOptions(_dir.Dir("cache"), _dir.Dir("out1"), new Core.Tests.Pipeline.RecordingReporter())));
        var reporter = new Core.Tests.Pipeline.RecordingReporter();
        var studentError = Assert.Throws<CompressionException>(() => CompressionRun.Run(npy, new PipelineOptions(_dir.Dir("cache2"), _dir.Dir("out2"), reporter)));

        Assert.Equal((DiagnosticCodes.DataSchemaMismatch, Repo.Teacher), (teacherError.Code, teacherError.Diagnostics[0].File));
        Assert.Contains("data: input float32 [5]; teacher: ", teacherError.Message, StringComparison.Ordinal);
        Assert.Equal((DiagnosticCodes.DataSchemaMismatch, student), (studentError.Code, studentError.Diagnostics[0].File));
        Assert.Contains("student input 'input_ids' has no data tensor of that name", studentError.Message, StringComparison.Ordinal);
        Assert.Contains("data: input float32 [784]; student: input_ids int64 [batch, sequence]", studentError.Message, StringComparison.Ordinal);
        Assert.Empty(reporter.Stages);
    }
}
