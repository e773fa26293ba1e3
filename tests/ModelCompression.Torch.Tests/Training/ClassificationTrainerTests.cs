using Google.Protobuf;
using ModelCompression.Architectures;
using ModelCompression.Onnx.Proto;
using ModelCompression.Torch.Graph;
using ModelCompression.Torch.Native;
using ModelCompression.Torch.Training;
using TorchSharp;
using static ModelCompression.Torch.Tests.Training.TrainerTestSupport;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Torch.Tests.Training;

/// <summary>
/// Training draws dropout masks from libtorch's process-wide generator: these tests run alone, not beside
/// other tests that seed or draw from it, or bit-identity could not be asserted.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TrainerCollection
{
    public const string Name = "Trainer (process-wide torch RNG)";
}

[Collection(TrainerCollection.Name)]
[Trait("Category", "Slow")] // trains models for several epochs
public sealed class ClassificationTrainerTests : IDisposable
{
    private readonly string _folder = TemporaryFolder();

    public ClassificationTrainerTests() => TorchNativeLoader.EnsureLoaded();

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private static TrainingOptions Options(OptimizerKind optimizer, int epochs = 4) => new(epochs, 16, 1e-2, Seed: 3)
    {
        Optimizer = optimizer,
        WeightDecay = 1e-3,
        Momentum = optimizer == OptimizerKind.Sgd ? 0.9 : 0,
        WarmupSteps = 5,
        Schedule = ScheduleKind.Cosine,
        ClipGradNorm = 1.0,
    };

    private static (Dictionary<string, float[]> Weights, TrainingResult Result) Run(
        ModelProto model, TrainingSet data, TrainingOptions options, TrainingSet? validation = null, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        using var scope = torch.NewDisposeScope();
        using var graph = TrainableGraph.Import(model);
        var result = ClassificationTrainer.Train(graph, data, new DistillationLoss(0.5, 2), options, validation, progress, cancellationToken);
        return (Weights(graph), result);
    }

    [Theory]
    [InlineData(OptimizerKind.Adam)]
    [InlineData(OptimizerKind.AdamW)]
    [InlineData(OptimizerKind.Sgd)]
    public void Same_seed_and_data_give_bit_identical_weights(OptimizerKind optimizer)
    {
        var model = Mlp();
        var data = Synthetic(120);

        var first = Run(model, data, Options(optimizer, epochs: 2));
        var second = Run(model, data, Options(optimizer, epochs: 2));
        var other = Run(model, data, Options(optimizer, epochs: 2) with { Seed = 4 });

        AssertBitIdentical(first.Weights, second.Weights);
        var name = first.Weights.Keys.First();
        Assert.NotEqual(first.Weights[name], other.Weights[name]);
        Assert.Equal(first.Result.EpochLosses, second.Result.EpochLosses);
        Assert.Equal(2 * 8, first.Result.Steps);
    }

    [Theory]
    [InlineData(OptimizerKind.Adam)]
    [InlineData(OptimizerKind.AdamW)]
    [InlineData(OptimizerKind.Sgd)]
    public void A_run_stopped_after_two_epochs_and_resumed_ends_with_the_weights_of_a_straight_run(OptimizerKind optimizer)
    {
        var model = Mlp();
        var (data, validation) = Synthetic(150).SplitRandom(0.2, seed: 1);
        var straight = Run(model, data, Options(optimizer) with { CheckpointDirectory = Path.Join(_folder, "straight") }, validation);

        var checkpoints = Path.Join(_folder, "killed");
        using (var kill = new CancellationTokenSource())
        {
            Assert.ThrowsAny<OperationCanceledException>(() =>
                Run(model, data, Options(optimizer) with { CheckpointDirectory = checkpoints }, validation, new StopAtEpoch(3, kill), kill.Token));
        }

        Assert.True(File.Exists(Path.Join(checkpoints, "checkpoint.bin")));
        Assert.Empty(Directory.GetFiles(checkpoints, "*.tmp"));
        var resumed = Run(model, data, Options(optimizer) with { CheckpointDirectory = checkpoints }, validation);

        Assert.Equal(2, resumed.Result.ResumedFromEpoch);
        AssertBitIdentical(straight.Weights, resumed.Weights);
        Assert.Equal(straight.Result.EpochLosses, resumed.Result.EpochLosses);
        Assert.Equal(straight.Result.ValidationAccuracies, resumed.Result.ValidationAccuracies);
        Assert.Equal(straight.Result.Steps, resumed.Result.Steps);
    }

