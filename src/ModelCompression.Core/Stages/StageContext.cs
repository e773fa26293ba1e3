using ModelCompression.Common;
using ModelCompression.Data;
using ModelCompression.Tasks;
using ModelCompression.Torch.Training;

namespace ModelCompression.Stages;

/// <summary>
/// What every stage of one run can use: the recipe, the data, the teacher and the reporter. Disposing it closes
/// the teacher feature files it opened.
/// </summary>
public sealed class StageContext : IDisposable
{
    private readonly Func<Dataset, string, IReadOnlyList<(float[] Logits, double Weight)>>? _teacherLogits;

    private readonly string? _teacherHash;

    private readonly string? _teacherPath;

    // Per split: a sweep's trials and a distill stage's twin ask again, and the cache read is megabytes.
    private readonly Dictionary<string, IReadOnlyList<(float[] Logits, double Weight)>> _teacherLogitsBySplit = new(StringComparer.Ordinal);

    // Per model file: a stage that scores and then recovers from the same dense model asks twice.
    private readonly Dictionary<string, float[]> _modelLogits = new(StringComparer.Ordinal);

    // Per split and tensor list: opened (memory-mapped) once, closed with the context.
    private readonly Dictionary<string, Dataset> _teacherFeatures = new(StringComparer.Ordinal);

    // The pipeline's data, read on first use: a run whose every stage is cached never reads it.
    private readonly Lazy<LoadedData>? _data;

    private readonly Dataset? _train;
    private readonly Dataset? _test;
    private readonly Dataset? _validation;
    private readonly Dataset? _unlabelled;

    // Null for a context that runs one stage directly (tests): it runs no stage inside a stage.
    private readonly IStageRunner? _runner;

    /// <summary>A context over two given splits, for running one stage directly: no nested stages, no checkpoints.</summary>
    internal StageContext(string recipePath, string? teacherPath, Dataset train, Dataset test, string dataHash, string? teacherHash, Func<Dataset, string, IReadOnlyList<(float[] Logits, double Weight)>>? teacherLogits, int classes, IPipelineReporter reporter, CancellationToken cancellationToken, IStageRunner? runner = null)
        : this(recipePath, teacherPath, dataHash, teacherHash, teacherLogits, classes, reporter, runner, cancellationToken)
    {
        _train = train;
        _test = test;
    }

    /// <summary>
    /// A context whose splits (all of them: train, test, validation, unlabelled) come from <paramref name="data"/> when
    /// a stage first reads one, and whose stages run through <paramref name="runner"/>.
    /// </summary>
    internal StageContext(string recipePath, string? teacherPath, Func<LoadedData> data, string dataHash, string? teacherHash, Func<Dataset, string, IReadOnlyList<(float[] Logits, double Weight)>>? teacherLogits, int classes, IPipelineReporter reporter, IStageRunner runner, CancellationToken cancellationToken)
        : this(recipePath, teacherPath, dataHash, teacherHash, teacherLogits, classes, reporter, runner, cancellationToken)
    {
        _data = new Lazy<LoadedData>(data, LazyThreadSafetyMode.None);
    }

    private StageContext(string recipePath, string? teacherPath, string dataHash, string? teacherHash, Func<Dataset, string, IReadOnlyList<(float[] Logits, double Weight)>>? teacherLogits, int classes, IPipelineReporter reporter, IStageRunner? runner, CancellationToken cancellationToken)
    {
        _runner = runner;
        RecipePath = recipePath;
        _teacherPath = teacherPath;
        DataHash = dataHash;
        _teacherHash = teacherHash;
        Classes = classes;
        Reporter = reporter;
        CancellationToken = cancellationToken;
        _teacherLogits = teacherLogits;
    }

    /// <summary>The recipe file being run: where a stage's errors point.</summary>
    public string RecipePath { get; }

    /// <summary>The recipe's folder: relative paths in stage options (tensorboard_dir) are relative to it.</summary>
    public string RecipeDirectory => Path.GetDirectoryName(RecipePath)!;

