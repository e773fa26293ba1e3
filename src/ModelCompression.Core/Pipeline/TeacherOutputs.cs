using System.Globalization;
using ModelCompression.Common;
using ModelCompression.Data;
using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;
using ModelCompression.Inference;
using ModelCompression.Recipes;

using ModelCompression.Tasks;

namespace ModelCompression.Pipeline;

/// <summary>
/// What a run needs of its teachers, each computed once and kept in the cache under the teacher's and the data's
/// hashes: the schema check (does it take the data's tensors; how many classes), the logits the students learn from,
/// the intermediate tensors feature distillation matches, and the teacher's evaluation with its test outputs (which
/// every student's agreement and KL are measured against). A run with everything cached runs no teacher.
/// A teacher behind an endpoint (classification of text) gives the same through <see cref="EndpointTeacherOutputs"/>;
/// it has no graph, so intermediate tensors are refused (MC2079).
/// </summary>
internal sealed class TeacherOutputs
{
    /// <summary>What makes token ids fit a table the model file fixes (a teacher's, a student the recipe brings).</summary>
    internal const string FixedTableFix = "The table is part of the model: tokenize as the model was trained (its tokenizer, and compact_vocabulary: true if it was trained on a compact vocabulary).";

    private readonly IReadOnlyList<TeacherSpec> _teachers;
    private readonly IReadOnlyList<string> _hashes;
    private readonly ArtifactCache _cache;
    private readonly string _dataHash;
    private readonly Func<LoadedData> _data;
    private readonly int _batchSize;
    private readonly IPipelineReporter _reporter;
    private readonly EndpointTeacherOutputs? _endpoint;
    private readonly CancellationToken _cancellationToken;

    /// <summary>The recipe's teachers (none, one or several), their model files hashed through <paramref name="hashes"/>.</summary>
    /// <param name="teachers">The recipe's teachers.</param>
    /// <param name="hashes">The run's hash memo.</param>
    /// <param name="cache">Where the outputs are kept.</param>
    /// <param name="dataHash">The data's hash, part of every key.</param>
    /// <param name="data">The run's data, read on first use.</param>
    /// <param name="batchSize">Samples per teacher batch (the evaluation's batch size).</param>
    /// <param name="reporter">Where the teacher's runs report progress.</param>
    /// <param name="cancellationToken">Cancels an endpoint teacher's requests.</param>
    public TeacherOutputs(IReadOnlyList<TeacherSpec> teachers, HashMemo hashes, ArtifactCache cache, string dataHash, Func<LoadedData> data, int batchSize, IPipelineReporter reporter, CancellationToken cancellationToken = default)
    {
        _teachers = teachers;
        _hashes = [.. teachers.Select(t => t.Endpoint is { } endpoint ? EndpointTeacherOutputs.HashOf(endpoint) : hashes.Model(t.Path))];
        _endpoint = teachers is [{ Endpoint: { } options }]
            ? new EndpointTeacherOutputs(GenerationPipeline.OfflineIfForced(options), cache, dataHash, reporter)
            : null;
        _cancellationToken = cancellationToken;
        _cache = cache;
        _dataHash = dataHash;
        _data = data;
        _batchSize = batchSize;
        _reporter = reporter;
    }

    /// <summary>The teacher's hash (of all teachers and their weights when there are several); null without a teacher.</summary>
    public string? Hash => _hashes.Count switch
    {
        0 => null,
        1 => _hashes[0],
        _ => CombinedHash(_teachers, _hashes),
    };

    /// <summary>The first teacher's file and cached structure (what the plan checks hint names against); null without a teacher.</summary>
    public (string Path, ModelFacts Facts)? FirstFacts() =>
        _teachers.Count == 0 || _endpoint is not null ? null : (_teachers[0].Path, ModelFacts.Of(_cache, _teachers[0].Path, _hashes[0]));

    /// <summary>
    /// Checks, before any work, that every teacher takes the data's tensors (every split has the training split's
    /// tensors: DataLoader checked), that the data's token ids fit its embedding tables, and that the teachers agree on
    /// the classes; returns the classes (0 without a teacher). An endpoint teacher's classes are the data's class names
    /// (<paramref name="labelNames"/>), which its replies name.
    /// </summary>
    public int CheckSchemas(TokenRange tokens, IReadOnlyList<string>? labelNames = null)
    {
        if (_endpoint is not null)
        {
            return EndpointTeacherOutputs.CheckClasses(labelNames, null);
        }

        var classes = 0;
        foreach (var (spec, i) in _teachers.Select((t, i) => (t, i)))
        {
            var schema = SchemaOf(spec.Path, _hashes[i]);
            var facts = ModelFacts.Of(_cache, spec.Path, _hashes[i]);
            tokens.Check(facts.TableTuples, facts.Inputs, "teacher", spec.Path, FixedTableFix);
            if (classes != 0 && schema.Classes != classes)
            {
                throw CompressionException.Error(
                    DiagnosticCodes.DataSchemaMismatch,
                    $"The teachers disagree on the classes: '{schema.Output}' has {schema.Classes}, the first teacher {classes}.",
                    spec.Path);
            }

            classes = schema.Classes;
        }

        return classes;
    }

