using ModelCompression.Architectures;
using ModelCompression.Onnx.Proto;
using static ModelCompression.Core.Tests.Architectures.ArchitectureTestSupport;

namespace ModelCompression.Core.Tests.Architectures;

/// <summary>Initializer names as documented on the builders, and the initial weights' statistics.</summary>
public sealed class ArchitectureNamesAndInitTests
{
    [Fact]
    public void Mlp_names_follow_pytorch_linear_layers()
    {
        var model = Case("mlp-flat-relu").Build();

        Assert.Equal(["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"], Names(model));
        Assert.Equal([16L, 20], Dims(model, "fc1.weight"));
        Assert.Equal([4L, 8], Dims(model, "fc3.weight"));
    }

    [Fact]
    public void Cnn_names_say_block_layer_and_role()
    {
        var withBn = Case("cnn-bn-max-gap").Build();
        var withoutBn = Case("cnn-nobn-mixed-flatten-hidden").Build();

        Assert.Equal(
            [
                "block1.conv.weight", "block1.bn.weight", "block1.bn.bias", "block1.bn.running_mean", "block1.bn.running_var",
                "block2.conv.weight", "block2.bn.weight", "block2.bn.bias", "block2.bn.running_mean", "block2.bn.running_var",
                "classifier.weight", "classifier.bias",
            ],
            Names(withBn));
        Assert.Equal([4L, 3, 3, 3], Dims(withBn, "block1.conv.weight"));
        Assert.Equal([5L, 8], Dims(withBn, "classifier.weight"));
        Assert.Equal(
            [
                "block1.conv.weight", "block1.conv.bias", "block2.conv.weight", "block2.conv.bias", "block3.conv.weight", "block3.conv.bias",
                "head.hidden.weight", "head.hidden.bias", "classifier.weight", "classifier.bias",
            ],
            Names(withoutBn));
        // 12 -> max pool 6 -> avg pool 3 -> no pool 3: flatten 8 x 3 x 3.
        Assert.Equal([10L, 72], Dims(withoutBn, "head.hidden.weight"));
        Assert.Equal([6L, 4, 5, 5], Dims(withoutBn, "block2.conv.weight"));
    }

    [Fact]
    public void Transformer_names_follow_the_encoder_layout()
    {
        var model = Case("transformer-cls-relu").Build();
        string[] layer =
        [
            "attention_norm.weight", "attention_norm.bias",
            "attention.query.weight", "attention.query.bias", "attention.key.weight", "attention.key.bias",
            "attention.value.weight", "attention.value.bias", "attention.output.weight", "attention.output.bias",
            "feed_forward_norm.weight", "feed_forward_norm.bias",
            "feed_forward.fc1.weight", "feed_forward.fc1.bias", "feed_forward.fc2.weight", "feed_forward.fc2.bias",
        ];

        Assert.Equal(
            [
                "embedding.weight", "position_embedding.weight", .. layer.Select(n => $"encoder.layer0.{n}"),
                "encoder.final_norm.weight", "encoder.final_norm.bias", "classifier.weight", "classifier.bias",
            ],
            Names(model));
        Assert.Equal([30L, 12], Dims(model, "embedding.weight"));
        Assert.Equal([16L, 12], Dims(model, "position_embedding.weight"));
        Assert.Equal([12L, 24], Dims(model, "encoder.layer0.feed_forward.fc1.weight"));
        Assert.Equal([4L, 12], Dims(model, "classifier.weight"));
        Assert.Equal(32, Case("transformer-mean-gelu").Build().Graph.Initializer.Count(i => i.Name.StartsWith("encoder.layer", StringComparison.Ordinal)));
    }

    [Fact]
    public void Text_model_names()
    {
        Assert.Equal(
            ["embedding.weight", "conv_k2.weight", "conv_k2.bias", "conv_k3.weight", "conv_k3.bias", "conv_k5.weight", "conv_k5.bias", "classifier.weight", "classifier.bias"],
            Names(Case("text_cnn-mask").Build()));
        Assert.Equal([4L, 8, 5], Dims(Case("text_cnn-mask").Build(), "conv_k5.weight"));
        Assert.Equal(
            ["embedding.weight", "hidden1.weight", "hidden1.bias", "hidden2.weight", "hidden2.bias", "classifier.weight", "classifier.bias"],
            Names(Case("embedding_bag-nomask-hidden").Build()));
    }

