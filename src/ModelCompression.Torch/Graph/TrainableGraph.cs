using ModelCompression.Diagnostics;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Torch.Graph;

/// <summary>Which initializers of an imported graph become trainable parameters, and how the graph is run.</summary>
public sealed record TrainableGraphOptions
{
    /// <summary>
    /// Decides per float initializer name whether it trains. Null trains every float initializer; the others
    /// stay constants. BatchNormalization running statistics never train: they are buffers updated in
    /// training mode.
    /// </summary>
    public Func<string, bool>? IsTrainable { get; init; }

    /// <summary>
    /// Runs MatMul + Add (2-D weight, 1-D bias) as one <c>linear</c> and the Erf spelling of exact GELU as one
    /// <c>gelu</c>: the same values and gradients with fewer kernels and fewer batch-sized intermediates kept for
    /// backward. The values inside a fused pattern are then not computed (see <see cref="KeepValues"/>). True by
    /// default; false runs every node as written (for comparisons and debugging).
    /// </summary>
    public bool Fuse { get; init; } = true;

    /// <summary>
    /// Intermediate values that must stay readable through <c>Forward(inputs, extraOutputs)</c> (e.g. feature
    /// distillation hints): no pattern that computes one of them internally is fused. Graph outputs always stay.
    /// </summary>
    public IReadOnlyCollection<string> KeepValues { get; init; } = [];
}

/// <summary>
/// An ONNX graph as a TorchSharp module: float initializers are parameters, every node runs as TorchSharp
/// ops with autograd, and <see cref="WriteBack"/> returns the same graph with the trained values. Export is
/// exact by construction because the graph itself never changes.
/// </summary>
/// <remarks>
/// Dropout and BatchNormalization follow the module's mode (<c>train()</c>/<c>eval()</c>), not the nodes'
/// training_mode. In training mode BatchNormalization normalizes with batch statistics and updates its running
/// mean and variance (buffers) with the ONNX rule <c>running * momentum + batch * (1 - momentum)</c>;
/// <see cref="WriteBack"/> writes them too. <c>to(float64)</c> converts float parameters and buffers only
/// (integer constants stay), and ONNX FLOAT then means float64 throughout (Cast, constants).
/// </remarks>
public sealed class TrainableGraph : nn.Module
{
    private readonly ModelProto _source;
    private readonly List<(NodeProto Node, OpKernel Kernel)> _plan;

    // Value name -> the fused pattern that computes it internally, so Forward can say why it is not there.
    private readonly Dictionary<string, string> _fusedAway = new(StringComparer.Ordinal);
    private readonly long _opset;
    private readonly EmptyPast _emptyPast;

    // ONNX value name -> name registered on the module. The module's registry is the only store of the
    // tensors, so to(device) and to(dtype), which replace registered tensors, are followed.
    private readonly Dictionary<string, string> _parameterNames = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _statisticNames = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _constantNames = new(StringComparer.Ordinal);
    private ScalarType _floatType = ScalarType.Float32;

    // Dropout draws from this, not from torch's global generator, which every model of the process shares.
    private readonly Generator _random = new(0);

