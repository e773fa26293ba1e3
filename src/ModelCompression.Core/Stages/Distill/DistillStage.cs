using System.Diagnostics;
using ModelCompression.Common;
using ModelCompression.Onnx.Proto;
using ModelCompression.Onnx;
using ModelCompression.Torch.Graph;
using ModelCompression.Torch.Training;
using ModelCompression.Training;

namespace ModelCompression.Stages;

/// <summary>
/// Distils the teacher into the student: alpha * T^2 * KL(teacher || student at temperature T) + (1 - alpha) *
/// cross-entropy on the labels. The model is imported into TorchSharp, trained, and the same graph is written back
/// with the trained weights. Feature hints add the mean squared error between named intermediate tensors of the
/// student and the teacher (<see cref="FeatureHintLoss"/>), from teacher values computed once and cached. An
/// unlabelled pool, when the data has one, is trained on with the teacher's targets alone.
/// </summary>
/// <param name="options">The stage's options.</param>
/// <param name="recipeLine">The stage's line in the recipe, for errors about its options found once the models are known.</param>
public sealed class DistillStage(DistillOptions options, int recipeLine = 0) : IStage
{
    private readonly DistillationLoss _loss = new(options.Alpha, options.Temperature) { HintWeight = options.HintWeight };

    private readonly IReadOnlyList<(string Student, string Teacher)> _hints = options.HintPairs;

    /// <inheritdoc />
    public string Kind => "distill";

    /// <inheritdoc />
    public void AddToKey(ContentHash key, StageContext context)
    {
        // Where the TensorBoard logs go does not change the model.
        key.Add("options", System.Text.Json.JsonSerializer.Serialize(options with { TensorBoardDirectory = null }, options.GetType()))
            .Add("data", context.DataHash);
        if (_loss.Alpha > 0 || options.InitFromTeacher || _hints.Count > 0)
        {
            key.Add("teacher", context.TeacherHash);
        }
    }

    /// <inheritdoc />
    public StageResult Run(StageContext context, string inputModel, string outputModel)
    {
        var clock = Stopwatch.StartNew();
        var bindings = StageTraining.BindStudent(context, inputModel);
        var initial = OnnxModelFile.Load(inputModel);
        var hints = ResolveHints(context, inputModel, initial);
        var teacherLogits = _loss.Alpha > 0 ? context.TeacherSoftTargetLogits(_loss.Temperature) : null;
        (initial, var copiedFromTeacher) = StageTraining.StartFromTeacher(Kind, context, initial, options);
        var train = Data.DatasetTraining.ToTrainingSet(context.Train, bindings, teacherLogits, context.Classes, HintTargets(context, hints, null, "train"));
        TrainingSet? pool = null;
        if (context.Unlabelled is { } unlabelled && (_loss.Alpha > 0 || _hints.Count > 0))
        {
            // The seeds' "synthetic data": the teacher's targets on inputs nobody labelled.
            var poolLogits = _loss.Alpha > 0 ? context.TeacherSoftTargetLogits(_loss.Temperature, unlabelled, "unlabelled") : null;
            pool = Data.DatasetTraining.ToTrainingSet(unlabelled, bindings, poolLogits, context.Classes, HintTargets(context, hints, unlabelled, "unlabelled"));
        }

        var job = StageTraining.Job(this, context, inputModel, initial, train, context.Task.Objective(_loss.Alpha, _loss.Temperature, _loss.HintWeight), options) with
        {
            GraphOptions = new TrainableGraphOptions { KeepValues = [.. hints.Select(h => h.Student)] },
            // The recipe's own validation split wins over carving one out of the training data.
            Validation = context.Validation is { } given ? Data.DatasetTraining.ToTrainingSet(given, bindings, null, context.Classes) : null,
            Unlabelled = pool,
        };
        TrainedModel trained;
        try
        {
            trained = TrainingFlow.Run(job, context.CancellationToken);
        }
        catch (ArgumentException e) when (e.ParamName == "hints")
        {
            // A hint whose shapes no projection fits: the recipe's choice of tensors, known only once both ran.
            throw Diagnostics.CompressionException.Error(Diagnostics.DiagnosticCodes.RecipeInvalidValue, $"{Kind}: {e.Message}", context.RecipePath, recipeLine);
        }

        OnnxModelFile.Save(trained.Model, outputModel);
        return StageTraining.Result(Kind, options, _loss, trained, copiedFromTeacher, hints, clock.Elapsed);
    }

