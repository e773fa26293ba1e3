using Google.Protobuf;
using ModelCompression.Architectures;
using ModelCompression.Onnx;
using static ModelCompression.Core.Tests.Architectures.ArchitectureTestSupport;

namespace ModelCompression.Core.Tests.Architectures;

/// <summary>What every built-in architecture promises, for every option set in <see cref="ArchitectureTestSupport.Cases"/>.</summary>
public sealed class ArchitectureGraphTests
{
    [Theory]
    [MemberData(nameof(CaseIds), MemberType = typeof(ArchitectureTestSupport))]
    public void Graph_passes_the_checker(string id)
    {
        var model = Case(id).Build();

        Assert.Empty(OnnxChecker.Check(model));
        Assert.Equal(OnnxVersions.DefaultOpset, model.OpsetImport.Single(o => o.Domain.Length == 0).Version);
    }

    [Theory]
    [MemberData(nameof(CaseIds), MemberType = typeof(ArchitectureTestSupport))]
    public void Graph_uses_only_operators_the_trainer_supports(string id)
    {
        var model = Case(id).Build();

        Assert.All(model.Graph.Node, n => Assert.True(TrainerOps.Contains(n.OpType), $"{n.OpType} (node {n.Name})"));
        Assert.All(model.Graph.Node, n => Assert.Equal(string.Empty, n.Domain));
    }

    [Theory]
    [MemberData(nameof(CaseIds), MemberType = typeof(ArchitectureTestSupport))]
    public void Runs_in_onnx_runtime_with_a_dynamic_batch(string id)
    {
        var c = Case(id);
        var model = c.Build();

        Assert.Equal("logits", Assert.Single(model.Graph.Output).Name);
        foreach (var batch in new[] { 1, 5 })
        {
            var (logits, shape) = RunOrt(model, RandomInputs(c, batch, seed: batch));

            Assert.Equal([batch, c.Inputs.Classes], shape);
            Assert.All(logits, v => Assert.True(float.IsFinite(v)));
            // Not all one value: the weights reach the output.
            Assert.True(logits.Distinct().Count() > 1, "constant logits");
        }
    }

    [Theory]
    [MemberData(nameof(CaseIds), MemberType = typeof(ArchitectureTestSupport))]
    public void Same_seed_gives_identical_bytes_and_another_seed_other_weights(string id)
    {
        var c = Case(id);
        var first = c.Build().ToByteArray();
        var again = c.Build().ToByteArray();
        var reseeded = ArchitectureRegistry.Build(c.Architecture, Reseed(c.Options, c.Options.Seed + 1), c.Inputs);

        Assert.Equal(first, again);
        var original = c.Build();
        var differs = original.Graph.Initializer
            .Where(i => i.DataType == (int)Onnx.Proto.TensorProto.Types.DataType.Float)
            .Count(i => !TensorData.ToFloats(i).SequenceEqual(Floats(reseeded, i.Name)));
        Assert.True(differs > 0, "no weight changed with the seed");
        Assert.Equal(original.Graph.Initializer.Select(i => i.Name), reseeded.Graph.Initializer.Select(i => i.Name));
    }

    [Theory]
    [MemberData(nameof(CaseIds), MemberType = typeof(ArchitectureTestSupport))]
    public void Initializers_are_only_named_learned_weights_and_statistics(string id)
    {
        var model = Case(id).Build();

        // Constants live in Constant nodes, so everything the trainer turns into a parameter is meant to be one.
        Assert.All(model.Graph.Initializer, i =>
        {
            Assert.Equal((int)Onnx.Proto.TensorProto.Types.DataType.Float, i.DataType);
            Assert.Matches(@"^[a-z_0-9]+(\.[a-z_0-9]+)*\.(weight|bias|running_mean|running_var)$", i.Name);
        });
        Assert.Equal(model.Graph.Initializer.Count, model.Graph.Initializer.Select(i => i.Name).Distinct().Count());
    }

    [Theory]
    [InlineData("mlp-image-gelu-dropout")]
    [InlineData("cnn-nobn-mixed-flatten-hidden")]
    [InlineData("transformer-mean-gelu")]
    [InlineData("embedding_bag-nomask-hidden")]
    public void Dropout_is_the_identity_at_inference(string id)
    {
        var c = Case(id);
        var withDropout = c.Build();
        var without = ArchitectureRegistry.Build(c.Architecture, NoDropout(c.Options), c.Inputs);
        var inputs = RandomInputs(c, 3, seed: 4);

        Assert.Contains(withDropout.Graph.Node, n => n.OpType == "Dropout");
        Assert.DoesNotContain(without.Graph.Node, n => n.OpType == "Dropout");
        // Dropout draws no weights, so both graphs hold the same initializers and must agree.
        AssertClose(RunOrt(without, inputs).Values, RunOrt(withDropout, inputs).Values, 1e-6);
    }

    private static IArchitectureOptions Reseed(IArchitectureOptions options, int seed) => options switch
    {
        MlpOptions o => o with { Seed = seed },
        CnnOptions o => o with { Seed = seed },
        TransformerOptions o => o with { Seed = seed },
        TextCnnOptions o => o with { Seed = seed },
        EmbeddingBagOptions o => o with { Seed = seed },
        _ => throw new ArgumentException(options.GetType().Name),
    };

    private static IArchitectureOptions NoDropout(IArchitectureOptions options) => options switch
    {
        MlpOptions o => o with { Dropout = 0 },
        CnnOptions o => o with { Dropout = 0 },
        TransformerOptions o => o with { Dropout = 0 },
        TextCnnOptions o => o with { Dropout = 0 },
        EmbeddingBagOptions o => o with { Dropout = 0 },
        _ => throw new ArgumentException(options.GetType().Name),
    };
}
