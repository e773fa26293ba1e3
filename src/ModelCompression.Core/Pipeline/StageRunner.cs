using ModelCompression.Common;
using ModelCompression.Stages;

namespace ModelCompression.Pipeline;

/// <summary>
/// Runs stages through the cache: the stage's key is computed once, from the engine version, the stage kind, the
/// input model's hash and what the stage adds; a hit is taken as it is, a miss runs the stage with that key as its
/// <see cref="StageContext.StageKey"/> (its checkpoint folder's name) and stores the output, cleaned of dead code,
/// under it.
/// </summary>
internal sealed class StageRunner(ArtifactCache cache, HashMemo hashes) : IStageRunner
{
    /// <inheritdoc />
    public CachedStageRun Run(StageContext context, IStage stage, string inputModel) =>
        Run(context, stage, inputModel, hashes.Model(inputModel));

    /// <summary>
    /// Runs <paramref name="stage"/> on <paramref name="inputPath"/> (whose hash is <paramref name="inputHash"/>), or
    /// takes its output from the cache; <paramref name="label"/> is what progress calls the run (the stage kind by
    /// default).
    /// </summary>
    public CachedStageRun Run(StageContext context, IStage stage, string inputPath, string inputHash, string? label = null) =>
        Cached(cache, stage.Kind, Key(context, stage, inputHash), context.Reporter, label, (key, outputPath) =>
        {
            // A sweep runs its trials through this runner from inside its own run: each trial has its key while it
            // runs, and the sweep gets its own back.
            var outer = context.StageKey;
            context.StageKey = key;
            try
            {
                return StageOutputCleanup.Apply(outputPath, stage.Run(context, inputPath, outputPath), context);
            }
            finally
            {
                context.StageKey = outer;
            }
        });

    /// <summary>
    /// The cache entry of a stage run: taken as it is when <paramref name="key"/> is in the cache, else made by
    /// <paramref name="run"/> (given the key and the output model's path in the new entry); progress hears which.
    /// Every kind of stage runner goes through here.
    /// </summary>
    internal static CachedStageRun Cached(ArtifactCache cache, string kind, string key, IPipelineReporter reporter, string? label, Func<string, string, StageResult> run)
    {
        var entry = cache.TryGet(kind, key);
        var cached = entry is not null;
        reporter.StageStarted(label ?? kind, cached);
        entry ??= cache.Put(kind, key, folder => run(key, Path.Combine(folder, ArtifactCache.ModelFile)));
        return new CachedStageRun(Path.Combine(entry, ArtifactCache.ModelFile), ArtifactCache.ReadResult<StageResult>(entry), cached) { Use = cache.UseOf(kind, key) };
    }

    /// <summary>The cache key of <paramref name="stage"/> run on the model whose hash is <paramref name="inputHash"/>.</summary>
    internal static string Key(StageContext context, IStage stage, string inputHash)
    {
        var key = KeyOf(stage.Kind, inputHash);
        stage.AddToKey(key, context);
        return key.Finish();
    }

    /// <summary>What every stage's cache key starts with: the engine version, the stage kind and the input model's hash.</summary>
    internal static ContentHash KeyOf(string kind, string inputHash) =>
        new ContentHash().Add("engine", EngineInfo.Version).Add("stage", kind).Add("input", inputHash);
}
