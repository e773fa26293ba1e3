using System.Diagnostics;
using System.Globalization;
using ModelCompression.Common;
using ModelCompression.Onnx.Proto;
using ModelCompression.Onnx;
using ModelCompression.Torch.Graph;
using ModelCompression.Torch.Native;
using ModelCompression.Torch.Training;

namespace ModelCompression.Stages;

/// <summary>
/// The training stages. distill trains the student on the teacher's soft targets and the true labels:
/// alpha * T^2 * KL(teacher || student at temperature T) + (1 - alpha) * cross-entropy; finetune trains on
/// the labels alone. The model is imported into TorchSharp, trained, and the same graph is written back with
/// the trained weights. distill's feature hints add the mean squared error between named intermediate tensors of
/// the student and the teacher (<see cref="FeatureHintLoss"/>), from teacher values computed once and cached.
/// </summary>
/// <param name="options">The stage's options.</param>
/// <param name="recipeLine">The stage's line in the recipe, for errors about its options found once the models are known.</param>
public sealed class DistillStage(TrainingStageOptions options, int recipeLine = 0) : IStage
{
    private readonly DistillationLoss _loss = options is DistillOptions distill
        ? new DistillationLoss(distill.Alpha, distill.Temperature) { HintWeight = distill.HintWeight }
        : new DistillationLoss(0, 1);

    private readonly IReadOnlyList<(string Student, string Teacher)> _hints = (options as DistillingOptions)?.HintPairs ?? [];

    /// <inheritdoc />
    public string Kind => options is DistillOptions ? "distill" : "finetune";

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
        var bindings = RecoveryTraining.BindStudent(context, inputModel);

        // The recipe's own validation split (data.split.validation) is a validation set too: it wins over
        // validation_fraction below, so early stopping needs one of the two.
        if (options.EarlyStoppingPatience > 0 && options.ValidationFraction <= 0 && context.Validation is null)
        {
            throw Diagnostics.CompressionException.Error(
                Diagnostics.DiagnosticCodes.RecipeInvalidValue,
                $"{Kind}: early_stopping_patience needs a validation set; set validation_fraction above 0 or give the data a validation split.",
                context.RecipePath,
                recipeLine);
        }

        var initial = OnnxModelFile.Load(inputModel);
        var hints = ResolveHints(context, inputModel, initial);
        var teacherLogits = _loss.Alpha > 0 ? context.TeacherSoftTargetLogits(_loss.Temperature) : null;
        TorchNativeLoader.EnsureLoaded();
        var copiedFromTeacher = 0;
        if (options.InitFromTeacher)
        {
            (initial, var copied) = TeacherInitialization.Apply(initial, OnnxModelFile.Load(context.TeacherPath), options.LayerMap);
            copiedFromTeacher = copied.Count;
            if (copied.Count == 0)
            {
                context.Reporter.Report(Diagnostics.Diagnostic.Warning(
                    Diagnostics.DiagnosticCodes.NothingToTransform,
                    $"{Kind}: init_from_teacher found no student initializer matching a teacher initializer by name and shape; the student starts from its own weights.",
                    context.RecipePath));
            }
            else
            {
                context.Reporter.Info($"{Kind}: {copied.Count} of {initial.Graph.Initializer.Count} initializers start from the teacher's");
            }
        }

        using var student = TrainableGraph.Import(initial, new TrainableGraphOptions { KeepValues = [.. hints.Select(h => h.Student)] }, modelPath: inputModel);
        var data = Data.DatasetTraining.ToTrainingSet(context.Train, bindings, teacherLogits, context.Classes, HintTargets(context, hints, null, "train"));
        TrainingSet? validation = null;
        if (context.Validation is { } given)
        {
            // The recipe's own validation split wins over carving one out of the training data.
            validation = Data.DatasetTraining.ToTrainingSet(given, bindings, null, context.Classes);
        }
        else if (options.ValidationFraction > 0)
        {
            (data, validation) = data.SplitRandom(options.ValidationFraction, options.Seed);
        }

        var labelled = data.Count;
        if (context.Unlabelled is { } pool && (_loss.Alpha > 0 || _hints.Count > 0))
        {
            // The seeds' "synthetic data": the teacher's targets on inputs nobody labelled.
            var poolLogits = _loss.Alpha > 0 ? context.TeacherSoftTargetLogits(_loss.Temperature, pool, "unlabelled") : null;
            data = data.WithUnlabelled(Data.DatasetTraining.ToTrainingSet(pool, bindings, poolLogits, context.Classes, HintTargets(context, hints, pool, "unlabelled")));
            context.Reporter.Info($"{Kind}: {labelled} labelled and {data.Count - labelled} unlabelled training samples");
        }

