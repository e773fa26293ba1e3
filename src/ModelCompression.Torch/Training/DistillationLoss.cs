using TorchSharp;
using static TorchSharp.torch;

namespace ModelCompression.Torch.Training;

/// <summary>
/// Response-based knowledge distillation (Hinton et al. 2015):
/// loss = alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y).
/// With alpha = 0 it is plain cross-entropy on labels (fine-tuning); with alpha = 1 it needs no labels.
/// </summary>
/// <remarks>Classification's <see cref="ITrainingObjective"/>: its validation score is argmax accuracy on the labels.</remarks>
/// <param name="Alpha">Weight of the soft (teacher) term, in [0, 1].</param>
/// <param name="Temperature">Softening temperature T, greater than 0.</param>
public sealed record DistillationLoss(double Alpha, double Temperature) : ITrainingObjective
{
    private static readonly ValidationScore AccuracyScore = new("accuracy", HigherIsBetter: true);

    /// <summary>
    /// Weight of the feature-hint term (<see cref="FeatureHintLoss"/>) added to this loss when the training set
    /// has <see cref="TrainingSet.Hints"/>.
    /// </summary>
    public double HintWeight { get; init; } = 1;

    /// <inheritdoc />
    public ValidationScore Validation => AccuracyScore;

    /// <inheritdoc />
    public string Fingerprint => FormattableString.Invariant($"alpha {Alpha:R}|T {Temperature:R}");

    /// <inheritdoc />
    public void CheckData(TrainingSet data, TrainingSet? validation)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (Alpha > 0 && data.TeacherLogits is null)
        {
            throw new ArgumentException($"alpha {Alpha} weighs the teacher's logits, but the training set has none.", nameof(data));
        }

        if (Alpha < 1 && data.Labels is null)
        {
            throw new ArgumentException($"alpha {Alpha} leaves {1 - Alpha} to the labels, but the training set has none.", nameof(data));
        }

        if (validation is not null && (validation.Labels is null || validation.Count == 0))
        {
            throw new ArgumentException("The validation set needs samples and labels.", nameof(validation));
        }
    }

    /// <inheritdoc />
    public BatchTargets Targets(TrainingSet data, ReadOnlySpan<int> rows)
    {
        ArgumentNullException.ThrowIfNull(data);
        var size = rows.Length;
        var labels = data.Labels is null || Alpha >= 1 ? null : InputArray.Gather(data.Labels, rows, 1);
        var y = labels is null ? null : torch.tensor(labels, [size]);
        var anyLabelled = labels is null ? (bool?)null : labels.AsSpan().IndexOfAnyExcept(TrainingSet.NoLabel) >= 0;
        var t = data.TeacherLogits is null || Alpha <= 0 ? null : torch.tensor(InputArray.Gather(data.TeacherLogits, rows, data.Classes), [size, data.Classes]);
        return new BatchTargets(y, t, anyLabelled);
    }

    /// <inheritdoc />
    public Tensor Loss(Tensor outputs, BatchTargets targets)
    {
        ArgumentNullException.ThrowIfNull(targets);
        return Compute(outputs, targets.Labels, targets.Teacher, targets.AnyLabelled);
    }

    /// <inheritdoc />
    /// <remarks>
    /// The loss is cross-entropy on the labels alone whatever alpha weighs: what "validation loss" means to someone
    /// comparing runs.
    /// </remarks>
    public (double Score, double Loss) ValidationSums(Tensor outputs, TrainingSet data, ReadOnlySpan<int> rows, bool withLoss)
    {
        ArgumentNullException.ThrowIfNull(outputs);
        ArgumentNullException.ThrowIfNull(data);
        var labels = data.Labels ?? throw new ArgumentException("Accuracy needs labels.", nameof(data));
        var y = torch.tensor(InputArray.Gather(labels, rows, 1), [rows.Length]);
        var correct = outputs.argmax(1).eq(y).sum().item<long>();
        double loss = withLoss ? nn.functional.cross_entropy(outputs, y, reduction: nn.Reduction.Sum).item<float>() : 0;
        return (correct, loss);
    }

    /// <inheritdoc />
    public (double Score, double Loss) ValidationResult(double scoreSum, double lossSum, int count)
    {
        var samples = Math.Max(1, count);
        return (scoreSum / samples, lossSum / samples);
    }

    /// <summary>The loss for one batch. <paramref name="teacherLogits"/> may be null only when alpha is 0.</summary>
    public Tensor Compute(Tensor studentLogits, Tensor? labels, Tensor? teacherLogits) =>
        Compute(studentLogits, labels, teacherLogits, anyLabelled: null);

    /// <summary>
    /// The loss for one batch, told by a caller that made <paramref name="labels"/> from a host array whether any
    /// sample of the batch is labelled: asking the tensor costs two kernels and a read back to the host every step.
    /// </summary>
    internal Tensor Compute(Tensor studentLogits, Tensor? labels, Tensor? teacherLogits, bool? anyLabelled)
    {
        Tensor? soft = null;
        if (Alpha > 0)
        {
            ArgumentNullException.ThrowIfNull(teacherLogits);
            var t = Temperature;
            var teacherLogProbs = nn.functional.log_softmax(teacherLogits.DividedBy(t), 1);
            var studentLogProbs = nn.functional.log_softmax(studentLogits.DividedBy(t), 1);
            // KL(p_t || p_s) summed over classes, averaged over the batch ("batchmean"), scaled by T^2 so
            // the soft term's gradients keep their size as T changes.
            var kl = (teacherLogProbs.exp() * (teacherLogProbs - studentLogProbs)).sum(1).mean();
            soft = kl.Times(t * t);
        }

        Tensor? hard = null;
        if (Alpha < 1)
        {
            ArgumentNullException.ThrowIfNull(labels);
            // Samples of an unlabelled pool carry NoLabel: the hard term averages over the labelled ones, and a
            // batch without any has none (cross-entropy over no samples would be NaN).
            if (anyLabelled ?? labels.NotEqual(TrainingSet.NoLabel).any().item<bool>())
            {
                hard = nn.functional.cross_entropy(studentLogits, labels, ignore_index: TrainingSet.NoLabel);
            }
        }

        return (soft, hard) switch
        {
            (Tensor s, Tensor h) => s.Times(Alpha).Plus(h.Times(1 - Alpha)),
            (Tensor s, null) => s.Times(Alpha),
            (null, Tensor h) => h,
            _ => studentLogits.sum().Times(0), // Only unlabelled samples and alpha 0: nothing to learn from this batch.
        };
    }
}
