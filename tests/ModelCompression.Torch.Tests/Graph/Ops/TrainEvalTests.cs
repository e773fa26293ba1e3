using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Torch.Graph;
using ModelCompression.Torch.Native;
using TorchSharp;
using static ModelCompression.Torch.Tests.Graph.GraphTestSupport;
using static TorchSharp.torch;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Torch.Tests.Graph.Ops;

/// <summary>Dropout and BatchNormalization follow the module's train/eval mode, not the nodes' attributes.</summary>
[Trait("Category", "Slow")] // trains models in train mode
public sealed class TrainEvalTests
{
    public TrainEvalTests() => TorchNativeLoader.EnsureLoaded();

    [Fact]
    public void Dropout_drops_only_in_train_mode_and_its_mask_matches()
    {
        var model = new GraphBuilder("drop").Opset(13)
            .Input("x", DataType.Float, "batch", 1000)
            // training_mode=false in the graph: ignored in favour of the module's mode.
            .Initializer("ratio", [0.3f], []).Initializer(TensorData.FromBools("training_mode", [false], []))
            .Node("Dropout", ["x", "ratio", "training_mode"], ["y", "mask"])
            .Output("y", DataType.Float, "batch", 1000).Output("mask", DataType.Bool, "batch", 1000)
            .Build();
        using var scope = torch.NewDisposeScope();
        using var graph = TrainableGraph.Import(model);
        var x = torch.ones(4, 1000);

        graph.eval();
        var eval = graph.Forward(new Dictionary<string, Tensor> { ["x"] = x });
        Assert.Equal(ToDoubles(x), ToDoubles(eval["y"]));
        Assert.True(eval["mask"].all().item<bool>());

        graph.train();
        graph.SeedRandom(3);
        var train = graph.Forward(new Dictionary<string, Tensor> { ["x"] = x });
        var y = ToDoubles(train["y"]);
        var kept = ToDoubles(train["mask"]);
        var dropped = y.Count(v => v == 0) / (double)y.Length;
        Assert.InRange(dropped, 0.25, 0.35);
        // Kept values are scaled by 1 / (1 - ratio); the mask says which.
        Assert.All(y.Zip(kept), p => Assert.Equal(p.Second == 1 ? 1 / 0.7 : 0, p.First, 5));
    }

    [Fact]
    public void Dropout_masks_come_from_the_graphs_own_seed_whatever_else_draws_from_torchs_global_generator()
    {
        var model = new GraphBuilder("drop").Opset(13)
            .Input("x", DataType.Float, "batch", 1000)
            .Initializer("ratio", [0.5f], [])
            .Node("Dropout", ["x", "ratio"], ["y"])
            .Output("y", DataType.Float, "batch", 1000)
            .Build();
        using var scope = torch.NewDisposeScope();
        using var graph = TrainableGraph.Import(model);
        using var other = TrainableGraph.Import(model);
        var x = torch.ones(4, 1000);
        graph.train();
        other.train();

        graph.SeedRandom(11);
        var first = ToDoubles(graph.Forward(new Dictionary<string, Tensor> { ["x"] = x })["y"]);

        // What a test or a model training on another thread does meanwhile: reseed and draw from the global
        // generator, and run another graph in training mode.
        graph.SeedRandom(11);
        torch.manual_seed(11);
        torch.rand(4096).Dispose();
        other.SeedRandom(11);
        other.Forward(new Dictionary<string, Tensor> { ["x"] = x });
        var second = ToDoubles(graph.Forward(new Dictionary<string, Tensor> { ["x"] = x })["y"]);

        Assert.Equal(first, second);
        graph.SeedRandom(12);
        Assert.NotEqual(first, ToDoubles(graph.Forward(new Dictionary<string, Tensor> { ["x"] = x })["y"]));
    }

