using TorchSharp;
using static TorchSharp.torch;

namespace ModelCompression.Torch.Training;

/// <summary>
/// Response-based knowledge distillation (Hinton et al. 2015):
/// loss = alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y).
/// With alpha = 0 it is plain cross-entropy on labels (fine-tuning); with alpha = 1 it needs no labels.
/// </summary>
/// <param name="Alpha">Weight of the soft (teacher) term, in [0, 1].</param>
/// <param name="Temperature">Softening temperature T, greater than 0.</param>
public sealed record DistillationLoss(double Alpha, double Temperature)
{
    /// <summary>
    /// Weight of the feature-hint term (<see cref="FeatureHintLoss"/>) added to this loss when the training set
    /// has <see cref="TrainingSet.Hints"/>.
    /// </summary>
    public double HintWeight { get; init; } = 1;

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
