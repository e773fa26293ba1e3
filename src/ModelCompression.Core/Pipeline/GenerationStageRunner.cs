using ModelCompression.Common;
using ModelCompression.Stages;

namespace ModelCompression.Pipeline;

/// <summary>
/// Runs the stages of a generation run through the cache, as <see cref="StageRunner"/> runs the others: the key is the
/// engine version, the stage kind, the input model's hash and what the stage adds; a hit is taken as it is (with any
/// file the stage wrote beside its model, such as the teacher's answers), a miss runs the stage with the key as its
/// checkpoint folder's name. A decoder keeps its graph as trained: no dead-code pass runs on it.
/// </summary>
internal sealed class GenerationStageRunner(ArtifactCache cache)
{
    /// <summary>Runs <paramref name="stage"/> on <paramref name="inputPath"/>, or takes its output from the cache; <paramref name="label"/> names the run in progress (the kind by default).</summary>
    public CachedStageRun Run(GenerationContext context, IGenerativeStage stage, string inputPath, string inputHash, string? label = null)
    {
        var key = StageRunner.KeyOf(stage.Kind, inputHash);
        stage.AddToKey(key, context);
        return StageRunner.Cached(cache, stage.Kind, key.Finish(), context.Reporter, label, (hash, outputPath) =>
        {
            context.StageKey = hash;
            try
            {
                return stage.Run(context, inputPath, outputPath);
            }
            finally
            {
                context.StageKey = null;
            }
        });
    }
}
