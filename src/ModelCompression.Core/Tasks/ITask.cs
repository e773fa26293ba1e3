using ModelCompression.Data;
using ModelCompression.Evaluation;
using ModelCompression.Inference;
using ModelCompression.Torch.Training;

namespace ModelCompression.Tasks;

/// <summary>
/// What differs between kinds of model (classification, regression, generation): which metrics gates may name, the
/// headline, whether a labels-only twin means anything, and how reports show it. Stages and the pipeline ask the task
/// instead of branching on its name. Tasks whose models map each sample to one output vector (classification,
/// regression) say more through <see cref="IPredictionTask"/>; generation has its own run
/// (<c>Pipeline.Generation.GenerationPipeline</c>) over chat records and decoders. One instance per task, listed in
/// <see cref="TaskCatalog"/>.
/// </summary>
public interface ITask
{
    /// <summary>The recipe's <c>task:</c> value.</summary>
    string Name { get; }

    /// <summary>One line for the recipe schema and docs.</summary>
    string Description { get; }

    /// <summary>The metrics gates may name in a recipe of this task: its quality metrics, then <see cref="MetricInfo.Cost"/>.</summary>
    IReadOnlyList<MetricInfo> Metrics { get; }

    /// <summary>The metric reports and progress lines lead with (accuracy; RMSE).</summary>
    MetricInfo Headline { get; }

    /// <summary>Whether a distillation run has a labels-only twin (the same student and budget on the labels alone) whose gain means something.</summary>
    bool HasLabelsOnlyTwin { get; }

    /// <summary>How much distillation gained over the labels-only twin, positive when it helped; null when the task defines no gain.</summary>
    double? Gain(ModelEvaluation student, ModelEvaluation twin);

    /// <summary>How reports show this task's models: the headline column and chart, and whether there is a confusion matrix.</summary>
    ReportStyle Report { get; }

    /// <summary>The headline of <paramref name="evaluation"/> for one line of progress, e.g. "accuracy 86.02%" or "RMSE 54.1".</summary>
    string Describe(ModelEvaluation evaluation);

}

/// <summary>
/// A task whose model maps each sample to one output vector (classification, regression): what the labels are, how
/// wide the output is, the training objective against labels and teachers, how several teachers combine and how a
/// model is measured on the test tensors.
/// </summary>
public interface IPredictionTask : ITask
{
    /// <summary>How the data readers parse labels for this task.</summary>
    LabelKind Labels { get; }

    /// <summary>
    /// The hash the caches know the data by, from the hash of its files and options. Reading the same files for
    /// another task makes other labels (floats, not classes), so every task but classification mixes its name in;
    /// classification keeps the hash as it is, so existing caches and committed baselines stay valid.
    /// </summary>
    string DataHash(string filesHash);

    /// <summary>The output width the task fixes whatever the models say (1 for regression); null when the teacher, the student or the data decide (classes).</summary>
    int? FixedOutputWidth { get; }

    /// <summary>The output width the data alone implies, for a run with neither a teacher nor a student file to say.</summary>
    int OutputWidthFromData(LoadedData data);

    /// <summary>
    /// Checks that <paramref name="data"/>'s labels fit a model of <paramref name="outputWidth"/> outputs
    /// (<paramref name="widthFrom"/> says whose width: "teacher", "student", "data"); throws a CompressionException
    /// (MC2020) naming the file and line of the first bad label.
    /// </summary>
    void CheckLabels(Dataset data, int outputWidth, string widthFrom);

    /// <summary>
    /// The training objective: the loss against labels, weighted (1 - <paramref name="alpha"/>), and against the
    /// teacher's outputs, weighted <paramref name="alpha"/> (softened at <paramref name="temperature"/> where the task
    /// has a distribution to soften), plus feature hints weighted <paramref name="hintWeight"/>.
    /// </summary>
    ITrainingObjective Objective(double alpha, double temperature, double hintWeight = 1);

    /// <summary>The score training validates on (accuracy, higher better; RMSE, lower better).</summary>
    ValidationScore ValidationScore { get; }

    /// <summary>
    /// One set of soft targets from several teachers' outputs (<paramref name="width"/> per sample), by weight; the
    /// distillation loss at <paramref name="temperature"/> reads the result as it reads one teacher's outputs.
    /// </summary>
    float[] CombineTeachers(IReadOnlyList<(float[] Outputs, double Weight)> teachers, int width, double temperature);

    /// <summary>The quality facts of a model's outputs on the test split (the cost facts are the same for every task).</summary>
    QualityMeasure Quality { get; }
}

/// <summary>Task-independent helpers for <see cref="ITask"/>.</summary>
public static class TaskExtensions
{
    /// <summary>Measures <paramref name="modelPath"/> on <paramref name="test"/> with the task's quality facts (see <see cref="ModelEvaluation.Measure(string, string, Dataset, EvaluateOptions, float[], QualityMeasure, out float[], ExecutionProvider)"/>).</summary>
    public static ModelEvaluation Measure(this IPredictionTask task, string name, string modelPath, Dataset test, EvaluateOptions options, float[]? teacherOutputs, out float[] outputs, ExecutionProvider provider = ExecutionProvider.Cpu)
    {
        ArgumentNullException.ThrowIfNull(task);
        return ModelEvaluation.Measure(name, modelPath, test, options, teacherOutputs, task.Quality, out outputs, provider);
    }

    /// <summary>The metric named <paramref name="name"/> if gates of this task may use it; null otherwise.</summary>
    public static MetricInfo? Metric(this ITask task, string name)
    {
        ArgumentNullException.ThrowIfNull(task);
        return task.Metrics.FirstOrDefault(m => m.Name == name);
    }
}
