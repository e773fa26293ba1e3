using System.Globalization;
using ModelCompression.Architectures;
using ModelCompression.Common;
using ModelCompression.Data;
using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;
using ModelCompression.Gates;
using ModelCompression.Inference;
using ModelCompression.Onnx.Proto;
using ModelCompression.Onnx;
using ModelCompression.Recipes;
using ModelCompression.Reports;
using ModelCompression.Stages;
using ModelCompression.Tasks;
using ModelCompression.Threading;

namespace ModelCompression.Pipeline;

/// <summary>Where a run keeps its cache and writes its results.</summary>
/// <param name="CacheDirectory">The stage cache folder (kept between runs).</param>
/// <param name="OutputDirectory">Where the final model and reports go.</param>
/// <param name="Reporter">Progress and diagnostics sink.</param>
public sealed record PipelineOptions(string CacheDirectory, string OutputDirectory, IPipelineReporter Reporter)
{
    /// <summary>Threads for libtorch and ONNX Runtime (<c>--threads</c>); above 0 it overrides the recipe's 'threads'.</summary>
    public int Threads { get; init; }

    /// <summary>Where teacher runs go (<c>--execution-provider</c>); when set it overrides the recipe's 'execution_provider'.</summary>
    public ExecutionProvider? ExecutionProvider { get; init; }
}

/// <summary>One stage as run (or taken from the cache), with the evaluation of its output.</summary>
/// <param name="Result">What the stage did.</param>
/// <param name="Cached">True when the output came from the cache.</param>
/// <param name="Evaluation">Quality and cost of the stage's output model.</param>
public sealed record StageReport(StageResult Result, bool Cached, ModelEvaluation Evaluation)
{
    /// <summary>The labels-only twin of a distilled student (same student, budget and seed), when trained.</summary>
    public ModelEvaluation? Baseline { get; init; }

    /// <summary>How the labels-only twin was trained (its optimizer steps among the details), when trained.</summary>
    public StageResult? BaselineResult { get; init; }

    /// <summary>Accuracy points the teacher added over the labels-only twin; negative when distillation hurt.</summary>
    public double? GainFromDistillation => Baseline is null ? null : Evaluation.Accuracy - Baseline.Accuracy;
}

/// <summary>Everything a run found.</summary>
/// <param name="Recipe">The recipe.</param>
/// <param name="Teacher">The teacher's evaluation; null when the recipe has no teacher.</param>
/// <param name="Stages">Each stage, in order.</param>
/// <param name="Gates">Each gate's outcome, in recipe order.</param>
/// <param name="OutputModel">Where the final model was written; null when a gate failed and nothing was replaced.</param>
/// <param name="Reports">Report files written.</param>
/// <param name="DataHash">Hash of the data the evaluations were measured on (a baseline records it).</param>
public sealed record PipelineResult(
    Recipe Recipe,
    ModelEvaluation? Teacher,
    IReadOnlyList<StageReport> Stages,
    IReadOnlyList<GateResult> Gates,
    string? OutputModel,
    IReadOnlyList<string> Reports,
    string DataHash = "")
{
    /// <summary>True when every gate passed.</summary>
    public bool GatesPassed => Gates.All(g => g.Passed);

    /// <summary>Where the model's input contract (.data.json) was written; null when a gate failed and nothing was replaced.</summary>
    public string? DataDescription { get; init; }

    /// <summary>The data's class names by class number (data.classes, or the text labels' names); null when the labels are plain numbers.</summary>
    public IReadOnlyList<string>? ClassNames { get; init; }
}

/// <summary>
/// Runs a recipe: builds or loads the student, runs each stage through the cache, evaluates the teacher (when
/// the recipe has one) and every stage's output on the held-out data, checks the gates, and writes the final
/// model and reports.
/// The final model replaces the previous one only when every gate passes.
/// </summary>
public static class CompressionPipeline
{
    /// <summary>What makes token ids fit a table the model file fixes (a teacher's, a student the recipe brings).</summary>
    private const string FixedTableFix = "The table is part of the model: tokenize as the model was trained (its tokenizer, and compact_vocabulary: true if it was trained on a compact vocabulary).";