    [Fact]
    public void A_fixed_number_of_steps_per_epoch_cycles_over_the_data_and_resumes_exactly()
    {
        // A labels-only twin's case: 96 samples are 6 batches of 16, but the twin must take its student's 20 steps an
        // epoch, cycling over the data, with validation after each of those epochs.
        var model = Mlp();
        var (data, validation) = Synthetic(120).SplitRandom(0.2, seed: 1);
        var options = Options(OptimizerKind.Adam, epochs: 4) with { StepsPerEpoch = 20 };
        var progress = new List<TrainingProgress>();
        var straight = Run(model, data, options with { CheckpointDirectory = Path.Join(_folder, "straight") }, validation, new Callback(progress.Add));

        Assert.Equal(96, data.Count);
        Assert.Equal((80, 20), (straight.Result.Steps, straight.Result.StepsPerEpoch));
        Assert.Equal(4, straight.Result.ValidationAccuracies.Count);
        Assert.Equal(Enumerable.Range(1, 80), progress.Select(p => p.Step));
        Assert.All(progress, p => Assert.Equal(80, p.TotalSteps));

        var checkpoints = Path.Join(_folder, "killed");
        using (var kill = new CancellationTokenSource())
        {
            Assert.ThrowsAny<OperationCanceledException>(() =>
                Run(model, data, options with { CheckpointDirectory = checkpoints }, validation, new StopAtEpoch(3, kill), kill.Token));
        }

        var resumed = Run(model, data, options with { CheckpointDirectory = checkpoints }, validation);
        Assert.Equal(2, resumed.Result.ResumedFromEpoch);
        AssertBitIdentical(straight.Weights, resumed.Weights);
        Assert.Equal(straight.Result.Steps, resumed.Result.Steps);
        var onePass = Run(model, data, Options(OptimizerKind.Adam, epochs: 4));
        Assert.Equal((24, 6), (onePass.Result.Steps, onePass.Result.StepsPerEpoch));
    }

    [Fact]
    public void A_checkpoint_of_other_options_is_not_resumed()
    {
        var model = Mlp();
        var data = Synthetic(64);
        var checkpoints = Path.Join(_folder, "other");
        Run(model, data, Options(OptimizerKind.AdamW, epochs: 1) with { CheckpointDirectory = checkpoints });

        var changed = Run(model, data, Options(OptimizerKind.AdamW, epochs: 2) with { CheckpointDirectory = checkpoints, LearningRate = 2e-2 });
        var fresh = Run(model, data, Options(OptimizerKind.AdamW, epochs: 2) with { LearningRate = 2e-2 });

        Assert.Equal(0, changed.Result.ResumedFromEpoch);
        AssertBitIdentical(fresh.Weights, changed.Weights);
    }

    [Fact]
    public void A_finished_run_resumed_again_trains_no_more()
    {
        var model = Mlp();
        var data = Synthetic(64);
        var options = Options(OptimizerKind.Adam, epochs: 2) with { CheckpointDirectory = Path.Join(_folder, "done") };
        var first = Run(model, data, options);

        var again = Run(model, data, options);

        Assert.Equal(2, again.Result.ResumedFromEpoch);
        AssertBitIdentical(first.Weights, again.Weights);
    }

    [Fact]
    public void Early_stopping_stops_after_patience_and_restores_the_best_epoch()
    {
        var model = Mlp(dropout: 0);
        var (data, validation) = Synthetic(100).SplitRandom(0.25, seed: 2);
        // A min_delta of 1 makes every epoch after the first "no better": epoch 1 stays the best.
        var options = new TrainingOptions(10, 16, 1e-2, Seed: 5) { EarlyStoppingPatience = 2, EarlyStoppingMinDelta = 1 };

        var stopped = Run(model, data, options, validation);
        var oneEpoch = Run(model, data, options with { Epochs = 1, EarlyStoppingPatience = 0 }, validation);

        Assert.True(stopped.Result.StoppedEarly);
        Assert.Equal(3, stopped.Result.EpochLosses.Count);
        Assert.Equal(3, stopped.Result.ValidationAccuracies.Count);
        Assert.Equal(1, stopped.Result.BestEpoch);
        Assert.Equal(stopped.Result.ValidationAccuracies[0], stopped.Result.BestValidationAccuracy);
        // Constant learning rate, so epoch 1 is the same in both runs; the stopped run must end with its weights.
        AssertBitIdentical(oneEpoch.Weights, stopped.Weights);
    }

