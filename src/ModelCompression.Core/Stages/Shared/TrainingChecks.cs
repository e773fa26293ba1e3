using ModelCompression.Diagnostics;

namespace ModelCompression.Stages;

/// <summary>The plan checks the training stages (finetune, distill, sweep, and prune's and factorize's recovery) share.</summary>
internal static class TrainingChecks
{
    /// <summary>
    /// A stage that trains or transforms the student needs its output to be one score per class (MC2020 at the student
    /// file, as the stage says it when it binds the student); decided when the graph fixes the width.
    /// </summary>
    public static IEnumerable<Diagnostic> OutputWidth(PlanView plan)
    {
        if (plan.Input is { OutputWidth: { } width } student && width != plan.Classes)
        {
            yield return Diagnostic.Error(
                DiagnosticCodes.DataSchemaMismatch,
                $"The student's output '{student.OutputName}' has {width} classes but the teacher has {plan.Classes}.",
                student.Path);
        }
    }

    /// <summary>
    /// Early stopping watches a validation set: the data's own validation split (which the stage validates on when
    /// there is one) or the part validation_fraction carves out of the training data.
    /// </summary>
    public static IEnumerable<Diagnostic> EarlyStopping(string kind, TrainingStageOptions options, StageSite site, PlanView plan)
    {
        if (options.EarlyStoppingPatience > 0 && options.ValidationFraction <= 0 && !plan.HasValidationSplit)
        {
            yield return site.Error(
                DiagnosticCodes.RecipeInvalidValue,
                $"{kind}: early_stopping_patience needs a validation set; set validation_fraction above 0 or give the data a validation split.",
                "early_stopping_patience");
        }
    }

    /// <summary>
    /// Every hint tensor must be a value the graph makes, and 'penultimate' must resolve in each model: MC1003 at the
    /// hints line, listing what the graph has. The student's graph is the stage's input; when an earlier stage can
    /// change it, its half of the check is left to the run.
    /// </summary>
    public static IEnumerable<Diagnostic> Hints(string kind, DistillingOptions options, StageSite site, PlanView plan)
    {
        var pairs = options.HintPairs;
        if (pairs.Count == 0)
        {
            return [];
        }

        var problems = new List<Diagnostic>();
        var models = new Dictionary<string, PlanModel?> { ["student"] = plan.Input, ["teacher"] = plan.Teacher };
        if (plan.Input is null)
        {
            plan.Defer($"{kind}: the hints' student tensors");
        }

        string Resolve(string name, string role)
        {
            if (name != DistillingOptions.Penultimate || models[role] is not { } model)
            {
                return name;
            }

            if (model.Penultimate is { } found)
            {
                return found;
            }

            problems.Add(site.Error(
                DiagnosticCodes.RecipeInvalidValue,
                $"{kind}: the {role} ({model.Path}) has no penultimate value: its output is not made by a Gemm or MatMul (+ bias) from a value of the graph. Name the hint's {role} tensor instead.",
                "hints"));
            return name;
        }

        var hints = pairs.Select(h => (Student: Resolve(h.Student, "student"), Teacher: Resolve(h.Teacher, "teacher"))).ToList();
        foreach (var (role, names) in new[] { ("student", hints.Select(h => h.Student)), ("teacher", hints.Select(h => h.Teacher)) })
        {
            if (models[role] is not { } model)
            {
                continue;
            }

            foreach (var name in names.Where(n => n != DistillingOptions.Penultimate && !model.Values.Contains(n)).Distinct(StringComparer.Ordinal))
            {
                problems.Add(site.Error(
                    DiagnosticCodes.RecipeInvalidValue,
                    $"{kind}: the hint's {role} tensor '{name}' is not a value of the {role} ({model.Path}). {model.ValuesDescription}",
                    "hints"));
            }
        }

        return problems;
    }
}