    /// <summary>Runs <paramref name="recipe"/>.</summary>
    public static PipelineResult Run(Recipe recipe, PipelineOptions options, CancellationToken cancellationToken = default)
    {
        var reporter = options.Reporter;
        PhaseTrace.Mark("pipeline entered (command line and recipe read)");
        Directory.CreateDirectory(options.OutputDirectory);
        var cache = new ArtifactCache(options.CacheDirectory);
        using var outputLock = OutputLock.Acquire(cache.LockFile(Path.Combine(options.OutputDirectory, recipe.Outputs.Model)), reporter, cancellationToken);
        foreach (var stale in cache.RemoveStaleTemporaries())
        {
            reporter.Info($"Removed {stale}, left by a run that was stopped");
        }

        var hashes = HashMemo.Load(cache.Root);
        PhaseTrace.Mark("lock taken, hash memo read");

        var threads = CpuBudget.Resolve(options.Threads, recipe.Threads, CpuBudget.Detect);
        EngineThreads.Use(threads);
        reporter.Info($"Threads: {threads.Threads} ({threads.Source})");
        ExecutionProviders.Use(ExecutionProviders.Resolve(options.ExecutionProvider, recipe.ExecutionProvider));
        if (ExecutionProviders.Current == ExecutionProvider.Cuda)
        {
            reporter.Info($"Teacher runs on CUDA ({OnnxRuntimeGpuBuild.LoadedFrom})");
        }

        // Every model file the recipe names passes the project's own loader and checker before anything reads it; a
        // file unchanged since it passed (its hash remembered, its facts cached) is not parsed again.
        string[] modelFiles = [.. recipe.Teachers.Select(t => t.Path), .. recipe.Student.ModelPath is { } student ? [student] : Array.Empty<string>()];
        if (!modelFiles.All(f => hashes.TryGet(ModelKey(f)) is { } known && ModelFacts.Known(cache, known)))
        {
            OnnxModelFile.Verify(modelFiles);
        }

        PhaseTrace.Mark("model files verified");

        // The data is read only when something needs its samples: a stage or an evaluation to run, a check that
        // failed, or a summary not cached yet. A run with nothing to do reads no data file.
        LoadedData? loaded = null;
        LoadedData Data()
        {
            if (loaded is null)
            {
                reporter.Info($"Reading data ({recipe.Data.Format})");
                loaded = DataLoader.Load(recipe.Data, TaskCatalog.Get(recipe.Task).Labels);
            }

            return loaded;
        }

        try
        {
            return RunOn(recipe, options, cache, hashes, Data, cancellationToken);
        }
        finally
        {
            loaded?.Dispose();
        }
    }