        var checkpoints = RecoveryTraining.CheckpointFolder(this, context, inputModel);
        TrainingResult result;
        try
        {
            result = ClassificationTrainer.Train(
                student,
                data,
                context.Task.Objective(_loss.Alpha, _loss.Temperature, _loss.HintWeight),
                new TrainingOptions(options.Epochs, options.BatchSize, options.LearningRate, options.Seed)
                {
                    Optimizer = options.Optimizer,
                    WeightDecay = options.WeightDecay,
                    Momentum = options.Optimizer == OptimizerKind.Sgd ? options.Momentum : 0,
                    WarmupSteps = options.WarmupSteps,
                    WarmupFraction = options.WarmupFraction,
                    Schedule = options.Schedule,
                    ClipGradNorm = options.ClipGradNorm,
                    StepsPerEpoch = options is FinetuneOptions { StepsPerEpoch: var stepsPerEpoch } ? stepsPerEpoch : 0,
                    EarlyStoppingPatience = options.EarlyStoppingPatience,
                    EarlyStoppingMinDelta = options.EarlyStoppingMinDelta,
                    CheckpointDirectory = checkpoints,
                    LogDirectory = options.TensorBoardDirectory is { Length: > 0 } logs ? Path.Combine(context.RecipeDirectory, logs) : null,
                },
                validation,
                new RecoveryTraining.Progress(context, Kind),
                    context.CancellationToken);
        }
        catch (ArgumentException e) when (e.ParamName == "hints")
        {
            // A hint whose shapes no projection fits: the recipe's choice of tensors, known only once both ran.
            throw Diagnostics.CompressionException.Error(Diagnostics.DiagnosticCodes.RecipeInvalidValue, $"{Kind}: {e.Message}", context.RecipePath, recipeLine);
        }

        OnnxModelFile.Save(student.WriteBack(), outputModel);
        // The output is about to be cached under the same key; the checkpoints only served an interrupted run.
        RecoveryTraining.TryDelete(checkpoints);

        var invariant = CultureInfo.InvariantCulture;
        return new StageResult(
            Kind,
            $"{result.EpochLosses.Count}/{options.Epochs} epochs{(result.ResumedFromEpoch > 0 ? $" (resumed after epoch {result.ResumedFromEpoch})" : "")}{(_loss.Alpha > 0 ? $", alpha {_loss.Alpha.ToString(invariant)}, T {_loss.Temperature.ToString(invariant)}" : ", labels only")}{(hints.Count > 0 ? $", {hints.Count} hint{(hints.Count == 1 ? "" : "s")} (weight {_loss.HintWeight.ToString(invariant)})" : "")}, final loss {result.EpochLosses[^1].ToString("0.0000", invariant)}",
            new Dictionary<string, string>
            {
                ["epochs"] = options.Epochs.ToString(invariant),
                ["alpha"] = _loss.Alpha.ToString(invariant),
                ["temperature"] = _loss.Temperature.ToString(invariant),
                ["learning_rate"] = options.LearningRate.ToString(invariant),
                ["batch_size"] = options.BatchSize.ToString(invariant),
                ["train_samples"] = data.Count.ToString(invariant),
                ["unlabelled_samples"] = (data.Count - labelled).ToString(invariant),
                ["optimizer"] = options.Optimizer.ToString().ToLowerInvariant(),
                ["schedule"] = options.Schedule.ToString().ToLowerInvariant(),
                ["weight_decay"] = options.WeightDecay.ToString(invariant),
                ["clip_grad_norm"] = options.ClipGradNorm.ToString(invariant),
                ["steps"] = result.Steps.ToString(invariant),
                ["steps_per_epoch"] = result.StepsPerEpoch.ToString(invariant),
                ["epochs_run"] = result.EpochLosses.Count.ToString(invariant),
                ["validation_samples"] = (validation?.Count ?? 0).ToString(invariant),
                ["best_validation_accuracy"] = result.BestValidationAccuracy?.ToString("0.0000", invariant) ?? "",
                ["best_epoch"] = result.BestEpoch.ToString(invariant),
                ["stopped_early"] = result.StoppedEarly ? "true" : "false",
                ["resumed_from_epoch"] = result.ResumedFromEpoch.ToString(invariant),
                ["initializers_from_teacher"] = copiedFromTeacher.ToString(invariant),
                ["hints"] = string.Join("; ", hints.Select(h => $"{h.Student} {DistillingOptions.HintSeparator} {h.Teacher}")),
                ["hint_weight"] = hints.Count > 0 ? _loss.HintWeight.ToString(invariant) : "",
            },
            result.EpochLosses,
            clock.Elapsed.TotalSeconds,
            result.ValidationAccuracies.Count > 0 ? result.ValidationAccuracies : null);
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
