using System.Reflection;
using System.Text.RegularExpressions;
using Google.Protobuf;
using ModelCompression.Architectures;
using ModelCompression.Common;

namespace ModelCompression.Core.Tests.Architectures;

/// <summary>Invalid options are refused with every problem named, and the registry builds by name.</summary>
public sealed class ArchitectureOptionsTests
{
    private static readonly ArchitectureInputs Tokens = new([16], 3, VocabSize: 100);

    public static TheoryData<string, IArchitectureOptions, string[]> InvalidOptions() => new()
    {
        { "transformer", new TransformerOptions { Heads = 0 }, ["heads must be at least 1 (got 0)"] },
        { "transformer", new TransformerOptions { Width = 30, Heads = 4 }, ["width (30) must be divisible by heads (4)"] },
        { "transformer", new TransformerOptions { Width = -8, Layers = 0, FeedForward = -1 }, ["width must be at least 1 (got -8)", "layers must be at least 1 (got 0)", "feed_forward must be at least 1 (got -1)"] },
        { "transformer", new TransformerOptions { Activation = Activation.Tanh, Dropout = 1 }, ["activation must be gelu or relu", "dropout must be in [0, 1) (got 1)"] },
        { "transformer", new TransformerOptions { MaxLength = 8 }, ["max_length (8) is shorter than the data's sequences (16)"] },
        { "mlp", new MlpOptions { Hidden = [32, -4], Dropout = -0.1 }, ["hidden widths must be at least 1 (got [32, -4])", "dropout must be in [0, 1) (got -0.1)"] },
        { "cnn", new CnnOptions { Channels = [], KernelSize = 0 }, ["channels must list at least one value", "kernel_size must be at least 1 (got 0)"] },
        { "cnn", new CnnOptions { Channels = [8, 8], Pooling = "max,median" }, ["pooling 'max,median' must be max, avg or none"] },
        { "cnn", new CnnOptions { Channels = [4, 4, 4, 4, 4] }, ["5 pooling steps shrink a 16x16 image to nothing"] },
        { "cnn", new CnnOptions { ImageShape = [3, 10, 10] }, ["image_shape [3, 10, 10] holds 300 values but a sample of shape [1, 16, 16] holds 256"] },
        { "text_cnn", new TextCnnOptions { KernelSizes = [3, 3], Filters = 0, EmbeddingDim = -1 }, ["kernel_sizes must all differ", "filters must be at least 1 (got 0)", "embedding_dim must be at least 1 (got -1)"] },
        { "embedding_bag", new EmbeddingBagOptions { Hidden = [0], VocabSize = -3 }, ["hidden values must be at least 1 (got [0])", "vocab_size must be at least 0 (got -3)"] },
    };

    [Theory]
    [MemberData(nameof(InvalidOptions))]
    public void Invalid_options_are_refused_with_every_problem(string architecture, IArchitectureOptions options, string[] expected)
    {
        var inputs = architecture switch
        {
            "mlp" => new ArchitectureInputs([20], 3),
            "cnn" => new ArchitectureInputs([1, 16, 16], 3),
            _ => Tokens,
        };

        var error = Assert.Throws<InvalidArchitectureOptionsException>(() => ArchitectureRegistry.Build(architecture, options, inputs));

        Assert.Equal(architecture, error.Architecture);
        Assert.StartsWith($"Invalid options for the '{architecture}' architecture: ", error.Message, StringComparison.Ordinal);
        foreach (var text in expected)
        {
            Assert.Contains(error.Problems, p => p.Contains(text, StringComparison.Ordinal));
            Assert.Contains(text, error.Message, StringComparison.Ordinal);
        }

        Assert.Equal(error.Problems, options.Validate(inputs));
    }

