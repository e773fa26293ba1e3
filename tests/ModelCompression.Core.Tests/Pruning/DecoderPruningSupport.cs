using ModelCompression.Architectures;
using ModelCompression.Generation;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using static ModelCompression.Core.Tests.Architectures.DecoderTestSupport;

namespace ModelCompression.Core.Tests.Pruning;

/// <summary>Decoders to prune, and what the tests run on them: ONNX Runtime passes with and without a cache, and generation.</summary>
internal static class DecoderPruningSupport
{
    /// <summary>Prompts of different lengths, so generation left-pads a batch.</summary>
    public static readonly long[][] Sequence = [[1, 5, 9, 3, 14, 6], [2, 2, 7, 20, 19, 4]];

    private static readonly IReadOnlyList<IReadOnlyList<int>> Prompts = [[1, 5, 9, 3], [7, 20]];

    /// <summary>A small decoder: 3 layers, 4 heads of width 4, vocabulary 23, 16 positions.</summary>
    public static DecoderOptions Options(PositionEncoding positions, int layers = 3, bool tied = true) => new()
    {
        VocabSize = 23,
        MaxLength = 16,
        Width = 16,
        Heads = 4,
        Layers = layers,
        FeedForward = 24,
        Positions = positions,
        TieEmbeddings = tied,
        Dropout = 0,
        Seed = 5,
    };

    /// <summary>
    /// The built-in decoder with or without cache. Its embedding is drawn wider than GPT-2's N(0, 0.02²) so that the tied
    /// head gives logits with clear winners: greedy tokens then do not hang on rounding.
    /// </summary>
    public static ModelProto Build(DecoderOptions options, bool withCache)
    {
        var model = DecoderBuilder.Build(options, NoData, withCache);
        PruningTestSupport.Randomize(model, "embedding.weight", seed: 11, low: -1, high: 1);
        return model;
    }

    /// <summary>The PyTorch fixture's export with or without cache.</summary>
    public static ModelProto Fixture(bool withCache) =>
        OnnxModelFile.Load(withCache ? Generation.DecoderFixture.Cached : Generation.DecoderFixture.NoCache);

    /// <summary>Every output of one ONNX Runtime pass over <see cref="Sequence"/>, from an empty past when the model has a cache.</summary>
    public static Dictionary<string, Value> Forward(ModelProto model)
    {
        var inputs = Inputs(Sequence);
        var signature = DecoderSignature.Read(model, "model");
        for (var i = 0; i < signature.CachedLayers; i++)
        {
            inputs[DecoderConvention.PastKey(i)] = Value.Floats([], Sequence.Length, signature.KeyValueHeads, 0, signature.HeadWidth);
            inputs[DecoderConvention.PastValue(i)] = Value.Floats([], Sequence.Length, signature.KeyValueHeads, 0, signature.HeadWidth);
        }

        return RunOrt(model, inputs);
    }

    /// <summary>The logits of <see cref="Forward"/>.</summary>
    public static float[] Logits(ModelProto model) => (float[])Forward(model)[DecoderConvention.Logits].Data;

    /// <summary>Greedy generation from two prompts in one left-padded batch, saved to <paramref name="folder"/> and run by <see cref="Generator"/>.</summary>
    public static IReadOnlyList<IReadOnlyList<int>> Greedy(ModelProto model, TempDir folder, bool useCache, int maxNewTokens = 8)
    {
        var path = folder.File($"decoder-{Guid.NewGuid():N}.onnx");
        OnnxModelFile.Save(model, path);
        using var session = DecoderSession.Open(path, threads: 1);
        var options = new GenerationOptions { MaxNewTokens = maxNewTokens, UseCache = useCache, BatchSize = 2 };
        return [.. new Generator(session).Generate(Prompts, options).Select(r => r.Tokens)];
    }

    /// <summary>Greedy generation with the fixture's own prompts (byte tokens) and end of text.</summary>
    public static IReadOnlyList<IReadOnlyList<int>> FixtureGreedy(ModelProto model, TempDir folder, bool useCache)
    {
        var path = folder.File($"decoder-{Guid.NewGuid():N}.onnx");
        OnnxModelFile.Save(model, path);
        using var session = DecoderSession.Open(path, threads: 1);
        var options = new GenerationOptions { MaxNewTokens = 16, UseCache = useCache, BatchSize = 4, StopTokenIds = [Generation.DecoderFixture.Eos] };
        IReadOnlyList<IReadOnlyList<int>> prompts = [.. Generation.DecoderFixture.Greedy.Take(4).Select(c => (IReadOnlyList<int>)c.Prompt)];
        return [.. new Generator(session).Generate(prompts, options).Select(r => r.Tokens)];
    }

    /// <summary>The initializer that input <paramref name="input"/> of node <paramref name="node"/> reads (exporters give weights generated names).</summary>
    public static string WeightOf(ModelProto model, string node, int input = 1) =>
        model.Graph.Node.Single(n => n.Name == node).Input[input];

    /// <summary>The float bias input of an Add node (either side).</summary>
    public static string BiasOf(ModelProto model, string node) =>
        model.Graph.Node.Single(n => n.Name == node).Input.Single(i => model.Graph.Initializer.Any(t => t.Name == i));

    /// <summary>Entries [.., kept heads, ..] of a [batch, heads, sequence, width] tensor, in order.</summary>
    public static float[] KeepHeads(Value value, int[] kept)
    {
        var (batch, heads, rest) = ((int)value.Shape[0], (int)value.Shape[1], (int)(value.Shape[2] * value.Shape[3]));
        var data = (float[])value.Data;
        return [.. Enumerable.Range(0, batch).SelectMany(b => kept.SelectMany(h => data.AsSpan(((b * heads) + h) * rest, rest).ToArray()))];
    }
}
