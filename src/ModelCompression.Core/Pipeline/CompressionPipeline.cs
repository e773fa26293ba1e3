using System.Globalization;
using System.Reflection;
using ModelCompression.Architectures;
using ModelCompression.Data;
using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;
using ModelCompression.Gates;
using ModelCompression.Inference;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Recipes;
using ModelCompression.Reports;
using ModelCompression.Stages;

namespace ModelCompression.Pipeline;

/// <summary>Where a run keeps its cache and writes its results.</summary>
/// <param name="CacheDirectory">The stage cache folder (kept between runs).</param>
/// <param name="OutputDirectory">Where the final model and reports go.</param>
/// <param name="Reporter">Progress and diagnostics sink.</param>
public sealed record PipelineOptions(string CacheDirectory, string OutputDirectory, IPipelineReporter Reporter);

/// <summary>One stage as run (or taken from the cache), with the evaluation of its output.</summary>
/// <param name="Result">What the stage did.</param>
/// <param name="Cached">True when the output came from the cache.</param>
/// <param name="Evaluation">Quality and cost of the stage's output model.</param>
public sealed record StageReport(StageResult Result, bool Cached, ModelEvaluation Evaluation);

/// <summary>Everything a run found.</summary>
/// <param name="Recipe">The recipe.</param>
/// <param name="Teacher">The teacher's evaluation.</param>
/// <param name="Stages">Each stage, in order.</param>
/// <param name="Gates">Each gate's outcome, in recipe order.</param>
/// <param name="OutputModel">Where the final model was written; null when a gate failed and nothing was replaced.</param>
/// <param name="Reports">Report files written.</param>
public sealed record PipelineResult(
    Recipe Recipe,
    ModelEvaluation Teacher,
    IReadOnlyList<StageReport> Stages,
    IReadOnlyList<GateResult> Gates,
    string? OutputModel,
    IReadOnlyList<string> Reports)
{
    /// <summary>True when every gate passed.</summary>
    public bool GatesPassed => Gates.All(g => g.Passed);
}

/// <summary>
/// Runs a recipe: builds or loads the student, runs each stage through the cache, evaluates the teacher and
/// every stage's output on the held-out data, checks the gates, and writes the final model and reports.
/// The final model replaces the previous one only when every gate passes.
/// </summary>
public static class CompressionPipeline
{
    /// <summary>The engine version, part of every cache key: a new engine never trusts an old cache.</summary>
    public static string EngineVersion { get; } =
        typeof(CompressionPipeline).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0";

