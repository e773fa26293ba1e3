using ModelCompression.Architectures;
using ModelCompression.Onnx;
using ModelCompression.Torch.Native;
using TorchSharp;
using static ModelCompression.Torch.Tests.Graph.GraphTestSupport;
using static TorchSharp.torch;

namespace ModelCompression.Torch.Tests.Graph.Ops;

/// <summary>
/// The whole built-in decoder, with a cached past and left padding, against finite differences in float64: every
/// parameter and the past keys and values get the gradient of logits and presents.
/// </summary>
public sealed class DecoderGradientTests
{
    public DecoderGradientTests() => TorchNativeLoader.EnsureLoaded();

    [Theory]
    [InlineData(PositionEncoding.Learned, 2)]
    [InlineData(PositionEncoding.Rope, 2)]
    [InlineData(PositionEncoding.Rope, 0)]
    public void Decoder_gradients_match_finite_differences(PositionEncoding positions, int past)
    {
        var options = new DecoderOptions { VocabSize = 7, MaxLength = 8, Width = 8, Heads = 2, Layers = 1, FeedForward = 6, Positions = positions, Dropout = 0, Seed = 4 };
        var model = DecoderBuilder.Build(options, new ArchitectureInputs([0], 1));
        var total = past + 3;
        var inputs = new Dictionary<string, Tensor>
        {
            [DecoderConvention.InputIds] = torch.tensor(new long[] { 1, 6, 2, 0, 3, 5 }, [2, 3]),
            // Row 0 starts with a padded position, row 1 sees everything.
            [DecoderConvention.AttentionMask] = torch.tensor(Enumerable.Range(0, 2 * total).Select(i => i == 0 ? 0L : 1L).ToArray(), [2, total]),
            [DecoderConvention.PositionIds] = torch.tensor(Enumerable.Range(0, 6).Select(i => (long)(past + (i % 3))).ToArray(), [2, 3]),
            [DecoderConvention.PastKey(0)] = torch.tensor(RandomFloats(2 * 2 * past * 4, seed: 1), [2, 2, past, 4]),
            [DecoderConvention.PastValue(0)] = torch.tensor(RandomFloats(2 * 2 * past * 4, seed: 2), [2, 2, past, 4]),
        };

        GradientTests.CheckGradients(model, inputs);
    }
}
