using ModelCompression.Onnx;

namespace ModelCompression.Architectures;

/// <summary>
/// The pieces the Transformer encoder and the decoder share, written with <see cref="GraphWriter"/>: LayerNorm, a
/// projection, splitting into heads and scaled dot-product attention. Node and initializer names derive from the
/// <c>name</c> given, so both builders name their values alike.
/// </summary>
internal static class TransformerBlocks
{
    /// <summary>
    /// x W + b with W [in, out], Xavier-uniform and a zero bias, as PyTorch's nn.MultiheadAttention initialises
    /// its projections: the attention and feed-forward sublayers sit on a LayerNorm'd residual path, where
    /// keeping forward and backward variance balanced matters more than the ReLU/GELU gain.
    /// </summary>
    public static string Projection(GraphWriter graph, string name, string input, int fanIn, int fanOut)
    {
        var weight = graph.Weight($"{name}.weight", Init.XavierUniform(graph.Random, (long)fanIn * fanOut, fanIn, fanOut), fanIn, fanOut);
        var bias = graph.Weight($"{name}.bias", new float[fanOut], fanOut);
        return graph.Linear(name, input, weight, bias);
    }

    /// <summary>[batch, sequence, width] -> [batch, sequence, heads, head_width] -> transposed by <paramref name="perm"/>.</summary>
    public static string SplitHeads(GraphWriter graph, string name, string input, int heads, int headWidth, long[] perm)
    {
        // 0 copies batch and sequence from the input, so neither is baked into the graph.
        var split = graph.Op("Reshape", $"{name}.heads", [input, graph.Ints($"{name}.heads_shape", 0, 0, heads, headWidth)]);
        return graph.Op("Transpose", $"{name}.by_head", [split], Attr.Ints("perm", perm));
    }

    /// <summary>LayerNormalization over the last axis, scale 1 and shift 0 (PyTorch's defaults).</summary>
    public static string LayerNorm(GraphWriter graph, string name, string input, int width)
    {
        var scale = graph.Weight($"{name}.weight", Init.Fill(width, 1f), width);
        var shift = graph.Weight($"{name}.bias", new float[width], width);
        return graph.Op("LayerNormalization", name, [input, scale, shift], Attr.Int("axis", -1), Attr.Float("epsilon", 1e-5f));
    }

    /// <summary>
    /// softmax(Q Kᵀ / √head_width + scoreBias) V with the heads merged back: <paramref name="query"/> [batch, heads,
    /// queries, head_width], <paramref name="keyTransposed"/> [batch, heads, head_width, keys], <paramref name="value"/>
    /// [batch, heads, keys, head_width], <paramref name="scoreBias"/> broadcasting to [batch, heads, queries, keys];
    /// returns [batch, queries, width] (before the output projection).
    /// </summary>
    public static string Attend(GraphWriter graph, string attention, string query, string keyTransposed, string value, string scoreBias, int width, int headWidth)
    {
        var scores = graph.Op("MatMul", $"{attention}.scores", [query, keyTransposed]);
        scores = graph.Op("Mul", $"{attention}.scaled_scores", [scores, graph.Scalar($"{attention}.scale", (float)(1 / Math.Sqrt(headWidth)))]);
        scores = graph.Op("Add", $"{attention}.masked_scores", [scores, scoreBias]);
        var probabilities = graph.Op("Softmax", $"{attention}.probabilities", [scores], Attr.Int("axis", -1));
        var context = graph.Op("MatMul", $"{attention}.context", [probabilities, value]);
        context = graph.Op("Transpose", $"{attention}.context_by_token", [context], Attr.Ints("perm", 0, 2, 1, 3));
        return graph.Op("Reshape", $"{attention}.merged", [context, graph.Ints($"{attention}.merged_shape", 0, 0, width)]);
    }
}
