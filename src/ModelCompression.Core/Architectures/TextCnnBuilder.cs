using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Architectures;

/// <summary>
/// The built-in text CNN as an ONNX graph: <c>input_ids</c> [batch, sequence] int64 (and <c>attention_mask</c>
/// when used) -> Gather embedding (padded positions zeroed by the mask) -> Transpose to [batch, width, sequence]
/// -> per kernel size k: Conv1d ('same' padding, so any sequence length works) -> ReLU -> ReduceMax over time
/// -> Concat -> Dropout -> Gemm -> <c>logits</c> [batch, classes].
/// Initializers: <c>embedding.weight</c> [vocab, width], <c>conv_k{k}.weight</c> [filters, width, k],
/// <c>conv_k{k}.bias</c>, <c>classifier.weight</c> [classes, filters x kernels], <c>classifier.bias</c>.
/// </summary>
public static class TextCnnBuilder
{
    /// <summary>The registry name.</summary>
    public const string Name = "text_cnn";

    /// <summary>The graph's output name.</summary>
    public const string OutputName = "logits";

    /// <summary>Builds the graph with seeded initial weights; throws <see cref="InvalidArchitectureOptionsException"/> on bad options.</summary>
    public static ModelProto Build(TextCnnOptions options, ArchitectureInputs inputs)
    {
        InvalidArchitectureOptionsException.ThrowIfInvalid(Name, options, inputs);
        var graph = new GraphWriter("text_cnn", new Random(options.Seed));
        var e = options.EmbeddingDim;
        var embedded = TokenGraph.Embed(graph, options.ResolveVocab(inputs), e, options.UseAttentionMask, inputs.Classes, out var maskFloat);
        if (maskFloat is not null)
        {
            // Zeroed rather than masked at the max: a padded position then sees the same zeros whatever its
            // id, so padding cannot change the logits, and no position needs a -inf to exclude it.
            var mask3 = graph.Op("Unsqueeze", "embedding.mask", [maskFloat, graph.Ints("embedding.mask_axes", 2)]);
            embedded = graph.Op("Mul", "embedding.masked", [embedded, mask3]);
        }

        var channelsFirst = graph.Op("Transpose", "embedding.channels_first", [embedded], Attr.Ints("perm", 0, 2, 1));
        var features = new List<string>();
        foreach (var k in options.KernelSizes)
        {
            var name = $"conv_k{k}";
            var fanIn = (long)e * k;
            // He/Kaiming-uniform: each conv feeds a ReLU. Zero bias, as He init assumes.
            var weight = graph.Weight($"{name}.weight", Init.KaimingUniform(graph.Random, options.Filters * fanIn, fanIn), options.Filters, e, k);
            var bias = graph.Weight($"{name}.bias", new float[options.Filters], options.Filters);
            var conv = graph.Op("Conv", name, [channelsFirst, weight, bias], Attr.Ints("kernel_shape", k), Attr.Ints("pads", (k - 1) / 2, k / 2));
            var relu = graph.Op("Relu", $"{name}.relu", [conv]);
            // ReduceMax takes its axes as an attribute up to opset 17.
            features.Add(graph.Op("ReduceMax", $"{name}.max_over_time", [relu], Attr.Ints("axes", 2), Attr.Int("keepdims", 0)));
        }

        var joined = features.Count == 1 ? features[0] : graph.Op("Concat", "features", [.. features], Attr.Int("axis", 1));
        joined = graph.Dropout("classifier.dropout", joined, options.Dropout);
        TokenGraph.Classifier(graph, joined, (long)options.Filters * options.KernelSizes.Length, inputs.Classes);
        return graph.Build();
    }
}