    /// <summary>Each teacher's logits on <paramref name="split"/> (named <paramref name="splitName"/>) with its weight.</summary>
    public IReadOnlyList<(float[] Logits, double Weight)> Logits(Dataset split, string splitName) =>
        _endpoint is not null
            ? [(_endpoint.Logits(split, splitName, _hashes[0], _cancellationToken), 1)]
            : [.. _teachers.Select((t, i) => (Logits(t.Path, _hashes[i], split, splitName), t.Weight))];

    /// <summary>
    /// The (first) teacher's evaluation on the test split and its outputs there; both null without a teacher.
    /// </summary>
    public (ModelEvaluation? Evaluation, TeacherTestOutputs? Outputs) Evaluate(IPredictionTask task, Func<Dataset> test, EvaluateOptions options)
    {
        if (_teachers.Count == 0)
        {
            return (null, null);
        }

        var (evaluation, outputs) = _endpoint is not null ? _endpoint.Evaluate(task, test, options, _hashes[0], _cancellationToken) : EvaluateFirst(task, test, options);
        return (evaluation, new TeacherTestOutputs(_hashes[0], outputs));
    }

    private float[] Logits(string teacherPath, string teacherHash, Dataset train, string splitName)
    {
        var key = new ContentHash().Add("engine", EngineInfo.Version).Add("teacher", teacherHash).Add("data", _dataHash).Add("split", splitName).Finish();
        const string LogitsFile = "logits.bin";
        var entry = _cache.TryGet("teacher-logits", key);
        if (entry is null)
        {
            _reporter.Info($"Running the teacher on {train.Count} {SplitWords(splitName)} samples (cached for later runs)");
            entry = _cache.Put("teacher-logits", key, folder =>
            {
                using var runner = new OnnxRunner(teacherPath, provider: ExecutionProviders.Current);
                var logits = runner.Run(train, _batchSize, new ReporterProgress(_reporter, $"teacher over the {SplitWords(splitName)} samples"));
                using var file = File.Create(Path.Combine(folder, LogitsFile));
                file.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(logits.AsSpan()));
                return new { samples = train.Count, classes = runner.OutputWidth };
            });
        }

