using ModelCompression.Common;
using ModelCompression.Data;
using ModelCompression.Evaluation;
using ModelCompression.Tasks;

namespace ModelCompression.Pipeline;

/// <summary>
/// Evaluations of a run's models on the test split (read from <paramref name="test"/> only when one is not cached),
/// measured as <paramref name="task"/> measures, with the evaluate options and, when the recipe has a teacher, its test outputs (<paramref name="teacher"/>).
/// </summary>
internal sealed class Evaluations(ArtifactCache cache, IPredictionTask task, string dataHash, EvaluateOptions options, Func<Dataset> test, TeacherTestOutputs? teacher)
{
    /// <summary>
    /// A stage output's evaluation, cached by model, data, evaluation options and teacher (agreement and KL
    /// depend on it; without a teacher they are not measured). The cached
    /// result.json keeps the predictions for McNemar's test against a baseline.
    /// </summary>
    public ModelEvaluation Of(string name, string modelPath, string modelHash)
    {
        var key = Key(name, modelHash, dataHash, options).Add("teacher", teacher?.Hash ?? "none").Finish();
        var entry = cache.TryGet("evaluate", key) ?? cache.Put("evaluate", key, _ => task.Measure(name, modelPath, test(), options, teacher?.TestOutputs, out float[] _));
        return ArtifactCache.ReadResult<ModelEvaluation>(entry);
    }

    /// <summary>Every evaluation option changes the numbers (latency settings the latency), so all are in the key.</summary>
    internal static ContentHash Key(string name, string modelHash, string dataHash, EvaluateOptions options) =>
        new ContentHash().Add("engine", EngineInfo.Version).Add("name", name).Add("model", modelHash).Add("data", dataHash)
            .Add("options", System.Text.Json.JsonSerializer.Serialize(options));
}
