using ModelCompression.Common;
using ModelCompression.Data;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Inference;

/// <summary>
/// What a run reads from a model file before any work, kept in the cache under the file's content hash so a run with
/// nothing to do does not parse the model again: the entry exists only for a file that passed the project's checker
/// (<see cref="OnnxModelFile.Verify"/>), and holds its graph inputs and embedding tables (the token check) and the
/// graph's structure without its weights (<see cref="Graph"/>: what the plan's checks of node, value and op-type names
/// read).
/// </summary>
/// <param name="Inputs">The graph's inputs.</param>
/// <param name="Tables">Its <see cref="TokenRange.EmbeddingTables"/>.</param>
/// <param name="Graph">The graph's structure.</param>
internal sealed record ModelFacts(int Inputs, IReadOnlyList<EmbeddingTable> Tables, GraphShape Graph)
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
            return new ModelFacts(model.Graph.Input.Count, [.. TokenRange.EmbeddingTables(model).Select(t => new EmbeddingTable(t.Input, t.Table, t.Rows))], GraphShape.Of(model.Graph));
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

/// <summary>
/// A graph's structure without its weights: every node's name, op type, domain, inputs and outputs in graph order,
/// the initializers' names, and the outputs with their static shapes. <see cref="ToModel"/> makes a weightless model
/// of it, so the checks that read names (node names as the quantizers assign them, a classifier's penultimate value,
/// transformer layers) run the same graph code as the stages, on a cached run too.
/// </summary>
/// <param name="Nodes">The nodes, in graph order.</param>
/// <param name="Initializers">The initializers' names.</param>
/// <param name="Outputs">The graph outputs.</param>
internal sealed record GraphShape(IReadOnlyList<GraphNode> Nodes, IReadOnlyList<string> Initializers, IReadOnlyList<GraphOutput> Outputs)
{
    /// <summary>The structure of <paramref name="graph"/>.</summary>
    public static GraphShape Of(GraphProto graph) => new(
        [.. graph.Node.Select(n => new GraphNode(n.Name, n.OpType, n.Domain, [.. n.Input], [.. n.Output]))],
        [.. graph.Initializer.Select(i => i.Name)],
        [.. graph.Output.Select(o => new GraphOutput(o.Name, o.Type?.TensorType?.Shape is { } shape ? [.. shape.Dim.Select(d => d.HasDimValue ? d.DimValue : -1)] : null))]);

    /// <summary>The width of the first output (its last dimension) when the graph fixes it; null when it is symbolic or absent.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public int? OutputWidth => Outputs is [{ Dims: [.., > 0 and var width] }, ..] ? (int)Math.Min(int.MaxValue, width) : null;

    /// <summary>A model of this structure: no weights (initializers are empty tensors of the right names) and no attributes.</summary>
    public ModelProto ToModel()
    {
        var graph = new GraphProto();
        foreach (var node in Nodes)
        {
            var proto = new NodeProto { Name = node.Name, OpType = node.OpType, Domain = node.Domain };
            proto.Input.AddRange(node.Inputs);
            proto.Output.AddRange(node.Outputs);
            graph.Node.Add(proto);
        }

        graph.Initializer.AddRange(Initializers.Select(name => new TensorProto { Name = name }));
        graph.Output.AddRange(Outputs.Select(o => new ValueInfoProto { Name = o.Name }));
        return new ModelProto { Graph = graph };
    }
}

/// <summary>One node of a <see cref="GraphShape"/>.</summary>
/// <param name="Name">Its name as the file has it (may be empty).</param>
/// <param name="OpType">Its op type.</param>
/// <param name="Domain">Its domain ("" for ONNX's).</param>
/// <param name="Inputs">The values it reads.</param>
/// <param name="Outputs">The values it makes.</param>
internal sealed record GraphNode(string Name, string OpType, string Domain, IReadOnlyList<string> Inputs, IReadOnlyList<string> Outputs);

/// <summary>One output of a <see cref="GraphShape"/>.</summary>
/// <param name="Name">The output's name.</param>
/// <param name="Dims">Its dimensions, -1 for a symbolic one; null when the file gives no shape.</param>
internal sealed record GraphOutput(string Name, long[]? Dims);
