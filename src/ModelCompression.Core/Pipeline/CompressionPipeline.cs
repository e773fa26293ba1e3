using System.Globalization;
using ModelCompression.Common;
using ModelCompression.Data;
using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;
using ModelCompression.Gates;
using ModelCompression.Inference;
using ModelCompression.Onnx;
using ModelCompression.Recipes;
using ModelCompression.Stages;
using ModelCompression.Tasks;
using ModelCompression.Threading;

namespace ModelCompression.Pipeline;

/// <summary>
/// Runs a recipe: builds or loads the student, runs each stage through the cache, evaluates the teacher (when
/// the recipe has one) and every stage's output on the held-out data, and checks the gates. Publishing the final
/// model and writing the reports is <c>Runs.CompressionRun</c>'s, which holds the output lock around this.
/// </summary>
internal static class CompressionPipeline
{
    /// <summary>Runs <paramref name="recipe"/> with <paramref name="cache"/>, whose lock on the recipe's outputs the caller holds.</summary>
    internal static PipelineResult Run(Recipe recipe, PipelineOptions options, ArtifactCache cache, CancellationToken cancellationToken)
    {
        var reporter = options.Reporter;
        var hashes = OpenCache(cache, reporter);
        UseThreadsAndProvider(recipe, options);
        VerifyModelFiles(recipe, cache, hashes);

        // The data is read only when something needs its samples: a stage or an evaluation to run, a check that
        // failed, or a summary not cached yet. A run with nothing to do reads no data file.
        var task = TaskCatalog.Get(recipe.Task) as IPredictionTask
            ?? throw new InvalidOperationException($"task: {recipe.Task} does not run through the prediction pipeline.");
        using var data = new LazyData(recipe.Data, task.Labels, recipe.EndpointTeacher is not null, reporter);
        var dataHash = task.DataHash(DataHashing.HashData(recipe.Data, hashes));
        var evaluateOptions = Planner.EvaluationOptions(recipe);
        var teachers = new TeacherOutputs(recipe.Teachers, hashes, cache, dataHash, data.Get, evaluateOptions.BatchSize, reporter, cancellationToken);
        hashes.Save();
        PhaseTrace.Mark("inputs hashed");
        var summary = DataSummary.Of(cache, dataHash, data.Get);
        PhaseTrace.Mark("data summary");

        var tokens = new TokenRange(data.Get, summary.TokenIds, summary.TrainTensors);
        var teacherClasses = teachers.CheckSchemas(tokens, summary.LabelNames);
        PhaseTrace.Mark("teacher schema and token check");
        var students = new StudentFactory(recipe, cache, hashes, dataHash, data.Get);
        var (classes, classesFrom) = ClassesAndLabels.Resolve(task, recipe.HasTeacher, teacherClasses, students.CheckSchema(), summary, data.Get);
        ClassesAndLabels.CheckLabels(task, summary, data.Get, classes, classesFrom);
        PhaseTrace.Mark("labels checked");

        var runner = new StageRunner(cache, hashes);
        using var context = new StageContext(
            recipe.Path, recipe.HasTeacher ? recipe.Teacher : null, data.Get, dataHash, teachers.Hash, recipe.HasTeacher ? teachers.Logits : null, classes, reporter, runner, cancellationToken)
        {
            // Kept apart from the stage entries: a killed run's checkpoints outlive it, a finished stage removes its own.
            CheckpointRoot = Path.Combine(cache.Root, "checkpoints"),
            ComputeTeacherFeatures = teachers.Features,
            Task = task,
        };
        var (modelPath, modelHash) = students.Initial(summary, classes, tokens);
        // The plan: every stage's checks, from cached facts, before the teacher is evaluated or anything trains.
        var plan = Planner.Plan(recipe, summary, classes, teachers.FirstFacts(), (modelPath, ModelFacts.Of(cache, modelPath, modelHash)));
        PhaseTrace.Mark("initial student");
        var (teacher, teacherTest) = teachers.Evaluate(task, () => data.Get().Test, evaluateOptions);
        reporter.Info(teacher is null ? $"No teacher: {classes} classes, as the {classesFrom} says; the evaluations measure no agreement or KL" : $"Teacher: {Brief(task, teacher)}");
        PhaseTrace.Mark("teacher evaluated");

        var evaluations = new Evaluations(cache, task, dataHash, evaluateOptions, () => data.Get().Test, teacherTest);
        var twins = new LabelsOnlyTwin(runner, context, evaluations, hashes);
        var stages = new List<StageReport>();
        foreach (var planned in plan.Stages)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (planned.Create() is not { } stage)
            {
                continue;
            }

            var (inputPath, inputHash) = (modelPath, modelHash);
            var run = runner.Run(context, stage, inputPath, inputHash);
            (modelPath, modelHash) = (run.ModelPath, hashes.Model(run.ModelPath));
            var evaluation = evaluations.Of(stage.Kind, modelPath, modelHash);
            reporter.Info($"{stage.Kind}: {run.Result.Summary}; {Brief(task, evaluation)}");
            var twin = task.HasLabelsOnlyTwin ? twins.For(planned.Spec.Descriptor, planned.Spec.Options, run, evaluation, inputPath, inputHash) : null;
            stages.Add(new StageReport(run.Result, run.Cached, evaluation) { Cache = run.Use, Baseline = twin?.Evaluation, BaselineResult = twin?.Result, GainFromDistillation = twin?.Gain });
            PhaseTrace.Mark($"stage {stage.Kind}");
        }

