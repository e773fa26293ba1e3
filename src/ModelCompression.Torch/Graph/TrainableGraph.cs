using ModelCompression.Diagnostics;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ModelCompression.Torch.Graph;

/// <summary>Which initializers of an imported graph become trainable parameters.</summary>
public sealed record TrainableGraphOptions
{
    /// <summary>
    /// Decides per float initializer name whether it trains. Null trains every float initializer; the others
    /// stay constants.
    /// </summary>
    public Func<string, bool>? IsTrainable { get; init; }
}

/// <summary>
/// An ONNX graph as a TorchSharp module: float initializers are parameters, every node runs as TorchSharp
/// ops with autograd, and <see cref="WriteBack"/> returns the same graph with the trained values. Export is
/// exact by construction because the graph itself never changes.
/// </summary>
public sealed class TrainableGraph : nn.Module
{
    private readonly ModelProto _source;
    private readonly List<(NodeProto Node, OpKernel Kernel)> _plan;
    private readonly Dictionary<string, Parameter> _trainable = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Tensor> _frozen = new(StringComparer.Ordinal);

    private TrainableGraph(ModelProto source, List<(NodeProto, OpKernel)> plan, TrainableGraphOptions options)
        : base(string.IsNullOrEmpty(source.Graph.Name) ? "onnx_graph" : source.Graph.Name)
    {
        _source = source;
        _plan = plan;
        var initializerNames = new HashSet<string>(StringComparer.Ordinal);
        foreach (var initializer in source.Graph.Initializer)
        {
            initializerNames.Add(initializer.Name);
            var value = ToTorch(initializer);
            var trainable = initializer.DataType == (int)TensorProto.Types.DataType.Float
                && (options.IsTrainable?.Invoke(initializer.Name) ?? true);
            if (trainable)
            {
                var parameter = new Parameter(value, requires_grad: true);
                _trainable[initializer.Name] = parameter;
                // Torch module names cannot hold '.', ONNX names usually do; the ONNX name stays the key.
                register_parameter(SafeName(initializer.Name, _trainable.Count), parameter);
            }
            else
            {
                _frozen[initializer.Name] = value;
                register_buffer(SafeName(initializer.Name, _frozen.Count), value, persistent: false);
            }
        }

        InputNames = [.. source.Graph.Input.Select(i => i.Name).Where(n => !initializerNames.Contains(n))];
        OutputNames = [.. source.Graph.Output.Select(o => o.Name)];
    }

    /// <summary>The graph's data inputs (inputs that are not initializers), in order.</summary>
    public IReadOnlyList<string> InputNames { get; }

    /// <summary>The graph's outputs, in order.</summary>
    public IReadOnlyList<string> OutputNames { get; }

    /// <summary>The trainable parameters by ONNX initializer name.</summary>
    public IReadOnlyDictionary<string, Parameter> ParametersByName => _trainable;

    /// <summary>
    /// Imports <paramref name="model"/>. Every operator is checked first: unsupported ones are reported
    /// together as MC2010 before any tensor is made.
    /// </summary>
    public static TrainableGraph Import(ModelProto model, TrainableGraphOptions? options = null, string? modelPath = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        var plan = new List<(NodeProto, OpKernel)>();
        var problems = new List<Diagnostic>();
        foreach (var node in model.Graph.Node)
        {
            if (OpRegistry.TryGet(node.Domain, node.OpType, out var kernel))
            {
                plan.Add((node, kernel));
            }
            else
            {
                var domain = node.Domain.Length == 0 ? string.Empty : node.Domain + ".";
                problems.Add(Diagnostic.Error(
                    DiagnosticCodes.UnsupportedOperator,
                    $"Operator {domain}{node.OpType} (node '{node.Name}') cannot be trained yet. Supported: {string.Join(", ", OpRegistry.SupportedOperators)}.",
                    modelPath));
            }
        }

        if (problems.Count > 0)
        {
            throw new CompressionException(problems);
        }

        return new TrainableGraph(model.Clone(), plan, options ?? new TrainableGraphOptions());
    }

    /// <summary>Runs the graph on named inputs; returns every graph output by name.</summary>
    public Dictionary<string, Tensor> Forward(IReadOnlyDictionary<string, Tensor> inputs)
    {
        var values = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, parameter) in _trainable)
        {
            values[name] = parameter;
        }

        foreach (var (name, constant) in _frozen)
        {
            values[name] = constant;
        }

        foreach (var name in InputNames)
        {
            values[name] = inputs.TryGetValue(name, out var value)
                ? value
                : throw new ArgumentException($"Graph input '{name}' was not given.", nameof(inputs));
        }

        foreach (var (node, kernel) in _plan)
        {
            var nodeInputs = node.Input.Select(n => n.Length == 0 ? null : values[n]).ToArray();
            var outputs = kernel(new OpContext(node, nodeInputs, training));
            for (var i = 0; i < outputs.Length && i < node.Output.Count; i++)
            {
                if (node.Output[i].Length > 0)
                {
                    values[node.Output[i]] = outputs[i];
                }
            }
        }

        return OutputNames.ToDictionary(n => n, n => values[n], StringComparer.Ordinal);
    }

    /// <summary>Runs a graph with one input and returns its first output.</summary>
    public Tensor Forward(Tensor input)
    {
        if (InputNames.Count != 1)
        {
            throw new InvalidOperationException($"The graph has {InputNames.Count} inputs; use the named overload.");
        }

        return Forward(new Dictionary<string, Tensor> { [InputNames[0]] = input })[OutputNames[0]];
    }

    /// <summary>
    /// The source graph with every trainable initializer replaced by its current value; names, metadata,
    /// opsets and value infos are kept as they were.
    /// </summary>
    public ModelProto WriteBack()
    {
        var model = _source.Clone();
        foreach (var initializer in model.Graph.Initializer)
        {
            if (_trainable.TryGetValue(initializer.Name, out var parameter))
            {
                var values = parameter.detach().cpu().contiguous().data<float>().ToArray();
                var updated = TensorData.FromFloats(initializer.Name, values, [.. initializer.Dims]);
                initializer.FloatData.Clear();
                initializer.RawData = updated.RawData;
            }
        }

        return model;
    }

    private static Tensor ToTorch(TensorProto initializer)
    {
        long[] dims = [.. initializer.Dims];
        return (TensorProto.Types.DataType)initializer.DataType switch
        {
            TensorProto.Types.DataType.Float => torch.tensor(TensorData.ToFloats(initializer), dims),
            TensorProto.Types.DataType.Int64 => torch.tensor(TensorData.ToInt64s(initializer), dims),
            var other => throw CompressionException.Error(
                DiagnosticCodes.UnsupportedOperator,
                $"Initializer '{initializer.Name}' has element type {other}, which training does not support yet."),
        };
    }

    private static string SafeName(string onnxName, int index) =>
        $"p{index}_{new string([.. onnxName.Select(ch => char.IsLetterOrDigit(ch) ? ch : '_')])}";
}
