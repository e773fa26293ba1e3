using ModelCompression.Data;
using ModelCompression.Diagnostics;

namespace ModelCompression.Pipeline;

/// <summary>
/// How many classes a run has and whether every label is one of them: what a classification run checks of its labels
/// before anything trains. Kept together so the task seam can take it over in one piece.
/// </summary>
internal static class ClassesAndLabels
{
    /// <summary>
    /// The run's classes and what says so ("teacher", "student" or "data"): the teachers' output width
    /// (<paramref name="teacherClasses"/>), else the student file's (<paramref name="studentClasses"/>, null for a
    /// built-in student), else the data's.
    /// </summary>
    internal static (int Classes, string From) Resolve(bool hasTeacher, int teacherClasses, int? studentClasses, DataSummary summary, Func<LoadedData> data)
    {
        if (hasTeacher)
        {
            return (teacherClasses, "teacher");
        }

        // Without a teacher the student's own output says how many classes there are.
        return studentClasses is { } width ? (width, "student") : (SummaryClasses(summary) ?? DataClasses(data()), "data");
    }

    /// <summary>
    /// Checks every split's labels against <paramref name="classes"/>. The remembered label ranges say whether every
    /// label is a class; only a failing check reads the labels, to name the bad ones.
    /// </summary>
    internal static void CheckLabels(DataSummary summary, Func<LoadedData> data, int classes, string classesFrom)
    {
        if (summary.Splits.Any(s => s.MinLabel < 0 || s.MaxLabel >= classes))
        {
            foreach (var (_, split) in data().Splits())
            {
                CheckLabels(split, classes, classesFrom);
            }
        }
    }

    /// <summary>
    /// Classes when neither a teacher nor a student file says: the recipe's (or the text labels') class names,
    /// else the largest label of any labelled split plus one.
    /// </summary>
    internal static int DataClasses(LoadedData data)
    {
        if (data.Description.LabelNames is { } names)
        {
            return names.Count;
        }

        var labels = data.Splits().Select(s => s.Data.Labels).OfType<long[]>().Where(l => l.Length > 0).ToList();
        if (labels.Count == 0)
        {
            throw CompressionException.Error(
                DiagnosticCodes.DataSchemaMismatch,
                "The recipe has no teacher and the data no labels, so nothing says how many classes the student has: add labels or a teacher, or list the classes in data.classes.",
                data.Train.Source);
        }

        return (int)Math.Min(int.MaxValue, labels.Max(l => l.Max()) + 1);
    }

    /// <summary>The classes the data says (<see cref="DataClasses"/>) as its summary tells them; null when it cannot.</summary>
    internal static int? SummaryClasses(DataSummary summary) =>
        summary.LabelNames?.Count
        ?? (summary.Splits.Where(s => s.MaxLabel is not null).Select(s => s.MaxLabel!.Value).DefaultIfEmpty(-1).Max() is var max and >= 0
            ? (int)Math.Min(int.MaxValue, max + 1)
            : null);

    /// <summary>
    /// Every label must be one of the run's classes (0 to <paramref name="classes"/> - 1; the teacher's output width,
    /// or without a teacher the student's or the data's: <paramref name="classesFrom"/> names which): MC2020 listing the
    /// first ~20 bad labels with their file and line (or row), and a count of the rest.
    /// </summary>
    internal static void CheckLabels(Dataset data, int classes, string classesFrom = "teacher")
    {
        if (data.Labels is null)
        {
            return;
        }

        var bad = new List<int>();
        for (var i = 0; i < data.Count; i++)
        {
            if (data.Labels[i] < 0 || data.Labels[i] >= classes)
            {
                bad.Add(i);
            }
        }

        if (bad.Count == 0)
        {
            return;
        }

        const int Shown = 20;
        var list = string.Join("; ", bad.Take(Shown).Select(i => $"Label {data.Labels[i]} of sample {i} ({data.LocateLabel(i)})"));
        var rest = bad.Count > Shown ? $"; and {bad.Count - Shown} more" : "";
        var names = data.Description.LabelNames is { } known ? $" The data's classes: {string.Join(", ", known)}." : "";
        throw CompressionException.Error(
            DiagnosticCodes.DataSchemaMismatch,
            $"{bad.Count} label{(bad.Count == 1 ? " is" : "s are")} outside the {classesFrom}'s {classes} classes (0 to {classes - 1}): {list}{rest}.{names}",
            data.LabelOrigin.File,
            data.LabelLine(bad[0]));
    }
}