/// <summary>
/// The built-in embedding-bag classifier as an ONNX graph: <c>input_ids</c> [batch, sequence] int64 (and
/// <c>attention_mask</c> when used) -> Gather embedding -> mean over unpadded positions -> (Dropout -> Gemm
/// -> ReLU) per hidden layer -> Dropout -> Gemm -> <c>logits</c> [batch, classes].
/// Initializers: <c>embedding.weight</c> [vocab, width], <c>hidden{i}.weight|bias</c>, <c>classifier.weight|bias</c>.
/// </summary>
public static class EmbeddingBagBuilder
{
    /// <summary>The registry name.</summary>
    public const string Name = "embedding_bag";

    /// <summary>The graph's output name.</summary>
    public const string OutputName = "logits";

    /// <summary>Builds the graph with seeded initial weights; throws <see cref="InvalidArchitectureOptionsException"/> on bad options.</summary>
    public static ModelProto Build(EmbeddingBagOptions options, ArchitectureInputs inputs)
    {
        InvalidArchitectureOptionsException.ThrowIfInvalid(Name, options, inputs);
        var graph = new GraphWriter("embedding_bag", new Random(options.Seed));
        var embedded = TokenGraph.Embed(graph, options.ResolveVocab(inputs), options.EmbeddingDim, options.UseAttentionMask, inputs.Classes, out var maskFloat);
        var current = maskFloat is null
            ? graph.Op("ReduceMean", "bag", [embedded], Attr.Ints("axes", 1), Attr.Int("keepdims", 0))
            : graph.MaskedMean("bag", embedded, maskFloat);

        long width = options.EmbeddingDim;
        for (var i = 0; i < options.Hidden.Length; i++)
        {
            var name = $"hidden{i + 1}";
            var outputs = options.Hidden[i];
            current = graph.Dropout($"{name}.dropout", current, options.Dropout);
            // He/Kaiming-uniform: a ReLU follows.
            var weight = graph.Weight($"{name}.weight", Init.KaimingUniform(graph.Random, outputs * width, width), outputs, width);
            var bias = graph.Weight($"{name}.bias", new float[outputs], outputs);
            current = graph.Op("Relu", $"{name}.relu", [graph.Gemm(name, current, weight, bias)]);
            width = outputs;
        }

        current = graph.Dropout("classifier.dropout", current, options.Dropout);
        TokenGraph.Classifier(graph, current, width, inputs.Classes);
        return graph.Build();
    }
}

/// <summary>Pieces shared by the token models.</summary>
internal static class TokenGraph
{
    public const string InputIdsName = "input_ids";

    public const string AttentionMaskName = "attention_mask";

    /// <summary>
    /// Declares the inputs and the output, and gathers <c>embedding.weight</c> rows: N(0, 1), PyTorch's
    /// nn.Embedding default, since here (unlike the Transformer) no LayerNorm rescales them.
    /// </summary>
    public static string Embed(GraphWriter graph, int vocab, int width, bool useMask, int classes, out string? maskFloat)
    {
        graph.Input(InputIdsName, DataType.Int64, "batch", "sequence");
        if (useMask)
        {
            graph.Input(AttentionMaskName, DataType.Int64, "batch", "sequence");
        }

        graph.Output("logits", DataType.Float, "batch", classes);
        var table = graph.Weight("embedding.weight", Init.Normal(graph.Random, (long)vocab * width, 1.0), vocab, width);
        maskFloat = useMask ? graph.Op("Cast", "attention_mask.float", [AttentionMaskName], Attr.Int("to", (long)DataType.Float)) : null;
        return graph.Op("Gather", "embedding", [table, InputIdsName], Attr.Int("axis", 0));
    }

    /// <summary>The read-out Gemm to <c>logits</c>: Xavier-uniform (no rectifier after it), zero bias.</summary>
    public static void Classifier(GraphWriter graph, string input, long width, int classes)
    {
        var weight = graph.Weight("classifier.weight", Init.XavierUniform(graph.Random, classes * width, width, classes), classes, width);
        var bias = graph.Weight("classifier.bias", new float[classes], classes);
        graph.Gemm("classifier", input, weight, bias, "logits");
    }
}
