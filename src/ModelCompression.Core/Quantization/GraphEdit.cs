using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Quantization;

/// <summary>Small graph edits the quantizers share.</summary>
internal static class GraphEdit
{
    /// <summary>A default-domain node.</summary>
    public static NodeProto Node(string opType, string name, string[] inputs, string[] outputs, params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = opType, Name = name };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        node.Attribute.AddRange(attributes);
        return node;
    }

    /// <summary>A Cast node to <paramref name="to"/>.</summary>
    public static NodeProto Cast(string name, string input, string output, DataType to) =>
        Node("Cast", name, [input], [output], Attr.Int("to", (long)to));

    /// <summary>True for nodes of the default ONNX domain.</summary>
    public static bool IsDefaultDomain(NodeProto node) => OnnxVersions.IsDefaultDomain(node.Domain);

    /// <summary>The node's attribute called <paramref name="name"/>, or null.</summary>
    public static AttributeProto? Attribute(NodeProto node, string name) => node.Attribute.FirstOrDefault(a => a.Name == name);

    /// <summary>Sets (or adds) a float attribute.</summary>
    public static void SetFloat(NodeProto node, string name, float value)
    {
        var attribute = Attribute(node, name);
        if (attribute is null)
        {
            node.Attribute.Add(Attr.Float(name, value));
        }
        else
        {
            attribute.F = value;
        }
    }

    /// <summary>The nodes reading each value, in graph order.</summary>
    public static Dictionary<string, List<NodeProto>> Consumers(GraphProto graph)
    {
        var consumers = new Dictionary<string, List<NodeProto>>(StringComparer.Ordinal);
        foreach (var node in graph.Node)
        {
            foreach (var input in node.Input.Where(i => i.Length > 0).Distinct(StringComparer.Ordinal))
            {
                if (!consumers.TryGetValue(input, out var list))
                {
                    consumers[input] = list = [];
                }

                list.Add(node);
            }
        }

        return consumers;
    }

    /// <summary>The node producing each value.</summary>
    public static Dictionary<string, NodeProto> Producers(GraphProto graph)
    {
        var producers = new Dictionary<string, NodeProto>(StringComparer.Ordinal);
        foreach (var node in graph.Node)
        {
            foreach (var output in node.Output.Where(o => o.Length > 0))
            {
                producers[output] = node;
            }
        }

        return producers;
    }

    /// <summary>
    /// Gives every unnamed node a unique name (<c>Relu_0</c>, …) so reports, exclusions and error messages can
    /// name it. Named nodes keep their names.
    /// </summary>
    public static void NameNodes(GraphProto graph)
    {
        var taken = new HashSet<string>(graph.Node.Select(n => n.Name).Where(n => n.Length > 0), StringComparer.Ordinal);
        var counters = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var node in graph.Node.Where(n => n.Name.Length == 0))
        {
            var i = counters.GetValueOrDefault(node.OpType);
            while (!taken.Add($"{node.OpType}_{i}"))
            {
                i++;
            }

            node.Name = $"{node.OpType}_{i}";
            counters[node.OpType] = i + 1;
        }
    }

    /// <summary>
    /// For every value a chain of Identity nodes copies from an initializer, that initializer's name. PyTorch's
    /// exporter stores a tensor that several layers use (tied weights, or the equal parameters of a freshly
    /// deep-copied layer stack) once and hands it to the other readers through Identity nodes.
    /// </summary>
    public static Dictionary<string, string> ConstantAliases(GraphProto graph)
    {
        var initializers = graph.Initializer.Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        var aliases = new Dictionary<string, string>(StringComparer.Ordinal);
        // Nodes are in topological order, so an Identity of an Identity finds its source already resolved.
        foreach (var node in graph.Node.Where(n => n.OpType == "Identity" && IsDefaultDomain(n) && n.Input.Count == 1 && n.Output.Count == 1))
        {
            var input = node.Input[0];
            var source = aliases.GetValueOrDefault(input) ?? (initializers.Contains(input) ? input : null);
            if (source is not null)
            {
                aliases[node.Output[0]] = source;
            }
        }

        return aliases;
    }

    /// <summary>The initializers by name, and each <paramref name="aliases"/> name mapped to the initializer it copies.</summary>
    public static Dictionary<string, TensorProto> Constants(GraphProto graph, IReadOnlyDictionary<string, string> aliases)
    {
        var constants = graph.Initializer.ToDictionary(i => i.Name, StringComparer.Ordinal);
        foreach (var (alias, source) in aliases)
        {
            constants[alias] = constants[source];
        }

        return constants;
    }

    /// <summary>
    /// Removes the Identity nodes of <see cref="ConstantAliases"/> that nothing reads any more (a quantized layer
    /// now reads the int8 copy), so the float original they kept alive can go too.
    /// </summary>
    public static void RemoveUnreadAliases(GraphProto graph)
    {
        var outputs = graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        while (true)
        {
            var aliases = ConstantAliases(graph);
            var read = graph.Node.SelectMany(n => n.Input).ToHashSet(StringComparer.Ordinal);
            var unread = graph.Node.Where(n => n.OpType == "Identity" && aliases.ContainsKey(n.Output[0]) && !read.Contains(n.Output[0]) && !outputs.Contains(n.Output[0])).ToList();
            if (unread.Count == 0)
            {
                return;
            }

            foreach (var node in unread)
            {
                graph.Node.Remove(node);
            }
        }
    }

    /// <summary>Removes initializers no node reads and no graph output names (and their old-style graph inputs).</summary>
    public static void RemoveUnusedInitializers(GraphProto graph)
    {
        var used = new HashSet<string>(graph.Node.SelectMany(n => n.Input).Concat(graph.Output.Select(o => o.Name)), StringComparer.Ordinal);
        var unused = graph.Initializer.Where(i => !used.Contains(i.Name)).ToList();
        foreach (var initializer in unused)
        {
            graph.Initializer.Remove(initializer);
            // An old-style graph may list initializers as inputs too.
            var asInput = graph.Input.FirstOrDefault(i => i.Name == initializer.Name);
            if (asInput is not null)
            {
                graph.Input.Remove(asInput);
            }
        }
    }
}

/// <summary>
/// Makes prefixes for the names a transform adds (<c>fc1.weight_int8</c>, <c>fc1.MatMulInteger</c>):
/// the stem itself when none of the names it would make is taken yet, else the stem with a number.
/// </summary>
internal sealed class UniqueNames(GraphProto graph)
{
    private readonly HashSet<string> _taken = new(
        graph.Node.SelectMany(n => n.Output.Append(n.Name))
            .Concat(graph.Initializer.Select(i => i.Name))
            .Concat(graph.Input.Select(i => i.Name))
            .Concat(graph.Output.Select(o => o.Name)),
        StringComparer.Ordinal);

    /// <summary>A stem such that every <c>stem + suffix</c> is new; reserves those names.</summary>
    public string Make(string stem, params string[] suffixes)
    {
        var name = stem;
        for (var i = 1; suffixes.Any(suffix => _taken.Contains(name + suffix)); i++)
        {
            name = $"{stem}_{i}";
        }

        foreach (var suffix in suffixes)
        {
            _taken.Add(name + suffix);
        }

        return name;
    }
}
