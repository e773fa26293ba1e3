using System.Text.Json.Nodes;
using System.Text.Json;
using ModelCompression.Architectures;
using ModelCompression.Common;
using ModelCompression.Data;
using ModelCompression.Evaluation;
using ModelCompression.Onnx;

namespace ModelCompression.Core.Tests.Evaluation;

/// <summary>
/// 200 real Fashion-MNIST test images, an untrained built-in MLP student and the sample's PyTorch CNN teacher,
/// each measured once for the whole class.
/// </summary>
public sealed class MeasuredModelsFixture : IDisposable
{
    public static readonly EvaluateOptions Options = new()
    {
        BatchSize = 64,
        LatencyBatchSize = 16,
        LatencyRuns = 15,
        LatencyBatchRuns = 5,
        WarmupRuns = 2,
    };

    public MeasuredModelsFixture()
    {
        var all = IdxReader.LoadLabelled(Repo.SampleData("t10k-images-idx3-ubyte.gz"), Repo.SampleData("t10k-labels-idx1-ubyte.gz"), 1 / 255f);
        Test = all.Select([.. Enumerable.Range(0, 200)], "first 200 test images");
        StudentPath = Dir.File("mlp.onnx");
        OnnxModelFile.Save(ArchitectureRegistry.Build("mlp", new MlpOptions { Hidden = [64] }, new ArchitectureInputs([28, 28], 10)), StudentPath);
        Teacher = ModelEvaluation.Measure("teacher", Repo.Teacher, Test, Options, null, out var teacherOutputs);
        TeacherOutputs = teacherOutputs;
        Student = ModelEvaluation.Measure("distill", StudentPath, Test, Options, TeacherOutputs, out var studentOutputs);
        StudentOutputs = studentOutputs;
    }

    public TempDir Dir { get; } = new();

    public Dataset Test { get; }

    public string StudentPath { get; }

    public ModelEvaluation Teacher { get; }

    public float[] TeacherOutputs { get; }

    public ModelEvaluation Student { get; }

    public float[] StudentOutputs { get; }

    public void Dispose() => Dir.Dispose();
}

public sealed class ModelEvaluationTests(MeasuredModelsFixture fixture) : IClassFixture<MeasuredModelsFixture>
{
    private static readonly string[] SchemaKeys =
    [
        "name", "samples", "accuracy", "accuracy_ci95", "top_k", "top_k_accuracy", "macro_f1", "per_class", "confusion_matrix",
        "agreement_with_teacher", "kl_to_teacher", "generation", "endpoint", "ece", "mae", "rmse", "size_bytes", "size_mb", "parameters",
        "nonzero_parameters", "flops", "latency", "peak_memory_mb",
    ];

    [Fact]
    public void Quality_fields_are_present_and_consistent()
    {
        foreach (var evaluation in new[] { fixture.Teacher, fixture.Student })
        {
            var labels = fixture.Test.Labels!;
            Assert.Equal(200, evaluation.Samples);
            var confusion = evaluation.ConfusionMatrix!;
            Assert.Equal(10, confusion.Length);
            Assert.Equal(200, confusion.Sum(row => row.Sum()));
            Assert.Equal(evaluation.Accuracy, Enumerable.Range(0, 10).Sum(c => confusion[c][c]) / 200.0, 1e-12);
            Assert.Equal(evaluation.Predictions!.Zip(labels).Count(p => p.First == p.Second) / 200.0, evaluation.Accuracy, 1e-12);
            Assert.Equal(Enumerable.Range(0, 10).Select(c => labels.Count(l => l == c)), evaluation.PerClass!.Select(p => p.Support));
            Assert.Equal(ClassificationMetrics.MacroF1(confusion), evaluation.MacroF1);
            Assert.Equal(5, evaluation.TopK);
            Assert.InRange(evaluation.TopKAccuracy!.Value, evaluation.Accuracy, 1);
            Assert.InRange(evaluation.Accuracy, evaluation.AccuracyCi95![0], evaluation.AccuracyCi95[1]);
            Assert.InRange(evaluation.Ece!.Value, 0, 1);
            Assert.Null(evaluation.Mae);
            Assert.Null(evaluation.Rmse);
        }

        // The committed teacher is about 91% accurate; an untrained student is near chance.
        Assert.True(fixture.Teacher.Accuracy > 0.8, $"teacher accuracy {fixture.Teacher.Accuracy}");
        Assert.True(fixture.Teacher.AccuracyCi95![1] - fixture.Teacher.AccuracyCi95[0] < 0.15);
        Assert.Null(fixture.Teacher.AgreementWithTeacher);
        Assert.Null(fixture.Teacher.KlToTeacher);
    }

