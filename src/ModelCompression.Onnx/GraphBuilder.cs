using ModelCompression.Onnx.Proto;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Onnx;

/// <summary>
/// Builds ONNX models in code, fluently:
/// <code>
/// var model = new GraphBuilder("mlp")
///     .Input("x", DataType.Float, "batch", 4)
///     .Initializer("w", weights, [3, 4])
///     .Initializer("b", bias, [3])
///     .Node("Gemm", ["x", "w", "b"], ["h"], Attr.Int("transB", 1))
///     .Node("Relu", ["h"], ["y"])
///     .Output("y", DataType.Float, "batch", 3)
///     .Build();
/// </code>
/// Defaults: IR version <see cref="OnnxVersions.DefaultIrVersion"/>, default-domain opset
/// <see cref="OnnxVersions.DefaultOpset"/>. The builder does not validate; run <see cref="OnnxChecker"/> on the result.
/// </summary>
public sealed class GraphBuilder
{
    private readonly GraphProto _graph;
    private readonly ModelProto _model = new() { IrVersion = OnnxVersions.DefaultIrVersion, ProducerName = "ModelCompression" };
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private readonly HashSet<string> _nodeNames = new(StringComparer.Ordinal);

    /// <summary>Starts an empty graph.</summary>
    public GraphBuilder(string graphName = "main")
    {
        ArgumentNullException.ThrowIfNull(graphName);
        _graph = new GraphProto { Name = graphName };
    }

    /// <summary>Sets the model's IR version.</summary>
    public GraphBuilder IrVersion(long version)
    {
        _model.IrVersion = version;
        return this;
    }

    /// <summary>Imports the default ONNX domain at <paramref name="version"/>.</summary>
    public GraphBuilder Opset(long version) => Opset("", version);

    /// <summary>Imports <paramref name="domain"/> at <paramref name="version"/> (replacing an earlier import of it).</summary>
    public GraphBuilder Opset(string domain, long version)
    {
        ArgumentNullException.ThrowIfNull(domain);
        var existing = _model.OpsetImport.FirstOrDefault(o => o.Domain == domain);
        if (existing is not null)
        {
            existing.Version = version;
        }
        else
        {
            _model.OpsetImport.Add(new OperatorSetIdProto { Domain = domain, Version = version });
        }

        return this;
    }

    /// <summary>Sets the producer name and version.</summary>
    public GraphBuilder Producer(string name, string version = "")
    {
        _model.ProducerName = name;
        _model.ProducerVersion = version;
        return this;
    }

    /// <summary>Adds a model metadata entry.</summary>
    public GraphBuilder Metadata(string key, string value)
    {
        _model.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
        return this;
    }

    /// <summary>Sets the model's doc string.</summary>
    public GraphBuilder ModelDoc(string doc)
    {
        _model.DocString = doc;
        return this;
    }

    /// <summary>Sets the graph's doc string.</summary>
    public GraphBuilder GraphDoc(string doc)
    {
        _graph.DocString = doc;
        return this;
    }

    /// <summary>Adds a graph input. <paramref name="dims"/> null leaves the shape unknown; none at all is a scalar.</summary>
    public GraphBuilder Input(string name, DataType type, params Dim[]? dims)
    {
        _graph.Input.Add(MakeValueInfo(name, type, dims));
        _names.Add(name);
        return this;
    }

    /// <summary>Adds a graph output (shape as in <see cref="Input"/>).</summary>
    public GraphBuilder Output(string name, DataType type, params Dim[]? dims)
    {
        _graph.Output.Add(MakeValueInfo(name, type, dims));
        return this;
    }

    /// <summary>Records the type and shape of an intermediate value (shape as in <see cref="Input"/>).</summary>
    public GraphBuilder ValueInfo(string name, DataType type, params Dim[]? dims)
    {
        _graph.ValueInfo.Add(MakeValueInfo(name, type, dims));
        return this;
    }

    /// <summary>Adds an initializer (a copy of <paramref name="tensor"/>).</summary>
    public GraphBuilder Initializer(TensorProto tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        _graph.Initializer.Add(tensor.Clone());
        _names.Add(tensor.Name);
        return this;
    }

    /// <summary>Adds a FLOAT initializer. <paramref name="dims"/> null means 1-D; empty means a scalar.</summary>
    public GraphBuilder Initializer(string name, float[] values, long[]? dims = null) => Initializer(TensorData.FromFloats(name, values, dims));

    /// <summary>Adds an INT64 initializer (dims as for floats).</summary>
    public GraphBuilder Initializer(string name, long[] values, long[]? dims = null) => Initializer(TensorData.FromInt64s(name, values, dims));

