using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using static ModelCompression.Architectures.TransformerBlocks;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Architectures;

/// <summary>
/// The built-in GPT-style decoder (causal language model) as an ONNX graph in <see cref="DecoderConvention"/>.
/// <para>
/// Graph inputs, in order: <c>input_ids</c> int64 [batch, sequence]; <c>attention_mask</c> int64 [batch,
/// total_sequence] (1 for a token, 0 for padding, over the cached and the new tokens; total_sequence = past_sequence +
/// sequence); <c>position_ids</c> int64 [batch, sequence] (each new token's position, &lt; max_length; with left
/// padding the caller counts from the first real token); then per layer i <c>past_key_values.{i}.key</c> and
/// <c>past_key_values.{i}.value</c> float [batch, heads, past_sequence, head_width] (heads and head_width fixed numbers;
/// past_sequence 0 on a first step). Outputs: <c>logits</c> float [batch, sequence, vocab], then per layer
/// <c>present.{i}.key</c> and <c>present.{i}.value</c> [batch, heads, total_sequence, head_width] = Concat(past, new) on
/// axis 2, the next step's past. Keys are stored after the rotation when positions are rope, as Llama's exports do.
/// <see cref="Build(DecoderOptions, ArchitectureInputs, bool)"/> with <c>withCache: false</c> writes the same graph
/// without the cache inputs and outputs (attention_mask is then [batch, sequence]); weights and initializer names are
/// identical in both.
/// </para>
/// <para>
/// Layers are pre-LayerNorm (x + Attention(LN(x)), then x + FeedForward(LN(x)), a final LN), as GPT-2. Attention
/// is causal: a query at absolute position past_sequence + i sees key j when j &lt;= past_sequence + i (Trilu of a
/// ones matrix with k = past_sequence) and attention_mask[b, j] is 1; every other score gets -10000 added. That is
/// large enough for exp to underflow to exactly 0 and finite, unlike -inf: a left-padded row's padding queries see
/// only masked keys and would turn into NaN (which, through the cache, would spread to the real tokens).
/// </para>
/// <para>
/// Initializers: <c>embedding.weight</c> [vocab, width] (N(0, 0.02²)); with positions: learned
/// <c>position_embedding.weight</c> [max_length, width] (N(0, 0.02²)); per layer i
/// <c>decoder.layer{i}.attention_norm.weight|bias</c>, <c>decoder.layer{i}.attention.query|key|value|output.weight|bias</c>
/// (weights [width, width], stored [in, out] for MatMul, Xavier-uniform; biases zero),
/// <c>decoder.layer{i}.feed_forward_norm.weight|bias</c>, <c>decoder.layer{i}.feed_forward.fc1.weight</c> [width,
/// feed_forward] and <c>.fc1.bias</c>, <c>.fc2.weight</c> [feed_forward, width] and <c>.fc2.bias</c>; then
/// <c>decoder.final_norm.weight|bias</c>; with tie_embeddings false, <c>lm_head.weight</c> [width, vocab] (N(0, 0.02²)).
/// With tie_embeddings (the default) the logits are MatMul(x, Transpose(embedding.weight)): one initializer serves the
/// input and the output, and training gives it the gradient of both. The rotary tables <c>rope.cos</c> and
/// <c>rope.sin</c> [max_length, head_width] are Constant nodes, not initializers: the trainer turns every float
/// initializer into a parameter, and these must not train.
/// </para>
/// <para>
/// Parameters (<see cref="ParameterCount"/>), with V vocab, D width, F feed_forward, L layers, P max_length:
/// V·D + (learned ? P·D : 0) + L·(4D² + 2DF + 9D + F) + 2D + (tied ? 0 : D·V). Per layer: two LayerNorms 4D, four
/// attention projections 4D² + 4D, the feed-forward block 2DF + F + D.
/// </para>
/// </summary>
public static class DecoderBuilder
{
    /// <summary>The registry name.</summary>
    public const string Name = "decoder";

