using ModelCompression.Common;
using ModelCompression.Pipeline;
using ModelCompression.Recipes;
using ModelCompression.Reports;

namespace ModelCompression.Runs;

/// <summary>
/// One run of a recipe as the front ends start it: takes the lock on the recipe's outputs, runs the pipeline, and,
/// still holding the lock, publishes the final model with its input contract (<c>.data.json</c>) when every gate
/// passes and writes the reports. The model is replaced only when every gate passes, and every file is written
/// through a rename, so a failed or interrupted run never leaves a half-written model or replaces the last good one.
/// </summary>
public static class CompressionRun
{
    /// <summary>Runs <paramref name="recipe"/>: the pipeline's result, with what was written.</summary>
    public static PipelineResult Run(Recipe recipe, PipelineOptions options, CancellationToken cancellationToken = default)
    {
        PhaseTrace.Mark("pipeline entered (command line and recipe read)");
        Directory.CreateDirectory(options.OutputDirectory);
        var remote = RemoteCache.Open(RemoteCacheOptions.Resolve(recipe.Cache, options.RemoteCache), options.Reporter);
        if (remote is not null)
        {
            options.Reporter.Info($"Remote cache: {remote.Store.Location} ({RemoteCacheOptions.ModeName(remote.Mode)})");
        }

        var cache = new ArtifactCache(options.CacheDirectory, remote, options.Reporter);
        using var outputLock = OutputLock.Acquire(cache.LockFile(Path.Combine(options.OutputDirectory, recipe.Outputs.Model)), options.Reporter, cancellationToken);
        var pipeline = Tasks.TaskCatalog.Get(recipe.Task) is Tasks.GenerationTask
            ? GenerationPipeline.Run(recipe, options, cache, cancellationToken)
            : CompressionPipeline.Run(recipe, options, cache, cancellationToken);
        var result = Publish(pipeline with { Cache = cache.Summary() }, options.OutputDirectory);
        if (remote is not null)
        {
            options.Reporter.Info(result.Cache!.Describe());
        }

        PhaseTrace.Mark("model and data description written");
        var reports = ReportWriter.Write(result, options.OutputDirectory, options.Reporter);
        PhaseTrace.Mark("reports written");
        return result with { Reports = reports };
    }

    /// <summary>
    /// Copies the final model into <paramref name="outputDirectory"/> beside its input contract (tensor names and
    /// shapes, label names, tokenizer and compact vocabulary, normalisation: what an app needs to feed the model as it
    /// was trained) when every gate passed; otherwise leaves both as they were.
    /// </summary>
    private static PipelineResult Publish(PipelineResult result, string outputDirectory)
    {
        if (!result.GatesPassed)
        {
            return result;
        }

        if (result.Generative is { } generative && result.FinalModel is { } decoder)
        {
            // The decoder, and beside it its folder: model, tokenizer, generation.json and genai_config.json, which
            // GenerativeModel.Open and ONNX Runtime GenAI load.
            var decoderOutput = Path.Combine(outputDirectory, result.Recipe.Outputs.Model);
            AtomicFile.Copy(decoder, decoderOutput);
            var folder = Path.Combine(outputDirectory, Path.GetFileNameWithoutExtension(result.Recipe.Outputs.Model));
            Generation.GenerativeModelFolder.Write(folder, decoder, generative.Tokenizer, generative.Template, generative.Generation, generative.ContextLength);
            return result with { OutputModel = decoderOutput, OutputFolder = folder, DataDescription = Path.Combine(folder, Generation.GenerationConfig.FileName) };
        }

        var (model, data) = (result.FinalModel, result.Data);
        if (model is null || data is null)
        {
            throw new InvalidOperationException("The pipeline's result names no final model or data summary to publish.");
        }

        var outputModel = Path.Combine(outputDirectory, result.Recipe.Outputs.Model);
        AtomicFile.Copy(model, outputModel);
        var dataDescription = Path.Combine(outputDirectory, $"{Path.GetFileNameWithoutExtension(result.Recipe.Outputs.Model)}.data.json");
        AtomicFile.WriteAllText(dataDescription, data.DescriptionJson());
        return result with { OutputModel = outputModel, DataDescription = dataDescription };
    }
}