    [Fact]
    public void Learns_fashion_mnist_and_reports_validation_accuracy_and_learning_rate()
    {
        var model = Architectures.MlpBuilder.Build(new Architectures.MlpOptions { Hidden = [32], Seed = 1 }, new Architectures.ArchitectureInputs([784], 10));
        var (data, validation) = FashionMnist(1200).SplitRandom(0.25, seed: 1);
        var reports = new List<TrainingProgress>();
        var options = new TrainingOptions(3, 32, 3e-3, Seed: 1) { Optimizer = OptimizerKind.AdamW, WeightDecay = 1e-2, WarmupFraction = 0.1, Schedule = ScheduleKind.Linear };

        using var scope = torch.NewDisposeScope();
        using var graph = TrainableGraph.Import(model);
        var result = ClassificationTrainer.Train(graph, data, new DistillationLoss(0, 1), options, validation, new Callback(reports.Add));

        Assert.True(result.BestValidationAccuracy > 0.6, $"validation accuracy {result.BestValidationAccuracy}");
        Assert.True(result.EpochLosses[^1] < result.EpochLosses[0]);
        Assert.Equal(3 * 29, reports.Count);
        Assert.Equal(reports.Max(r => r.LearningRate), options.LearningRate, 1e-12);
        Assert.True(reports[0].LearningRate < reports[10].LearningRate, "warm-up");
        Assert.True(reports[^1].LearningRate < reports[40].LearningRate, "decay");
        Assert.Null(reports[0].ValidationAccuracy);
        Assert.Equal(result.ValidationAccuracies[1], reports[^1].ValidationAccuracy);
        Assert.Equal(ClassificationTrainer.Accuracy(graph, validation), result.ValidationAccuracies[result.BestEpoch - 1]);
    }

    [Fact]
    public void Live_tensors_do_not_grow_across_epochs()
    {
        var model = Mlp();
        var (data, validation) = Synthetic(100).SplitRandom(0.2, seed: 1);
        var options = Options(OptimizerKind.AdamW, epochs: 6) with
        {
            CheckpointDirectory = Path.Join(_folder, "leaks"),
            LogDirectory = Path.Join(_folder, "leak-logs"),
            EarlyStoppingPatience = 100,
        };
        // Sampled at the first step of every epoch: after the previous epoch's steps, validation,
        // best-weights snapshot and checkpoint.
        var live = new List<long>();
        var progress = new Callback(p =>
        {
            if ((p.Step - 1) % 5 == 0)
            {
                live.Add(LiveTensors());
            }
        });

        Run(model, data, options, validation, progress);

        Assert.Equal(6, live.Count);
        Assert.True(live[0] > 0);
        // Epoch 1 is before the first best-weights snapshot; from epoch 2 on nothing may accumulate.
        Assert.All(live.Skip(2), n => Assert.Equal(live[1], n));
    }