    /// <summary>GPT-2's initialisation of embeddings and its output head, N(0, 0.02²).</summary>
    private const double EmbeddingStd = 0.02;

    /// <summary>Added to the scores of keys a query must not see (see the class remarks for why not -inf).</summary>
    private const float MaskedScore = -10000f;

    /// <summary>
    /// Builds the decoder with its cache inputs and outputs (the registry's graph); throws
    /// <see cref="InvalidArchitectureOptionsException"/> on bad options. <see cref="ArchitectureInputs.Classes"/> is
    /// not used (the logits are as wide as the vocabulary) but must be at least 1, as for every architecture.
    /// </summary>
    public static ModelProto Build(DecoderOptions options, ArchitectureInputs inputs) => Build(options, inputs, withCache: true);

    /// <summary>
    /// Builds the decoder with or without its cache inputs and outputs; the weights and their names do not depend on
    /// <paramref name="withCache"/>.
    /// </summary>
    public static ModelProto Build(DecoderOptions options, ArchitectureInputs inputs, bool withCache)
    {
        InvalidArchitectureOptionsException.ThrowIfInvalid(Name, options, inputs);
        var vocab = options.ResolveVocab(inputs);
        var maxLength = options.ResolveMaxLength(inputs);
        var d = options.Width;
        var headWidth = options.HeadWidth;
        var graph = new GraphWriter("decoder", new Random(options.Seed));
        var total = withCache ? "total_sequence" : "sequence";
        graph.Input(DecoderConvention.InputIds, DataType.Int64, "batch", "sequence");
        graph.Input(DecoderConvention.AttentionMask, DataType.Int64, "batch", total);
        graph.Input(DecoderConvention.PositionIds, DataType.Int64, "batch", "sequence");
        graph.Output(DecoderConvention.Logits, DataType.Float, "batch", "sequence", vocab);
        for (var i = 0; withCache && i < options.Layers; i++)
        {
            graph.Input(DecoderConvention.PastKey(i), DataType.Float, "batch", options.Heads, "past_sequence", headWidth);
            graph.Input(DecoderConvention.PastValue(i), DataType.Float, "batch", options.Heads, "past_sequence", headWidth);
            graph.Output(DecoderConvention.PresentKey(i), DataType.Float, "batch", options.Heads, total, headWidth);
            graph.Output(DecoderConvention.PresentValue(i), DataType.Float, "batch", options.Heads, total, headWidth);
        }

        var tokenTable = graph.Weight("embedding.weight", Init.Normal(graph.Random, (long)vocab * d, EmbeddingStd), vocab, d);
        var x = graph.Op("Gather", "embedding", [tokenTable, DecoderConvention.InputIds], Attr.Int("axis", 0));
        Rotary? rotary = null;
        if (options.Positions == PositionEncoding.Learned)
        {
            var positionTable = graph.Weight("position_embedding.weight", Init.Normal(graph.Random, (long)maxLength * d, EmbeddingStd), maxLength, d);
            var positions = graph.Op("Gather", "position_embedding", [positionTable, DecoderConvention.PositionIds], Attr.Int("axis", 0));
            x = graph.Op("Add", "embeddings", [x, positions]);
        }
        else
        {
            rotary = Rotary.Create(graph, maxLength, headWidth, options.RopeBase);
        }

        x = graph.Dropout("embeddings.dropout", x, options.Dropout);
        var scoreBias = ScoreBias(graph);
        for (var i = 0; i < options.Layers; i++)
        {
            x = Layer(graph, options, i, x, scoreBias, rotary, withCache);
        }

        x = LayerNorm(graph, "decoder.final_norm", x, d);
        var head = options.TieEmbeddings
            ? graph.Op("Transpose", "lm_head.tied_weight", [tokenTable], Attr.Ints("perm", 1, 0))
            : graph.Weight("lm_head.weight", Init.Normal(graph.Random, (long)d * vocab, EmbeddingStd), d, vocab);
        var logits = graph.Op("MatMul", DecoderConvention.Logits, [x, head]);
        return logits == DecoderConvention.Logits
            ? graph.Build()
            : throw new InvalidOperationException($"The logits came out as '{logits}'.");
    }

