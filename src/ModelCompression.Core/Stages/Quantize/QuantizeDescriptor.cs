using ModelCompression.Common;
using ModelCompression.Diagnostics;
using ModelCompression.Tasks;

namespace ModelCompression.Stages;

/// <summary>The quantize stage: dynamic or static int8, or float16, checked against the float model.</summary>
public sealed class QuantizeDescriptor : StageDescriptor<QuantizeOptions>
{
    /// <inheritdoc />
    public override string Kind => "quantize";

    /// <inheritdoc />
    protected override StageReads Reads(QuantizeOptions options) => StageReads.Train | StageReads.Test;

    /// <inheritdoc />
    protected override bool ChangesGraph(QuantizeOptions options) => true;

    /// <inheritdoc />
    protected override IEnumerable<Diagnostic> Check(QuantizeOptions options, StageSite site, PlanView plan)
    {
        if (plan.Input is null && (options.ExcludedNodes.Count > 0 || options.ExcludedOpTypes.Count > 0))
        {
            plan.Defer("quantize: the names in exclude_nodes and exclude_op_types");
        }

        var problems = Problems(options, plan.Input?.NodeNames, plan.Input?.OpTypes, site);
        // The quantized model is accepted by comparing its classes with the float model's (and sensitivity is
        // measured in accuracy points); a model without classes has nothing to compare yet.
        return plan.Task is ClassificationTask
            ? problems
            : problems.Append(site.Error(DiagnosticCodes.RecipeInvalidValue, $"quantize: the int8 and fp16 checks compare the quantized model's classes with the float model's, and task '{plan.Task.Name}' has none: quantizing a {plan.Task.Name} model is not supported yet."));
    }

    /// <inheritdoc />
    protected override void AddToKey(ContentHash key, QuantizeOptions options, StageContext context) => Key(key, options, context);

    /// <inheritdoc />
    protected override IStage Create(QuantizeOptions options, StageSite site) => new QuantizeStage(options, site);

    /// <summary>The quantize stage's cache key: every option, and the data (calibration, sensitivity and the check read the training split).</summary>
    internal static void Key(ContentHash key, QuantizeOptions options, StageContext context) => key
        .Add("options", System.Text.Json.JsonSerializer.Serialize(options))
        .Add("data", context.DataHash);

    /// <summary>
    /// Names in exclude_nodes and exclude_op_types must exist (a typo would otherwise exclude nothing, silently), and
    /// the latency comparison needs something to measure. <paramref name="nodeNames"/> (after the quantizers name unnamed
    /// nodes) and <paramref name="opTypes"/> are the input graph's, in graph order; null leaves the names unchecked.
    /// </summary>
    internal static IEnumerable<Diagnostic> Problems(QuantizeOptions options, IReadOnlyList<string>? nodeNames, IReadOnlyList<string>? opTypes, StageSite site)
    {
        var problems = new List<(string Option, string Why)>();
        if (nodeNames is not null && opTypes is not null)
        {
            var nodes = nodeNames.Distinct(StringComparer.Ordinal).ToList();
            var types = opTypes.Distinct(StringComparer.Ordinal).ToList();
            problems.AddRange(options.ExcludedNodes.Where(n => !nodes.Contains(n, StringComparer.Ordinal))
                .Select(n => ("exclude_nodes", $"exclude_nodes names '{n}', which is not a node of the model (nodes: {string.Join(", ", nodes)})")));
            problems.AddRange(options.ExcludedOpTypes.Where(t => !types.Contains(t, StringComparer.Ordinal))
                .Select(t => ("exclude_op_types", $"exclude_op_types names '{t}', which no node of the model has (op types: {string.Join(", ", types.Order(StringComparer.Ordinal))})")));
        }

        if (options.LatencyBatchSizes is not { Length: > 0 })
        {
            problems.Add(("latency_batch_sizes", "latency_batch_sizes needs at least one batch size"));
        }

        if (options.LatencyThreads is not { Length: > 0 })
        {
            problems.Add(("latency_threads", "latency_threads needs at least one thread count"));
        }

        return problems.Select(p => site.Error(DiagnosticCodes.RecipeInvalidValue, $"quantize: {p.Why}.", p.Option));
    }

    /// <inheritdoc />
    protected override string? GenerationProblem(QuantizeOptions options) => DecoderQuantizeStage.Problem(options);

    /// <inheritdoc />
    protected override IGenerativeStage CreateGenerative(QuantizeOptions options, StageSite site) => new DecoderQuantizeStage(options);
}
