using ModelCompression.Diagnostics;
using ModelCompression.Onnx.Proto;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Onnx;

/// <summary>
/// Structural checks of a model, all problems at once (MC2002): every node input is defined; value names are
/// assigned once; nodes are in topological order and the graph has no cycle (a cycle is reported with its
/// nodes); tensor data matches dims and type; every operator domain has an opset import; every graph output
/// is produced. Subgraphs (If, Loop, Scan) may use values of the graphs around them.
/// </summary>
public static class OnnxChecker
{
    private const int MaxCyclesReported = 10;

    /// <summary>Every problem found; empty when the model is valid.</summary>
    /// <param name="model">The model to check.</param>
    /// <param name="path">The model's file, named in the diagnostics.</param>
    public static IReadOnlyList<Diagnostic> Check(ModelProto model, string? path = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        return new Run(path).CheckModel(model);
    }

    /// <summary>Throws a <see cref="CompressionException"/> carrying every problem (MC2002) when the model is invalid.</summary>
    public static void ThrowIfInvalid(ModelProto model, string? path = null)
    {
        var problems = Check(model, path);
        if (problems.Count > 0)
        {
            throw new CompressionException(problems);
        }
    }

    private static string Domain(string domain) => OnnxVersions.IsDefaultDomain(domain) ? "" : domain;

    private static string Describe(NodeProto node, int index) =>
        string.IsNullOrEmpty(node.Name) ? $"node #{index} ({node.OpType})" : $"node '{node.Name}' ({node.OpType})";

    private sealed class Run(string? path)
    {
        private readonly List<Diagnostic> _problems = [];
        private readonly SortedDictionary<string, SortedSet<string>> _domainsUsed = new(StringComparer.Ordinal);

        public IReadOnlyList<Diagnostic> CheckModel(ModelProto model)
        {
            if (model.Graph is null)
            {
                Report("The model has no graph.");
                return _problems;
            }

            var imported = new HashSet<string>(StringComparer.Ordinal);
            foreach (var opset in model.OpsetImport)
            {
                if (!imported.Add(Domain(opset.Domain)))
                {
                    Report($"Domain '{opset.Domain}' is imported more than once in opset_import.");
                }
            }

            CheckGraph(model.Graph, new HashSet<string>(StringComparer.Ordinal), $"graph '{model.Graph.Name}'");

            // A function body may import domains of its own.
            foreach (var function in model.Functions)
            {
                var own = function.OpsetImport.Select(o => Domain(o.Domain)).ToHashSet(StringComparer.Ordinal);
                foreach (var node in function.Node.Where(n => !own.Contains(Domain(n.Domain)) && !imported.Contains(Domain(n.Domain))))
                {
                    Report($"Function '{function.Name}' uses {node.OpType} of domain '{node.Domain}' but neither it nor the model imports that domain.");
                }
            }

            foreach (var (domain, ops) in _domainsUsed)
            {
                if (!imported.Contains(domain))
                {
                    var shown = domain.Length == 0 ? "the default ONNX domain" : $"domain '{domain}'";
                    Report($"Operators of {shown} are used ({string.Join(", ", ops)}) but the model has no opset_import for it.");
                }
            }

            return _problems;
        }

        private void Report(string message) => _problems.Add(Diagnostic.Error(DiagnosticCodes.ModelInvalid, message, path));

        private void Use(NodeProto node)
        {
            var domain = Domain(node.Domain);
            if (!_domainsUsed.TryGetValue(domain, out var ops))
            {
                _domainsUsed[domain] = ops = new SortedSet<string>(StringComparer.Ordinal);
            }

            ops.Add(node.OpType);
        }

