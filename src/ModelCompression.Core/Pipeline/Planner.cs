using ModelCompression.Data;
using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;
using ModelCompression.Inference;
using ModelCompression.Recipes;
using ModelCompression.Stages;
using ModelCompression.Tasks;

namespace ModelCompression.Pipeline;

/// <summary>
/// The plan phase: every stage's checks (<see cref="IStageDescriptor.Check"/>) run before the first stage trains, on
/// cached facts only (the data summary and the models' structure: no data sample is read and ONNX Runtime does not
/// run), and every problem of every stage is reported at once, each at its recipe line. A recipe that would fail in its
/// fourth stage fails before the first one starts.
/// </summary>
internal static class Planner
{
    /// <summary>
    /// Checks <paramref name="recipe"/>'s stages against the data and the models; throws a
    /// <see cref="CompressionException"/> with every problem, or returns the plan.
    /// </summary>
    /// <param name="recipe">The recipe.</param>
    /// <param name="data">The data's summary.</param>
    /// <param name="classes">The run's classes.</param>
    /// <param name="teacher">The first teacher's file and facts; null without a teacher.</param>
    /// <param name="student">The initial student's file (a built-in one's in the cache) and facts.</param>
    public static RunPlan Plan(Recipe recipe, DataSummary data, int classes, (string Path, ModelFacts Facts)? teacher, (string Path, ModelFacts Facts) student)
    {
        var studentModel = PlanModel.Of(student.Path, student.Facts);
        var teacherModel = teacher is { } t ? PlanModel.Of(t.Path, t.Facts) : null;
        var problems = new List<Diagnostic>();
        var stages = new List<PlannedStage>();
        string? changedBy = null;
        foreach (var spec in recipe.Stages)
        {
            var descriptor = spec.Descriptor;
            var view = new PlanView
            {
                HasTeacher = recipe.HasTeacher,
                Task = TaskCatalog.Get(recipe.Task),
                HasValidationSplit = data.Splits.Any(s => s.Name == "validation"),
                TrainHasLabels = data.Splits.Any(s => s.Name == "train" && s.MinLabel is not null),
                Classes = classes,
                Teacher = teacherModel,
                // A stage that only retrains weights hands on the same graph; after one that can change it, the names
                // a later stage reads are known only once that stage has run.
                Input = changedBy is null ? studentModel : null,
                ChangedBy = changedBy,
            };
            foreach (var problem in descriptor.Check(spec.Options, spec.Site, view))
            {
                // Checks about the student itself (its output width) hold for every stage that reads it: say them once.
                if (!problems.Contains(problem))
                {
                    problems.Add(problem);
                }
            }

            stages.Add(new PlannedStage(spec, descriptor.Reads(spec.Options), view.Deferred));
            if (changedBy is null && descriptor.ChangesGraph(spec.Options))
            {
                changedBy = spec.Kind;
            }
        }

        if (problems.Count > 0)
        {
            throw new CompressionException(problems);
        }

        return new RunPlan(stages, EvaluationOptions(recipe));
    }

    /// <summary>
    /// The options every evaluation of the run uses: the last 'evaluate' entry's, wherever it stands (evaluation runs
    /// after every stage; the entry only sets its options), or the defaults.
    /// </summary>
    public static EvaluateOptions EvaluationOptions(Recipe recipe)
    {
        ArgumentNullException.ThrowIfNull(recipe);
        return recipe.Stages.Select(s => s.Options).OfType<EvaluateOptions>().LastOrDefault() ?? new EvaluateOptions();
    }
}