    private static PipelineResult RunOn(Recipe recipe, PipelineOptions options, ArtifactCache cache, HashMemo hashes, Func<LoadedData> data, CancellationToken cancellationToken)
    {
        var reporter = options.Reporter;
        var task = TaskCatalog.Get(recipe.Task);
        var dataHash = task.DataHash(HashData(recipe.Data, hashes));
        var teacherHashes = recipe.Teachers.Select(t => HashModel(hashes, t.Path)).ToList();
        hashes.Save();
        PhaseTrace.Mark("inputs hashed");
        var summary = DataSummary.Of(cache, dataHash, data);
        PhaseTrace.Mark("data summary");
        var teacherHash = teacherHashes.Count switch
        {
            0 => null,
            1 => teacherHashes[0],
            _ => CombinedTeacherHash(recipe.Teachers, teacherHashes),
        };
        var evaluateOptions = recipe.Stages.Select(s => s.Options).OfType<EvaluateOptions>().LastOrDefault() ?? new EvaluateOptions();

        var classes = 0;
        var tokens = new TokenRange(data, summary.TokenIds, summary.TrainTensors);
        foreach (var (spec, i) in recipe.Teachers.Select((t, i) => (t, i)))
        {
            // Schema check before any work: every teacher must take the data's tensors (every split has the
            // training split's tensors: DataLoader checked) and agree on the classes.
            var schema = TeacherSchemaOf(cache, spec.Path, teacherHashes[i], data, dataHash);
            var facts = ModelFacts.Of(cache, spec.Path, teacherHashes[i]);
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

        PhaseTrace.Mark("teacher schema and token check");

        var classesFrom = "teacher";
        if (recipe.Student.ModelPath is { } studentPath)
        {
            var width = StudentSchemaOf(cache, studentPath, HashModel(hashes, studentPath), recipe.HasTeacher, data, dataHash);
            if (!recipe.HasTeacher)
            {
                // Without a teacher the student's own output says how many classes there are.
                (classes, classesFrom) = (width, "student");
            }
        }
        else if (!recipe.HasTeacher)
        {
            (classes, classesFrom) = (task.FixedOutputWidth ?? SummaryClasses(summary) ?? DataClasses(data()), "data");
        }

        if (task.FixedOutputWidth is { } fixedWidth && fixedWidth != classes)
        {
            task.CheckLabels(data().Train, classes, classesFrom);
        }

        // The remembered label ranges say whether every label is a class; only a failing check reads the labels, to
        // name the bad ones.
        if (summary.Splits.Any(s => s.MinLabel < 0 || s.MaxLabel >= classes))
        {
            foreach (var (_, split) in data().Splits())
            {
                CheckLabels(split, classes, classesFrom);
            }
        }

        PhaseTrace.Mark("labels checked");

        StageContext context = null!;
        context = new StageContext(
            recipe.Path, recipe.HasTeacher ? recipe.Teacher : null, data, dataHash, teacherHash,
            recipe.HasTeacher
                ? (split, splitName) => [.. recipe.Teachers.Select((t, i) => (TeacherLogits(cache, t.Path, teacherHashes[i], split, splitName, dataHash, evaluateOptions.BatchSize, reporter), t.Weight))]
                : null,
            classes, reporter, cancellationToken)
        {
            Task = task,
            // Kept apart from the stage entries: a killed run's checkpoints outlive it, a finished stage removes its own.
            CheckpointRoot = Path.Combine(cache.Root, "checkpoints"),
            RunStage = (stage, input) => RunCached(cache, context, stage, input, HashModel(hashes, input)),
            ComputeTeacherFeatures = (tensors, split, splitName) => TeacherFeatures(cache, recipe.Teacher, teacherHashes[0], tensors, split, splitName, dataHash, evaluateOptions.BatchSize, reporter),
        };
        using var contextScope = context;

        // The student is built before any long work so that options the data rules out fail fast.
        var (modelPath, modelHash) = InitialStudent(recipe, cache, hashes, summary, classes);
        var studentFacts = ModelFacts.Of(cache, modelPath, modelHash);
        tokens.Check(
            studentFacts.TableTuples,
            studentFacts.Inputs,
            recipe.Student.ModelPath is null ? "built-in student" : "student",
            recipe.Student.ModelPath ?? recipe.Student.Architecture!,
            recipe.Student.ModelPath is null ? "Set compact_vocabulary: true or the student's vocab_size >= {needed} (0 takes the tokenizer's size)." : FixedTableFix);
        ModelEvaluation? teacher = null;
        PhaseTrace.Mark("initial student");
        TeacherOutputs? teacherOutputs = null;
        if (recipe.HasTeacher)
        {
            (teacher, var outputs) = EvaluateTeacher(cache, task, recipe.Teacher, teacherHashes[0], () => data().Test, dataHash, evaluateOptions);
            teacherOutputs = new TeacherOutputs(teacherHashes[0], outputs);
            reporter.Info($"Teacher: {task.Describe(teacher)}, {teacher.SizeMb.ToString("0.###", CultureInfo.InvariantCulture)} MB");
        }
        else
        {
            reporter.Info($"No teacher: {classes} classes, as the {classesFrom} says; the evaluations measure no agreement or KL");
        }

        PhaseTrace.Mark("teacher evaluated");
        var stages = new List<StageReport>();
        foreach (var spec in recipe.Stages)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var stage = Create(spec);
            if (stage is null)
            {
                continue;
            }

            var (inputPath, inputHash) = (modelPath, modelHash);
            var run = RunCached(cache, context, stage, inputPath, inputHash);
            modelPath = run.ModelPath;
            modelHash = HashModel(hashes, modelPath);
            var evaluation = Evaluate(cache, task, stage.Kind, modelPath, modelHash, () => data().Test, dataHash, evaluateOptions, teacherOutputs);
            reporter.Info($"{stage.Kind}: {run.Result.Summary}; {task.Describe(evaluation)}, {evaluation.SizeMb.ToString("0.###", CultureInfo.InvariantCulture)} MB");
            ModelEvaluation? baseline = null;
            CachedStageRun? twin = null;
            if (spec.Options is DistillOptions { Baseline: true, Alpha: > 0 } distill && task.HasLabelsOnlyTwin)
            {
                // The seeds' comparison: the same student, budget and seed on the labels alone. A student that also
                // learned from an unlabelled pool took more steps per epoch than a pass over the labels: the twin
                // takes as many, cycling over the labels, or the gain would partly be the pool's extra steps.
                var pooled = run.Result.Details.GetValueOrDefault("unlabelled_samples") is { } pool && pool != "0";
                var twinOptions = new FinetuneOptions(distill)
                {
                    TensorBoardDirectory = null,
                    StepsPerEpoch = pooled ? int.Parse(run.Result.Details["steps_per_epoch"], CultureInfo.InvariantCulture) : 0,
                };
                twin = RunCached(cache, context, new DistillStage(twinOptions), inputPath, inputHash, "baseline");
                baseline = Evaluate(cache, task, "baseline", twin.ModelPath, HashModel(hashes, twin.ModelPath), () => data().Test, dataHash, evaluateOptions, teacherOutputs);
                reporter.Info($"{stage.Kind}: {TwinSummary(evaluation, run.Result, baseline, twin.Result)}");
            }

            stages.Add(new StageReport(run.Result, run.Cached, evaluation) { Baseline = baseline, BaselineResult = twin?.Result });
            PhaseTrace.Mark($"stage {stage.Kind}");
        }

        var final = stages[^1].Evaluation;
        var baselineFile = BaselineFile.Load(recipe.Baseline);
        if (baselineFile is null && recipe.Gates.Any(g => g.Expression.Reference == "baseline"))
        {
            reporter.Report(Diagnostic.Warning(
                DiagnosticCodes.BaselineMissing,
                $"No baseline file yet ({recipe.Baseline}): the 'baseline.' gates are skipped on this run. Accept this run's model as the baseline with 'dotnet compress baseline accept {recipe.Path}' and commit the file.",
                recipe.Path));
        }

        // The labels are for the paired test against a baseline's predictions.
        var gates = GateEvaluator.Evaluate(recipe.Gates, recipe.Baseline, final, teacher, baselineFile, baselineFile is null ? null : summary.TestLabels(), dataHash);
        PhaseTrace.Mark("gates");
        string? outputModel = null;
        string? dataDescription = null;
        if (gates.All(g => g.Passed))
        {
            outputModel = Path.Combine(options.OutputDirectory, recipe.Outputs.Model);
            AtomicFile.Copy(modelPath, outputModel);
            // The model's input contract (tensor names and shapes, label names, tokenizer and compact
            // vocabulary, normalisation): what an app needs to feed the model as it was trained.
            dataDescription = Path.Combine(options.OutputDirectory, $"{Path.GetFileNameWithoutExtension(recipe.Outputs.Model)}.data.json");
            AtomicFile.WriteAllText(dataDescription, summary.DescriptionJson());
        }

        PhaseTrace.Mark("model and data description written");

        hashes.Save();
        var result0 = new PipelineResult(recipe, teacher, stages, gates, outputModel, [], dataHash) { DataDescription = dataDescription, ClassNames = summary.LabelNames };
        var reports = ReportWriter.Write(result0, options.OutputDirectory, reporter);
        PhaseTrace.Mark("reports written");
        return result0 with { Reports = reports };
    }

    /// <summary>
    /// Runs <paramref name="stage"/> on <paramref name="inputPath"/> (whose hash is <paramref name="inputHash"/>),
    /// or takes its output from <paramref name="cache"/>; <paramref name="label"/> is what progress calls the run
    /// (the stage kind by default).
    /// </summary>
    private static CachedStageRun RunCached(ArtifactCache cache, StageContext context, IStage stage, string inputPath, string inputHash, string? label = null)
    {
        var key = new ContentHash().Add("engine", EngineInfo.Version).Add("stage", stage.Kind).Add("input", inputHash);
        stage.AddToKey(key, context);
        var keyText = key.Finish();
        var entry = cache.TryGet(stage.Kind, keyText);
        var cached = entry is not null;
        context.Reporter.StageStarted(label ?? stage.Kind, cached);
        entry ??= cache.Put(stage.Kind, keyText, folder =>
        {
            var outputPath = Path.Combine(folder, ArtifactCache.ModelFile);
            return StageOutputCleanup.Apply(outputPath, stage.Run(context, inputPath, outputPath), context);
        });
        return new CachedStageRun(Path.Combine(entry, ArtifactCache.ModelFile), ArtifactCache.ReadResult<StageResult>(entry), cached);
    }

    /// <summary>
    /// The log line of a twin: its accuracy, the gain, and both step counts, said plainly when they differ (early
    /// stopping may end either run sooner; each stops on its own validation accuracy).
    /// </summary>
    private static string TwinSummary(ModelEvaluation student, StageResult studentRun, ModelEvaluation twin, StageResult twinRun)
    {
        var gain = student.Accuracy - twin.Accuracy;
        var (studentSteps, twinSteps) = (studentRun.Details.GetValueOrDefault("steps"), twinRun.Details.GetValueOrDefault("steps"));
        var steps = studentSteps == twinSteps
            ? $"both {studentSteps} optimizer steps"
            : $"{twinSteps} optimizer steps against the student's {studentSteps}, not the same budget: {StoppedEarly("the twin", twinRun)}{StoppedEarly("the student", studentRun)}".TrimEnd(' ', ';', ':');
        return string.Create(
            CultureInfo.InvariantCulture,
            $"the labels-only twin reaches {twin.Accuracy:P2} ({steps}); gain from distillation {gain * 100:+0.00;-0.00} points{(gain <= 0 ? " (distillation did not help this student)" : "")}");

        static string StoppedEarly(string who, StageResult run) =>
            run.Details.GetValueOrDefault("stopped_early") == "true" ? $"early stopping ended {who} after epoch {run.Details.GetValueOrDefault("epochs_run")}; " : "";
    }

    /// <summary>
    /// The teacher's output and classes, after checking in ONNX Runtime that it takes the data's tensors. The outcome
    /// is cached under the teacher's and the data's hashes (only a passed check makes an entry), so a run with
    /// nothing to do opens no ONNX Runtime session.
    /// </summary>
    private static TeacherSchema TeacherSchemaOf(ArtifactCache cache, string teacherPath, string teacherHash, Func<LoadedData> data, string dataHash)
    {
        var key = new ContentHash().Add("engine", EngineInfo.Version).Add("teacher", teacherHash).Add("data", dataHash).Finish();
        var entry = cache.TryGet("teacher-schema", key) ?? cache.Put("teacher-schema", key, _ =>
        {
            using var runner = new OnnxRunner(teacherPath);
            runner.Bind(data().Train, "teacher");
            return new TeacherSchema(runner.OutputName, runner.OutputWidth);
        });
        return ArtifactCache.ReadResult<TeacherSchema>(entry);
    }

    /// <summary>What the run needs to know of a teacher that passed the schema check.</summary>
    private sealed record TeacherSchema(string Output, int Classes);

    /// <summary>
    /// Checks that the student file the recipe brings takes the data's tensors (without a teacher, in ONNX Runtime,
    /// which also says its output width: the classes) and returns the width (0 with a teacher). Cached as the
    /// teacher's check is: only a passed check makes an entry.
    /// </summary>
    private static int StudentSchemaOf(ArtifactCache cache, string studentPath, string studentHash, bool hasTeacher, Func<LoadedData> data, string dataHash)
    {
        var key = new ContentHash().Add("engine", EngineInfo.Version).Add("student", studentHash).Add("data", dataHash).Add("teacher", hasTeacher ? "yes" : "no").Finish();
        var entry = cache.TryGet("student-schema", key) ?? cache.Put("student-schema", key, _ =>
        {
            if (hasTeacher)
            {
                DataSchema.Bind(data().Train, OnnxRunner.ReadInputs(studentPath), "student", studentPath);
                return new StudentSchema(0);
            }

            using var runner = new OnnxRunner(studentPath, threads: 1);
            runner.Bind(data().Train, "student");
            return new StudentSchema(runner.OutputWidth);
        });
        return ArtifactCache.ReadResult<StudentSchema>(entry).Classes;
    }

    /// <summary>A student file's output width, when the run takes the classes from it.</summary>
    private sealed record StudentSchema(int Classes);

    /// <summary>The classes the data says (<see cref="DataClasses"/>) as its summary tells them; null when it cannot.</summary>
    private static int? SummaryClasses(DataSummary summary) =>
        summary.LabelNames?.Count
        ?? (summary.Splits.Where(s => s.MaxLabel is not null).Select(s => s.MaxLabel!.Value).DefaultIfEmpty(-1).Max() is var max and >= 0
            ? (int)Math.Min(int.MaxValue, max + 1)
            : null);

    /// <summary>A model file's memo key.</summary>
    private static string ModelKey(string path) => $"model {Path.GetFullPath(path)}";

    /// <summary>A model file's hash, computed again only when it or one of its external data files changed.</summary>
    private static string HashModel(HashMemo hashes, string path) =>
        hashes.Get(ModelKey(path), () => (ModelHash.ComputeFile(path, out var files), files));

    private static IStage? Create(StageSpec spec) => spec.Options switch
    {
        SweepOptions sweep => new SweepStage(sweep, spec.Line),
        TrainingStageOptions training => new DistillStage(training, spec.Line),
        PruneOptions prune => new PruneStage(prune),
        FactorizeOptions factorize => new FactorizeStage(factorize),
        QuantizeOptions quantize => new QuantizeStage(quantize),
        EvaluateOptions => null, // Evaluation runs after every stage; this entry only sets its options.
        _ => throw new InvalidOperationException($"No stage for {spec.Kind}."),
    };

    private static (string Path, string Hash) InitialStudent(Recipe recipe, ArtifactCache cache, HashMemo hashes, DataSummary data, int classes)
    {
        if (recipe.Student.ModelPath is { } path)
        {
            return (path, HashModel(hashes, path));
        }

        var name = recipe.Student.Architecture!;
        var options = recipe.Student.Options;
        var inputs = new ArchitectureInputs([.. data.SampleShape.Select(d => (int)d)], classes, data.VocabularySize ?? 0);
        var key = new ContentHash()
            .Add("engine", EngineInfo.Version)
            .Add("architecture", name)
            .Add("options", options is null ? string.Empty : System.Text.Json.JsonSerializer.Serialize(options, options.GetType()))
            .Add("inputs", System.Text.Json.JsonSerializer.Serialize(inputs))
            .Finish();
        var entry = cache.TryGet("student", key) ?? cache.Put("student", key, folder =>
        {
            ModelProto model;
            try
            {
                model = ArchitectureRegistry.Build(name, options, inputs);
            }
            catch (InvalidArchitectureOptionsException e)
            {
                throw new CompressionException(
                    [.. e.Problems.Select(p => Diagnostic.Error(DiagnosticCodes.RecipeInvalidValue, $"student architecture '{name}' for this data: {p}.", recipe.Path, recipe.Student.Line))]);
            }

            OnnxModelFile.Save(model, Path.Combine(folder, ArtifactCache.ModelFile));
            return new StageResult("student", $"built-in {name} for samples of [{string.Join(", ", inputs.SampleShape)}] and {classes} classes", new Dictionary<string, string>(), null, 0);
        });
        var modelPath = Path.Combine(entry, ArtifactCache.ModelFile);
        return (modelPath, HashModel(hashes, modelPath));
    }

    /// <summary>
    /// The teacher's evaluation and its test-set outputs, which every student's agreement and KL are measured
    /// against. The outputs are cached beside the evaluation (outputs.bin, float32 row-major), so a cached run
    /// does not run the teacher again.
    /// </summary>
    private static (ModelEvaluation Evaluation, float[] Outputs) EvaluateTeacher(
        ArtifactCache cache, ITask task, string teacherPath, string teacherHash, Func<Dataset> test, string dataHash, EvaluateOptions options)
    {
        const string OutputsFile = "outputs.bin";
        var key = EvaluationKey("teacher", teacherHash, dataHash, options).Finish();
        var entry = cache.TryGet("evaluate", key) ?? cache.Put("evaluate", key, folder =>
        {
            var evaluation = task.Measure("teacher", teacherPath, test(), options, null, out var outputs, ExecutionProviders.Current);
            using var file = File.Create(Path.Combine(folder, OutputsFile));
            file.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(outputs.AsSpan()));
            return evaluation;
        });
        var bytes = File.ReadAllBytes(Path.Combine(entry, OutputsFile));
        return (ArtifactCache.ReadResult<ModelEvaluation>(entry), System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes).ToArray());
    }