    /// <summary>The number of parameters <see cref="Build(DecoderOptions, ArchitectureInputs)"/> makes (the formula in the class remarks).</summary>
    public static long ParameterCount(DecoderOptions options, ArchitectureInputs inputs)
    {
        InvalidArchitectureOptionsException.ThrowIfInvalid(Name, options, inputs);
        long v = options.ResolveVocab(inputs), d = options.Width, f = options.FeedForward, p = options.ResolveMaxLength(inputs);
        var perLayer = (4 * d * d) + (2 * d * f) + (9 * d) + f;
        return (v * d)
            + (options.Positions == PositionEncoding.Learned ? p * d : 0)
            + (options.Layers * perLayer)
            + (2 * d)
            + (options.TieEmbeddings ? 0 : d * v);
    }

    /// <summary>
    /// The additive attention bias [batch, 1, sequence, total_sequence]: 0 where the query may see the key, -10000
    /// where the key is in its future or is padding.
    /// </summary>
    private static string ScoreBias(GraphWriter graph)
    {
        // Lengths as 1-D [1] tensors read from the inputs, so batch, sequence and past stay symbolic.
        var sequence = graph.Op("Shape", "attention.sequence", [DecoderConvention.InputIds], Attr.Int("start", 1), Attr.Int("end", 2));
        var total = graph.Op("Shape", "attention.total_sequence", [DecoderConvention.AttentionMask], Attr.Int("start", 1), Attr.Int("end", 2));
        var grid = graph.Op("Concat", "attention.grid_shape", [sequence, total], Attr.Int("axis", 0));
        var ones = graph.Op("ConstantOfShape", "attention.grid", [grid], Attr.Tensor("value", TensorData.FromFloats("one", [1f], [1])));
        var past = graph.Op("Sub", "attention.past_sequence", [total, sequence]);
        // Trilu's k is a 0-D tensor.
        past = graph.Op("Squeeze", "attention.past_sequence_scalar", [past, graph.Ints("attention.past_sequence_axes", 0)]);
        // Lower triangle from diagonal k = past: query i keeps keys j <= past + i.
        var causal = graph.Op("Trilu", "attention.causal", [ones, past], Attr.Int("upper", 0));

        var maskFloat = graph.Op("Cast", "attention_mask.float", [DecoderConvention.AttentionMask], Attr.Int("to", (long)DataType.Float));
        var keys = graph.Op("Unsqueeze", "attention_mask.by_key", [maskFloat, graph.Ints("attention_mask.axes", 1, 2)]);
        var allowed = graph.Op("Mul", "attention.allowed", [causal, keys]);
        var hidden = graph.Op("Sub", "attention.hidden", [graph.Scalar("attention.one", 1f), allowed]);
        return graph.Op("Mul", "attention.score_bias", [hidden, graph.Scalar("attention.masked_score", MaskedScore)]);
    }