    private TrainableGraph(ModelProto source, List<(NodeProto, OpKernel)> plan, TrainableGraphOptions options)
        : base(string.IsNullOrEmpty(source.Graph.Name) ? "onnx_graph" : source.Graph.Name)
    {
        _source = source;
        _emptyPast = EmptyPast.Of(source.Graph);
        _opset = source.OpsetImport.FirstOrDefault(o => o.Domain.Length == 0 || o.Domain == "ai.onnx")?.Version ?? OnnxVersions.DefaultOpset;

        // BatchNormalization's input_mean and input_var are running statistics: buffers, never trained.
        var statistics = source.Graph.Node
            .Where(n => n.OpType == "BatchNormalization" && n.Domain.Length == 0)
            .SelectMany(n => n.Input.Skip(3).Take(2))
            .ToHashSet(StringComparer.Ordinal);
        var initializerNames = new HashSet<string>(StringComparer.Ordinal);
        foreach (var initializer in source.Graph.Initializer)
        {
            initializerNames.Add(initializer.Name);
            var value = Own(NativeCopy(OpMath.ToTorch(initializer)));
            var isFloat = initializer.DataType == (int)DataType.Float;
            if (isFloat && statistics.Contains(initializer.Name))
            {
                var name = SafeName("s", initializer.Name, _statisticNames.Count);
                register_buffer(name, value, persistent: true);
                _statisticNames[initializer.Name] = name;
            }
            else if (isFloat && (options.IsTrainable?.Invoke(initializer.Name) ?? true))
            {
                // Torch module names cannot hold '.', ONNX names usually do; the ONNX name stays the key.
                var name = SafeName("p", initializer.Name, _parameterNames.Count);
                register_parameter(name, new Parameter(value, requires_grad: true));
                _parameterNames[initializer.Name] = name;
            }
            else
            {
                AddConstant(initializer.Name, value);
            }
        }

        // Constant nodes are evaluated once, here, and kept as buffers like frozen initializers.
        var computed = new List<(NodeProto, OpKernel)>();
        foreach (var (node, kernel) in plan)
        {
            if (node.OpType == "Constant" && node.Input.Count == 0)
            {
                var outputs = kernel(new OpContext(node, [], Training: false) { Opset = _opset, FloatType = _floatType });
                AddConstant(node.Output[0], Own(outputs[0]));
            }
            else
            {
                computed.Add((node, kernel));
            }
        }

        InputNames = [.. source.Graph.Input.Select(i => i.Name).Where(n => !initializerNames.Contains(n))];
        OutputNames = [.. source.Graph.Output.Select(o => o.Name)];
        _plan = options.Fuse ? PlanFusion.Fuse(computed, ImportFacts(options), _fusedAway) : computed;
    }

    /// <summary>The graph's data inputs (inputs that are not initializers), in order.</summary>
    public IReadOnlyList<string> InputNames { get; }

    /// <summary>The graph's outputs, in order.</summary>
    public IReadOnlyList<string> OutputNames { get; }

    /// <summary>The trainable parameters by ONNX initializer name.</summary>
    public IReadOnlyDictionary<string, Parameter> ParametersByName =>
        _parameterNames.ToDictionary(p => p.Key, p => Param(p.Value), StringComparer.Ordinal);

    /// <summary>
    /// The BatchNormalization running statistics (input_mean, input_var initializers) by ONNX name: buffers
    /// that training mode updates and <see cref="WriteBack"/> writes.
    /// </summary>
    public IReadOnlyDictionary<string, Tensor> RunningStatisticsByName =>
        _statisticNames.ToDictionary(p => p.Key, p => Buffer(p.Value), StringComparer.Ordinal);

    /// <summary>The plan's step types in run order: ONNX op types, or a fused pattern's (<see cref="PlanFusion"/>).</summary>
    internal IReadOnlyList<string> PlanStepTypes => [.. _plan.Select(step => step.Node.OpType)];

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

        foreach (var initializer in model.Graph.Initializer.Where(i => !OpMath.CanRead((DataType)i.DataType)))
        {
            problems.Add(Diagnostic.Error(
                DiagnosticCodes.UnsupportedOperator,
                $"Initializer '{initializer.Name}' has element type {(DataType)initializer.DataType}, which training does not support yet.",
                modelPath));
        }

        if (problems.Count > 0)
        {
            throw new CompressionException(problems);
        }