    /// <summary>Runs <paramref name="recipe"/>.</summary>
    public static PipelineResult Run(Recipe recipe, PipelineOptions options, CancellationToken cancellationToken = default)
    {
        var reporter = options.Reporter;
        Directory.CreateDirectory(options.OutputDirectory);
        using var outputLock = OutputLock.Acquire(Path.Combine(options.OutputDirectory, $".{recipe.Outputs.Model}.lock"), reporter, cancellationToken);
        var cache = new ArtifactCache(options.CacheDirectory);

        reporter.Info($"Reading data ({recipe.Data.Format})");
        var train = IdxReader.LoadLabelled(recipe.Data.Train.Inputs, recipe.Data.Train.Labels, recipe.Data.Scale);
        var test = IdxReader.LoadLabelled(recipe.Data.Test.Inputs, recipe.Data.Test.Labels, recipe.Data.Scale);
        var dataHash = HashData(recipe.Data);
        var teacherHash = ModelHash.ComputeFile(recipe.Teacher);
        var evaluateOptions = recipe.Stages.Select(s => s.Options).OfType<EvaluateOptions>().LastOrDefault() ?? new EvaluateOptions();

        int classes;
        using (var teacherRunner = new OnnxRunner(recipe.Teacher))
        {
            // Schema check before any work: the teacher must take the data's samples.
            teacherRunner.SampleShapeFor(train);
            classes = teacherRunner.OutputWidth;
        }

        CheckLabels(train, classes, recipe.Data.Train.Labels);
        CheckLabels(test, classes, recipe.Data.Test.Labels);
        var context = new StageContext(
            recipe, train, test, dataHash, teacherHash,
            () => TeacherLogits(cache, recipe.Teacher, teacherHash, train, dataHash, evaluateOptions.BatchSize, reporter),
            classes, reporter, cancellationToken);

        // The student is built before any long work so that options the data rules out fail fast.
        var (modelPath, modelHash) = InitialStudent(recipe, cache, train, classes);
        var teacher = Evaluate(cache, "teacher", recipe.Teacher, teacherHash, test, dataHash, evaluateOptions.BatchSize);
        reporter.Info($"Teacher: accuracy {teacher.Accuracy.ToString("P2", CultureInfo.InvariantCulture)}, {teacher.SizeMb.ToString("0.###", CultureInfo.InvariantCulture)} MB");
        var stages = new List<StageReport>();
        foreach (var spec in recipe.Stages)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var stage = Create(spec);
            if (stage is null)
            {
                continue;
            }

            var key = new ContentHash().Add("engine", EngineVersion).Add("stage", stage.Kind).Add("input", modelHash);
            stage.AddToKey(key, context);
            var keyText = key.Finish();
            var entry = cache.TryGet(stage.Kind, keyText);
            var cached = entry is not null;
            reporter.StageStarted(stage.Kind, cached);
            var inputPath = modelPath;
            entry ??= cache.Put(stage.Kind, keyText, folder => stage.Run(context, inputPath, Path.Combine(folder, ArtifactCache.ModelFile)));
            var result = ArtifactCache.ReadResult<StageResult>(entry);
            modelPath = Path.Combine(entry, ArtifactCache.ModelFile);
            modelHash = ModelHash.ComputeFile(modelPath);
            var evaluation = Evaluate(cache, stage.Kind, modelPath, modelHash, test, dataHash, evaluateOptions.BatchSize);
            reporter.Info($"{stage.Kind}: {result.Summary}; accuracy {evaluation.Accuracy.ToString("P2", CultureInfo.InvariantCulture)}, {evaluation.SizeMb.ToString("0.###", CultureInfo.InvariantCulture)} MB");
            stages.Add(new StageReport(result, cached, evaluation));
        }

        var final = stages[^1].Evaluation;
        var gates = GateEvaluator.Evaluate(recipe, final, teacher);
        string? outputModel = null;
        if (gates.All(g => g.Passed))
        {
            outputModel = Path.Combine(options.OutputDirectory, recipe.Outputs.Model);
            AtomicFile.Copy(modelPath, outputModel);
        }

        var result0 = new PipelineResult(recipe, teacher, stages, gates, outputModel, []);
        var reports = ReportWriter.Write(result0, options.OutputDirectory);
        return result0 with { Reports = reports };
    }

    private static IStage? Create(StageSpec spec) => spec.Options switch
    {
        DistillOptions distill => new DistillStage(distill),
        PruneOptions prune => new PruneStage(prune),
        FactorizeOptions factorize => new FactorizeStage(factorize),
        QuantizeOptions quantize => new QuantizeStage(quantize),
        EvaluateOptions => null, // Evaluation runs after every stage; this entry only sets its options.
        _ => throw new InvalidOperationException($"No stage for {spec.Kind}."),
    };

    private static (string Path, string Hash) InitialStudent(Recipe recipe, ArtifactCache cache, Dataset train, int classes)
    {
        if (recipe.Student.ModelPath is { } path)
        {
            return (path, ModelHash.ComputeFile(path));
        }

        var name = recipe.Student.Architecture!;
        var options = recipe.Student.Options;
        var inputs = new ArchitectureInputs([.. train.SampleShape.Select(d => (int)d)], classes);
        var key = new ContentHash()
            .Add("engine", EngineVersion)
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
        return (modelPath, ModelHash.ComputeFile(modelPath));
    }

    private static ModelEvaluation Evaluate(ArtifactCache cache, string name, string modelPath, string modelHash, Dataset test, string dataHash, int batchSize)
    {
        var key = new ContentHash().Add("engine", EngineVersion).Add("name", name).Add("model", modelHash).Add("data", dataHash)
            .Add("batch", batchSize.ToString(CultureInfo.InvariantCulture)).Finish();
        var entry = cache.TryGet("evaluate", key) ?? cache.Put("evaluate", key, _ => ModelEvaluation.Measure(name, modelPath, test, batchSize));
        return ArtifactCache.ReadResult<ModelEvaluation>(entry);
    }

    private static float[] TeacherLogits(ArtifactCache cache, string teacherPath, string teacherHash, Dataset train, string dataHash, int batchSize, IPipelineReporter reporter)
    {
        var key = new ContentHash().Add("engine", EngineVersion).Add("teacher", teacherHash).Add("data", dataHash).Finish();
        const string LogitsFile = "logits.bin";
        var entry = cache.TryGet("teacher-logits", key);
        if (entry is null)
        {
            reporter.Info($"Running the teacher on {train.Count} training samples (cached for later runs)");
            entry = cache.Put("teacher-logits", key, folder =>
            {
                using var runner = new OnnxRunner(teacherPath);
                var logits = runner.Run(train, batchSize);
                using var file = File.Create(Path.Combine(folder, LogitsFile));
                file.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(logits.AsSpan()));
                return new { samples = train.Count, classes = runner.OutputWidth };
            });
        }

        var bytes = File.ReadAllBytes(Path.Combine(entry, LogitsFile));
        return System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes).ToArray();
    }

    private static string HashData(DataSpec data)
    {
        var hash = new ContentHash().Add("format", data.Format).Add("scale", data.Scale.ToString("R", CultureInfo.InvariantCulture));
        foreach (var file in data.Files())
        {
            hash.AddFile(Path.GetFileName(file), file);
        }

        return hash.Finish();
    }

    private static void CheckLabels(Dataset data, int classes, string? labelsPath)
    {
        if (data.Labels is null)
        {
            return;
        }

        for (var i = 0; i < data.Count; i++)
        {
            if (data.Labels[i] < 0 || data.Labels[i] >= classes)
            {
                throw CompressionException.Error(
                    DiagnosticCodes.DataSchemaMismatch,
                    $"Label {data.Labels[i]} of sample {i} is outside the teacher's {classes} classes (0 to {classes - 1}).",
                    labelsPath);
            }
        }
    }
}
