using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;
using static ModelCompression.Architectures.TransformerBlocks;

namespace ModelCompression.Architectures;

/// <summary>
/// The built-in Transformer encoder text classifier as an ONNX graph over token ids.
/// Inputs <c>input_ids</c> and <c>attention_mask</c> [batch, sequence] int64 (mask 1 for tokens, 0 for padding;
/// the sequence may be any length up to max_length); output <c>logits</c> [batch, classes].
/// <para>
/// Pre-LayerNorm layers (x + Attention(LN(x)), then x + FFN(LN(x)), a final LN after the last layer), as GPT-2
/// and most recent encoders: the residual path stays an identity, so small students train from scratch
/// without learning-rate warm-up, which post-LN (the original Transformer, BERT) needs.
/// </para>
/// <para>
/// Attention is spelled out in opset-17 ops (MatMul, Reshape with 0 for batch and sequence, Transpose,
/// Softmax) with the mask added before the softmax as (1 - mask) * -10000: exp underflows to exactly 0 for
/// padded keys, and unlike -1e9 the value survives a later fp16 conversion.
/// </para>
/// Initializers: <c>embedding.weight</c> [vocab, width], <c>position_embedding.weight</c> [max_length, width],
/// per layer i <c>encoder.layer{i}.attention_norm.weight|bias</c>,
/// <c>encoder.layer{i}.attention.query|key|value|output.weight|bias</c>,
/// <c>encoder.layer{i}.feed_forward_norm.weight|bias</c>, <c>encoder.layer{i}.feed_forward.fc1|fc2.weight|bias</c>,
/// then <c>encoder.final_norm.weight|bias</c> and <c>classifier.weight|bias</c>. Projection weights inside the
/// encoder are stored [in, out] (MatMul on [batch, sequence, width]); the classifier is [classes, width] (Gemm, transB).
/// </summary>
public static class TransformerBuilder
{
    /// <summary>The registry name.</summary>
    public const string Name = "transformer";

    /// <summary>The token ids input.</summary>
    public const string InputIdsName = "input_ids";

    /// <summary>The attention mask input.</summary>
    public const string AttentionMaskName = "attention_mask";

    /// <summary>The graph's output name.</summary>
    public const string OutputName = "logits";

    /// <summary>BERT's initialisation of embeddings, N(0, 0.02²): small next to the unit-variance LayerNorm output.</summary>
    private const double EmbeddingStd = 0.02;

    /// <summary>Added to the scores of padded keys.</summary>
    private const float MaskedScore = -10000f;