    [Fact]
    public void Tensorboard_events_are_stamped_in_unix_seconds_and_log_validation_loss_accuracy_and_learning_rate_per_epoch()
    {
        var logs = Path.Join(_folder, "logs");
        var (data, validation) = FashionMnist(320).SplitRandom(0.2, seed: 1);
        var options = new TrainingOptions(2, 64, 2e-3, Seed: 3) { Schedule = ScheduleKind.Cosine, WarmupSteps = 2, LogDirectory = logs, RestoreBestWeights = false };
        var model = MlpBuilder.Build(new MlpOptions { Hidden = [32], Seed = 2 }, new ArchitectureInputs([784], 10));
        using var scope = torch.NewDisposeScope();
        using var graph = TrainableGraph.Import(model);
        var before = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;

        var result = ClassificationTrainer.Train(graph, data, new DistillationLoss(0, 1), options, validation);

        var after = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;
        var events = TensorBoardEvents.Read(Assert.Single(Directory.GetFiles(logs, "events.out.tfevents.*")));
        Assert.Equal("brain.Event:2", events[0].FileVersion);
        // Every event, the file-version one included, in Unix seconds of this run (TensorBoard's wall-time axis).
        Assert.All(events, e => Assert.InRange(e.WallTime, before - 1, after + 1));

        IReadOnlyList<long> Steps(string tag) => [.. events.Where(e => e.Tag == tag).Select(e => e.Step)];
        float Value(string tag, long step) => events.Single(e => e.Tag == tag && e.Step == step).Value!.Value;
        Assert.Equal(8, result.Steps);
        Assert.Equal([1, 2, 3, 4, 5, 6, 7, 8], Steps("train/loss"));
        Assert.Equal([1, 2, 3, 4, 5, 6, 7, 8], Steps("train/learning_rate"));
        foreach (var tag in new[] { "epoch/train_loss", "epoch/learning_rate", "epoch/validation_loss", "epoch/validation_accuracy" })
        {
            Assert.Equal([1, 2], Steps(tag));
        }

        for (var epoch = 1; epoch <= 2; epoch++)
        {
            Assert.Equal((float)result.EpochLosses[epoch - 1], Value("epoch/train_loss", epoch));
            Assert.Equal((float)result.ValidationAccuracies[epoch - 1], Value("epoch/validation_accuracy", epoch));
            // An epoch's learning rate is its last step's (cosine decay: the second epoch ends lower).
            Assert.Equal(Value("train/learning_rate", epoch * 4), Value("epoch/learning_rate", epoch));
        }

        Assert.True(Value("epoch/learning_rate", 2) < Value("epoch/learning_rate", 1));

        // The validation loss is the mean cross-entropy on the validation labels, recomputed here in double from
        // the final weights (not restored: the last epoch's).
        var rows = Enumerable.Range(0, validation.Count).ToArray();
        var logits = graph.Forward(validation.Batch(new TrainableGraphInputs(graph.InputNames), rows))[graph.OutputNames[0]].data<float>().ToArray();
        var crossEntropy = 0.0;
        for (var i = 0; i < validation.Count; i++)
        {
            var row = logits.AsSpan(i * 10, 10);
            var max = row.ToArray().Max();
            var logSum = Math.Log(row.ToArray().Sum(v => Math.Exp(v - max))) + max;
            crossEntropy += logSum - row[(int)validation.Labels![i]];
        }

        Assert.Equal(crossEntropy / validation.Count, Value("epoch/validation_loss", 2), 1e-4);
    }

    [Fact]
    public void Event_file_checksums_are_tfrecords_masked_crc32c()
    {
        // The published CRC-32C check value, once through the engine's hardware-assisted CRC and once bit by bit.
        var check = System.Text.Encoding.ASCII.GetBytes("123456789");
        Assert.Equal(0xE3069283u, EventLog.Crc32C(check));
        Assert.Equal(0xE3069283u, TensorBoardEvents.Crc32C(check));

        using var log = new EventLog(Path.Join(_folder, "direct"));
        log.Scalar("a/b", 0.25, 7);
        log.Scalar("a/b", double.NaN, long.MaxValue);
        log.Flush();

        var events = TensorBoardEvents.Read(log.FilePath);
        Assert.Equal(3, events.Count);
        Assert.Equal(("a/b", 7L, 0.25f), (events[1].Tag, events[1].Step, events[1].Value!.Value));
        Assert.Equal(long.MaxValue, events[2].Step);
        Assert.True(float.IsNaN(events[2].Value!.Value));
    }

    [Fact]
    public void Trains_a_graph_with_several_named_inputs_of_different_types()
    {
        var model = MaskedLinear();
        const int Count = 64;
        var features = Graph.GraphTestSupport.RandomFloats(Count * 6, seed: 1);
        var mask = Enumerable.Range(0, Count * 6).Select(i => (long)(i % 3 == 0 ? 0 : 1)).ToArray();
        var labels = Enumerable.Range(0, Count).Select(i => (long)(features[i * 6 + 1] > 0 ? 1 : 0)).ToArray();
        var data = new TrainingSet([InputArray.Float("features", features, [6]), InputArray.Int64("mask", mask, [6])], labels, null, 2);

        using var scope = torch.NewDisposeScope();
        using var graph = TrainableGraph.Import(model);
        var before = ClassificationTrainer.Accuracy(graph, data);
        var result = ClassificationTrainer.Train(graph, data, new DistillationLoss(0, 1), new TrainingOptions(20, 16, 5e-2, 1));

        Assert.Equal(20, result.EpochLosses.Count);
        Assert.True(result.EpochLosses[^1] < result.EpochLosses[0] / 2, string.Join(", ", result.EpochLosses));
        Assert.True(ClassificationTrainer.Accuracy(graph, data) > Math.Max(before, 0.9));
    }

