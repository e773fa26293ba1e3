using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using ModelCompression.Data;
using ModelCompression.Inference;
using ModelCompression.Onnx;

namespace ModelCompression.Evaluation;

/// <summary>
/// Quality and cost of one model on the held-out data: the <c>&lt;evaluation&gt;</c> object of report.json
/// (schema version 2). Serialized with <see cref="JsonOptions"/> (snake_case) every property has the schema's
/// name; facts that were not measured are null. A metric that is not a number (from a model whose outputs hold
/// NaN) is written as the string "NaN" rather than making the file unwritable. <see cref="Predictions"/> is
/// serialized too, so that the stage cache and a baseline file keep it for McNemar's test; report.json leaves it
/// out (<see cref="ReportJsonOptions"/>).
/// </summary>
/// <param name="Name">"teacher" or the stage that produced the model.</param>
/// <param name="Accuracy">Fraction of samples whose predicted class (see <see cref="Predictions"/>) equals the label; NaN for a regression model (written as null in report.json).</param>
/// <param name="SizeBytes">Model file size, external data included.</param>
/// <param name="Parameters">Initializer elements (weights), all types, as stored.</param>
/// <param name="Samples">How many samples were evaluated.</param>
[JsonNumberHandling(JsonNumberHandling.AllowNamedFloatingPointLiterals)]
public sealed record ModelEvaluation(
    [property: JsonPropertyOrder(-3)] string Name,
    [property: JsonPropertyOrder(-1)] double Accuracy,
    [property: JsonPropertyOrder(12)] long SizeBytes,
    [property: JsonPropertyOrder(14)] long Parameters,
    [property: JsonPropertyOrder(-2)] int Samples)
{
    /// <summary>snake_case names as report.json and baseline files use them; predictions included.</summary>
    public static JsonSerializerOptions JsonOptions { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
    };

    /// <summary>As <see cref="JsonOptions"/> without <see cref="Predictions"/>: exactly report.json's <c>&lt;evaluation&gt;</c>.</summary>
    public static JsonSerializerOptions ReportJsonOptions { get; } = new(JsonOptions)
    {
        TypeInfoResolver = new DefaultJsonTypeInfoResolver
        {
            Modifiers =
            {
                info =>
                {
                    if (info.Type == typeof(ModelEvaluation))
                    {
                        var predictions = info.Properties.Single(p => p.Name == "predictions");
                        info.Properties.Remove(predictions);
                    }
                },
            },
        },
    };

    /// <summary>A generative model's task type, metrics, per-record scores and sample generations; null for every other task.</summary>
    [JsonPropertyOrder(9)]
    public GenerationFacts? Generation { get; init; }

    /// <summary>
    /// A classifying endpoint teacher's usage on the test texts, as it was when the row was measured (requests,
    /// cache_hits, sent, retries, failures, tokens, unusable.not_a_label, …: <c>EndpointUsage.Counts</c>); null for
    /// every model file.
    /// </summary>
    [JsonPropertyOrder(9)]
    public IReadOnlyDictionary<string, string>? Endpoint { get; init; }

    /// <summary>Bootstrap 95% interval of <see cref="Accuracy"/>: [lower, upper] (percentile method, 1000 resamples, fixed seed).</summary>
    [JsonPropertyOrder(1)]
    public double[]? AccuracyCi95 { get; init; }

    /// <summary>The k of <see cref="TopKAccuracy"/>: min(5, classes − 1); null when there are 2 classes or fewer.</summary>
    [JsonPropertyOrder(2)]
    public int? TopK { get; init; }

    /// <summary>Fraction of samples whose label is among the <see cref="TopK"/> highest outputs.</summary>
    [JsonPropertyOrder(3)]
    public double? TopKAccuracy { get; init; }

    /// <summary>Unweighted mean of the per-class F1 over the classes that occur.</summary>
    [JsonPropertyOrder(4)]
    public double? MacroF1 { get; init; }

    /// <summary>Precision, recall, F1 and support of every class.</summary>
    [JsonPropertyOrder(5)]
    public IReadOnlyList<ClassMetrics>? PerClass { get; init; }

    /// <summary>Counts: rows are the true class, columns the predicted class.</summary>
    [JsonPropertyOrder(6)]
    public int[][]? ConfusionMatrix { get; init; }

    /// <summary>Fraction of samples where this model's arg-max equals the teacher's; null for the teacher.</summary>
    [JsonPropertyOrder(7)]
    public double? AgreementWithTeacher { get; init; }

    /// <summary>Mean KL(teacher softmax ‖ this model's softmax) in nats; null for the teacher.</summary>
    [JsonPropertyOrder(8)]
    public double? KlToTeacher { get; init; }

    /// <summary>Expected calibration error, 15 equal-width bins of the largest softmax probability.</summary>
    [JsonPropertyOrder(9)]
    public double? Ece { get; init; }

    /// <summary>Mean absolute error of a single-output (regression-shaped) model's output against the labels; null for classifiers.</summary>
    [JsonPropertyOrder(10)]
    public double? Mae { get; init; }

    /// <summary>Root mean squared error of a single-output model against the labels; null for classifiers.</summary>
    [JsonPropertyOrder(11)]
    public double? Rmse { get; init; }

    /// <summary>Size in MB (10^6 bytes).</summary>
    [JsonPropertyOrder(13)]
    public double SizeMb => SizeBytes / 1e6;

    /// <summary>Initializer elements whose stored value is not zero (see <see cref="ParameterCount"/>).</summary>
    [JsonPropertyOrder(15)]
    public long? NonzeroParameters { get; init; }

    /// <summary>Estimated floating-point operations per sample (see <see cref="FlopsEstimator"/>).</summary>
    [JsonPropertyOrder(16)]
    public long? Flops { get; init; }

    /// <summary>Latency at batch 1 and a larger batch; null when not measured.</summary>
    [JsonPropertyOrder(17)]
    public LatencyReport? Latency { get; init; }

    /// <summary>
    /// Native memory (MB, 10^6 bytes) ONNX Runtime held for the latency session at its largest, after runs at batch 1
    /// and at the latency batch size: weights, pre-packed weights and activation arena (see <see cref="PeakMemoryTracker"/>).
    /// </summary>
    [JsonPropertyOrder(18)]
    public double? PeakMemoryMb { get; init; }

    /// <summary>
    /// The predicted class of every test sample, in test-set order (arg-max; a single-output model's rounded
    /// output): what McNemar's test pairs against a baseline.
    /// </summary>
    [JsonPropertyOrder(19)]
    public int[]? Predictions { get; init; }

    /// <summary>
    /// The metrics gates can name, by name (accuracy, top_k_accuracy, macro_f1, agreement_with_teacher,
    /// kl_to_teacher, ece, mae, rmse, size_mb, size_bytes, parameters, nonzero_parameters, flops,
    /// latency_p50_ms, latency_p95_ms, latency_p99_ms (batch 1), latency_batch_p50_ms, latency_batch_p95_ms,
    /// latency_batch_p99_ms, peak_memory_mb). A metric that is null for this model is absent.
    /// </summary>
    [JsonIgnore]
    public IReadOnlyDictionary<string, double> Metrics
    {
        get
        {
            var metrics = new Dictionary<string, double>(StringComparer.Ordinal);
            void Add(string name, double? value)
            {
                if (value is { } present)
                {
                    metrics[name] = present;
                }
            }

            // A regression model has no accuracy (NaN): absent, as every metric that was not measured.
            Add("accuracy", double.IsNaN(Accuracy) ? null : Accuracy);
            Add("top_k_accuracy", TopKAccuracy);
            Add("macro_f1", MacroF1);
            Add("agreement_with_teacher", AgreementWithTeacher);
            Add("kl_to_teacher", KlToTeacher);
            Add("ece", Ece);
            Add("mae", Mae);
            Add("rmse", Rmse);
            Add("size_mb", SizeMb);
            Add("size_bytes", SizeBytes);
            Add("parameters", Parameters);
            Add("nonzero_parameters", NonzeroParameters);
            Add("flops", Flops);
            Add("latency_p50_ms", Latency?.Batch1.P50Ms);
            Add("latency_p95_ms", Latency?.Batch1.P95Ms);
            Add("latency_p99_ms", Latency?.Batch1.P99Ms);
            Add("latency_batch_p50_ms", Latency?.Batch.P50Ms);
            Add("latency_batch_p95_ms", Latency?.Batch.P95Ms);
            Add("latency_batch_p99_ms", Latency?.Batch.P99Ms);
            Add("peak_memory_mb", PeakMemoryMb);
            foreach (var (name, value) in Generation?.Metrics ?? new Dictionary<string, double>())
            {
                metrics[name] = value;
            }

            return metrics;
        }
    }

    /// <summary>
    /// The metric a paired test against a baseline compares sample by sample with McNemar's test (accuracy; a generative
    /// model's correctness metric); null when the model has none.
    /// </summary>
    [JsonIgnore]
    public string? PairedMetric => Generation is null ? (double.IsNaN(Accuracy) ? null : "accuracy") : Generation.CorrectnessMetric;

    /// <summary>The bootstrap 95% interval of <paramref name="metric"/> when it was measured with one; null otherwise.</summary>
    public double[]? Ci95Of(string metric) => metric == "accuracy" ? AccuracyCi95 : Generation?.Ci95.GetValueOrDefault(metric);

    /// <summary>Every metric name <see cref="Metrics"/> can hold, for recipe validation and docs (<see cref="MetricInfo.All"/>).</summary>
    public static IReadOnlyList<string> MetricNames { get; } = [.. MetricInfo.All.Select(m => m.Name)];

    /// <summary>
    /// Two evaluations are equal when every field is, lists element by element (a record's generated equality
    /// would compare the arrays by reference): an evaluation read back from the cache equals the one written.
    /// </summary>
    public bool Equals(ModelEvaluation? other) =>
        other is not null
        && (ReferenceEquals(this, other)
            || JsonSerializer.Serialize(this, JsonOptions) == JsonSerializer.Serialize(other, JsonOptions));

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Name, Accuracy, SizeBytes, Parameters, Samples);

    /// <summary>Runs <paramref name="modelPath"/> over <paramref name="test"/> and measures everything as a classifier (see the other overload).</summary>
    public static ModelEvaluation Measure(string name, string modelPath, Dataset test, EvaluateOptions options, float[]? teacherOutputs = null) =>
        Measure(name, modelPath, test, options, teacherOutputs, out _);

    /// <summary>Measures a classifier: the general overload with <see cref="ClassificationEvaluation.Quality"/>.</summary>
    public static ModelEvaluation Measure(string name, string modelPath, Dataset test, EvaluateOptions options, float[]? teacherOutputs, out float[] outputs, ExecutionProvider provider = ExecutionProvider.Cpu) =>
        Measure(name, modelPath, test, options, teacherOutputs, ClassificationEvaluation.Quality, out outputs, provider);

    /// <summary>
    /// Runs <paramref name="modelPath"/> over <paramref name="test"/> once with ONNX Runtime (all cores, batches
    /// of <see cref="EvaluateOptions.BatchSize"/>) and lets <paramref name="quality"/> (the task's) derive every quality
    /// metric from that one pass; then counts size and parameters from the file and FLOPs on the first test sample, and
    /// (when <see cref="EvaluateOptions.MeasureLatency"/>) measures latency and peak memory in a separate session with
    /// <see cref="EvaluateOptions.Threads"/> threads.
    /// </summary>
    /// <param name="name">"teacher" or the stage kind.</param>
    /// <param name="modelPath">The model file.</param>
    /// <param name="test">Labelled held-out samples.</param>
    /// <param name="options">Batch size and latency settings.</param>
    /// <param name="teacherOutputs">The teacher's outputs on <paramref name="test"/> (row-major, one row per
    /// sample, as many columns as this model), for agreement and KL; null when this is the teacher.</param>
    /// <param name="quality">The task's quality metrics of the outputs.</param>
    /// <param name="outputs">This model's outputs on <paramref name="test"/>, row-major: what a student's
    /// evaluation takes as <paramref name="teacherOutputs"/> when this is the teacher.</param>
    /// <param name="provider">Where the outputs are computed (the teacher's may run on CUDA); latency is timed on the CPU.</param>
    public static ModelEvaluation Measure(string name, string modelPath, Dataset test, EvaluateOptions options, float[]? teacherOutputs, QualityMeasure quality, out float[] outputs, ExecutionProvider provider = ExecutionProvider.Cpu)
    {
        ArgumentNullException.ThrowIfNull(test);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(quality);
        if (!test.IsLabelled || test.Count == 0)
        {
            throw new ArgumentException("Evaluation needs labelled data with at least one sample.", nameof(test));
        }

        int width;
        using (var runner = new OnnxRunner(modelPath, provider: provider))
        {
            outputs = runner.Run(test, options.BatchSize);
            width = runner.OutputWidth;
        }

        if (teacherOutputs is not null && teacherOutputs.Length != outputs.Length)
        {
            throw new ArgumentException(
                $"The teacher's outputs have {teacherOutputs.Length} values; {test.Count} samples of {width} classes need {outputs.Length}.",
                nameof(teacherOutputs));
        }

        var measured = quality(name, outputs, width, test, teacherOutputs);
        var model = OnnxModelFile.Load(modelPath);
        var (parameters, nonZero) = ParameterCount.Count(model);
        var flops = FlopsEstimator.Estimate(model, test.Select([0], $"{test.Source} (first sample)"));
        var (latency, peakMemory) = options.MeasureLatency
            ? LatencyBenchmark.Measure(modelPath, test, options)
            : ((LatencyReport?)null, (double?)null);

        return measured with
        {
            SizeBytes = SizeOnDisk(modelPath, model),
            Parameters = parameters,
            NonzeroParameters = nonZero,
            Flops = flops,
            Latency = latency,
            PeakMemoryMb = peakMemory,
        };
    }

    /// <summary>The model file's size plus its external data files' sizes.</summary>
    internal static long SizeOnDisk(string modelPath, Onnx.Proto.ModelProto model)
    {
        var folder = Path.GetDirectoryName(Path.GetFullPath(modelPath))!;
        var external = OnnxModelFile.GetExternalDataInfo(model)?.Files ?? [];
        return new FileInfo(modelPath).Length + external.Sum(f => new FileInfo(Path.Combine(folder, f)).Length);
    }

    /// <summary>Index of the largest value (the first one on ties).</summary>
    public static int ArgMax(ReadOnlySpan<float> values)
    {
        var best = 0;
        for (var i = 1; i < values.Length; i++)
        {
            if (values[i] > values[best])
            {
                best = i;
            }
        }

        return best;
    }
}