    /// <summary>Builds the graph with seeded initial weights; throws <see cref="InvalidArchitectureOptionsException"/> on bad options.</summary>
    public static ModelProto Build(TransformerOptions options, ArchitectureInputs inputs)
    {
        InvalidArchitectureOptionsException.ThrowIfInvalid(Name, options, inputs);
        var vocab = options.ResolveVocab(inputs);
        var maxLength = options.ResolveMaxLength(inputs);
        var d = options.Width;
        var graph = new GraphWriter("transformer", new Random(options.Seed));
        graph.Input(InputIdsName, DataType.Int64, "batch", "sequence");
        graph.Input(AttentionMaskName, DataType.Int64, "batch", "sequence");
        graph.Output(OutputName, DataType.Float, "batch", inputs.Classes);

        // Token + position embeddings; positions sliced to the actual sequence length so it can vary.
        var tokenTable = graph.Weight("embedding.weight", Init.Normal(graph.Random, (long)vocab * d, EmbeddingStd), vocab, d);
        var positionTable = graph.Weight("position_embedding.weight", Init.Normal(graph.Random, (long)maxLength * d, EmbeddingStd), maxLength, d);
        var tokens = graph.Op("Gather", "embedding", [tokenTable, InputIdsName], Attr.Int("axis", 0));
        var idsShape = graph.Op("Shape", "input_ids.shape", [InputIdsName]);
        var sequenceLength = graph.Op("Slice", "sequence_length", [idsShape, graph.Ints("sequence_length.start", 1), graph.Ints("sequence_length.end", 2)]);
        var positions = graph.Op(
            "Slice",
            "position_embedding",
            [positionTable, graph.Ints("position_embedding.start", 0), sequenceLength, graph.Ints("position_embedding.axes", 0)]);
        var x = graph.Op("Add", "embeddings", [tokens, positions]);
        x = graph.Dropout("embeddings.dropout", x, options.Dropout);

        // [batch, 1, 1, sequence]: broadcasts over heads and query positions.
        var maskFloat = graph.Op("Cast", "attention_mask.float", [AttentionMaskName], Attr.Int("to", (long)DataType.Float));
        var padding = graph.Op("Sub", "attention_mask.padding", [graph.Scalar("attention_mask.one", 1f), maskFloat]);
        var bias = graph.Op("Mul", "attention_mask.bias", [padding, graph.Scalar("attention_mask.masked_score", MaskedScore)]);
        var scoreBias = graph.Op("Unsqueeze", "attention_mask.score_bias", [bias, graph.Ints("attention_mask.axes", 1, 2)]);

        for (var i = 0; i < options.Layers; i++)
        {
            x = EncoderLayer(graph, options, $"encoder.layer{i}", x, scoreBias);
        }

        x = LayerNorm(graph, "encoder.final_norm", x, d);
        var pooled = options.Pooling == TokenPooling.Cls
            ? graph.Op("Gather", "pooled", [x, graph.IntScalar("pooled.cls_position", 0)], Attr.Int("axis", 1))
            : graph.MaskedMean("pooled", x, maskFloat);
        pooled = graph.Dropout("classifier.dropout", pooled, options.Dropout);

        var classes = inputs.Classes;
        var classifier = graph.Weight("classifier.weight", Init.XavierUniform(graph.Random, (long)classes * d, d, classes), classes, d);
        var classifierBias = graph.Weight("classifier.bias", new float[classes], classes);
        graph.Gemm("classifier", pooled, classifier, classifierBias, OutputName);
        return graph.Build();
    }

    private static string EncoderLayer(GraphWriter graph, TransformerOptions options, string layer, string x, string scoreBias)
    {
        var d = options.Width;
        var heads = options.Heads;
        var headWidth = d / heads;

        var h = LayerNorm(graph, $"{layer}.attention_norm", x, d);
        var query = SplitHeads(graph, $"{layer}.attention.query", Projection(graph, $"{layer}.attention.query", h, d, d), heads, headWidth, [0, 2, 1, 3]);
        // Keys go straight to [batch, heads, head_width, sequence], ready for Q·Kᵀ.
        var key = SplitHeads(graph, $"{layer}.attention.key", Projection(graph, $"{layer}.attention.key", h, d, d), heads, headWidth, [0, 2, 3, 1]);
        var value = SplitHeads(graph, $"{layer}.attention.value", Projection(graph, $"{layer}.attention.value", h, d, d), heads, headWidth, [0, 2, 1, 3]);

        var context = Attend(graph, $"{layer}.attention", query, key, value, scoreBias, d, headWidth);
        var attended = Projection(graph, $"{layer}.attention.output", context, d, d);
        attended = graph.Dropout($"{layer}.attention.dropout", attended, options.Dropout);
        x = graph.Op("Add", $"{layer}.attention.residual", [x, attended]);

        h = LayerNorm(graph, $"{layer}.feed_forward_norm", x, d);
        h = Projection(graph, $"{layer}.feed_forward.fc1", h, d, options.FeedForward);
        h = graph.Activate($"{layer}.feed_forward", h, options.Activation);
        h = Projection(graph, $"{layer}.feed_forward.fc2", h, options.FeedForward, d);
        h = graph.Dropout($"{layer}.feed_forward.dropout", h, options.Dropout);
        return graph.Op("Add", $"{layer}.feed_forward.residual", [x, h]);
    }
}