        /// <summary>Checks one graph; returns the outer-scope names it (or its subgraphs) use.</summary>
        private HashSet<string> CheckGraph(GraphProto graph, IReadOnlySet<string> outer, string where)
        {
            var free = new HashSet<string>(StringComparer.Ordinal);
            var defined = new HashSet<string>(StringComparer.Ordinal);
            foreach (var input in graph.Input)
            {
                if (!defined.Add(input.Name))
                {
                    Report($"In {where}, graph input '{input.Name}' is declared more than once.");
                }
            }

            var initializers = new HashSet<string>(StringComparer.Ordinal);
            foreach (var tensor in graph.Initializer)
            {
                if (!initializers.Add(tensor.Name))
                {
                    Report($"In {where}, initializer '{tensor.Name}' is declared more than once.");
                }

                CheckTensor(tensor, $"initializer '{tensor.Name}' in {where}");
            }

            foreach (var sparse in graph.SparseInitializer)
            {
                var name = sparse.Values?.Name ?? "";
                if (!initializers.Add(name))
                {
                    Report($"In {where}, sparse initializer '{name}' is declared more than once.");
                }
            }

            // An initializer may share its name with a graph input (it is then the input's default value).
            defined.UnionWith(initializers);

            var nodes = graph.Node;
            var producer = new Dictionary<string, int>(StringComparer.Ordinal);
            for (var i = 0; i < nodes.Count; i++)
            {
                var node = nodes[i];
                if (string.IsNullOrEmpty(node.OpType))
                {
                    Report($"In {where}, {Describe(node, i)} has no op_type.");
                }

                Use(node);
                foreach (var output in node.Output.Where(o => o.Length > 0))
                {
                    if (defined.Contains(output))
                    {
                        Report($"In {where}, {Describe(node, i)} writes '{output}', which is already a graph input or initializer.");
                    }
                    else if (producer.TryGetValue(output, out var other))
                    {
                        Report($"In {where}, '{output}' is written by both {Describe(nodes[other], other)} and {Describe(node, i)}.");
                    }
                    else
                    {
                        producer[output] = i;
                        if (outer.Contains(output))
                        {
                            Report($"In {where}, {Describe(node, i)} writes '{output}', which already names a value of an outer graph.");
                        }
                    }
                }

                foreach (var attribute in node.Attribute)
                {
                    if (attribute.T is not null)
                    {
                        CheckTensor(attribute.T, $"attribute '{attribute.Name}' of {Describe(node, i)} in {where}");
                    }

                    foreach (var tensor in attribute.Tensors)
                    {
                        CheckTensor(tensor, $"attribute '{attribute.Name}' of {Describe(node, i)} in {where}");
                    }
                }
            }

            var visible = new HashSet<string>(outer, StringComparer.Ordinal);
            visible.UnionWith(defined);
            visible.UnionWith(producer.Keys);

            // Edges: node -> the nodes it reads from, with the value read (subgraph uses count as the node's).
            var dependencies = new List<(int Producer, string Value)>[nodes.Count];
            for (var i = 0; i < nodes.Count; i++)
            {
                var node = nodes[i];
                dependencies[i] = [];
                foreach (var input in node.Input.Where(n => n.Length > 0))
                {
                    Resolve(input, i, $"{Describe(node, i)} in {where} reads '{input}'");
                }

                foreach (var attribute in node.Attribute)
                {
                    var bodies = attribute.G is null ? attribute.Graphs.ToList() : [attribute.G, .. attribute.Graphs];
                    foreach (var body in bodies)
                    {
                        var inner = CheckGraph(body, visible, $"subgraph '{attribute.Name}' of {Describe(node, i)} in {where}");
                        foreach (var name in inner)
                        {
                            Resolve(name, i, $"a subgraph of {Describe(node, i)} in {where} reads '{name}'");
                        }
                    }
                }
            }

            var cycles = FindCycles(dependencies);
            foreach (var cycle in cycles)
            {
                var chain = string.Join(" -> ", cycle.Append(cycle[0]).Select(i => Describe(nodes[i], i)));
                Report($"In {where}, the graph has a cycle: {chain}.");
            }

            if (cycles.Count == 0)
            {
                for (var i = 0; i < nodes.Count; i++)
                {
                    foreach (var (j, value) in dependencies[i].Where(d => d.Producer > i))
                    {
                        Report($"In {where}, {Describe(nodes[i], i)} reads '{value}' before {Describe(nodes[j], j)} writes it: nodes must be in topological order.");
                    }
                }
            }

            var outputs = new HashSet<string>(StringComparer.Ordinal);
            foreach (var output in graph.Output)
            {
                if (!outputs.Add(output.Name))
                {
                    Report($"In {where}, graph output '{output.Name}' is declared more than once.");
                }

                if (producer.ContainsKey(output.Name) || defined.Contains(output.Name))
                {
                    continue;
                }

                if (outer.Contains(output.Name))
                {
                    free.Add(output.Name);
                }
                else
                {
                    Report($"In {where}, graph output '{output.Name}' is not produced by any node, input or initializer.");
                }
            }

            return free;

            void Resolve(string name, int reader, string what)
            {
                if (producer.TryGetValue(name, out var j))
                {
                    dependencies[reader].Add((j, name));
                }
                else if (defined.Contains(name))
                {
                    // graph input or initializer
                }
                else if (outer.Contains(name))
                {
                    free.Add(name);
                }
                else
                {
                    Report($"{char.ToUpperInvariant(what[0])}{what[1..]}, which is not defined (not a graph input, initializer, node output or outer-scope value).");
                }
            }
        }