    [Fact]
    public void A_student_is_compared_with_the_teacher_outputs()
    {
        var student = fixture.Student;
        var teacherPredictions = fixture.Teacher.Predictions!;

        Assert.Equal(student.Predictions!.Zip(teacherPredictions).Count(p => p.First == p.Second) / 200.0, student.AgreementWithTeacher!.Value, 1e-12);
        Assert.Equal(ClassificationMetrics.MeanKlDivergence(fixture.TeacherOutputs, fixture.StudentOutputs, 10), student.KlToTeacher!.Value, 1e-12);
        Assert.True(student.KlToTeacher > 0.1, $"an untrained student is far from the teacher: KL {student.KlToTeacher}");

        // A model measured against its own outputs agrees fully and diverges not at all.
        var self = ModelEvaluation.Measure("self", fixture.StudentPath, fixture.Test, MeasuredModelsFixture.Options with { MeasureLatency = false }, fixture.StudentOutputs);
        Assert.Equal(1.0, self.AgreementWithTeacher);
        Assert.Equal(0.0, self.KlToTeacher!.Value, 1e-12);
        Assert.Throws<ArgumentException>(() =>
            ModelEvaluation.Measure("short", fixture.StudentPath, fixture.Test, MeasuredModelsFixture.Options with { MeasureLatency = false }, fixture.StudentOutputs[..100]));
    }

    [Fact]
    public void Cost_fields_are_present_and_consistent()
    {
        var student = fixture.Student;

        Assert.Equal(new FileInfo(fixture.StudentPath).Length, student.SizeBytes);
        Assert.Equal(student.SizeBytes / 1e6, student.SizeMb);
        Assert.Equal(784 * 64 + 64 + (64 * 10) + 10, student.Parameters);
        Assert.Equal(student.Parameters, student.NonzeroParameters);
        Assert.Equal(2 * ((784 * 64) + (64 * 10)), student.Flops);
        // The PyTorch-exported teacher (train_teacher.py): conv 1->32 3x3 at 28x28 (2*32*9*784 = 451584), max-pool,
        // conv 32->64 3x3 at 14x14 (2*64*288*196 = 7225344), max-pool, Linear 3136->128 (802816), Linear 128->10 (2560).
        Assert.Equal(451_584 + 7_225_344 + 802_816 + 2_560, fixture.Teacher.Flops);

        foreach (var evaluation in new[] { fixture.Teacher, student })
        {
            var latency = evaluation.Latency!;
            Assert.Equal(1, latency.Threads);
            Assert.Equal((1, 15), (latency.Batch1.BatchSize, latency.Batch1.Runs));
            Assert.Equal((16, 5), (latency.Batch.BatchSize, latency.Batch.Runs));
            foreach (var stats in new[] { latency.Batch1, latency.Batch })
            {
                Assert.True(stats.P50Ms > 0 && stats.P50Ms <= stats.P95Ms && stats.P95Ms <= stats.P99Ms, $"{stats}");
            }

            Assert.True(evaluation.PeakMemoryMb >= 0, $"peak memory {evaluation.PeakMemoryMb}");
        }
    }