    [Fact]
    public void Batch_norm_uses_batch_statistics_in_train_mode_and_running_statistics_in_eval_mode()
    {
        const float Momentum = 0.8f;
        const float Epsilon = 1e-5f;
        var model = new GraphBuilder("bn").Opset(15)
            .Input("x", DataType.Float, "batch", 2, 3)
            .Initializer("scale", [1f, 2f], [2]).Initializer("bias", [0f, 0.5f], [2])
            .Initializer("mean", [0.5f, -1f], [2]).Initializer("var", [4f, 0.25f], [2])
            .Node("BatchNormalization", ["x", "scale", "bias", "mean", "var"], ["y"], Attr.Float("momentum", Momentum), Attr.Float("epsilon", Epsilon))
            .Output("y", DataType.Float, "batch", 2, 3)
            .Build();
        using var scope = torch.NewDisposeScope();
        using var graph = TrainableGraph.Import(model);
        Assert.Equal(["bias", "scale"], graph.ParametersByName.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(["mean", "var"], graph.RunningStatisticsByName.Keys.Order(StringComparer.Ordinal));
        var x = torch.tensor(RandomFloats(4 * 2 * 3, seed: 5, bound: 3), [4, 2, 3]);
        var inputs = new Dictionary<string, Tensor> { ["x"] = x };

        // Eval: the running statistics, as ONNX Runtime does; the statistics do not move.
        graph.eval();
        var expectedEval = RunOrtAll(model, inputs)[0].Data;
        Assert.True(RelativeError(ToDoubles(graph.Forward(inputs)["y"]), expectedEval) < 1e-5);
        Assert.Equal([0.5f, -1f], ToArray(graph.RunningStatisticsByName["mean"]));

        // Train: each channel normalized with its batch mean and population variance.
        graph.train();
        var y = graph.Forward(inputs)["y"];
        var channelMean = y.mean([0, 2]);
        var channelStd = y.var([0, 2], unbiased: false).sqrt();
        Assert.Equal(new[] { 0.0, 0.5 }, ToDoubles(channelMean).Select(v => Math.Round(v, 4)));
        Assert.Equal(new[] { 1.0, 2.0 }, ToDoubles(channelStd).Select(v => Math.Round(v, 3)));

        // Running statistics: running * momentum + batch * (1 - momentum), ONNX's rule, with PyTorch's unbiased
        // batch variance (n = 4 x 3 = 12 values per channel here; ONNX's reference would use the population one).
        var batchMean = ToDoubles(x.mean([0, 2]));
        var batchVar = ToDoubles(x.var([0, 2], unbiased: true));
        var mean = ToDoubles(graph.RunningStatisticsByName["mean"]);
        var variance = ToDoubles(graph.RunningStatisticsByName["var"]);
        Assert.Equal((0.5 * Momentum) + (batchMean[0] * (1 - Momentum)), mean[0], 5);
        Assert.Equal((-1 * Momentum) + (batchMean[1] * (1 - Momentum)), mean[1], 5);
        Assert.Equal((4 * Momentum) + (batchVar[0] * (1 - Momentum)), variance[0], 5);
        Assert.Equal((0.25 * Momentum) + (batchVar[1] * (1 - Momentum)), variance[1], 5);

        // Written back, ONNX Runtime in inference mode uses the updated statistics, as the module's eval does.
        graph.eval();
        var written = graph.WriteBack();
        Assert.Equal(ToArray(graph.RunningStatisticsByName["var"]), TensorData.ToFloats(written.Graph.Initializer.Single(i => i.Name == "var")));
        var afterEval = ToDoubles(graph.Forward(inputs)["y"]);
        Assert.True(RelativeError(afterEval, RunOrtAll(written, inputs)[0].Data) < 1e-5);
        Assert.True(RelativeError(afterEval, expectedEval) > 1e-3);
    }

    [Fact]
    public void Running_statistics_never_train_even_when_every_initializer_is_trainable()
    {
        var model = OnnxModelFile.Load(Fixture("cnn_opset17.onnx"));
        using var scope = torch.NewDisposeScope();
        using var graph = TrainableGraph.Import(model, new TrainableGraphOptions { IsTrainable = _ => true });
        var statistics = model.Graph.Node.Where(n => n.OpType == "BatchNormalization").SelectMany(n => n.Input.Skip(3)).ToHashSet();

        Assert.Equal(statistics.Order(), graph.RunningStatisticsByName.Keys.Order());
        Assert.Empty(graph.ParametersByName.Keys.Intersect(statistics));
        Assert.All(graph.RunningStatisticsByName.Values, t => Assert.False(t.requires_grad));
        // Persistent buffers: they belong to the model's state (checkpoints), unlike constants.
        Assert.Equal(4, graph.named_buffers(true, false).Count());
    }
}
