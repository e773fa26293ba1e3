using ModelCompression.Common;
using ModelCompression.Data;
using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;
using ModelCompression.Pipeline;
using ModelCompression.Stages;
using ModelCompression.Training;
using ModelCompression.Torch.Training;
using ModelCompression.Tasks;

namespace ModelCompression.Core.Tests.Pipeline;

/// <summary>
/// The stage runner computes a stage's key once and hands it to the stage (its checkpoint folder is named by it), a
/// stage run inside a stage gets its own key and gives the outer one back, and a context built without a runner runs
/// no nested stage.
/// </summary>
public sealed class StageRunnerTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly ArtifactCache _cache;
    private readonly HashMemo _hashes;
    private readonly StageRunner _runner;
    private readonly RecordingReporter _reporter = new();
    private readonly StageContext _context;

    public StageRunnerTests()
    {
        _cache = new ArtifactCache(_dir.Dir("cache"));
        _hashes = HashMemo.Load(_cache.Root);
        _runner = new StageRunner(_cache, _hashes);
        _context = new StageContext(
            _dir.Write("r.compress.yaml", "# names the recipe\n"), null, () => throw new InvalidOperationException("these stages read no data"), "data-hash", null, null, 10, _reporter, _runner, CancellationToken.None)
        {
            CheckpointRoot = _dir.Dir("checkpoints"),
        };
    }

    public void Dispose()
    {
        _context.Dispose();
        _dir.Dispose();
    }

    [Fact]
    public void A_stage_runs_with_the_key_its_output_is_cached_under_and_its_checkpoints_are_named_by()
    {
        var stage = new CopyStage("copy", "a");

        var first = _runner.Run(_context, stage, Repo.Teacher);
        var second = _runner.Run(_context, stage, Repo.Teacher);

        var key = StageRunner.Key(_context, stage, ModelHash(Repo.Teacher));
        Assert.Equal([key], stage.Keys);
        Assert.Equal(Path.Join(_context.CheckpointRoot, $"copy-{key}"), Assert.Single(stage.CheckpointFolders));
        Assert.NotNull(_cache.TryGet("copy", key));
        Assert.Equal(Path.Join(_cache.TryGet("copy", key)!, ArtifactCache.ModelFile), first.ModelPath);
        Assert.Equal((false, true), (first.Cached, second.Cached));
        Assert.Equal([("copy", false), ("copy", true)], _reporter.Stages);
        Assert.Null(_context.StageKey);
    }

    [Fact]
    public void A_stage_run_inside_a_stage_has_its_own_key_and_gives_the_outer_one_back()
    {
        var inner = new CopyStage("inner", "b");
        var outer = new CopyStage("outer", "c") { Nested = inner };

        var run = _runner.Run(_context, outer, Repo.Teacher);

        var outerKey = StageRunner.Key(_context, outer, ModelHash(Repo.Teacher));
        var innerKey = StageRunner.Key(_context, inner, ModelHash(Repo.Teacher));
        Assert.NotEqual(outerKey, innerKey);
        Assert.Equal([outerKey, outerKey], outer.Keys); // before and after the nested run
        Assert.Equal([innerKey], inner.Keys);
        Assert.Equal([("outer", false), ("inner", false)], _reporter.Stages);
        Assert.False(run.Cached);
    }

    [Fact]
    public void A_context_without_a_runner_runs_no_nested_stage_and_keeps_no_checkpoints()
    {
        using var data = new Dataset(new float[4], [4], null, "none");
        using var single = new StageContext(_context.RecipePath, null, data, data, "data-hash", null, null, 10, _reporter, CancellationToken.None)
        {
            CheckpointRoot = _dir.Dir("single-checkpoints"),
        };

        var e = Assert.Throws<InvalidOperationException>(() => single.RunStage(new CopyStage("trial", "d"), Repo.Teacher));

        Assert.Contains("'trial' cannot run inside one", e.Message, StringComparison.Ordinal);
        Assert.Null(single.StageKey);
        Assert.Null(StageTraining.CheckpointFolder(new CopyStage("trial", "d"), single));
    }

    [Fact]
    public void Training_progress_reaches_the_reporter_as_the_engines_own_record()
    {
        var reporter = new ProgressReporter();
        using var data = new Dataset(new float[4], [4], null, "none");
        using var context = new StageContext(_context.RecipePath, null, data, data, "data-hash", null, null, 10, reporter, CancellationToken.None)
        {
            CheckpointRoot = _dir.Dir("progress-checkpoints"),
        };

        context.TrainingReporter("distill").Report(new TrainingProgress(2, 3, 40, 160, 0.25, TimeSpan.FromSeconds(10), 1e-3, 0.875));

        var (stage, progress) = Assert.Single(reporter.Reports);
        Assert.Equal("distill", stage);
        Assert.Equal(new TrainingProgressInfo(2, 3, 40, 160, 0.25, TimeSpan.FromSeconds(10), 1e-3, 0.875), progress);
        Assert.Equal(0.25, progress.Fraction);
        Assert.Equal(TimeSpan.FromSeconds(30), progress.Eta); // a quarter took 10 s: three quarters to go
        Assert.Equal(TimeSpan.Zero, (progress with { Step = 0 }).Eta);
    }

    [Fact]
    public void The_labels_only_twin_is_only_for_a_distillation_with_a_teacher_term_and_the_baseline_on()
    {
        var evaluations = new Evaluations(_cache, ClassificationTask.Instance, "data-hash", new EvaluateOptions(), () => throw new InvalidOperationException("nothing is evaluated"), null);
        var twins = new LabelsOnlyTwin(_runner, _context, evaluations, _hashes);
        var student = new CachedStageRun(Repo.Teacher, Result("distill", steps: 64), Cached: true);
        var evaluation = new ModelEvaluation("distill", 0.8, 1, 1, 10);

        object[] without = [new FinetuneOptions(), new DistillOptions { Alpha = 0 }, new DistillOptions { Baseline = false }, new QuantizeOptions()];

        Assert.All(without, options => Assert.Null(twins.For(StageCatalog.All.Single(d => d.OptionsType == options.GetType()), options, student, evaluation, Repo.Teacher, "input-hash")));
        Assert.Empty(_reporter.Stages);

        // The descriptor decides: a distillation with a teacher term and the baseline on has one, a finetune.
        var twin = StageCatalog.Get("distill").LabelsOnlyTwin(new DistillOptions { Alpha = 0.5 }, student.Result);
        Assert.Equal("finetune", Assert.IsType<FinetuneStage>(twin).Kind);
        Assert.All(StageCatalog.All.Where(d => d.Kind != "distill"), d => Assert.Null(d.LabelsOnlyTwin(Activator.CreateInstance(d.OptionsType)!, student.Result)));
    }

    [Fact]
    public void The_twins_log_line_says_the_gain_and_when_the_budgets_differ_why()
    {
        var student = new ModelEvaluation("distill", 0.8125, 1, 1, 10);
        var twin = new ModelEvaluation("baseline", 0.8, 1, 1, 10);

        var same = LabelsOnlyTwin.Summary(student, Result("distill", steps: 64), twin, Result("finetune", steps: 64), ClassificationTask.Instance.Gain(student, twin)!.Value);
        var early = LabelsOnlyTwin.Summary(twin, Result("distill", steps: 64), student, Result("finetune", steps: 32, stoppedEarlyAfter: 1), ClassificationTask.Instance.Gain(twin, student)!.Value);

        Assert.Equal("the labels-only twin reaches 80.00 % (both 64 optimizer steps); gain from distillation +1.25 points", same);
        Assert.Equal(
            "the labels-only twin reaches 81.25 % (32 optimizer steps against the student's 64, not the same budget: early stopping ended the twin after epoch 1); gain from distillation -1.25 points (distillation did not help this student)",
            early);
        Assert.Equal(0.0125, ClassificationTask.Instance.Gain(student, twin)!.Value, 12);
    }

    private string ModelHash(string path) => _hashes.Model(path);

    private static StageResult Result(string stage, int steps, int? stoppedEarlyAfter = null) =>
        new(stage, "trained", new Dictionary<string, string>(), null, 0)
        {
            Training = new TrainingOutcome(steps, steps, stoppedEarlyAfter ?? 1, 0, null, stoppedEarlyAfter is not null, 0, 100, 0, 0),
        };

    /// <summary>Copies its input; records the key it ran with (and, with a nested stage, the key after it).</summary>
    private sealed class CopyStage(string kind, string option) : IStage
    {
        public string Kind => kind;

        public IStage? Nested { get; init; }

        public List<string?> Keys { get; } = [];

        public List<string?> CheckpointFolders { get; } = [];

        public void AddToKey(ContentHash key, StageContext context) => key.Add("option", option);

        public StageResult Run(StageContext context, string inputModel, string outputModel)
        {
            Keys.Add(context.StageKey);
            CheckpointFolders.Add(StageTraining.CheckpointFolder(this, context));
            if (Nested is not null)
            {
                context.RunStage(Nested, inputModel);
                Keys.Add(context.StageKey);
            }

            File.Copy(inputModel, outputModel);
            return new StageResult(kind, "copied", new Dictionary<string, string>(), null, 0);
        }
    }

    private sealed class ProgressReporter : IPipelineReporter
    {
        public List<(string Stage, TrainingProgressInfo Progress)> Reports { get; } = [];

        public void StageStarted(string stage, bool cached)
        {
        }

        public void Training(string stage, TrainingProgressInfo progress) => Reports.Add((stage, progress));

        public void Info(string message)
        {
        }

        public void Report(Diagnostic diagnostic)
        {
        }
    }
}