    /// <summary>
    /// A stage output's evaluation, cached by model, data, evaluation options and teacher (agreement and KL
    /// depend on it; without a teacher, <paramref name="teacher"/> is null and they are not measured). The cached
    /// result.json keeps the predictions for McNemar's test against a baseline.
    /// </summary>
    private static ModelEvaluation Evaluate(
        ArtifactCache cache, ITask task, string name, string modelPath, string modelHash, Func<Dataset> test, string dataHash, EvaluateOptions options,
        TeacherOutputs? teacher)
    {
        var key = EvaluationKey(name, modelHash, dataHash, options).Add("teacher", teacher?.Hash ?? "none").Finish();
        var entry = cache.TryGet("evaluate", key) ?? cache.Put("evaluate", key, _ => task.Measure(name, modelPath, test(), options, teacher?.TestOutputs, out var outputs));
        return ArtifactCache.ReadResult<ModelEvaluation>(entry);
    }

    /// <summary>
    /// Classes when neither a teacher nor a student file says: the recipe's (or the text labels') class names,
    /// else the largest label of any labelled split plus one.
    /// </summary>
    private static int DataClasses(LoadedData data)
    {
        if (data.Description.LabelNames is { } names)
        {
            return names.Count;
        }

        var labels = data.Splits().Select(s => s.Data.Labels).OfType<long[]>().Where(l => l.Length > 0).ToList();
        if (labels.Count == 0)
        {
            throw CompressionException.Error(
                DiagnosticCodes.DataSchemaMismatch,
                "The recipe has no teacher and the data no labels, so nothing says how many classes the student has: add labels or a teacher, or list the classes in data.classes.",
                data.Train.Source);
        }

        return (int)Math.Min(int.MaxValue, labels.Max(l => l.Max()) + 1);
    }