        var bytes = File.ReadAllBytes(Path.Combine(entry, LogitsFile));
        return System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes).ToArray();
    }

    /// <summary>How messages name a split: "training" for train, else its own name ("unlabelled").</summary>
    private static string SplitWords(string splitName) => splitName == "train" ? "training" : splitName;

    /// <summary>
    /// The first teacher's values of intermediate <paramref name="tensors"/> on <paramref name="split"/>, cached as one NPY
    /// file per tensor (written batch by batch, read back memory-mapped) under the teacher, data, split and tensors.
    /// </summary>
    public Dataset Features(IReadOnlyList<string> tensors, Dataset split, string splitName)
    {
        if (_endpoint is not null)
        {
            // The loader refuses hints with an endpoint teacher; a stage that asks anyway gets the same answer.
            throw CompressionException.Error(
                DiagnosticCodes.EndpointTeacherCannotClassify,
                $"The teacher behind an endpoint ({_teachers[0].Path}) gives class names, not the intermediate tensors {string.Join(", ", tensors)} that feature distillation matches: remove the hints.");
        }

        var (teacherPath, teacherHash) = (_teachers[0].Path, _hashes[0]);
        var key = new ContentHash().Add("engine", EngineInfo.Version).Add("teacher", teacherHash).Add("data", _dataHash).Add("split", splitName)
            .Add("tensors", string.Join("\n", tensors)).Finish();
        static string FileOf(int index) => $"feature{index}.npy";
        var entry = _cache.TryGet("teacher-features", key);
        if (entry is null)
        {
            _reporter.Info($"Running the teacher for {tensors.Count} hint tensor{(tensors.Count == 1 ? "" : "s")} on {split.Count} {SplitWords(splitName)} samples (cached for later runs)");
            entry = _cache.Put("teacher-features", key, folder =>
            {
                using var runner = OnnxRunner.WithIntermediateOutputs(teacherPath, tensors, provider: ExecutionProviders.Current);
                var writers = new NpyWriter?[tensors.Count];
                var sampleShapes = new long[tensors.Count][];
                try
                {
                    runner.Run(split, _batchSize, tensors, (start, size, values) =>
                    {
                        for (var i = 0; i < tensors.Count; i++)
                        {
                            var info = values[i].GetTensorTypeAndShape();
                            long[] shape = info.Shape;
                            if (info.ElementDataType != Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float || shape.Length == 0 || shape[0] != size
                                || (sampleShapes[i] is { } first && !first.SequenceEqual(shape[1..])))
                            {
                                throw CompressionException.Error(
                                    DiagnosticCodes.DataSchemaMismatch,
                                    $"The teacher's '{tensors[i]}' is {info.ElementDataType} [{string.Join(", ", shape)}] for a batch of {size}: a hint tensor is float, with the batch on its first axis and the same shape for every sample{(sampleShapes[i] is { } seen ? $" (earlier batches: [batch, {string.Join(", ", seen)}])" : "")}.",
                                    teacherPath);
                            }

                            if (writers[i] is null)
                            {
                                sampleShapes[i] = shape[1..];
                                writers[i] = new NpyWriter(Path.Combine(folder, FileOf(i)), [split.Count, .. sampleShapes[i]]);
                            }

                            writers[i]!.Write(values[i].GetTensorDataAsSpan<float>());
                        }
                    },
                    new ReporterProgress(_reporter, $"teacher hint tensors over the {SplitWords(splitName)} samples"));
                }
                catch
                {
                    // The cache drops the unfinished entry; the error that stopped the run is the one to report.
                    foreach (var writer in writers)
                    {
                        writer?.Abandon();
                    }

                    throw;
                }

                foreach (var writer in writers)
                {
                    writer?.Dispose();
                }

                return new { samples = split.Count, tensors = tensors.Select((t, i) => new { name = t, file = FileOf(i), shape = sampleShapes[i] }) };
            });
        }

        return NpyReader.OpenSet([.. tensors.Select((t, i) => (t, Path.Combine(entry, FileOf(i))))], $"teacher features in {entry}");
    }

    /// <summary>
    /// The teacher's output and classes, after checking in ONNX Runtime that it takes the data's tensors. The outcome
    /// is cached under the teacher's and the data's hashes (only a passed check makes an entry), so a run with
    /// nothing to do opens no ONNX Runtime session.
    /// </summary>
    private TeacherSchema SchemaOf(string teacherPath, string teacherHash)
    {
        var key = new ContentHash().Add("engine", EngineInfo.Version).Add("teacher", teacherHash).Add("data", _dataHash).Finish();
        var entry = _cache.TryGet("teacher-schema", key) ?? _cache.Put("teacher-schema", key, _ =>
        {
            using var runner = new OnnxRunner(teacherPath);
            runner.Bind(_data().Train, "teacher");
            return new TeacherSchema(runner.OutputName, runner.OutputWidth);
        });
        return ArtifactCache.ReadResult<TeacherSchema>(entry);
    }

    /// <summary>What the run needs to know of a teacher that passed the schema check.</summary>
    private sealed record TeacherSchema(string Output, int Classes);

    /// <summary>
    /// The teacher's evaluation and its test-set outputs, which every student's agreement and KL are measured
    /// against. The outputs are cached beside the evaluation (outputs.bin, float32 row-major), so a cached run
    /// does not run the teacher again.
    /// </summary>
    private (ModelEvaluation Evaluation, float[] Outputs) EvaluateFirst(IPredictionTask task, Func<Dataset> test, EvaluateOptions options)
    {
        const string OutputsFile = "outputs.bin";
        var (teacherPath, teacherHash) = (_teachers[0].Path, _hashes[0]);
        var key = Evaluations.Key("teacher", teacherHash, _dataHash, options).Finish();
        var entry = _cache.TryGet("evaluate", key) ?? _cache.Put("evaluate", key, folder =>
        {
            var evaluation = task.Measure("teacher", teacherPath, test(), options, null, out var outputs, ExecutionProviders.Current);
            using var file = File.Create(Path.Combine(folder, OutputsFile));
            file.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(outputs.AsSpan()));
            return evaluation;
        });
        var bytes = File.ReadAllBytes(Path.Combine(entry, OutputsFile));
        return (ArtifactCache.ReadResult<ModelEvaluation>(entry), System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes).ToArray());
    }

    private static string CombinedHash(IReadOnlyList<TeacherSpec> teachers, IReadOnlyList<string> hashes)
    {
        var key = new ContentHash();
        for (var i = 0; i < teachers.Count; i++)
        {
            key.Add($"teacher {i}", hashes[i]).Add($"weight {i}", teachers[i].Weight.ToString("R", CultureInfo.InvariantCulture));
        }

        return key.Finish();
    }
}

/// <summary>The teacher's outputs on the test split, and the teacher's hash (part of every evaluation's key).</summary>
internal sealed record TeacherTestOutputs(string Hash, float[] TestOutputs);
