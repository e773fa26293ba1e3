using ModelCompression.Architectures;
using ModelCompression.Onnx;
using ModelCompression.Stages;

namespace ModelCompression.Core.Tests.Stages;

public sealed class PenultimateValueTests
{
    [Fact]
    public void Is_what_the_final_linear_layer_reads_behind_dropout()
    {
        // PyTorch export: Gemm reads the ReLU (the export in eval mode has no Dropout).
        Assert.Equal("/classifier/classifier.2/Relu_output_0", PenultimateValue.Find(OnnxModelFile.Load(Repo.Teacher)));
        // Built-in MLP with dropout: the ReLU before the Dropout node.
        Assert.Equal("fc1.relu", PenultimateValue.Find(MlpBuilder.Build(new MlpOptions { Hidden = [16], Dropout = 0.2 }, new ArchitectureInputs([12], 3))));
        // Built-in CNN with a hidden head layer, and a transformer whose classifier reads the pooled features.
        Assert.Equal("head.hidden.relu", PenultimateValue.Find(CnnBuilder.Build(new CnnOptions { Channels = [4], Head = CnnHead.Flatten, HeadHidden = 8 }, new ArchitectureInputs([1, 8, 8], 3))));
        Assert.Equal("pooled", PenultimateValue.Find(TransformerBuilder.Build(new TransformerOptions { Width = 16, Heads = 2, Layers = 1, FeedForward = 32, Dropout = 0 }, new ArchitectureInputs([6], 3, VocabSize: 20))));
    }

    [Fact]
    public void A_linear_model_has_none_its_output_reads_the_input()
    {
        Assert.Null(PenultimateValue.Find(MlpBuilder.Build(new MlpOptions { Hidden = [] }, new ArchitectureInputs([12], 3))));
    }
}