    /// <summary>The (first) teacher's model file, for stages that read its graph (init_from_teacher, hints).</summary>
    public string TeacherPath => _teacherPath ?? throw NoTeacher();

    /// <summary>Training data.</summary>
    public Dataset Train => _data is null ? _train! : _data.Value.Train;

    /// <summary>Held-out data.</summary>
    public Dataset Test => _data is null ? _test! : _data.Value.Test;

    /// <summary>The recipe's validation split, when it has one (training stages validate on it).</summary>
    public Dataset? Validation
    {
        get => _data is null ? _validation : _data.Value.Validation;
        init => _validation = value;
    }

    /// <summary>The recipe's unlabelled split, when it has one (distillation learns from the teacher alone there).</summary>
    public Dataset? Unlabelled
    {
        get => _data is null ? _unlabelled : _data.Value.Unlabelled;
        init => _unlabelled = value;
    }

    /// <summary>Hash of the data files and how they are read.</summary>
    public string DataHash { get; }

    /// <summary>Hash of the teacher model (of all teachers and their weights when there are several); throws without a teacher.</summary>
    public string TeacherHash => _teacherHash ?? throw NoTeacher();

    /// <summary>Number of classes (the teacher's output width; without a teacher, the student's or the data's).</summary>
    public int Classes { get; }

    /// <summary>Where progress goes.</summary>
    public IPipelineReporter Reporter { get; }

    /// <summary>The recipe's task: the training objective, how teachers combine (classification unless the recipe says otherwise).</summary>
    public IPredictionTask Task { get; init; } = ClassificationTask.Instance;

    /// <summary>Cancels the run.</summary>
    public CancellationToken CancellationToken { get; }

    /// <summary>Folder for resumable training checkpoints, kept between runs (one sub-folder per stage key).</summary>
    public required string CheckpointRoot { get; init; }

    /// <summary>
    /// The cache key of the stage now running, set by the <see cref="IStageRunner"/> for the length of the stage's run:
    /// its checkpoint folder is named by it, so a killed run of the same stage, input, options and data resumes. Null
    /// when a stage runs outside a runner (tests call stages directly), which keeps no checkpoints.
    /// </summary>
    public string? StageKey { get; internal set; }

    /// <summary>
    /// Runs another stage on <paramref name="inputModel"/> through the cache, as the pipeline runs the recipe's stages:
    /// a stage made of stages (a sweep's trials) gets each one cached on its own.
    /// </summary>
    public CachedStageRun RunStage(IStage stage, string inputModel) =>
        (_runner ?? throw new InvalidOperationException($"This context runs single stages; '{stage.Kind}' cannot run inside one.")).Run(this, stage, inputModel);

    /// <summary>
    /// Where a training loop reports its progress: forwarded synchronously (IProgress's default posts to the thread
    /// pool) to <see cref="Reporter"/> as the engine's <see cref="TrainingProgressInfo"/>, under <paramref name="stage"/>.
    /// </summary>
    public IProgress<TrainingProgress> TrainingReporter(string stage) => new ReporterTrainingProgress(Reporter, stage, Task.ValidationScore.Name);

    /// <summary>
    /// Computes (or reads from the cache) the first teacher's values of intermediate tensors on a split: given the
    /// tensor names, the split and its name, a data set of one float tensor per name, named by it.
    /// </summary>
    public Func<IReadOnlyList<string>, Dataset, string, Dataset> ComputeTeacherFeatures { get; init; } =
        (_, _, _) => throw new InvalidOperationException("This run computes no teacher features.");

    /// <summary>
    /// The first teacher's values of <paramref name="tensors"/> (intermediate tensors, for feature distillation) on
    /// <paramref name="split"/>, computed once per teacher, data, split and tensor list and cached on disk; read
    /// through memory-mapped files, so feature maps larger than memory are fine. One float tensor per name, named by it.
    /// </summary>
    /// <param name="tensors">Value names of the teacher graph.</param>
    /// <param name="split">The samples; null for <see cref="Train"/>.</param>
    /// <param name="splitName">The split's name, part of the cache key ("train", "unlabelled").</param>
    public Dataset TeacherFeatures(IReadOnlyList<string> tensors, Dataset? split = null, string splitName = "train")
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var key = splitName + "\n" + string.Join("\n", tensors);
        if (!_teacherFeatures.TryGetValue(key, out var features))
        {
            features = ComputeTeacherFeatures(tensors, split ?? Train, splitName);
            _teacherFeatures[key] = features;
        }