    [Fact]
    public void Metrics_hold_every_measured_number_under_its_gate_name()
    {
        var student = fixture.Student;
        var metrics = student.Metrics;

        Assert.Equal(ModelEvaluation.MetricNames.Except(["mae", "rmse", .. MetricInfo.Generation.Select(m => m.Name).Where(n => n != "agreement_with_teacher")]).Order(StringComparer.Ordinal), metrics.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(student.Latency!.Batch1.P95Ms, metrics["latency_p95_ms"]);
        Assert.Equal(student.Latency.Batch.P99Ms, metrics["latency_batch_p99_ms"]);
        Assert.Equal(student.Flops!.Value, metrics["flops"]);
        Assert.Equal(student.AgreementWithTeacher!.Value, metrics["agreement_with_teacher"]);
        Assert.DoesNotContain("agreement_with_teacher", fixture.Teacher.Metrics.Keys);
        Assert.DoesNotContain("kl_to_teacher", fixture.Teacher.Metrics.Keys);
    }

    [Fact]
    public void Latency_and_peak_memory_can_be_turned_off()
    {
        var evaluation = ModelEvaluation.Measure("distill", fixture.StudentPath, fixture.Test, MeasuredModelsFixture.Options with { MeasureLatency = false });

        Assert.Null(evaluation.Latency);
        Assert.Null(evaluation.PeakMemoryMb);
        Assert.DoesNotContain(evaluation.Metrics.Keys, k => k.StartsWith("latency", StringComparison.Ordinal) || k == "peak_memory_mb");
        Assert.Equal(fixture.Student.Predictions, evaluation.Predictions);
        Assert.Equal(fixture.Student.AccuracyCi95, evaluation.AccuracyCi95);
    }

    [Fact]
    public void Report_json_has_exactly_the_schema_names_in_order_without_predictions()
    {
        var json = JsonSerializer.SerializeToNode(fixture.Student, ModelEvaluation.ReportJsonOptions)!.AsObject();

        Assert.Equal(SchemaKeys, json.Select(p => p.Key));
        Assert.Equal(["threads", "batch1", "batch"], json["latency"]!.AsObject().Select(p => p.Key));
        Assert.Equal(["batch_size", "p50_ms", "p95_ms", "p99_ms", "runs"], json["latency"]!["batch1"]!.AsObject().Select(p => p.Key));
        Assert.Equal(["class", "precision", "recall", "f1", "support"], json["per_class"]![0]!.AsObject().Select(p => p.Key));
        Assert.Equal(2, json["accuracy_ci95"]!.AsArray().Count);
        Assert.Null(json["mae"]);
        Assert.True(json.ContainsKey("mae"), "absent facts are null, never omitted");

        var teacher = JsonSerializer.SerializeToNode(fixture.Teacher, ModelEvaluation.ReportJsonOptions)!.AsObject();
        Assert.True(teacher.ContainsKey("agreement_with_teacher") && teacher["agreement_with_teacher"] is null);
    }

    [Fact]
    public void Predictions_survive_the_stage_cache_and_baseline_json()
    {
        var cache = new ArtifactCache(fixture.Dir.Dir("cache"));
        var entry = cache.Put("evaluate", "key", _ => fixture.Student);
        var cached = ArtifactCache.ReadResult<ModelEvaluation>(entry);

        Assert.Equal(fixture.Student.Predictions, cached.Predictions);
        Assert.Equal(
            JsonSerializer.Serialize(fixture.Student, ModelEvaluation.JsonOptions),
            JsonSerializer.Serialize(cached, ModelEvaluation.JsonOptions));

        var baseline = JsonSerializer.Deserialize<ModelEvaluation>(JsonSerializer.Serialize(fixture.Student, ModelEvaluation.JsonOptions), ModelEvaluation.JsonOptions)!;
        Assert.Equal(fixture.Student.Predictions, baseline.Predictions);
        Assert.Equal(fixture.Student.Latency, baseline.Latency);
        Assert.True(JsonNode.Parse(JsonSerializer.Serialize(fixture.Student, ModelEvaluation.JsonOptions))!.AsObject().ContainsKey("predictions"));
    }

    [Fact]
    public void Evaluations_are_equal_field_by_field_and_NaN_survives_the_cache()
    {
        var broken = new ModelEvaluation("quantize", 0.1, 10, 10, 2) { KlToTeacher = double.NaN, Predictions = [1, 2] };
        var entry = new ArtifactCache(fixture.Dir.Dir("nan-cache")).Put("evaluate", "key", _ => broken);
        var cached = ArtifactCache.ReadResult<ModelEvaluation>(entry);

        Assert.True(double.IsNaN(cached.KlToTeacher!.Value));
        Assert.Equal(broken, cached);
        Assert.Equal(broken.GetHashCode(), cached.GetHashCode());
        Assert.NotEqual(broken, cached with { Predictions = [1, 3] });
        Assert.NotEqual(broken, cached with { AccuracyCi95 = [0, 1] });
    }

    [Fact]
    public void McNemar_pairs_two_evaluations_on_the_same_test_set()
    {
        var result = Statistics.McNemar(fixture.Teacher.Predictions!, fixture.Student.Predictions!, fixture.Test.Labels!);

        // The untrained student against a ~90% teacher on 200 images: a regression no test set hides.
        Assert.Equal(PairedWinner.Baseline, result.Better);
        Assert.True(result.CandidateSignificantlyWorse(), $"b={result.BaselineOnlyCorrect}, c={result.CandidateOnlyCorrect}, p={result.PValue}");
    }

    [Fact]
    public void A_single_output_model_gets_MAE_and_RMSE_instead_of_class_metrics()
    {
        // y = 9 * mean pixel, as [batch, 1]: a regression-shaped model scored against the labels 0-9.
        const float Weight = 9f / 784;
        var path = fixture.Dir.File("regression.onnx");
        OnnxModelFile.Save(
            new GraphBuilder()
                .Opset(17)
                .Input("input", Onnx.Proto.TensorProto.Types.DataType.Float, "batch", 28, 28)
                .Initializer("w", Enumerable.Repeat(Weight, 784).ToArray(), [784, 1])
                .Node("Flatten", ["input"], ["flat"])
                .Node("MatMul", ["flat", "w"], ["y"])
                .Output("y", Onnx.Proto.TensorProto.Types.DataType.Float, "batch", 1)
                .Build(),
            path);

        var evaluation = ModelEvaluation.Measure("regression", path, fixture.Test, MeasuredModelsFixture.Options with { MeasureLatency = false });

        var test = fixture.Test;
        var predicted = Enumerable.Range(0, test.Count).Select(i => test.Inputs.AsSpan(i * 784, 784).ToArray().Sum(v => (double)v * Weight)).ToArray();
        var errors = predicted.Zip(test.Labels!, (p, l) => p - l).ToArray();
        Assert.Equal(errors.Average(Math.Abs), evaluation.Mae!.Value, 1e-4);
        Assert.Equal(Math.Sqrt(errors.Average(e => e * e)), evaluation.Rmse!.Value, 1e-4);
        Assert.Equal(predicted.Select(p => (int)Math.Round(p)), evaluation.Predictions!);
        Assert.Equal(predicted.Zip(test.Labels!).Count(p => (int)Math.Round(p.First) == p.Second) / 200.0, evaluation.Accuracy, 1e-12);
        Assert.Null(evaluation.ConfusionMatrix);
        Assert.Null(evaluation.MacroF1);
        Assert.Null(evaluation.Ece);
        Assert.Null(evaluation.TopK);
        Assert.Equal(2 * 784, evaluation.Flops);
        Assert.Contains("mae", evaluation.Metrics.Keys);
        Assert.DoesNotContain("macro_f1", evaluation.Metrics.Keys);
    }

    [Fact]
    public void Unlabelled_data_is_refused()
    {
        var unlabelled = new Dataset(fixture.Test.Inputs, fixture.Test.SampleShape, null, "unlabelled");

        Assert.Throws<ArgumentException>(() => ModelEvaluation.Measure("x", fixture.StudentPath, unlabelled, MeasuredModelsFixture.Options));
    }
}
