using ModelCompression.Common;
using ModelCompression.Data;
using ModelCompression.Onnx;

namespace ModelCompression.Inference;

/// <summary>
/// What a run reads from a model file before any work, kept in the cache under the file's content hash so a run with
/// nothing to do does not parse the model again: the entry exists only for a file that passed the project's checker
/// (<see cref="OnnxModelFile.Verify"/>), and holds its graph inputs and embedding tables (the token check).
/// </summary>
/// <param name="Inputs">The graph's inputs.</param>
/// <param name="Tables">Its <see cref="TokenRange.EmbeddingTables"/>.</param>
internal sealed record ModelFacts(int Inputs, IReadOnlyList<EmbeddingTable> Tables)
{
    private const string Kind = "model-facts";

    /// <summary>The tables as <see cref="TokenRange"/> takes them.</summary>
    public IReadOnlyList<(string Input, string Table, long Rows)> TableTuples => [.. Tables.Select(t => (t.Input, t.Table, t.Rows))];

    /// <summary>Whether the model whose hash is <paramref name="modelHash"/> passed the checker in an earlier run.</summary>
    public static bool Known(ArtifactCache cache, string modelHash) => cache.TryGet(Kind, Key(modelHash)) is not null;

    /// <summary>
    /// The facts of <paramref name="path"/> (whose hash is <paramref name="modelHash"/>), read from the file when the
    /// cache has none (then the checker runs on it first).
    /// </summary>
    public static ModelFacts Of(ArtifactCache cache, string path, string modelHash)
    {
        var key = Key(modelHash);
        var entry = cache.TryGet(Kind, key) ?? cache.Put(Kind, key, _ =>
        {
            // Cheap next to a stage, and it keeps the entry's meaning whoever asks first (the built-in student is not a recipe file).
            OnnxModelFile.Verify([path]);
            var model = OnnxModelFile.Load(path, new OnnxLoadOptions { LoadExternalData = false });
            return new ModelFacts(model.Graph.Input.Count, [.. TokenRange.EmbeddingTables(model).Select(t => new EmbeddingTable(t.Input, t.Table, t.Rows))]);
        });
        return ArtifactCache.ReadResult<ModelFacts>(entry);
    }

    private static string Key(string modelHash) => new ContentHash().Add("engine", EngineInfo.Version).Add("model", modelHash).Finish();
}

/// <summary>An embedding table of a model: the int64 graph input that indexes it, the initializer, and its rows.</summary>
/// <param name="Input">The graph input.</param>
/// <param name="Table">The initializer.</param>
/// <param name="Rows">Its first dimension.</param>
internal sealed record EmbeddingTable(string Input, string Table, long Rows);
