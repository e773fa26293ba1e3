using ModelCompression.Inference;
using ModelCompression.Onnx.Proto;
using ModelCompression.Pruning;
using ModelCompression.Quantization;
using ModelCompression.Tasks;

namespace ModelCompression.Stages;

/// <summary>
/// What a stage's plan check may know before anything runs, from cached facts only (no data sample is read and
/// ONNX Runtime does not run): which splits the data has, the classes, the first teacher's graph and the graph of the
/// stage's input model, unless an earlier stage changes that graph.
/// </summary>
public sealed class PlanView
{
    private readonly List<string> _deferred = [];

    /// <summary>Whether the recipe names a teacher.</summary>
    public required bool HasTeacher { get; init; }

    /// <summary>The recipe's task: what the labels are, and which checks a stage can make on its outputs.</summary>
    public ITask Task { get; init; } = ClassificationTask.Instance;

    /// <summary>Whether the data has its own validation split (files or a carved split.validation).</summary>
    public required bool HasValidationSplit { get; init; }

    /// <summary>Whether the training split has labels.</summary>
    public required bool TrainHasLabels { get; init; }

    /// <summary>The run's classes.</summary>
    public required int Classes { get; init; }

    /// <summary>The first teacher's graph; null without a teacher.</summary>
    public PlanModel? Teacher { get; init; }

    /// <summary>
    /// The graph of the stage's input model; null when an earlier stage (<see cref="ChangedBy"/>) can change it, so checks
    /// of its names wait for the run.
    /// </summary>
    public PlanModel? Input { get; init; }

    /// <summary>The earlier stage that can change the input's graph, when <see cref="Input"/> is null.</summary>
    public string? ChangedBy { get; init; }

    /// <summary>The checks this stage left to the run, in words.</summary>
    public IReadOnlyList<string> Deferred => _deferred;

    /// <summary>
    /// Records that <paramref name="check"/> cannot be decided before the run (the graph it reads is made by an earlier
    /// stage); the stage makes it when it starts.
    /// </summary>
    public void Defer(string check) => _deferred.Add($"{check} (the input graph is {ChangedBy ?? "an earlier stage"}'s output)");
}

/// <summary>
/// The names a plan check reads from one model's graph, made by the stages' own graph code (the quantizers' node
/// naming, the penultimate value, the transformer layers) from a weightless copy of the cached structure.
/// </summary>
public sealed class PlanModel
{
    private PlanModel(string path, ModelProto model)
    {
        Path = path;
        var named = model.Clone();
        GraphEdit.NameNodes(named.Graph);
        NodeNames = [.. named.Graph.Node.Select(n => n.Name)];
        OpTypes = [.. model.Graph.Node.Select(n => n.OpType)];
        Values = model.Graph.Node.SelectMany(n => n.Output).Where(o => o.Length > 0).ToHashSet(StringComparer.Ordinal);
        Penultimate = PenultimateValue.Find(model);
        TransformerLayers = TransformerLayerDropper.Layers(model);
        ValuesDescription = OnnxRunner.DescribeValues(model);
    }

    /// <summary>The model file, as messages name it.</summary>
    public string Path { get; }

    /// <summary>Node names in graph order, unnamed nodes named as the quantizers name them (<c>Relu_0</c>).</summary>
    public IReadOnlyList<string> NodeNames { get; }

    /// <summary>Each node's op type, in graph order.</summary>
    public IReadOnlyList<string> OpTypes { get; }

    /// <summary>The values the nodes make (what hints and intermediate outputs may name).</summary>
    public IReadOnlySet<string> Values { get; }

    /// <summary>What the final Gemm/MatMul reads (<see cref="PenultimateValue"/>); null when the graph has no such value.</summary>
    public string? Penultimate { get; }

    /// <summary>The transformer encoder layers by index (<see cref="TransformerLayerDropper.Layers"/>).</summary>
    public IReadOnlyList<int> TransformerLayers { get; }

    /// <summary>The node outputs, as error messages list them.</summary>
    public string ValuesDescription { get; }

    /// <summary>The first output's name.</summary>
    public string OutputName { get; private init; } = "";

    /// <summary>The first output's width when the graph fixes it; null when it is symbolic.</summary>
    public int? OutputWidth { get; private init; }

    /// <summary>The view of a model whose cached structure is <paramref name="facts"/>.</summary>
    internal static PlanModel Of(string path, ModelFacts facts) =>
        new(path, facts.Graph.ToModel()) { OutputName = facts.Graph.Outputs.FirstOrDefault()?.Name ?? "", OutputWidth = facts.Graph.OutputWidth };
}
