using ModelCompression.Onnx.Proto;

namespace ModelCompression.Onnx;

/// <summary>
/// Finds every graph and tensor a model holds: the main graph, subgraphs in node attributes (If, Loop, Scan),
/// model-local functions and training info. The order is fixed, so anything derived from it (external data
/// layout, content hashes) is deterministic.
/// </summary>
internal static class ModelWalker
{
    /// <summary>Every graph, outer graphs before the subgraphs they hold.</summary>
    public static IEnumerable<GraphProto> Graphs(ModelProto model)
    {
        if (model.Graph is not null)
        {
            foreach (var graph in GraphAndSubgraphs(model.Graph))
            {
                yield return graph;
            }
        }

        foreach (var info in model.TrainingInfo)
        {
            foreach (var root in new[] { info.Initialization, info.Algorithm })
            {
                if (root is null)
                {
                    continue;
                }

                foreach (var graph in GraphAndSubgraphs(root))
                {
                    yield return graph;
                }
            }
        }

        foreach (var function in model.Functions)
        {
            foreach (var node in function.Node)
            {
                foreach (var graph in SubgraphsOf(node).SelectMany(GraphAndSubgraphs))
                {
                    yield return graph;
                }
            }
        }
    }

    /// <summary>Every tensor: initializers, sparse initializers and tensor-valued attributes, in all graphs.</summary>
    public static IEnumerable<TensorProto> Tensors(ModelProto model)
    {
        foreach (var graph in Graphs(model))
        {
            foreach (var tensor in graph.Initializer)
            {
                yield return tensor;
            }

            foreach (var sparse in graph.SparseInitializer)
            {
                foreach (var tensor in TensorsOf(sparse))
                {
                    yield return tensor;
                }
            }

            foreach (var node in graph.Node)
            {
                foreach (var tensor in AttributeTensors(node))
                {
                    yield return tensor;
                }
            }
        }

        foreach (var node in model.Functions.SelectMany(f => f.Node))
        {
            foreach (var tensor in AttributeTensors(node))
            {
                yield return tensor;
            }
        }
    }

    /// <summary>Dense initializers of every graph: the tensors that may be stored as external data.</summary>
    public static IEnumerable<TensorProto> Initializers(ModelProto model) =>
        Graphs(model).SelectMany(g => g.Initializer);

    /// <summary>The graphs held directly by a node's attributes (not their nested subgraphs).</summary>
    public static IEnumerable<GraphProto> SubgraphsOf(NodeProto node)
    {
        foreach (var attribute in node.Attribute)
        {
            if (attribute.G is not null)
            {
                yield return attribute.G;
            }

            foreach (var graph in attribute.Graphs)
            {
                yield return graph;
            }
        }
    }

    private static IEnumerable<GraphProto> GraphAndSubgraphs(GraphProto graph)
    {
        yield return graph;
        foreach (var node in graph.Node)
        {
            foreach (var nested in SubgraphsOf(node).SelectMany(GraphAndSubgraphs))
            {
                yield return nested;
            }
        }
    }

    private static IEnumerable<TensorProto> AttributeTensors(NodeProto node)
    {
        foreach (var attribute in node.Attribute)
        {
            if (attribute.T is not null)
            {
                yield return attribute.T;
            }

            foreach (var tensor in attribute.Tensors)
            {
                yield return tensor;
            }

            if (attribute.SparseTensor is not null)
            {
                foreach (var tensor in TensorsOf(attribute.SparseTensor))
                {
                    yield return tensor;
                }
            }

            foreach (var tensor in attribute.SparseTensors.SelectMany(TensorsOf))
            {
                yield return tensor;
            }
        }
    }

    private static IEnumerable<TensorProto> TensorsOf(SparseTensorProto sparse)
    {
        if (sparse.Values is not null)
        {
            yield return sparse.Values;
        }

        if (sparse.Indices is not null)
        {
            yield return sparse.Indices;
        }
    }
}