        var gates = CheckGates(recipe, stages[^1].Evaluation, teacher, summary.TestLabels, dataHash, reporter);
        hashes.Save();
        return new PipelineResult(recipe, teacher, stages, gates, null, [], dataHash) { ClassNames = summary.LabelNames, FinalModel = modelPath, Data = summary };
    }

    /// <summary>Removes what a stopped run left in the cache (the caller holds the lock) and reads the hash memo.</summary>
    internal static HashMemo OpenCache(ArtifactCache cache, IPipelineReporter reporter)
    {
        foreach (var stale in cache.RemoveStaleTemporaries())
        {
            reporter.Info($"Removed {stale}, left by a run that was stopped");
        }

        var hashes = HashMemo.Load(cache.Root);
        PhaseTrace.Mark("lock taken, hash memo read");
        return hashes;
    }

    /// <summary>An evaluation as the log lines give it: the task's headline ("accuracy 85.00 %"), then the size ("0.1 MB").</summary>
    private static string Brief(IPredictionTask task, ModelEvaluation evaluation) =>
        $"{task.Describe(evaluation)}, {evaluation.SizeMb.ToString("0.###", CultureInfo.InvariantCulture)} MB";

    /// <summary>Sets the run's thread budget and execution provider; returns the threads.</summary>
    internal static int UseThreadsAndProvider(Recipe recipe, PipelineOptions options)
    {
        var threads = CpuBudget.Resolve(options.Threads, recipe.Threads, CpuBudget.Detect);
        EngineThreads.Use(threads);
        options.Reporter.Info($"Threads: {threads.Threads} ({threads.Source})");
        ExecutionProviders.Use(ExecutionProviders.Resolve(options.ExecutionProvider, recipe.ExecutionProvider));
        if (ExecutionProviders.Current == ExecutionProvider.Cuda)
        {
            options.Reporter.Info($"Teacher runs on CUDA ({OnnxRuntimeGpuBuild.LoadedFrom})");
        }

        return threads.Threads;
    }

    /// <summary>
    /// Every model file the recipe names passes the project's own loader and checker before anything reads it; a
    /// file unchanged since it passed (its hash remembered, its facts cached) is not parsed again.
    /// </summary>
    private static void VerifyModelFiles(Recipe recipe, ArtifactCache cache, HashMemo hashes)
    {
        // An endpoint teacher has no file here.
        string[] modelFiles = [.. recipe.Teachers.Where(t => t.Endpoint is null).Select(t => t.Path), .. recipe.Student.ModelPath is { } student ? [student] : Array.Empty<string>()];
        if (!modelFiles.All(f => hashes.TryGet(HashMemo.ModelKey(f)) is { } known && ModelFacts.Known(cache, known)))
        {
            OnnxModelFile.Verify(modelFiles);
        }

        PhaseTrace.Mark("model files verified");
    }

    /// <summary>The gates on the final evaluation; the labels are for the paired test against a baseline's predictions.</summary>
    internal static IReadOnlyList<GateResult> CheckGates(Recipe recipe, ModelEvaluation final, ModelEvaluation? teacher, Func<IReadOnlyList<long>> labels, string dataHash, IPipelineReporter reporter)
    {
        var baselineFile = BaselineFile.Load(recipe.Baseline);
        if (baselineFile is null && recipe.Gates.Any(g => g.Expression.Reference == "baseline"))
        {
            reporter.Report(Diagnostic.Warning(
                DiagnosticCodes.BaselineMissing,
                $"No baseline file yet ({recipe.Baseline}): the 'baseline.' gates are skipped on this run. Accept this run's model as the baseline with 'dotnet compress baseline accept {recipe.Path}' and commit the file.",
                recipe.Path));
        }

        var gates = GateEvaluator.Evaluate(recipe.Gates, recipe.Baseline, final, teacher, baselineFile, baselineFile is null ? null : labels(), dataHash);
        PhaseTrace.Mark("gates");
        return gates;
    }

    /// <summary>The run's data, read on first use and disposed with the run; with <paramref name="keepTexts"/> text samples keep their raw texts (an endpoint teacher reads them).</summary>
    private sealed class LazyData(DataSpec spec, LabelKind labels, bool keepTexts, IPipelineReporter reporter) : IDisposable
    {
        private LoadedData? _loaded;

        public LoadedData Get()
        {
            if (_loaded is null)
            {
                reporter.Info($"Reading data ({spec.Format})");
                _loaded = DataLoader.Load(spec, labels, keepTexts);
            }

            return _loaded;
        }

        public void Dispose() => _loaded?.Dispose();
    }
}