    /// <summary>
    /// The hints with <see cref="DistillingOptions.Penultimate"/> resolved to each model's penultimate value; every
    /// tensor must be a value the two graphs make: MC1003 at the stage's line, listing what the graph has, before
    /// the teacher runs or anything trains.
    /// </summary>
    private List<(string Student, string Teacher)> ResolveHints(StageContext context, string studentModel, ModelProto student)
    {
        if (_hints.Count == 0)
        {
            return [];
        }

        var problems = new List<Diagnostics.Diagnostic>();
        var models = new Dictionary<string, (string Path, ModelProto Model)>
        {
            ["student"] = (studentModel, student),
            ["teacher"] = (context.TeacherPath, OnnxModelFile.Load(context.TeacherPath, new OnnxLoadOptions { LoadExternalData = false })),
        };
        string Resolve(string name, string role)
        {
            var (path, model) = models[role];
            if (name != DistillingOptions.Penultimate)
            {
                return name;
            }

            if (PenultimateValue.Find(model) is { } found)
            {
                return found;
            }

            problems.Add(Diagnostics.Diagnostic.Error(
                Diagnostics.DiagnosticCodes.RecipeInvalidValue,
                $"{Kind}: the {role} ({path}) has no penultimate value: its output is not made by a Gemm or MatMul (+ bias) from a value of the graph. Name the hint's {role} tensor instead.",
                context.RecipePath,
                recipeLine));
            return name;
        }

        var hints = _hints.Select(h => (Student: Resolve(h.Student, "student"), Teacher: Resolve(h.Teacher, "teacher"))).ToList();
        foreach (var (role, names) in new[] { ("student", hints.Select(h => h.Student)), ("teacher", hints.Select(h => h.Teacher)) })
        {
            var (path, model) = models[role];
            var made = model.Graph.Node.SelectMany(n => n.Output).ToHashSet(StringComparer.Ordinal);
            foreach (var name in names.Where(n => n != DistillingOptions.Penultimate && !made.Contains(n)).Distinct(StringComparer.Ordinal))
            {
                problems.Add(Diagnostics.Diagnostic.Error(
                    Diagnostics.DiagnosticCodes.RecipeInvalidValue,
                    $"{Kind}: the hint's {role} tensor '{name}' is not a value of the {role} ({path}). {Inference.OnnxRunner.DescribeValues(model)}",
                    context.RecipePath,
                    recipeLine));
            }
        }

        if (problems.Count > 0)
        {
            throw new Diagnostics.CompressionException(problems);
        }

        if (_hints.Any(h => h.Student == DistillingOptions.Penultimate))
        {
            context.Reporter.Info($"{Kind}: hints {string.Join("; ", hints.Select(h => $"{h.Student} {DistillingOptions.HintSeparator} {h.Teacher}"))}");
        }

        return hints;
    }

    /// <summary>The hints' targets on <paramref name="split"/> (the training data when null): the teacher's cached values, read as batches need them.</summary>
    private static List<HintTarget> HintTargets(StageContext context, IReadOnlyList<(string Student, string Teacher)> hints, Data.Dataset? split, string splitName)
    {
        if (hints.Count == 0)
        {
            return [];
        }

        var features = context.TeacherFeatures([.. hints.Select(h => h.Teacher).Distinct(StringComparer.Ordinal)], split, splitName);
        return
        [
            .. hints.Select(h =>
            {
                var values = features.Tensor(h.Teacher)!;
                return new HintTarget(h.Student, h.Teacher, InputArray.Float(null, values.Count, values.SampleShape, values.CopyRows));
            }),
        ];
    }
}
