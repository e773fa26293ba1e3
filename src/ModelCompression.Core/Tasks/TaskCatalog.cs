using System.Diagnostics.CodeAnalysis;

namespace ModelCompression.Tasks;

/// <summary>Every task the engine knows, by the recipe's <c>task:</c> name. Adding a task is one class and one line here.</summary>
public static class TaskCatalog
{
    /// <summary>The task of a recipe that names none.</summary>
    public const string DefaultName = "classification";

    /// <summary>The tasks, in the order the schema and docs list them.</summary>
    public static IReadOnlyList<ITask> All { get; } = [ClassificationTask.Instance, RegressionTask.Instance, GenerationTask.Instance];

    /// <summary>The names the recipe's <c>task:</c> accepts.</summary>
    public static IReadOnlyList<string> Names { get; } = [.. All.Select(t => t.Name)];

    /// <summary>The task named <paramref name="name"/>, if there is one.</summary>
    public static bool TryGet(string name, [NotNullWhen(true)] out ITask? task)
    {
        task = All.FirstOrDefault(t => t.Name == name);
        return task is not null;
    }

    /// <summary>The task named <paramref name="name"/>; <see cref="ArgumentException"/> when there is none (the recipe loader has checked it).</summary>
    public static ITask Get(string name) =>
        TryGet(name, out var task) ? task : throw new ArgumentException($"Task '{name}' is not known. Tasks: {string.Join(", ", Names)}.", nameof(name));
}