    [Fact]
    public void Rejects_inconsistent_inputs_before_training()
    {
        using var scope = torch.NewDisposeScope();
        using var graph = TrainableGraph.Import(Mlp());
        var unlabelled = new TrainingSet(new float[24], [12], null, null, 4);

        Assert.Throws<ArgumentException>(() => ClassificationTrainer.Train(graph, unlabelled, new DistillationLoss(0, 1), new TrainingOptions(1, 2, 1e-3, 1)));
        Assert.Throws<ArgumentException>(() => ClassificationTrainer.Train(graph, Synthetic(8), new DistillationLoss(0, 1), new TrainingOptions(1, 2, 1e-3, 1) { EarlyStoppingPatience = 1 }));
        var e = Assert.Throws<ArgumentException>(() => ClassificationTrainer.Train(graph, Synthetic(8), new DistillationLoss(0, 1), new TrainingOptions(0, 0, -1, 1) { Momentum = 1 }));
        Assert.Contains("epochs", e.Message, StringComparison.Ordinal);
        Assert.Contains("momentum", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new TrainingSet([InputArray.Float("a", new float[6], [3]), InputArray.Float("b", new float[9], [3])], null, null, 2));
    }

    [Fact]
    public void The_validation_split_is_seeded_disjoint_and_complete()
    {
        var data = Synthetic(50);

        var (rest, split) = data.SplitRandom(0.2, seed: 9);
        var (_, again) = data.SplitRandom(0.2, seed: 9);
        var (_, other) = data.SplitRandom(0.2, seed: 10);

        Assert.Equal(10, split.Count);
        Assert.Equal(40, rest.Count);
        Assert.Equal(split.Labels, again.Labels);
        Assert.Equal(split.TeacherLogits, again.TeacherLogits);
        Assert.NotEqual(split.TeacherLogits, other.TeacherLogits);
        var logits = data.TeacherLogits!.Chunk(4).Select(r => string.Join(",", r)).ToHashSet();
        var parts = rest.TeacherLogits!.Concat(split.TeacherLogits!).Chunk(4).Select(r => string.Join(",", r)).ToHashSet();
        Assert.Equal(logits, parts);
    }

    /// <summary>
    /// logits = (features * mask) @ W + B, with an int64 mask like a text model's attention mask. (Mul of a
    /// float and an int64 tensor is not valid ONNX; TorchSharp promotes it. It stands in for text graphs
    /// until Cast and Gather import.)
    /// </summary>
    private static ModelProto MaskedLinear()
    {
        var graph = new GraphProto { Name = "masked" };
        graph.Input.Add(Input("features", DataType.Float));
        graph.Input.Add(Input("mask", DataType.Int64));
        graph.Output.Add(Input("logits", DataType.Float));
        var weights = Graph.GraphTestSupport.RandomFloats(12, seed: 4, bound: 0.1);
        graph.Initializer.Add(Initializer("W", weights, 6, 2));
        graph.Initializer.Add(Initializer("B", [0f, 0f], 2));
        graph.Node.Add(Node("Mul", ["features", "mask"], "masked"));
        graph.Node.Add(Node("MatMul", ["masked", "W"], "product"));
        graph.Node.Add(Node("Add", ["product", "B"], "logits"));
        var model = new ModelProto { IrVersion = 8, Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = string.Empty, Version = 17 });
        return model;

        static ValueInfoProto Input(string name, DataType type) => new()
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type } },
        };

        static NodeProto Node(string op, string[] inputs, string output)
        {
            var node = new NodeProto { OpType = op, Name = output };
            node.Input.AddRange(inputs);
            node.Output.Add(output);
            return node;
        }

        static TensorProto Initializer(string name, float[] values, params long[] dims)
        {
            var tensor = new TensorProto { Name = name, DataType = (int)DataType.Float };
            tensor.Dims.AddRange(dims);
            tensor.RawData = ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));
            return tensor;
        }
    }
}
