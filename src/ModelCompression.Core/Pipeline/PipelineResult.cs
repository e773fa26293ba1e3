using ModelCompression.Common;
using ModelCompression.Data;
using ModelCompression.Evaluation;
using ModelCompression.Gates;
using ModelCompression.Inference;
using ModelCompression.Recipes;
using ModelCompression.Stages;

namespace ModelCompression.Pipeline;

/// <summary>Where a run keeps its cache and writes its results.</summary>
/// <param name="CacheDirectory">The stage cache folder (kept between runs).</param>
/// <param name="OutputDirectory">Where the final model and reports go.</param>
/// <param name="Reporter">Progress and diagnostics sink.</param>
public sealed record PipelineOptions(string CacheDirectory, string OutputDirectory, IPipelineReporter Reporter)
{
    /// <summary>Threads for libtorch and ONNX Runtime (<c>--threads</c>); above 0 it overrides the recipe's 'threads'.</summary>
    public int Threads { get; init; }

    /// <summary>Where teacher runs go (<c>--execution-provider</c>); when set it overrides the recipe's 'execution_provider'.</summary>
    public ExecutionProvider? ExecutionProvider { get; init; }

    /// <summary>The remote cache as the command line or project sets it (<c>--remote-cache</c>, <c>CompressModelRemoteCache</c>); each part set overrides the recipe's 'cache'.</summary>
    public RemoteCacheOptions? RemoteCache { get; init; }
}

/// <summary>One stage as run (or taken from the cache), with the evaluation of its output.</summary>
/// <param name="Result">What the stage did.</param>
/// <param name="Cached">True when the output came from the cache.</param>
/// <param name="Evaluation">Quality and cost of the stage's output model.</param>
public sealed record StageReport(StageResult Result, bool Cached, ModelEvaluation Evaluation)
{
    /// <summary>The labels-only twin of a distilled student (same student, budget and seed), when trained.</summary>
    public ModelEvaluation? Baseline { get; init; }

    /// <summary>How the labels-only twin was trained (its optimizer steps among the details), when trained.</summary>
    public StageResult? BaselineResult { get; init; }

    /// <summary>
    /// What the teacher added over the labels-only twin as the task measures it (classification: accuracy points);
    /// negative when distillation hurt; null without a twin.
    /// </summary>
    public double? GainFromDistillation { get; init; }

    /// <summary>Where the stage's output came from (local cache, remote cache, or trained in this run) and the bytes moved; null when not known.</summary>
    public CacheUse? Cache { get; init; }
}

/// <summary>Everything a run found.</summary>
/// <param name="Recipe">The recipe.</param>
/// <param name="Teacher">The teacher's evaluation; null when the recipe has no teacher.</param>
/// <param name="Stages">Each stage, in order.</param>
/// <param name="Gates">Each gate's outcome, in recipe order.</param>
/// <param name="OutputModel">Where the final model was written; null when a gate failed and nothing was replaced (and before it is published).</param>
/// <param name="Reports">Report files written.</param>
/// <param name="DataHash">Hash of the data the evaluations were measured on (a baseline records it).</param>
public sealed record PipelineResult(
    Recipe Recipe,
    ModelEvaluation? Teacher,
    IReadOnlyList<StageReport> Stages,
    IReadOnlyList<GateResult> Gates,
    string? OutputModel,
    IReadOnlyList<string> Reports,
    string DataHash = "")
{
    /// <summary>True when every gate passed.</summary>
    public bool GatesPassed => Gates.All(g => g.Passed);

    /// <summary>Where the model's input contract (.data.json) was written; null when a gate failed and nothing was replaced.</summary>
    public string? DataDescription { get; init; }

    /// <summary>The data's class names by class number (data.classes, or the text labels' names); null when the labels are plain numbers.</summary>
    public IReadOnlyList<string>? ClassNames { get; init; }

    /// <summary>The last stage's output model in the cache: what is published when every gate passes.</summary>
    internal string? FinalModel { get; init; }

    /// <summary>The run's data summary, whose input contract is published beside the model.</summary>
    internal DataSummary? Data { get; init; }

    /// <summary>A generation run's tokenizer, template and generation defaults, published beside the model; null for other tasks.</summary>
    internal GenerativeOutput? Generative { get; init; }

    /// <summary>What the run took from the local and remote caches and what it uploaded, by kind of entry; null before the run has finished.</summary>
    public CacheSummary? Cache { get; init; }

    /// <summary>A generative student's published folder (model, tokenizer, generation.json, genai_config.json); null for other tasks or when nothing was published.</summary>
    public string? OutputFolder { get; init; }
}
