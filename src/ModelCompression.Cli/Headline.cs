using System.Globalization;
using ModelCompression.Evaluation;
using ModelCompression.Recipes;
using ModelCompression.Tasks;

namespace ModelCompression.Cli;

/// <summary>
/// A model's headline in the one-line summaries: a classifier's accuracy (in the form each line has always
/// written it), any other task's headline metrics as the task says them ("RMSE 55.61, MAE 44.2").
/// </summary>
internal static class Headline
{
    /// <summary>"accuracy 85.00%"-style text (<paramref name="accuracy"/> formats the share), or the task's own.</summary>
    public static string Of(Recipe recipe, ModelEvaluation evaluation, Func<double, string> accuracy) =>
        IsClassification(recipe) ? $"accuracy {accuracy(evaluation.Accuracy)}" : recipe.TaskInfo.Describe(evaluation);

    /// <summary>As <see cref="Of"/> without the word "accuracy" for a classifier ("92.55 %"), for "(teacher …)".</summary>
    public static string Bare(Recipe recipe, ModelEvaluation evaluation, Func<double, string> accuracy) =>
        IsClassification(recipe) ? accuracy(evaluation.Accuracy) : recipe.TaskInfo.Describe(evaluation);

    private static bool IsClassification(Recipe recipe) => TaskCatalog.Get(recipe.Task) is ClassificationTask;

    /// <summary>Accuracy as a percentage with two decimals and a space ("85.00 %"), as P2 writes it.</summary>
    public static string Percent(double share) => share.ToString("P2", CultureInfo.InvariantCulture);
}
