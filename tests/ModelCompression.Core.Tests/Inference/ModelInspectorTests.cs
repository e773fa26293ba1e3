using ModelCompression.Architectures;
using ModelCompression.Inference;
using ModelCompression.Onnx;

namespace ModelCompression.Core.Tests.Inference;

public sealed class ModelInspectorTests
{
    [Fact]
    public void Lists_every_value_of_a_PyTorch_export_with_its_measured_shape()
    {
        var inspection = ModelInspector.Inspect(Repo.Teacher);

        Assert.Equal(421_642, inspection.Parameters);
        Assert.Equal(10, inspection.Values.Count);
        var penultimate = inspection.Values.Single(v => v.Name == "/classifier/classifier.2/Relu_output_0");
        Assert.Equal(("Relu", "float32"), (penultimate.OpType, penultimate.ElementType));
        Assert.Equal([ModelInspector.ProbeBatch, 128L], penultimate.Shape!);
        Assert.Equal([ModelInspector.ProbeBatch, 64L, 7, 7], inspection.Values.Single(v => v.Name == "/features/features.5/MaxPool_output_0").Shape!);
        var text = ModelInspector.Markdown(inspection, Repo.Teacher);
        Assert.Contains("| `/classifier/classifier.2/Relu_output_0` | Relu | /classifier/classifier.2/Relu | float32 | [2, 128] |", text, StringComparison.Ordinal);
        Assert.Equal(inspection.Parameters, inspection.Weights.Sum(w => w.Dims.Aggregate(1L, (a, b) => a * b)));
        Assert.Contains("| `classifier.1.weight` | float | [128, 3136] |", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Token_models_are_probed_with_ids_and_masks_at_a_sequence_length_of_their_own()
    {
        using var dir = new TempDir();
        var path = dir.File("transformer.onnx");
        OnnxModelFile.Save(TransformerBuilder.Build(new TransformerOptions { Width = 16, Heads = 2, Layers = 1, FeedForward = 32 }, new ArchitectureInputs([12], 3, VocabSize: 50)), path);

        var inspection = ModelInspector.Inspect(path);

        Assert.Equal(["input_ids", "attention_mask"], inspection.Inputs.Select(i => i.Name));
        // The residual stream at the data's sequence length, and the per-head scores.
        var sequence = inspection.Inputs[0].Dimensions[1] > 0 ? inspection.Inputs[0].Dimensions[1] : ModelInspector.ProbeSequence;
        Assert.Equal([ModelInspector.ProbeBatch, sequence, 16L], inspection.Values.Single(v => v.Name == "encoder.layer0.feed_forward.residual").Shape!);
        Assert.Equal([ModelInspector.ProbeBatch, 2L, sequence, sequence], inspection.Values.Single(v => v.Name == "encoder.layer0.attention.probabilities").Shape!);
        Assert.All(inspection.Values, v => Assert.NotNull(v.Shape));
    }
}