        /// <summary>Cycles in the node graph, each as the node indices along it (depth-first, one per back edge).</summary>
        private static List<List<int>> FindCycles(List<(int Producer, string Value)>[] dependencies)
        {
            var cycles = new List<List<int>>();
            var state = new byte[dependencies.Length]; // 0 unvisited, 1 on the stack, 2 done
            var stack = new List<int>();
            for (var start = 0; start < dependencies.Length && cycles.Count < MaxCyclesReported; start++)
            {
                if (state[start] == 0)
                {
                    Visit(start);
                }
            }

            return cycles;

            // Iterative depth-first search: graphs can be deep enough to overflow the call stack.
            void Visit(int root)
            {
                var work = new Stack<(int Node, int Next)>();
                work.Push((root, 0));
                state[root] = 1;
                stack.Add(root);
                while (work.Count > 0)
                {
                    var (node, next) = work.Pop();
                    if (next < dependencies[node].Count)
                    {
                        work.Push((node, next + 1));
                        var target = dependencies[node][next].Producer;
                        if (state[target] == 0)
                        {
                            state[target] = 1;
                            stack.Add(target);
                            work.Push((target, 0));
                        }
                        else if (state[target] == 1 && cycles.Count < MaxCyclesReported)
                        {
                            // Edges point from reader to writer; reverse so the cycle reads in data-flow order.
                            var cycle = stack.Skip(stack.IndexOf(target)).ToList();
                            cycle.Reverse();
                            // Start at the earliest node, so the report reads in graph order.
                            var first = cycle.IndexOf(cycle.Min());
                            cycles.Add([.. cycle.Skip(first), .. cycle.Take(first)]);
                        }
                    }
                    else
                    {
                        state[node] = 2;
                        stack.RemoveAt(stack.Count - 1);
                    }
                }
            }
        }

        private void CheckTensor(TensorProto tensor, string where)
        {
            var type = (DataType)tensor.DataType;
            if (type == DataType.Undefined || !Enum.IsDefined(type))
            {
                Report($"Tensor of {where} has no valid data type ({tensor.DataType}).");
                return;
            }

            if (!TensorData.TryElementCount(tensor.Dims, out var count))
            {
                Report($"Tensor of {where} has invalid dims [{string.Join(",", tensor.Dims)}].");
                return;
            }

            if (TensorData.IsExternal(tensor))
            {
                if (!tensor.ExternalData.Any(e => e.Key == "location"))
                {
                    Report($"Tensor of {where} is external but has no location.");
                }

                return;
            }

            var shape = $"dims [{string.Join(",", tensor.Dims)}] of {type}";
            var typed = TypedCount(tensor, type);
            if (!tensor.RawData.IsEmpty)
            {
                if (typed > 0)
                {
                    Report($"Tensor of {where} has both raw_data and typed data fields.");
                }

                var expected = TensorData.ByteCount(type, count);
                if (expected is null)
                {
                    Report($"Tensor of {where} is {type} but has raw_data.");
                }
                else if (expected != tensor.RawData.Length)
                {
                    Report($"Tensor of {where} holds {tensor.RawData.Length} bytes but {shape} need {expected}.");
                }

                return;
            }

            var expectedCount = type switch
            {
                DataType.Complex64 or DataType.Complex128 => 2 * count,
                DataType.Int4 or DataType.Uint4 or DataType.Float4E2M1 => (count + 1) / 2,
                _ => count,
            };
            if (typed != expectedCount)
            {
                Report($"Tensor of {where} holds {typed} values but {shape} need {expectedCount}.");
            }
        }

        private static long TypedCount(TensorProto tensor, DataType type) => type switch
        {
            DataType.Float or DataType.Complex64 => tensor.FloatData.Count,
            DataType.Double or DataType.Complex128 => tensor.DoubleData.Count,
            DataType.Int64 => tensor.Int64Data.Count,
            DataType.Uint32 or DataType.Uint64 => tensor.Uint64Data.Count,
            DataType.String => tensor.StringData.Count,
            _ => tensor.Int32Data.Count,
        };
    }
}
