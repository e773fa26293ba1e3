using ModelCompression.Common;
using ModelCompression.Data;
using ModelCompression.Recipes;
using ModelCompression.Stages;
using ModelCompression.Torch.Training;
using ModelCompression.Training;
using ModelCompression.Tasks;

namespace ModelCompression.Core.Tests.Stages;

/// <summary>The one training options block, its recipe keys, the typed outcome and what reads it (sweep, twin): no training.</summary>
public sealed class TrainingFlowTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly Dataset _data;

    public TrainingFlowTests()
    {
        var images = Idx.Write(_dir.File("images.idx"), [4, 2, 2], [.. Enumerable.Range(0, 16).Select(i => (byte)i)]);
        var labels = Idx.Write(_dir.File("labels.idx"), [4], [0, 1, 2, 1]);
        _data = IdxReader.LoadLabelled(images, labels, 1f / 255);
    }

    public void Dispose()
    {
        _data.Dispose();
        _dir.Dispose();
    }

    [Fact]
    public void Every_setting_reaches_the_trainer_and_momentum_only_with_sgd()
    {
        var settings = new TrainingSettings
        {
            Epochs = 3,
            BatchSize = 32,
            LearningRate = 0.01,
            Seed = 7,
            Optimizer = OptimizerKind.Sgd,
            WeightDecay = 0.001,
            Momentum = 0.8,
            WarmupSteps = 5,
            WarmupFraction = 0.2,
            Schedule = ScheduleKind.Linear,
            ClipGradNorm = 2,
            ValidationFraction = 0.1,
            EarlyStoppingPatience = 2,
            EarlyStoppingMinDelta = 0.01,
            StepsPerEpoch = 9,
        };
        Action<long> hook = _ => { };

        var options = settings.ToTrainingOptions("checkpoints", "logs", hook);

        Assert.Equal(
            new TrainingOptions(3, 32, 0.01, 7)
            {
                Optimizer = OptimizerKind.Sgd,
                WeightDecay = 0.001,
                Momentum = 0.8,
                WarmupSteps = 5,
                WarmupFraction = 0.2,
                Schedule = ScheduleKind.Linear,
                ClipGradNorm = 2,
                EarlyStoppingPatience = 2,
                EarlyStoppingMinDelta = 0.01,
                StepsPerEpoch = 9,
                CheckpointDirectory = "checkpoints",
                LogDirectory = "logs",
                AfterOptimizerStep = hook,
            },
            options);
        Assert.Equal(0, (settings with { Optimizer = OptimizerKind.AdamW }).ToTrainingOptions(null, null).Momentum);
    }

    [Fact]
    public void Recovery_left_at_its_defaults_trains_as_it_always_did()
    {
        // Adam at a constant learning rate, no momentum, warm-up, clipping, validation or logs: the options
        // recovery passed before it took the training block.
        Action<long> hook = _ => { };
        var prune = new PruneOptions { RecoveryEpochs = 3, BatchSize = 64, LearningRate = 0.002, Seed = 5 }.Recovery(3);
        var factorize = new FactorizeOptions { Epochs = 2 }.Recovery(2);

        Assert.Equal(new TrainingOptions(3, 64, 0.002, 5) { CheckpointDirectory = "c", AfterOptimizerStep = hook }, prune.Training.ToTrainingOptions("c", null, hook));
        Assert.Equal(new TrainingOptions(2, 128, 1e-3, 1) { CheckpointDirectory = "c" }, factorize.Training.ToTrainingOptions("c", null));
        Assert.Equal(3L * 16, prune.Steps(1000));
    }

    [Fact]
    public void Recovery_takes_the_optimizer_schedule_and_clipping_keys_from_the_recipe()
    {
        var recipe = _dir.Write("recovery.compress.yaml", """
            task: classification
            data:
              format: idx
              train: { inputs: images.idx, labels: labels.idx }
              test: { inputs: images.idx, labels: labels.idx }
            student: { architecture: mlp, hidden: [4] }
            stages:
              - finetune: { epochs: 1 }
              - prune: { method: structured, sparsity: 0.5, schedule: oneshot, recovery_epochs: 2, optimizer: adamw, weight_decay: 0.01, learning_rate_schedule: cosine, warmup_fraction: 0.1, clip_grad_norm: 1 }
              - factorize: { epochs: 1, optimizer: sgd, momentum: 0.5, learning_rate_schedule: linear, warmup_steps: 3 }
            """);

        var stages = RecipeLoader.Load(recipe).Stages;

        var prune = Assert.IsType<PruneOptions>(stages[1].Options).Recovery(2).Training;
        Assert.Equal(
            (OptimizerKind.AdamW, 0.01, ScheduleKind.Cosine, 0.1, 1.0, 2),
            (prune.Optimizer, prune.WeightDecay, prune.Schedule, prune.WarmupFraction, prune.ClipGradNorm, prune.Epochs));
        var factorize = Assert.IsType<FactorizeOptions>(stages[2].Options).Recovery(1).Training.ToTrainingOptions(null, null);
        Assert.Equal((OptimizerKind.Sgd, 0.5, ScheduleKind.Linear, 3), (factorize.Optimizer, factorize.Momentum, factorize.Schedule, factorize.WarmupSteps));
    }

    [Fact]
    public void The_training_stages_keep_their_flat_recipe_keys()
    {
        string[] training =
        [
            "epochs", "batch_size", "learning_rate", "seed", "optimizer", "weight_decay", "momentum", "warmup_steps", "warmup_fraction",
            "schedule", "clip_grad_norm", "validation_fraction", "early_stopping_patience", "early_stopping_min_delta", "tensorboard_dir",
            "init_from_teacher", "layer_map",
        ];

        Assert.Equal(training.Order(), Keys("finetune").Order());
        Assert.Equal(training.Concat(["temperature", "alpha", "baseline", "hints", "hint_weight", "teacher_top_k"]).Order(), Keys("distill").Order());
        Assert.Equal(training.Concat(["alpha", "temperature", "learning_rates", "hints", "hint_weight"]).Order(), Keys("sweep").Order());

        static IEnumerable<string> Keys(string kind) => RecipeSchema.Stages()[kind].Select(o => o.Name);
    }

    [Fact]
    public void The_typed_details_of_a_training_run_have_the_keys_and_texts_of_the_report()
    {
        var outcome = new TrainingOutcome(40, 20, 2, 2, 0.912345, StoppedEarly: false, ResumedFromEpoch: 0, TrainSamples: 900, UnlabelledSamples: 0, ValidationSamples: 100);
        var options = new DistillOptions { Epochs = 3, LearningRate = 0.002, Optimizer = OptimizerKind.AdamW, Schedule = ScheduleKind.Cosine, ClipGradNorm = 1.5 };

        var labelsOnly = StageDetails.Of(TrainingDetails.Of(options, new DistillationLoss(0, 1), outcome with { BestValidationAccuracy = null }, 0, []));
        var hinted = StageDetails.Of(TrainingDetails.Of(options, new DistillationLoss(0.9, 4) { HintWeight = 2 }, outcome, 3, [("a", "b"), ("c", "d")]));

        Assert.Equal(
            "epochs=3, alpha=0, temperature=1, learning_rate=0.002, batch_size=128, train_samples=900, unlabelled_samples=0, optimizer=adamw, schedule=cosine, "
            + "weight_decay=0, clip_grad_norm=1.5, steps=40, steps_per_epoch=20, epochs_run=2, validation_samples=100, best_validation_accuracy=, best_epoch=2, "
            + "stopped_early=false, resumed_from_epoch=0, initializers_from_teacher=0, hints=, hint_weight=",
            string.Join(", ", labelsOnly.Select(d => $"{d.Key}={d.Value}")));
        Assert.Equal(("0.9", "4", "0.9123", "3", "a -> b; c -> d", "2"), (hinted["alpha"], hinted["temperature"], hinted["best_validation_accuracy"], hinted["initializers_from_teacher"], hinted["hints"], hinted["hint_weight"]));
    }

    [Fact]
    public void The_outcome_is_kept_in_the_cached_result()
    {
        var outcome = new TrainingOutcome(64, 32, 2, 1, 0.8125, StoppedEarly: true, ResumedFromEpoch: 1, TrainSamples: 300, UnlabelledSamples: 100, ValidationSamples: 20);
        var cache = new ArtifactCache(_dir.Dir("cache"));

        var entry = cache.Put("distill", "key", _ => new StageResult("distill", "summary", new Dictionary<string, string>(), [1.0, 0.5], 1) { Training = outcome });

        Assert.Equal(outcome, ArtifactCache.ReadResult<StageResult>(entry).Training);
    }

    [Fact]
    public void The_labels_only_twin_takes_the_students_steps_per_epoch_only_when_it_learned_from_a_pool()
    {
        using var context = Context(null);
        var distill = new DistillOptions { Epochs = 3, Seed = 4, TensorBoardDirectory = "logs" };
        var outcome = new TrainingOutcome(30, 10, 3, 0, null, false, 0, 500, 0, 0);

        var plain = FinetuneStage.LabelsOnlyTwin(distill, Result(outcome));
        var pooled = FinetuneStage.LabelsOnlyTwin(distill, Result(outcome with { UnlabelledSamples = 200 }));

        Assert.Equal("finetune", plain.Kind);
        Assert.Equal(Key(new FinetuneStage(new FinetuneOptions(distill) { TensorBoardDirectory = null })), Key(plain));
        Assert.Equal(Key(new FinetuneStage(new FinetuneOptions(distill) { StepsPerEpoch = 10 })), Key(pooled));
        Assert.NotEqual(Key(plain), Key(pooled));

        string Key(IStage stage)
        {
            var key = new ContentHash();
            stage.AddToKey(key, context);
            return key.Finish();
        }

        static StageResult Result(TrainingOutcome outcome) => new("distill", "", new Dictionary<string, string>(), [1.0], 1) { Training = outcome };
    }

    [Fact]
    public void A_sweep_ranks_trials_at_four_decimals_and_ties_go_to_the_earlier_trial()
    {
        // Trials 2 and 4 are better than trial 1 only in the fifth decimal: at the report's precision they tie
        // with it, and the earlier trial wins.
        double[] accuracies = [0.91231, 0.91234, 0.9, 0.912349];
        var trials = new Queue<double>(accuracies);
        using var context = Context((stage, input) =>
        {
            var model = _dir.Write($"trial-{trials.Count}.onnx", $"trial with {trials.Count} left");
            var accuracy = trials.Dequeue();
            var outcome = new TrainingOutcome(10, 5, 2, 2, accuracy, false, 0, 90, 0, 10);
            var details = new Dictionary<string, string> { ["best_validation_accuracy"] = "not read", ["steps"] = "10" };
            return new CachedStageRun(model, new StageResult(stage.Kind, "", details, [1.0, 0.5], 1) { Training = outcome }, false);
        });
        var output = _dir.File("sweep.onnx");

        var result = new SweepStage(new SweepOptions { Alpha = [0.5, 0.9], Temperature = [2, 4] }).Run(context, _dir.Write("input.onnx", "input"), output);

        Assert.Equal("trial with 4 left", File.ReadAllText(output));
        Assert.Equal([0.9123, 0.9123, 0.9, 0.9123], result.Sweep!.Select(t => t.ValidationAccuracy));
        Assert.Equal([true, false, false, false], result.Sweep!.Select(t => t.Best));
        Assert.Equal(
            "best_validation_accuracy=not read, steps=10, trials=4, best_trial=1",
            string.Join(", ", result.Details.Select(d => $"{d.Key}={d.Value}")));
        Assert.Equal(0.91231, result.Training!.BestValidationAccuracy);
    }

    [Fact]
    public void A_regression_sweep_keeps_the_trial_with_the_lowest_validation_rmse()
    {
        // The task says which way its score improves: RMSE down, where accuracy goes up.
        var trials = new Queue<double>([61.2, 55.4, 70.0, 55.4]);
        using var context = Context(
            (stage, input) =>
            {
                var model = _dir.Write($"trial-{trials.Count}.onnx", $"trial with {trials.Count} left");
                var outcome = new TrainingOutcome(10, 5, 2, 2, trials.Dequeue(), false, 0, 90, 0, 10);
                return new CachedStageRun(model, new StageResult(stage.Kind, "", new Dictionary<string, string>(), [1.0], 1) { Training = outcome }, false);
            },
            RegressionTask.Instance);
        var output = _dir.File("sweep.onnx");

        var result = new SweepStage(new SweepOptions { Alpha = [0.5, 0.9], Temperature = [2, 4] }).Run(context, _dir.Write("input.onnx", "input"), output);

        Assert.Equal("trial with 3 left", File.ReadAllText(output));
        Assert.Equal([false, true, false, false], result.Sweep!.Select(t => t.Best));
        Assert.EndsWith("(validation rmse 55.4)", result.Summary, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0.91236, 0.9124)]
    [InlineData(0.912349, 0.9123)]
    [InlineData(0.00005, 0.0001)]
    [InlineData(1.0, 1.0)]
    public void The_rounded_validation_accuracy_is_the_report_text(double best, double rounded)
    {
        var outcome = new TrainingOutcome(1, 1, 1, 1, best, false, 0, 1, 0, 1);

        Assert.Equal(rounded, outcome.RoundedBestValidationAccuracy);
        Assert.Null((outcome with { BestValidationAccuracy = null }).RoundedBestValidationAccuracy);
    }

    private StageContext Context(Func<IStage, string, CachedStageRun>? runStage, IPredictionTask? task = null) =>
        new(_dir.Write("sweep.compress.yaml", "# stands in\n"), null, _data, _data, "data-hash", "teacher-hash", null, 3, NullPipelineReporter.Instance, CancellationToken.None, runStage is null ? null : new DelegateRunner(runStage))
        {
            CheckpointRoot = _dir.Dir("checkpoints"),
            Task = task ?? ClassificationTask.Instance,
        };

    /// <summary>Runs nested stages (sweep trials) through a test's function instead of the pipeline's cache.</summary>
    private sealed class DelegateRunner(Func<IStage, string, CachedStageRun> run) : IStageRunner
    {
        public CachedStageRun Run(StageContext context, IStage stage, string inputModel) => run(stage, inputModel);
    }
}