        return new TrainableGraph(model.Clone(), plan, options ?? new TrainableGraphOptions());
    }

    /// <summary>
    /// Restarts the graph's random stream (Dropout's masks in training mode) at <paramref name="seed"/>. Runs with the
    /// same seed draw the same masks whatever other models in the process do meanwhile.
    /// </summary>
    public void SeedRandom(long seed) => _random.manual_seed(seed);

    /// <summary>
    /// Runs the graph on named inputs of any element type (float features, int64 token ids, bool or int64
    /// masks); returns every graph output by name. Float inputs are converted to the module's float type.
    /// </summary>
    public Dictionary<string, Tensor> Forward(IReadOnlyDictionary<string, Tensor> inputs) => Forward(inputs, []);

    /// <summary>
    /// Runs the graph like <see cref="Forward(IReadOnlyDictionary{string, Tensor})"/> and also returns the
    /// intermediate values named in <paramref name="extraOutputs"/> (node outputs, e.g. a hidden layer's
    /// activations for feature distillation), still attached to autograd.
    /// </summary>
    /// <exception cref="ArgumentException">
    /// A name in <paramref name="extraOutputs"/> is not a value of the graph, or is inside a fused pattern and was
    /// not named in <see cref="TrainableGraphOptions.KeepValues"/> at import.
    /// </exception>
    public Dictionary<string, Tensor> Forward(IReadOnlyDictionary<string, Tensor> inputs, IReadOnlyCollection<string> extraOutputs)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(extraOutputs);
        foreach (var name in extraOutputs)
        {
            if (_fusedAway.TryGetValue(name, out var pattern))
            {
                throw new ArgumentException(
                    $"The graph's value '{name}' is not computed: it is inside {pattern}. Import with TrainableGraphOptions.KeepValues naming it (or Fuse = false) to read it.",
                    nameof(extraOutputs));
            }
        }

        var values = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        Device? device = null;
        foreach (var (name, registered) in _parameterNames)
        {
            var parameter = Param(registered);
            values[name] = parameter;
            device ??= parameter.device;
        }

        foreach (var (name, registered) in _statisticNames.Concat(_constantNames))
        {
            values[name] = Buffer(registered);
        }

        // A decoder's cache inputs that are not given get an empty past (EmptyPast): training feeds none.
        inputs = _emptyPast.Fill(inputs, _floatType, device);
        foreach (var name in InputNames)
        {
            var value = inputs.TryGetValue(name, out var given)
                ? given
                : throw new ArgumentException($"Graph input '{name}' was not given.", nameof(inputs));
            if (value.is_floating_point() && value.dtype != _floatType)
            {
                value = value.to_type(_floatType);
            }

            // Device is a class without value equality: compare its parts, or every input would be moved (a new
            // tensor per input and step) to the device it is already on.
            values[name] = device is not null && (value.device_type != device.type || value.device_index != device.index) ? value.to(device) : value;
        }

        var training = this.training;
        foreach (var (node, kernel) in _plan)
        {
            var nodeInputs = new Tensor?[node.Input.Count];
            for (var i = 0; i < nodeInputs.Length; i++)
            {
                var inputName = node.Input[i];
                nodeInputs[i] = inputName.Length == 0 ? null
                    : values.TryGetValue(inputName, out var v) ? v
                    : throw new InvalidOperationException($"Node '{node.Name}' ({node.OpType}) reads '{inputName}', which no node, input or initializer makes.");
            }

            Tensor[] outputs;
            try
            {
                outputs = kernel(new OpContext(node, nodeInputs, training) { Opset = _opset, FloatType = _floatType, Random = _random });
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // Torch's messages do not say which node failed.
                throw new InvalidOperationException($"Node '{node.Name}' ({node.OpType}) failed: {e.Message}", e);
            }

            for (var i = 0; i < outputs.Length && i < node.Output.Count; i++)
            {
                if (node.Output[i].Length > 0)
                {
                    values[node.Output[i]] = outputs[i];
                }
            }
        }

        var results = OutputNames.ToDictionary(n => n, n => values[n], StringComparer.Ordinal);
        foreach (var name in extraOutputs)
        {
            results[name] = values.TryGetValue(name, out var value)
                ? value
                : throw new ArgumentException($"The graph has no value '{name}'.", nameof(extraOutputs));
        }

        return results;
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
    /// The source graph with every trainable initializer and every BatchNormalization running statistic
    /// replaced by its current value (as float32); names, metadata, opsets and value infos are kept as they were.
    /// </summary>
    public ModelProto WriteBack()
    {
        var model = _source.Clone();
        foreach (var initializer in model.Graph.Initializer)
        {
            Tensor? current = _parameterNames.TryGetValue(initializer.Name, out var p) ? Param(p)
                : _statisticNames.TryGetValue(initializer.Name, out var s) ? Buffer(s)
                : null;
            if (current is null)
            {
                continue;
            }

            using var host = current.detach().cpu().to_type(ScalarType.Float32).contiguous();
            var updated = TensorData.FromFloats(initializer.Name, host.data<float>().ToArray(), [.. initializer.Dims]);
            initializer.FloatData.Clear();
            initializer.ExternalData.Clear();
            initializer.DataLocation = TensorProto.Types.DataLocation.Default;
            initializer.RawData = updated.RawData;
        }

        return model;
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _random.Dispose();
        }

        base.Dispose(disposing);
    }

    /// <summary>Converts float parameters and buffers only: the base would turn int64 and bool constants into floats too.</summary>
    protected override nn.Module _to(ScalarType dtype, bool non_blocking)
    {
        if (dtype is not (ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float32 or ScalarType.Float64))
        {
            throw new ArgumentException($"A graph module converts to float types only, not {dtype}.", nameof(dtype));
        }

        foreach (var registered in _parameterNames.Values)
        {
            var parameter = Param(registered);
            if (parameter.dtype != dtype)
            {
                ConditionallyRegisterParameter(registered, new Parameter(parameter.detach().to_type(dtype), parameter.requires_grad));
            }
        }

        foreach (var registered in _statisticNames.Values.Concat(_constantNames.Values))
        {
            var buffer = Buffer(registered);
            if (buffer.is_floating_point() && buffer.dtype != dtype)
            {
                ConditionallyRegisterBuffer(registered, buffer.to_type(dtype), _statisticNames.ContainsValue(registered));
            }
        }

        _floatType = dtype;
        return this;
    }

    /// <inheritdoc/>
    protected override nn.Module _to(Device device, ScalarType dtype, bool non_blocking)
    {
        _to(device.type, device.index, non_blocking);
        return _to(dtype, non_blocking);
    }

    /// <summary>The import-time facts fusion relies on, read from the registered parameters and constants.</summary>
    private FusionFacts ImportFacts(TrainableGraphOptions options)
    {
        var observable = new HashSet<string>(OutputNames, StringComparer.Ordinal);
        observable.UnionWith(options.KeepValues);
        return new FusionFacts(
            observable,
            name => _parameterNames.TryGetValue(name, out var p) ? Param(p).shape
                : _constantNames.TryGetValue(name, out var c) && Buffer(c).is_floating_point() ? Buffer(c).shape
                : null,
            name =>
            {
                // Only constants: a trainable scalar would lose its gradient inside a fused kernel.
                if (!_constantNames.TryGetValue(name, out var registered))
                {
                    return null;
                }

                var value = Buffer(registered);
                return value.is_floating_point() && value.numel() == 1 ? (OpMath.Double(value), value.dim()) : null;
            });
    }

    private Parameter Param(string registered) =>
        get_parameter(registered) ?? throw new InvalidOperationException($"Parameter '{registered}' is not registered.");

    private Tensor Buffer(string registered) =>
        get_buffer(registered) ?? throw new InvalidOperationException($"Buffer '{registered}' is not registered.");

    private void AddConstant(string onnxName, Tensor value)
    {
        var name = SafeName("c", onnxName, _constantNames.Count);
        register_buffer(name, value, persistent: false);
        _constantNames[onnxName] = name;
    }

    /// <summary>The module owns (and disposes) its tensors, not whatever dispose scope the caller has open.</summary>
    private static Tensor Own(Tensor tensor) => tensor.DetachFromDisposeScope();

    /// <summary>
    /// The values of <paramref name="tensor"/> in memory of torch's allocator; the tensor itself is freed.
    /// </summary>
    /// <remarks>
    /// A tensor made from a .NET array keeps that array, pinned in the managed heap, as its storage, aligned to 8 or
    /// 16 bytes where torch aligns to 64: every vector load and store of the optimizer's element-wise updates, every
    /// step, may straddle two cache lines. The parameters of a hand-written module never are such tensors.
    /// </remarks>
    private static Tensor NativeCopy(Tensor tensor)
    {
        using (tensor)
        {
            return tensor.clone();
        }
    }

    private static string SafeName(string kind, string onnxName, int index) =>
        $"{kind}{index}_{new string([.. onnxName.Select(ch => char.IsLetterOrDigit(ch) ? ch : '_')])}";
}
