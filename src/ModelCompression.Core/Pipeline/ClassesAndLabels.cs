using ModelCompression.Data;
using ModelCompression.Tasks;

namespace ModelCompression.Pipeline;

/// <summary>
/// The run's output width (a classifier's classes) and the check that every label fits it: the pipeline's side of
/// the task's <see cref="IPredictionTask.OutputWidthFromData"/> and <see cref="IPredictionTask.CheckLabels"/>, answered from the cached
/// data summary when it can, so a run with nothing to do reads no data.
/// </summary>
internal static class ClassesAndLabels
{
    /// <summary>
    /// The output width and what says it: the teacher's output; without a teacher the student file's; else the task's
    /// fixed width (regression: 1), the data summary's classes, or the task reading the data.
    /// </summary>
    internal static (int Classes, string From) Resolve(IPredictionTask task, bool hasTeacher, int teacherClasses, int? studentClasses, DataSummary summary, Func<LoadedData> data)
    {
        if (hasTeacher)
        {
            return (teacherClasses, "teacher");
        }

        // Without a teacher the student's own output says how many classes there are.
        return studentClasses is { } width
            ? (width, "student")
            : (task.FixedOutputWidth ?? SummaryClasses(summary) ?? task.OutputWidthFromData(data()), "data");
    }

    /// <summary>
    /// Every label must fit the run's output (<paramref name="classes"/>, which <paramref name="classesFrom"/> says): the
    /// remembered label ranges say whether they all do; only a failing check (or a model whose width the task does not
    /// take) reads the data, and the task names the bad labels.
    /// </summary>
    internal static void CheckLabels(IPredictionTask task, DataSummary summary, Func<LoadedData> data, int classes, string classesFrom)
    {
        if (task.FixedOutputWidth is { } fixedWidth && fixedWidth != classes)
        {
            task.CheckLabels(data().Train, classes, classesFrom);
        }

        if (summary.Splits.Any(s => s.MinLabel < 0 || s.MaxLabel >= classes))
        {
            foreach (var (_, split) in data().Splits())
            {
                task.CheckLabels(split, classes, classesFrom);
            }
        }
    }

    /// <summary>The classes the data says (label names, else the largest label plus one) as its summary tells them; null when it cannot.</summary>
    internal static int? SummaryClasses(DataSummary summary) =>
        summary.LabelNames?.Count
        ?? (summary.Splits.Where(s => s.MaxLabel is not null).Select(s => s.MaxLabel!.Value).DefaultIfEmpty(-1).Max() is var max and >= 0
            ? (int)Math.Min(int.MaxValue, max + 1)
            : null);
}
