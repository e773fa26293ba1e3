using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Architectures;

/// <summary>
/// The built-in image CNN as an ONNX graph: input [batch, C, H, W] (or the data's own sample shape, reshaped)
/// -> per block Conv ('same' padding) -> BatchNormalization (optional) -> ReLU -> MaxPool/AveragePool 2x2
/// -> GlobalAveragePool or Flatten -> Dropout -> (Gemm hidden -> ReLU) -> Gemm -> logits [batch, classes].
/// Initializers: <c>block1.conv.weight</c> [C1, C, k, k] (<c>block1.conv.bias</c> only without batch norm),
/// <c>block1.bn.weight|bias|running_mean|running_var</c>, <c>head.hidden.weight|bias</c>, <c>classifier.weight|bias</c>.
/// </summary>
public static class CnnBuilder
{
    /// <summary>The registry name.</summary>
    public const string Name = "cnn";

    /// <summary>The graph's input name.</summary>
    public const string InputName = "input";

    /// <summary>The graph's output name.</summary>
    public const string OutputName = "logits";

    /// <summary>Builds the graph with seeded initial weights; throws <see cref="InvalidArchitectureOptionsException"/> on bad options.</summary>
    public static ModelProto Build(CnnOptions options, ArchitectureInputs inputs)
    {
        InvalidArchitectureOptionsException.ThrowIfInvalid(Name, options, inputs);
        var image = options.ResolveImageShape(inputs)!;
        var pooling = options.PoolingPerBlock()!;
        var graph = new GraphWriter("cnn", new Random(options.Seed));
        var sample = inputs.SampleShape;
        graph.Input(InputName, DataType.Float, ["batch", .. sample.Select(d => (Dim)d)]);
        graph.Output(OutputName, DataType.Float, "batch", inputs.Classes);

        var current = InputName;
        if (!sample.SequenceEqual(image))
        {
            // 0 copies the batch size, so any batch goes through.
            current = graph.Op("Reshape", "image", [current, graph.Ints("image.shape", 0, image[0], image[1], image[2])]);
        }

        var (channels, height, width) = (image[0], image[1], image[2]);
        var k = options.KernelSize;
        for (var b = 0; b < options.Channels.Length; b++)
        {
            var block = $"block{b + 1}";
            var outChannels = options.Channels[b];
            var fanIn = (long)channels * k * k;
            // He/Kaiming-uniform: every conv feeds a ReLU (through BN or not).
            var weight = graph.Weight($"{block}.conv.weight", Init.KaimingUniform(graph.Random, outChannels * fanIn, fanIn), outChannels, channels, k, k);
            string[] convInputs = [current, weight];
            if (!options.BatchNorm)
            {
                // Zero bias: He init assumes none, and it leaves the ReLU's input centred.
                convInputs = [.. convInputs, graph.Weight($"{block}.conv.bias", new float[outChannels], outChannels)];
            }

            // 'Same' padding for any kernel size: an even kernel puts its extra pixel at the end, as PyTorch's padding='same'.
            long before = (k - 1) / 2, after = k / 2;
            current = graph.Op(
                "Conv",
                $"{block}.conv",
                convInputs,
                Attr.Ints("kernel_shape", k, k),
                Attr.Ints("pads", before, before, after, after),
                Attr.Ints("strides", 1, 1));
            if (options.BatchNorm)
            {
                // Identity at the start (scale 1, shift 0, mean 0, variance 1), PyTorch's BatchNorm2d defaults.
                var scale = graph.Weight($"{block}.bn.weight", Init.Fill(outChannels, 1f), outChannels);
                var shift = graph.Weight($"{block}.bn.bias", new float[outChannels], outChannels);
                var mean = graph.Weight($"{block}.bn.running_mean", new float[outChannels], outChannels);
                var variance = graph.Weight($"{block}.bn.running_var", Init.Fill(outChannels, 1f), outChannels);
                // ONNX momentum weighs the old statistic: 0.9 is PyTorch's momentum 0.1.
                current = graph.Op(
                    "BatchNormalization",
                    $"{block}.bn",
                    [current, scale, shift, mean, variance],
                    Attr.Float("epsilon", 1e-5f),
                    Attr.Float("momentum", 0.9f));
            }

            current = graph.Op("Relu", $"{block}.relu", [current]);
            if (pooling[b] != "none")
            {
                current = graph.Op(
                    pooling[b] == "max" ? "MaxPool" : "AveragePool",
                    $"{block}.pool",
                    [current],
                    Attr.Ints("kernel_shape", 2, 2),
                    Attr.Ints("strides", 2, 2));
                (height, width) = (height / 2, width / 2);
            }

            channels = outChannels;
        }

        long features = channels;
        if (options.Head == CnnHead.Gap)
        {
            current = graph.Op("GlobalAveragePool", "head.gap", [current]);
        }
        else
        {
            features = (long)channels * height * width;
        }

        current = graph.Op("Flatten", "head.flatten", [current], Attr.Int("axis", 1));
        current = graph.Dropout("head.dropout", current, options.Dropout);
        if (options.HeadHidden > 0)
        {
            var hidden = options.HeadHidden;
            var weight = graph.Weight("head.hidden.weight", Init.KaimingUniform(graph.Random, hidden * features, features), hidden, features);
            var bias = graph.Weight("head.hidden.bias", new float[hidden], hidden);
            current = graph.Op("Relu", "head.hidden.relu", [graph.Gemm("head.hidden", current, weight, bias)]);
            features = hidden;
        }

        // Xavier-uniform for the read-out: a linear layer with no rectifier after it.
        var classes = inputs.Classes;
        var classifier = graph.Weight("classifier.weight", Init.XavierUniform(graph.Random, classes * features, features, classes), classes, features);
        var classifierBias = graph.Weight("classifier.bias", new float[classes], classes);
        graph.Gemm("classifier", current, classifier, classifierBias, OutputName);
        return graph.Build();
    }
}