    [Fact]
    public void Missing_vocabulary_and_length_are_asked_for()
    {
        var error = Assert.Throws<InvalidArchitectureOptionsException>(
            () => TransformerBuilder.Build(new TransformerOptions(), new ArchitectureInputs([0], 2)));

        Assert.Contains(error.Problems, p => p.Contains("give vocab_size", StringComparison.Ordinal));
        Assert.Contains(error.Problems, p => p.Contains("give max_length", StringComparison.Ordinal));
    }

    [Fact]
    public void Bad_inputs_are_reported_with_bad_options()
    {
        var error = Assert.Throws<InvalidArchitectureOptionsException>(
            () => MlpBuilder.Build(new MlpOptions { Hidden = [0] }, new ArchitectureInputs([4], 0)));

        Assert.Contains(error.Problems, p => p.Contains("classes must be at least 1", StringComparison.Ordinal));
        Assert.Contains(error.Problems, p => p.Contains("hidden widths", StringComparison.Ordinal));
    }

    [Fact]
    public void Cnn_needs_an_image_shape_for_flat_samples()
    {
        var error = Assert.Throws<InvalidArchitectureOptionsException>(() => CnnBuilder.Build(new CnnOptions(), new ArchitectureInputs([784], 10)));

        Assert.Contains("give image_shape [channels, height, width]", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Registry_lists_the_built_in_architectures()
    {
        Assert.Equal(["mlp", "cnn", "transformer", "text_cnn", "embedding_bag", "decoder"], ArchitectureRegistry.Names);
        Assert.Equal(typeof(TransformerOptions), ArchitectureRegistry.Get("Transformer").OptionsType);
        Assert.False(ArchitectureRegistry.TryGet("resnet", out _));
        var error = Assert.Throws<ArgumentException>(() => ArchitectureRegistry.Get("resnet"));
        Assert.Contains("Built-in: mlp, cnn, transformer, text_cnn, embedding_bag, decoder", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Registry_builds_what_the_builders_build()
    {
        var inputs = new ArchitectureInputs([1, 8, 8], 3);
        var options = new CnnOptions { Channels = [4] };

        Assert.Equal(CnnBuilder.Build(options, inputs).ToByteArray(), ArchitectureRegistry.Build("cnn", options, inputs).ToByteArray());
        Assert.Equal(
            MlpBuilder.Build(64, [64], 3, Activation.Relu, seed: 1).ToByteArray(),
            ArchitectureRegistry.Build("mlp", null, new ArchitectureInputs([64], 3)).ToByteArray());
        Assert.Throws<ArgumentException>(() => ArchitectureRegistry.Build("cnn", new MlpOptions(), inputs));
    }

    [Fact]
    public void Default_options_build_valid_graphs()
    {
        foreach (var info in ArchitectureRegistry.All)
        {
            var inputs = info.TakesTokens ? Tokens : new ArchitectureInputs([1, 16, 16], 3);
            var model = ArchitectureRegistry.Build(info.Name, info.CreateDefaultOptions(), inputs);

            Assert.Empty(Onnx.OnnxChecker.Check(model));
        }
    }

    [Fact]
    public void Every_option_has_a_snake_case_name_and_a_description()
    {
        foreach (var info in ArchitectureRegistry.All)
        {
            var properties = info.OptionsType.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite).ToArray();
            Assert.NotEmpty(properties);
            Assert.All(properties, p =>
            {
                var option = p.GetCustomAttribute<OptionAttribute>();
                Assert.NotNull(option);
                Assert.Matches(new Regex("^[a-z]+(_[a-z]+)*$"), option.Name);
                Assert.EndsWith(".", option.Description, StringComparison.Ordinal);
                Assert.True(option.Description.Length > 15, $"{info.Name}.{option.Name}: '{option.Description}'");
            });
            Assert.Contains(properties, p => p.GetCustomAttribute<OptionAttribute>()!.Name == "seed");
            Assert.Equal(properties.Length, properties.Select(p => p.GetCustomAttribute<OptionAttribute>()!.Name).Distinct().Count());
        }
    }
}