        return features;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var features in _teacherFeatures.Values)
        {
            features.Dispose();
        }

        _teacherFeatures.Clear();
    }

    /// <summary>
    /// Logits whose softmax at <paramref name="temperature"/> is the teachers' soft targets on <paramref name="split"/>
    /// (the training data by default; each teacher's logits computed once per teacher and split and cached): one
    /// teacher's own logits, or for several T * log(sum_i w_i softmax(t_i / T)) with the weights normalized to sum to 1.
    /// </summary>
    /// <param name="temperature">The softening temperature.</param>
    /// <param name="split">The samples; null for <see cref="Train"/>.</param>
    /// <param name="splitName">The split's name, part of the cache key ("train", "unlabelled").</param>
    public float[] TeacherSoftTargetLogits(double temperature, Dataset? split = null, string splitName = "train")
    {
        if (!_teacherLogitsBySplit.TryGetValue(splitName, out var teachers))
        {
            teachers = (_teacherLogits ?? throw NoTeacher())(split ?? Train, splitName);
            _teacherLogitsBySplit[splitName] = teachers;
        }

        return Task.CombineTeachers(teachers, Classes, temperature);
    }

    /// <summary>
    /// The logits of the model at <paramref name="modelPath"/> (a stage's input, e.g. the dense student that
    /// recovery learns from) on <see cref="Train"/>, computed once per run and file.
    /// </summary>
    public float[] DenseModelLogits(string modelPath)
    {
        if (!_modelLogits.TryGetValue(modelPath, out var logits))
        {
            Reporter.Info($"Running the dense model on {Train.Count} training samples for its soft targets");
            using var runner = new Inference.OnnxRunner(modelPath, provider: Inference.ExecutionProviders.Current);
            logits = runner.Run(Train, 256, new ReporterProgress(Reporter, "dense model over the training samples"));
            _modelLogits[modelPath] = logits;
        }

        return logits;
    }

    // The recipe loader rejects every stage that reads the teacher when there is none, so reaching this is a bug.
    private InvalidOperationException NoTeacher() =>
        new($"A stage asked for the teacher, but the recipe '{RecipePath}' has none; the recipe loader should have rejected that stage.");
}

/// <summary>Runs stages through the cache for a <see cref="StageContext"/> (the pipeline's StageRunner).</summary>
public interface IStageRunner
{
    /// <summary>
    /// Runs <paramref name="stage"/> on <paramref name="inputModel"/> in <paramref name="context"/>, or takes its output
    /// from the cache, setting <see cref="StageContext.StageKey"/> while the stage runs.
    /// </summary>
    CachedStageRun Run(StageContext context, IStage stage, string inputModel);
}

/// <summary>The one place a training library's progress becomes the engine's.</summary>
internal sealed class ReporterTrainingProgress(IPipelineReporter reporter, string stage, string validationMetric) : IProgress<TrainingProgress>
{
    public void Report(TrainingProgress value) => reporter.Training(
        stage,
        new TrainingProgressInfo(value.Epoch, value.Epochs, value.Step, value.TotalSteps, value.Loss, value.Elapsed, value.LearningRate, value.ValidationAccuracy, validationMetric));
}

/// <summary>A stage's output as the cache holds it.</summary>
/// <param name="ModelPath">The output model in the cache.</param>
/// <param name="Result">What the stage did.</param>
/// <param name="Cached">True when it came from the cache without running.</param>
public sealed record CachedStageRun(string ModelPath, StageResult Result, bool Cached)
{
    /// <summary>Where the entry came from (the local folder, the remote cache, or this run) and the bytes it moved.</summary>
    public CacheUse? Use { get; init; }
}