    private static string Layer(GraphWriter graph, DecoderOptions options, int index, string x, string scoreBias, Rotary? rotary, bool withCache)
    {
        var layer = $"decoder.layer{index}";
        var d = options.Width;
        var heads = options.Heads;
        var headWidth = options.HeadWidth;
        long[] byHead = [0, 2, 1, 3];

        var h = LayerNorm(graph, $"{layer}.attention_norm", x, d);
        var query = SplitHeads(graph, $"{layer}.attention.query", Projection(graph, $"{layer}.attention.query", h, d, d), heads, headWidth, byHead);
        var key = SplitHeads(graph, $"{layer}.attention.key", Projection(graph, $"{layer}.attention.key", h, d, d), heads, headWidth, byHead);
        var value = SplitHeads(graph, $"{layer}.attention.value", Projection(graph, $"{layer}.attention.value", h, d, d), heads, headWidth, byHead);
        if (rotary is not null)
        {
            query = rotary.Apply(graph, $"{layer}.attention.query", query);
            key = rotary.Apply(graph, $"{layer}.attention.key", key);
        }

        if (withCache)
        {
            key = graph.Op("Concat", DecoderConvention.PresentKey(index), [DecoderConvention.PastKey(index), key], Attr.Int("axis", 2));
            value = graph.Op("Concat", DecoderConvention.PresentValue(index), [DecoderConvention.PastValue(index), value], Attr.Int("axis", 2));
        }

        var keyTransposed = graph.Op("Transpose", $"{layer}.attention.key.transposed", [key], Attr.Ints("perm", 0, 1, 3, 2));
        var context = Attend(graph, $"{layer}.attention", query, keyTransposed, value, scoreBias, d, headWidth);
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

    /// <summary>
    /// Rotary position embeddings, rotate-half form: x·cos + rotate_half(x)·sin with rotate_half(x) = [-x₂, x₁] for the
    /// halves x₁, x₂ of the head width, and angle(p, i) = p · base^(-2i / head_width) for i &lt; head_width / 2, repeated
    /// for the second half. The tables are gathered once by position_ids, [batch, 1, sequence, head_width], and shared by
    /// every layer.
    /// </summary>
    private sealed record Rotary(string Cos, string Sin, string FirstHalf, string SecondHalf, string HalfEnd, string LastAxis)
    {
        public static Rotary Create(GraphWriter graph, int maxLength, int headWidth, double ropeBase)
        {
            var half = headWidth / 2;
            var cos = new float[(long)maxLength * headWidth];
            var sin = new float[cos.Length];
            for (var p = 0; p < maxLength; p++)
            {
                for (var i = 0; i < half; i++)
                {
                    // In double, then rounded once: the tables are the same bits on every machine.
                    var angle = p * Math.Pow(ropeBase, -2.0 * i / headWidth);
                    cos[(p * headWidth) + i] = cos[(p * headWidth) + half + i] = (float)Math.Cos(angle);
                    sin[(p * headWidth) + i] = sin[(p * headWidth) + half + i] = (float)Math.Sin(angle);
                }
            }

            var cosTable = graph.FloatConstant("rope.cos", cos, maxLength, headWidth);
            var sinTable = graph.FloatConstant("rope.sin", sin, maxLength, headWidth);
            var headAxis = graph.Ints("rope.head_axis", 1);
            var cosByPosition = graph.Op("Gather", "rope.cos_by_position", [cosTable, DecoderConvention.PositionIds], Attr.Int("axis", 0));
            var sinByPosition = graph.Op("Gather", "rope.sin_by_position", [sinTable, DecoderConvention.PositionIds], Attr.Int("axis", 0));
            return new Rotary(
                graph.Op("Unsqueeze", "rope.cos_by_head", [cosByPosition, headAxis]),
                graph.Op("Unsqueeze", "rope.sin_by_head", [sinByPosition, headAxis]),
                graph.Ints("rope.first_half", 0),
                graph.Ints("rope.second_half", half),
                graph.Ints("rope.end", headWidth),
                graph.Ints("rope.last_axis", -1));
        }

        /// <summary>Rotates <paramref name="x"/> [batch, heads, sequence, head_width] by its tokens' positions.</summary>
        public string Apply(GraphWriter graph, string name, string x)
        {
            var first = graph.Op("Slice", $"{name}.rope.first_half", [x, FirstHalf, SecondHalf, LastAxis]);
            var second = graph.Op("Slice", $"{name}.rope.second_half", [x, SecondHalf, HalfEnd, LastAxis]);
            var negated = graph.Op("Neg", $"{name}.rope.negated_second_half", [second]);
            var rotated = graph.Op("Concat", $"{name}.rope.rotated_half", [negated, first], Attr.Int("axis", -1));
            var cosPart = graph.Op("Mul", $"{name}.rope.cos_part", [x, Cos]);
            var sinPart = graph.Op("Mul", $"{name}.rope.sin_part", [rotated, Sin]);
            return graph.Op("Add", $"{name}.rope", [cosPart, sinPart]);
        }
    }
}