    private static string CombinedTeacherHash(IReadOnlyList<TeacherSpec> teachers, IReadOnlyList<string> hashes)
    {
        var key = new ContentHash();
        for (var i = 0; i < teachers.Count; i++)
        {
            key.Add($"teacher {i}", hashes[i]).Add($"weight {i}", teachers[i].Weight.ToString("R", CultureInfo.InvariantCulture));
        }

        return key.Finish();
    }

    /// <summary>Every evaluation option changes the numbers (latency settings the latency), so all are in the key.</summary>
    private static ContentHash EvaluationKey(string name, string modelHash, string dataHash, EvaluateOptions options) =>
        new ContentHash().Add("engine", EngineInfo.Version).Add("name", name).Add("model", modelHash).Add("data", dataHash)
            .Add("options", System.Text.Json.JsonSerializer.Serialize(options));

    /// <summary>The teacher's outputs on the test split, and the teacher's hash (part of every evaluation's key).</summary>
    private sealed record TeacherOutputs(string Hash, float[] TestOutputs);

    private static float[] TeacherLogits(ArtifactCache cache, string teacherPath, string teacherHash, Dataset train, string splitName, string dataHash, int batchSize, IPipelineReporter reporter)
    {
        var key = new ContentHash().Add("engine", EngineInfo.Version).Add("teacher", teacherHash).Add("data", dataHash).Add("split", splitName).Finish();
        const string LogitsFile = "logits.bin";
        var entry = cache.TryGet("teacher-logits", key);
        if (entry is null)
        {
            reporter.Info($"Running the teacher on {train.Count} {SplitWords(splitName)} samples (cached for later runs)");
            entry = cache.Put("teacher-logits", key, folder =>
            {
                using var runner = new OnnxRunner(teacherPath, provider: ExecutionProviders.Current);
                var logits = runner.Run(train, batchSize, new ReporterProgress(reporter, $"teacher over the {SplitWords(splitName)} samples"));
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
    /// The teacher's values of intermediate <paramref name="tensors"/> on <paramref name="split"/>, cached as one NPY
    /// file per tensor (written batch by batch, read back memory-mapped) under the teacher, data, split and tensors.
    /// </summary>
    private static Dataset TeacherFeatures(ArtifactCache cache, string teacherPath, string teacherHash, IReadOnlyList<string> tensors, Dataset split, string splitName, string dataHash, int batchSize, IPipelineReporter reporter)
    {
        var key = new ContentHash().Add("engine", EngineInfo.Version).Add("teacher", teacherHash).Add("data", dataHash).Add("split", splitName)
            .Add("tensors", string.Join("\n", tensors)).Finish();
        static string FileOf(int index) => $"feature{index}.npy";
        var entry = cache.TryGet("teacher-features", key);
        if (entry is null)
        {
            reporter.Info($"Running the teacher for {tensors.Count} hint tensor{(tensors.Count == 1 ? "" : "s")} on {split.Count} {SplitWords(splitName)} samples (cached for later runs)");
            entry = cache.Put("teacher-features", key, folder =>
            {
                using var runner = OnnxRunner.WithIntermediateOutputs(teacherPath, tensors, provider: ExecutionProviders.Current);
                var writers = new NpyWriter?[tensors.Count];
                var sampleShapes = new long[tensors.Count][];
                try
                {
                    runner.Run(split, batchSize, tensors, (start, size, values) =>
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
                    new ReporterProgress(reporter, $"teacher hint tensors over the {SplitWords(splitName)} samples"));
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
    /// Hash of every data option and every data file's name and contents (not its folder: moving a checkout
    /// keeps the cache), so any change to what the stages see invalidates their cached outputs.
    /// </summary>
    internal static string HashData(DataSpec data)
    {
        var (hash, files) = HashDataCore(data);
        foreach (var (label, file) in files)
        {
            hash.AddFile(label, file);
        }

        return hash.Finish();
    }

    /// <summary>
    /// <see cref="HashData(DataSpec)"/>, remembered in <paramref name="hashes"/> under the data options: computed
    /// again when an option or any data file changes.
    /// </summary>
    internal static string HashData(DataSpec data, HashMemo hashes)
    {
        var (options, files) = HashDataCore(data);
        var key = options.Add("files", string.Join("\n", files.Select(f => $"{f.Label}={Path.GetFullPath(f.Path)}"))).Finish();
        return hashes.Get($"data {key}", () => (HashData(data), [.. files.Select(f => f.Path)]));
    }

    /// <summary>The hash of every data option, and the data files (with their labels) that follow it in the hash.</summary>
    private static (ContentHash Options, List<(string Label, string Path)> Files) HashDataCore(DataSpec data)
    {
        var files = new List<(string Label, string Path)>();
        var json = new System.Text.Json.JsonSerializerOptions { Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() } };
        var hash = new ContentHash()
            .Add("format", data.Format)
            .Add("scale", data.Scale.ToString("R", CultureInfo.InvariantCulture))
            .Add("split", System.Text.Json.JsonSerializer.Serialize(data.Split, json))
            .Add("normalize", System.Text.Json.JsonSerializer.Serialize(data.Normalize, json))
            .Add("csv", System.Text.Json.JsonSerializer.Serialize(data.Csv, json))
            .Add("npz", System.Text.Json.JsonSerializer.Serialize(data.Npz, json))
            .Add("classes", System.Text.Json.JsonSerializer.Serialize(data.Classes, json));
        if (data.Text is { } text)
        {
            var tokenizer = text.Tokenizer with { Source = text.Tokenizer.Kind == TokenizerKind.Tiktoken ? text.Tokenizer.Source : Path.GetFileName(text.Tokenizer.Source) };
            hash.Add("text", System.Text.Json.JsonSerializer.Serialize(text with { Tokenizer = tokenizer }, json))
                .Add("tokenizers", typeof(Microsoft.ML.Tokenizers.Tokenizer).Assembly.GetName().Version?.ToString() ?? "");
            if (text.Tokenizer.Kind != TokenizerKind.Tiktoken)
            {
                files.Add(("tokenizer", text.Tokenizer.Source));
            }
        }

        foreach (var (role, split) in new[] { ("file", data.File), ("train", data.Train), ("test", data.Test), ("validation", data.Validation), ("unlabelled", data.Unlabelled) })
        {
            if (split is null)
            {
                continue;
            }

            foreach (var (name, file) in split.InputFiles())
            {
                files.Add(($"{role}.{name}:{Path.GetFileName(file)}", file));
            }

            if (split.Labels is { } labels)
            {
                files.Add(($"{role}.labels:{Path.GetFileName(labels)}", labels));
            }
        }

        return (hash, files);
    }

    /// <summary>
    /// Every label must be one of the run's classes (0 to <paramref name="classes"/> - 1; the teacher's output width,
    /// or without a teacher the student's or the data's: <paramref name="classesFrom"/> names which): MC2020 listing the
    /// first ~20 bad labels with their file and line (or row), and a count of the rest.
    /// </summary>
    internal static void CheckLabels(Dataset data, int classes, string classesFrom = "teacher")
    {
        if (data.Labels is null)
        {
            return;
        }

        var bad = new List<int>();
        for (var i = 0; i < data.Count; i++)
        {
            if (data.Labels[i] < 0 || data.Labels[i] >= classes)
            {
                bad.Add(i);
            }
        }

        if (bad.Count == 0)
        {
            return;
        }

        const int Shown = 20;
        var list = string.Join("; ", bad.Take(Shown).Select(i => $"Label {data.Labels[i]} of sample {i} ({data.LocateLabel(i)})"));
        var rest = bad.Count > Shown ? $"; and {bad.Count - Shown} more" : "";
        var names = data.Description.LabelNames is { } known ? $" The data's classes: {string.Join(", ", known)}." : "";
        throw CompressionException.Error(
            DiagnosticCodes.DataSchemaMismatch,
            $"{bad.Count} label{(bad.Count == 1 ? " is" : "s are")} outside the {classesFrom}'s {classes} classes (0 to {classes - 1}): {list}{rest}.{names}",
            data.LabelOrigin.File,
            data.LabelLine(bad[0]));
    }
}
