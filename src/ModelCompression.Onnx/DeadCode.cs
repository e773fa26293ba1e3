using ModelCompression.Onnx.Proto;

namespace ModelCompression.Onnx;

/// <summary>What <see cref="DeadCode.Eliminate"/> removed, counted over the main graph and every subgraph.</summary>
/// <param name="Nodes">Nodes whose outputs nothing reads.</param>
/// <param name="Initializers">Initializers (dense and sparse) that nothing reads.</param>
/// <param name="InitializerBytes">The data bytes of those initializers, by their dims and type.</param>
public sealed record DeadCodeRemoved(int Nodes, int Initializers, long InitializerBytes)
{
    /// <summary>True when nothing was removed.</summary>
    public bool IsEmpty => Nodes == 0 && Initializers == 0;
}

/// <summary>
/// Dead-code elimination of an ONNX graph. A value is live when a graph output is it or a live node reads it; a node
/// is live when one of its outputs is live, and then everything it reads is live, including the outer-scope names its
/// If/Loop/Scan bodies read. ONNX operators are pure functions of their inputs, so a node no live value depends on can
/// go, and so can an initializer nothing live reads. Graph inputs are the model's contract and always stay, and so
/// does an initializer declared as a graph input too (it is the input's default: without it the input would become
/// required). Subgraphs are cleaned the same way, their own outputs being their roots.
/// </summary>
public static class DeadCode
{
    /// <summary>Removes the dead nodes and initializers of <paramref name="model"/> in place.</summary>
    public static DeadCodeRemoved Eliminate(ModelProto model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var removed = new Counts();
        if (model.Graph is not null)
        {
            Clean(model.Graph, removed);
        }

        return new DeadCodeRemoved(removed.Nodes, removed.Initializers, removed.Bytes);
    }

    /// <summary>
    /// Cleans <paramref name="graph"/> and its subgraphs; returns the names it reads without defining them (for a
    /// subgraph: the values of the graphs around it that it uses).
    /// </summary>
    private static HashSet<string> Clean(GraphProto graph, Counts removed)
    {
        var producer = new Dictionary<string, NodeProto>(StringComparer.Ordinal);
        foreach (var node in graph.Node)
        {
            foreach (var output in node.Output.Where(o => o.Length > 0))
            {
                producer.TryAdd(output, node);
            }
        }

        var live = new HashSet<string>(StringComparer.Ordinal);
        var liveNodes = new HashSet<NodeProto>(ReferenceEqualityComparer.Instance);
        var pending = new Stack<string>();
        foreach (var output in graph.Output)
        {
            Read(output.Name);
        }

        while (pending.Count > 0)
        {
            if (!producer.TryGetValue(pending.Pop(), out var node) || !liveNodes.Add(node))
            {
                continue;
            }

            foreach (var input in node.Input)
            {
                Read(input);
            }

            // A body is cleaned only once its node is known to stay, and then it reads what it still needs.
            foreach (var body in ModelWalker.SubgraphsOf(node))
            {
                foreach (var name in Clean(body, removed))
                {
                    Read(name);
                }
            }
        }

        foreach (var node in graph.Node.Where(n => !liveNodes.Contains(n)).ToList())
        {
            graph.Node.Remove(node);
            removed.Nodes += 1 + CountNested(node);
        }

        var inputs = graph.Input.Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var tensor in graph.Initializer.Where(t => !live.Contains(t.Name) && !inputs.Contains(t.Name)).ToList())
        {
            graph.Initializer.Remove(tensor);
            removed.Initializers++;
            removed.Bytes += TensorData.ExpectedByteCount(tensor) ?? 0;
        }

        foreach (var sparse in graph.SparseInitializer.Where(s => s.Values is { } v && !live.Contains(v.Name) && !inputs.Contains(v.Name)).ToList())
        {
            graph.SparseInitializer.Remove(sparse);
            removed.Initializers++;
            removed.Bytes += (sparse.Values is { } values ? TensorData.ExpectedByteCount(values) ?? 0 : 0)
                + (sparse.Indices is { } indices ? TensorData.ExpectedByteCount(indices) ?? 0 : 0);
        }

        // Shape annotations of values no node makes any more would describe nothing.
        var defined = graph.Node.SelectMany(n => n.Output).Concat(inputs).Concat(graph.Initializer.Select(t => t.Name)).ToHashSet(StringComparer.Ordinal);
        foreach (var info in graph.ValueInfo.Where(v => !defined.Contains(v.Name)).ToList())
        {
            graph.ValueInfo.Remove(info);
        }

        defined.UnionWith(graph.SparseInitializer.Where(s => s.Values is not null).Select(s => s.Values.Name));
        live.ExceptWith(defined);
        return live;

        void Read(string name)
        {
            // An empty name is an omitted optional input.
            if (name.Length > 0 && live.Add(name))
            {
                pending.Push(name);
            }
        }
    }

    private static int CountNested(NodeProto node) =>
        ModelWalker.SubgraphsOf(node).Sum(g => g.Node.Count + g.Node.Sum(CountNested));

    private sealed class Counts
    {
        public int Nodes;
        public int Initializers;
        public long Bytes;
    }
}