    [Fact]
    public void Conv_weights_are_kaiming_uniform()
    {
        var model = ArchitectureRegistry.Build("cnn", new CnnOptions { Channels = [64, 64] }, new([16, 8, 8], 3));
        var weights = Floats(model, "block2.conv.weight");
        var bound = Math.Sqrt(6.0 / (64 * 3 * 3));

        Assert.All(weights, w => Assert.True(Math.Abs(w) <= bound));
        Assert.True(weights.Max(Math.Abs) > 0.98 * bound, "the bound is not reached: a narrower distribution");
        AssertUniformStatistics(weights, bound);
        Assert.All(Floats(model, "block1.bn.weight"), v => Assert.Equal(1f, v));
        Assert.All(Floats(model, "block1.bn.running_var"), v => Assert.Equal(1f, v));
        Assert.All(Floats(model, "block1.bn.running_mean"), v => Assert.Equal(0f, v));
        Assert.All(Floats(model, "classifier.bias"), v => Assert.Equal(0f, v));
    }

    [Fact]
    public void Transformer_projections_are_xavier_and_embeddings_small_normals()
    {
        var model = ArchitectureRegistry.Build("transformer", new TransformerOptions { Width = 64, Heads = 4, Layers = 1, FeedForward = 128 }, new([32], 2, VocabSize: 500));
        var query = Floats(model, "encoder.layer0.attention.query.weight");
        var fc1 = Floats(model, "encoder.layer0.feed_forward.fc1.weight");
        var embedding = Floats(model, "embedding.weight");

        AssertUniformStatistics(query, Math.Sqrt(6.0 / (64 + 64)));
        AssertUniformStatistics(fc1, Math.Sqrt(6.0 / (64 + 128)));
        Assert.InRange(Mean(embedding), -0.002, 0.002);
        Assert.InRange(Std(embedding), 0.019, 0.021);
        Assert.All(Floats(model, "encoder.layer0.attention_norm.weight"), v => Assert.Equal(1f, v));
        Assert.All(Floats(model, "encoder.layer0.attention.query.bias"), v => Assert.Equal(0f, v));
    }

    [Fact]
    public void Text_embeddings_are_standard_normal_and_text_convs_kaiming()
    {
        var model = ArchitectureRegistry.Build("text_cnn", new TextCnnOptions { EmbeddingDim = 32, Filters = 64 }, new([20], 2, VocabSize: 1000));
        var embedding = Floats(model, "embedding.weight");

        Assert.InRange(Mean(embedding), -0.02, 0.02);
        Assert.InRange(Std(embedding), 0.97, 1.03);
        AssertUniformStatistics(Floats(model, "conv_k4.weight"), Math.Sqrt(6.0 / (32 * 4)));
    }

    [Fact]
    public void Mlp_keeps_pytorch_default_linear_init_draw_for_draw()
    {
        // The exact values the MLP builder has always drawn: one generator, weight then bias, U(±1/sqrt(fan_in)).
        var model = MlpBuilder.Build(12, [5], 3, Activation.Relu, seed: 7);
        var random = new Random(7);
        var bound = 1 / Math.Sqrt(12);
        var expected = Enumerable.Range(0, 65).Select(_ => (float)(((random.NextDouble() * 2) - 1) * bound)).ToArray();

        Assert.Equal(expected[..60], Floats(model, "fc1.weight"));
        Assert.Equal(expected[60..], Floats(model, "fc1.bias"));
        Assert.Equal(["fc1", "fc1.relu", "fc2"], model.Graph.Node.Select(n => n.Name));
        Assert.Equal(["input", "fc1.weight", "fc1.bias"], model.Graph.Node[0].Input);
    }

    private static string[] Names(ModelProto model) => [.. model.Graph.Initializer.Select(i => i.Name)];

    private static void AssertUniformStatistics(float[] values, double bound)
    {
        // U(-b, b): mean 0, standard deviation b / sqrt 3.
        Assert.All(values, v => Assert.True(Math.Abs(v) <= bound, $"{v} beyond {bound}"));
        Assert.InRange(Mean(values), -0.05 * bound, 0.05 * bound);
        Assert.InRange(Std(values), 0.95 * bound / Math.Sqrt(3), 1.05 * bound / Math.Sqrt(3));
    }

    private static double Mean(float[] values) => values.Average(v => (double)v);

    private static double Std(float[] values)
    {
        var mean = Mean(values);
        return Math.Sqrt(values.Average(v => (v - mean) * (v - mean)));
    }
}
