using ModelCompression.Architectures;
using ModelCompression.Generation;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Pruning;
using ModelCompression.Torch.Graph;
using ModelCompression.Torch.Native;
using static ModelCompression.Core.Tests.Architectures.DecoderTestSupport;
using static ModelCompression.Core.Tests.Pruning.DecoderPruningSupport;

namespace ModelCompression.Core.Tests.Pruning;

/// <summary>
/// A pruned decoder is still a graph the trainer can import (recovery training runs on it): the trainable graph computes
/// what ONNX Runtime computes, with the new Split sizes, head reshapes and cache shapes.
/// </summary>
public sealed class PrunedDecoderTrainingGraphTests
{
    public PrunedDecoderTrainingGraphTests() => TorchNativeLoader.EnsureLoaded();

    public static TheoryData<string> Cases => ["built-in heads", "built-in layers", "pytorch heads", "pytorch layers", "pytorch heads without cache"];

    [Theory]
    [MemberData(nameof(Cases))]
    public void The_trainable_graph_of_a_pruned_decoder_matches_onnx_runtime(string name)
    {
        var model = name switch
        {
            "built-in heads" => DecoderHeadPruner.Prune(Build(Options(PositionEncoding.Rope), withCache: true), sparsity: 0.5),
            "built-in layers" => DecoderLayerDropper.Drop(Build(Options(PositionEncoding.Learned), withCache: true), [1]),
            "pytorch heads" => DecoderHeadPruner.Prune(Fixture(withCache: true), sparsity: 0.25),
            "pytorch layers" => DecoderLayerDropper.Drop(Fixture(withCache: true), [0]),
            _ => DecoderHeadPruner.Prune(Fixture(withCache: false), sparsity: 0.5),
        };
        using var graph = TrainableGraph.Import(model);
        graph.eval();

        var inputs = Inputs(Sequence);
        var onnx = RunOrt(model, WithEmptyPast(model, inputs));
        var torch = RunTorch(graph, WithEmptyPast(model, inputs));

        Assert.Equal(onnx.Keys.Order(), torch.Keys.Order());
        Assert.All(onnx, pair =>
        {
            Assert.Equal(pair.Value.Shape, torch[pair.Key].Shape);
            Assert.True(RelativeError((float[])torch[pair.Key].Data, (float[])pair.Value.Data) <= 1e-4, $"'{pair.Key}' differs");
        });
    }

    private static Dictionary<string, Value> WithEmptyPast(ModelProto model, Dictionary<string, Value> inputs)
    {
        var signature = DecoderSignature.Read(model, "model");
        for (var i = 0; i < signature.CachedLayers; i++)
        {
            inputs[DecoderConvention.PastKey(i)] = Value.Floats([], Sequence.Length, signature.KeyValueHeads, 0, signature.HeadWidth);
            inputs[DecoderConvention.PastValue(i)] = Value.Floats([], Sequence.Length, signature.KeyValueHeads, 0, signature.HeadWidth);
        }

        return inputs;
    }
}