    /// <summary>Adds an INT32 initializer (dims as for floats).</summary>
    public GraphBuilder Initializer(string name, int[] values, long[]? dims = null) => Initializer(TensorData.FromInt32s(name, values, dims));

    /// <summary>Adds an INT8 initializer (dims as for floats).</summary>
    public GraphBuilder Initializer(string name, sbyte[] values, long[]? dims = null) => Initializer(TensorData.FromInt8s(name, values, dims));

    /// <summary>Adds a UINT8 initializer (dims as for floats).</summary>
    public GraphBuilder Initializer(string name, byte[] values, long[]? dims = null) => Initializer(TensorData.FromUInt8s(name, values, dims));

    /// <summary>Adds a FLOAT16 initializer (dims as for floats).</summary>
    public GraphBuilder Initializer(string name, Half[] values, long[]? dims = null) => Initializer(TensorData.FromHalves(name, values, dims));

    /// <summary>Adds a node of the default domain with a generated name.</summary>
    public GraphBuilder Node(string opType, string[] inputs, string[] outputs, params AttributeProto[] attributes) =>
        Node(opType, inputs, outputs, name: null, domain: "", attributes);

    /// <summary>Adds a node with a name (null: generated) and a domain ("" is the default ONNX domain).</summary>
    public GraphBuilder Node(string opType, string[] inputs, string[] outputs, string? name, string domain, params AttributeProto[] attributes)
    {
        ArgumentException.ThrowIfNullOrEmpty(opType);
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(outputs);
        var node = new NodeProto { OpType = opType, Domain = domain ?? "", Name = name ?? UniqueNodeName(opType) };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        node.Attribute.AddRange(attributes.Select(a => a.Clone()));
        return Node(node);
    }

    /// <summary>Adds a node as given (a copy).</summary>
    public GraphBuilder Node(NodeProto node)
    {
        ArgumentNullException.ThrowIfNull(node);
        _graph.Node.Add(node.Clone());
        _nodeNames.Add(node.Name);
        foreach (var output in node.Output)
        {
            _names.Add(output);
        }

        return this;
    }

    /// <summary>
    /// Adds a default-domain node with one output under a fresh name and returns that name, so layers chain:
    /// <c>var h = b.Op("Relu", [b.Op("Gemm", [x, w, bias], Attr.Int("transB", 1))]);</c>
    /// </summary>
    public string Op(string opType, string[] inputs, params AttributeProto[] attributes)
    {
        ArgumentException.ThrowIfNullOrEmpty(opType);
        var output = UniqueName(opType.ToLowerInvariant());
        Node(opType, inputs, [output], attributes);
        return output;
    }

    /// <summary>
    /// A value name not used yet in this graph: <paramref name="prefix"/> itself, else <c>prefix_1</c>,
    /// <c>prefix_2</c>, … The name is reserved.
    /// </summary>
    public string UniqueName(string prefix)
    {
        ArgumentException.ThrowIfNullOrEmpty(prefix);
        return Reserve(_names, prefix);
    }

    /// <summary>The graph alone (a copy), e.g. for an If or Loop body.</summary>
    public GraphProto BuildGraph() => _graph.Clone();

    /// <summary>The model (a copy: the builder can go on).</summary>
    public ModelProto Build()
    {
        var model = _model.Clone();
        if (!model.OpsetImport.Any(o => OnnxVersions.IsDefaultDomain(o.Domain)))
        {
            model.OpsetImport.Insert(0, new OperatorSetIdProto { Domain = "", Version = OnnxVersions.DefaultOpset });
        }

        model.Graph = _graph.Clone();
        return model;
    }

    private string UniqueNodeName(string opType)
    {
        var i = 0;
        while (!_nodeNames.Add($"{opType}_{i}"))
        {
            i++;
        }

        return $"{opType}_{i}";
    }

    private static string Reserve(HashSet<string> used, string prefix)
    {
        var name = prefix;
        for (var i = 1; !used.Add(name); i++)
        {
            name = $"{prefix}_{i}";
        }

        return name;
    }

    private static ValueInfoProto MakeValueInfo(string name, DataType type, Dim[]? dims)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        var tensorType = new TypeProto.Types.Tensor { ElemType = (int)type };
        if (dims is not null)
        {
            tensorType.Shape = new TensorShapeProto();
            foreach (var dim in dims)
            {
                var d = new TensorShapeProto.Types.Dimension();
                if (dim.Value is long value)
                {
                    d.DimValue = value;
                }
                else if (dim.Param is string param)
                {
                    d.DimParam = param;
                }

                tensorType.Shape.Dim.Add(d);
            }
        }

        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tensorType } };
    }
}
