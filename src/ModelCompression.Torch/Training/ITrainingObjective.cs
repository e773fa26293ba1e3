using static TorchSharp.torch;

namespace ModelCompression.Torch.Training;

/// <summary>
/// What a training run minimises and how it scores the model on validation data: the part of training that
/// depends on the task. <see cref="DistillationLoss"/> is classification's (cross-entropy on class labels, KL to
/// the teacher's softened distribution, argmax accuracy); <see cref="RegressionLoss"/> is regression's (mean squared
/// error against float targets and against the teacher's outputs, RMSE). <see cref="ClassificationTrainer"/> runs
/// the loop and knows none of this.
/// </summary>
public interface ITrainingObjective
{
    /// <summary>
    /// Weight of the feature-hint term (<see cref="FeatureHintLoss"/>) added to the loss when the training set
    /// has <see cref="TrainingSet.Hints"/>.
    /// </summary>
    double HintWeight { get; }

    /// <summary>The validation score this objective measures after every epoch, and which way is better.</summary>
    ValidationScore Validation { get; }

    /// <summary>
    /// What a checkpoint must agree on about the loss to be resumed (it joins the trainer's fingerprint), e.g.
    /// "alpha 0.5|T 4".
    /// </summary>
    string Fingerprint { get; }

    /// <summary>Throws <see cref="ArgumentException"/> when <paramref name="data"/> or <paramref name="validation"/> lack what the loss reads.</summary>
    void CheckData(TrainingSet data, TrainingSet? validation);

    /// <summary>
    /// The targets of the batch made of <paramref name="rows"/> (labels, teacher outputs), as tensors in the caller's
    /// dispose scope. The trainer asks before the forward pass, so reading the host arrays overlaps nothing.
    /// </summary>
    BatchTargets Targets(TrainingSet data, ReadOnlySpan<int> rows);

    /// <summary>The loss of one batch: <paramref name="outputs"/> is the model's first output for the batch.</summary>
    Tensor Loss(Tensor outputs, BatchTargets targets);

    /// <summary>
    /// The validation sums of one batch (<paramref name="rows"/> of <paramref name="data"/>, in eval mode): the score's
    /// sum (e.g. correct samples, squared errors) and, when <paramref name="withLoss"/>, the loss's sum over the batch.
    /// </summary>
    (double Score, double Loss) ValidationSums(Tensor outputs, TrainingSet data, ReadOnlySpan<int> rows, bool withLoss);

    /// <summary>The score and mean loss of <paramref name="count"/> samples whose batch sums added up to the given totals.</summary>
    (double Score, double Loss) ValidationResult(double scoreSum, double lossSum, int count);

    /// <summary>
    /// What the validation sums of <paramref name="data"/> are divided by in <see cref="ValidationResult"/>: its samples,
    /// or (<see cref="LanguageModelObjective"/>) its labelled tokens.
    /// </summary>
    int ValidationCount(TrainingSet data) => data.Count;
}

/// <summary>A validation score: its name for logs and reports, and which way is better.</summary>
/// <param name="Name">"accuracy", "rmse".</param>
/// <param name="HigherIsBetter">True for accuracy, false for an error.</param>
public sealed record ValidationScore(string Name, bool HigherIsBetter)
{
    /// <summary>Whether <paramref name="score"/> improves on <paramref name="best"/> by more than <paramref name="minDelta"/> (NaN best: always).</summary>
    public bool Improves(double score, double best, double minDelta) =>
        double.IsNaN(best) || (HigherIsBetter ? score > best + minDelta : score < best - minDelta);
}

/// <summary>The targets of one training batch, made by <see cref="ITrainingObjective.Targets"/>.</summary>
/// <param name="Labels">Class labels (int64 [batch]) or float targets ([batch, width], only the labelled rows); null when the loss does not read them.</param>
/// <param name="Teacher">The teacher's outputs [batch, width]; null when the loss does not read them.</param>
/// <param name="AnyLabelled">Whether any sample of the batch has a label, when the objective knows it from the host arrays.</param>
/// <param name="Labelled">The batch rows <paramref name="Labels"/> belong to (int64), when only some rows have targets; null when all do.</param>
public sealed record BatchTargets(Tensor? Labels, Tensor? Teacher, bool? AnyLabelled, Tensor? Labelled = null)
{
    /// <summary>The token ids <see cref="Teacher"/>'s columns stand for (int64), when the teacher gave its top k only.</summary>
    public Tensor? TeacherIds { get; init; }
}
