using ModelCompression.Onnx.Proto;
using ModelCompression.Torch.Graph;
using ModelCompression.Torch.Native;
using ModelCompression.Torch.Training;
using TorchSharp;
using static ModelCompression.Torch.Tests.Graph.GraphTestSupport;
using static ModelCompression.Torch.Tests.Training.TrainerTestSupport;

namespace ModelCompression.Torch.Tests.Training;

/// <summary>Feature (hint) distillation: intermediate student tensors learn the teacher's values.</summary>
[Collection(TrainerCollection.Name)]
[Trait("Category", "Slow")] // trains models
public sealed class FeatureHintLossTests : IDisposable
{
    /// <summary>The hidden activations of <see cref="TrainerTestSupport.Mlp"/> (12-16-4), [batch, 16].</summary>
    private const string Hidden = "fc1.relu";

    private readonly string _folder = TemporaryFolder();

    public FeatureHintLossTests() => TorchNativeLoader.EnsureLoaded();

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Theory]
    [InlineData(new long[] { 64 }, new long[] { 64 }, -1)]
    [InlineData(new long[] { 64 }, new long[] { 128 }, 0)]
    [InlineData(new long[] { 16, 7, 7 }, new long[] { 32, 7, 7 }, 0)]
    [InlineData(new long[] { 12, 48 }, new long[] { 12, 128 }, 1)]
    [InlineData(new long[] { 256 }, new long[] { 32, 7, 7 }, -2)]
    [InlineData(new long[] { 16, 14, 14 }, new long[] { 32, 7, 7 }, -2)]
    public void The_projection_acts_on_the_one_axis_that_differs_or_on_the_flattened_sample(long[] student, long[] teacher, int expected) =>
        Assert.Equal(expected, FeatureHintLoss.ProjectionAxis(Target(teacher), student));

    [Fact]
    public void Shapes_too_big_to_project_flattened_are_refused_naming_the_hint()
    {
        var e = Assert.Throws<ArgumentException>(() => FeatureHintLoss.ProjectionAxis(Target([64, 28, 28]), [32, 14, 14]));
        Assert.Equal("hints", e.ParamName);
        Assert.Contains("'student' [32, 14, 14] -> 'teacher' [64, 28, 28]", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_projection_is_made_only_where_the_shapes_differ_and_its_parameters_train()
    {
        using var graph = TrainableGraph.Import(Mlp(dropout: 0));
        using (var same = FeatureHintLoss.Create(graph, WithHint(Synthetic(8), 16), 1, seed: 1))
        {
            Assert.Empty(same.Parameters);
        }

        using var projected = FeatureHintLoss.Create(graph, WithHint(Synthetic(8), 6), 1, seed: 1);
        Assert.Equal([[6L, 16], [6L]], projected.Parameters.Select(p => p.shape));
        Assert.All(projected.Parameters, p => Assert.True(p.requires_grad));
        Assert.Equal(["fc1.relu"], projected.StudentTensors);
    }

    [Fact]
    public void Forward_returns_named_intermediate_values_and_refuses_unknown_ones()
    {
        using var scope = torch.NewDisposeScope();
        using var graph = TrainableGraph.Import(Mlp(dropout: 0));
        using var input = torch.rand([3, 12]);
        var values = graph.Forward(new Dictionary<string, torch.Tensor> { [graph.InputNames[0]] = input }, [Hidden]);

        Assert.Equal([3L, 16], values[Hidden].shape);
        Assert.True(values[Hidden].ge(torch.zeros_like(values[Hidden])).all().item<bool>(), "ReLU outputs are not negative");
        Assert.Contains(graph.OutputNames[0], values.Keys);
        var e = Assert.Throws<ArgumentException>(() => graph.Forward(new Dictionary<string, torch.Tensor> { [graph.InputNames[0]] = input }, ["fc9.relu"]));
        Assert.Contains("fc9.relu", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Hints_of_the_same_width_pull_the_student_features_onto_the_teachers()
    {
        var data = WithHint(Synthetic(160), 16);
        var model = Mlp(dropout: 0);
        var before = HintError(model, data);

        var trained = Train(model, data, hintWeight: 10, epochs: 30);

        var after = HintError(trained, data);
        Assert.True(after < before * 0.25, $"hint MSE {before:0.0000} -> {after:0.0000}");
    }

    [Theory]
    [InlineData(new long[] { 6 })] // along the one differing axis
    [InlineData(new long[] { 2, 3 })] // over the flattened sample
    public void Hints_of_another_shape_train_through_a_projection(long[] teacherShape)
    {
        var data = WithHint(Synthetic(160), 6, teacherShape);
        using var graph = TrainableGraph.Import(Mlp(dropout: 0));
        var result = ClassificationTrainer.Train(graph, data, new DistillationLoss(0, 1) { HintWeight = 100 }, new TrainingOptions(30, 16, 1e-2, Seed: 3));

        // At weight 100 the hint term dominates the loss, and a projection of the 16 hidden units can fit the teacher's 6 features.
        Assert.True(result.EpochLosses[^1] < result.EpochLosses[0] * 0.2, $"loss {result.EpochLosses[0]:0.000} -> {result.EpochLosses[^1]:0.000}");
    }

    [Fact]
    public void A_hint_run_stopped_and_resumed_ends_with_the_weights_of_a_straight_run()
    {
        var data = WithHint(Synthetic(120), 6);
        var options = new TrainingOptions(4, 16, 1e-2, Seed: 3) { Optimizer = OptimizerKind.AdamW, WeightDecay = 1e-3 };
        var loss = new DistillationLoss(0.5, 2) { HintWeight = 2 };
        var straight = Weights(Mlp(), data, loss, options with { CheckpointDirectory = Path.Join(_folder, "straight") });

        var checkpoints = Path.Join(_folder, "killed");
        using (var kill = new CancellationTokenSource())
        {
            Assert.ThrowsAny<OperationCanceledException>(() =>
                Weights(Mlp(), data, loss, options with { CheckpointDirectory = checkpoints }, new StopAtEpoch(3, kill), kill.Token));
        }

        // Resuming restores the projection's weights and Adam moments too, or the trajectories would part.
        var resumed = Weights(Mlp(), data, loss, options with { CheckpointDirectory = checkpoints });
        AssertBitIdentical(straight, resumed);

        // Another hint weight is another run: its checkpoint is not resumed.
        var other = Weights(Mlp(), data, loss with { HintWeight = 3 }, options with { CheckpointDirectory = checkpoints });
        Assert.False(straight[straight.Keys.First()].AsSpan().SequenceEqual(other[straight.Keys.First()]));
    }

    [Fact]
    public void Selecting_splitting_and_adding_an_unlabelled_pool_keep_each_samples_hint_values()
    {
        var data = WithHint(Synthetic(50), 3);
        var (rest, split) = data.SplitRandom(0.2, seed: 4);
        Assert.Equal(40, rest.Hints[0].Teacher.Count);
        Assert.Equal(10, split.Hints[0].Teacher.Count);

        var pool = new TrainingSet(data.Inputs, null, data.TeacherLogits, data.Classes, data.Hints);
        var combined = split.WithUnlabelled(pool);
        Assert.Equal(60, combined.Hints[0].Teacher.Count);
        using var scope = torch.NewDisposeScope();
        // Row 10 of the combined set is row 0 of the pool.
        var fromPool = combined.Hints[0].Teacher.Batch([10]);
        var original = data.Hints[0].Teacher.Batch([0]);
        Assert.True(fromPool.eq(original).all().item<bool>());
    }

    private static HintTarget Target(long[] teacherShape) =>
        new("student", "teacher", InputArray.Float(null, new float[teacherShape.Aggregate(1L, (a, b) => a * b)], teacherShape));

    /// <summary>
    /// <paramref name="data"/> with one hint on the MLP's hidden layer: the teacher's "features" are a fixed
    /// random ReLU layer of the input, <paramref name="width"/> wide.
    /// </summary>
    private static TrainingSet WithHint(TrainingSet data, int width, long[]? sampleShape = null)
    {
        // Synthetic's own inputs (same count and default seed).
        var inputs = RandomFloats(data.Count * 12, 6);
        var weights = RandomFloats(12 * width, 11);
        var features = new float[data.Count * width];
        for (var i = 0; i < data.Count; i++)
        {
            for (var j = 0; j < width; j++)
            {
                var sum = 0f;
                for (var k = 0; k < 12; k++)
                {
                    sum += inputs[(i * 12) + k] * weights[(k * width) + j];
                }

                features[(i * width) + j] = Math.Max(0, sum);
            }
        }

        return new TrainingSet(data.Inputs, data.Labels, data.TeacherLogits, data.Classes, [new HintTarget(Hidden, "teacher.hidden", InputArray.Float(null, features, sampleShape ?? [width]))]);
    }

    private static ModelProto Train(ModelProto model, TrainingSet data, double hintWeight, int epochs)
    {
        using var graph = TrainableGraph.Import(model);
        ClassificationTrainer.Train(graph, data, new DistillationLoss(0, 1) { HintWeight = hintWeight }, new TrainingOptions(epochs, 16, 1e-2, Seed: 3));
        return graph.WriteBack();
    }

    private static Dictionary<string, float[]> Weights(ModelProto model, TrainingSet data, DistillationLoss loss, TrainingOptions options, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        using var scope = torch.NewDisposeScope();
        using var graph = TrainableGraph.Import(model);
        ClassificationTrainer.Train(graph, data, loss, options, null, progress, cancellationToken);
        return TrainerTestSupport.Weights(graph);
    }

    /// <summary>Mean squared error between the model's hidden activations and the hint's teacher values.</summary>
    private static double HintError(ModelProto model, TrainingSet data)
    {
        using var scope = torch.NewDisposeScope();
        using var graph = TrainableGraph.Import(model);
        graph.eval();
        using var noGrad = torch.no_grad();
        var rows = Enumerable.Range(0, data.Count).ToArray();
        var inputs = new Dictionary<string, torch.Tensor> { [graph.InputNames[0]] = data.Inputs[0].Batch(rows) };
        var hidden = graph.Forward(inputs, [Hidden])[Hidden];
        return torch.nn.functional.mse_loss(hidden, data.Hints[0].Teacher.Batch(rows)).item<float>();
    }
}
