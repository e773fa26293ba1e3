using TorchSharp;
using static TorchSharp.torch;

namespace ModelCompression.Torch.Training;

/// <summary>
/// Regression's objective: loss = alpha * MSE(student, teacher) + (1 - alpha) * MSE(student, y), means over the
/// batch and the output columns. The teacher's outputs are the soft targets as they are (no temperature: there is no
/// distribution to soften). Samples of an unlabelled pool carry NaN targets; the label term averages over the labelled
/// samples only, as <see cref="DistillationLoss"/> does. The validation score is the RMSE, lower being better.
/// </summary>
/// <param name="Alpha">Weight of the teacher term, in [0, 1]; 0 is fine-tuning on the targets alone.</param>
public sealed record RegressionLoss(double Alpha) : ITrainingObjective
{
    private static readonly ValidationScore RmseScore = new("rmse", HigherIsBetter: false);

    /// <inheritdoc />
    public double HintWeight { get; init; } = 1;

    /// <inheritdoc />
    public ValidationScore Validation => RmseScore;

    /// <inheritdoc />
    public string Fingerprint => FormattableString.Invariant($"regression alpha {Alpha:R}");

    /// <inheritdoc />
    public void CheckData(TrainingSet data, TrainingSet? validation)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (Alpha is < 0 or > 1 || double.IsNaN(Alpha))
        {
            throw new ArgumentOutOfRangeException(nameof(Alpha), Alpha, "alpha must be in [0, 1].");
        }

        if (Alpha > 0 && data.TeacherLogits is null)
        {
            throw new ArgumentException($"alpha {Alpha} weighs the teacher's outputs, but the training set has none.", nameof(data));
        }

        if (Alpha < 1 && data.Targets is null)
        {
            throw new ArgumentException($"alpha {Alpha} leaves {1 - Alpha} to the targets, but the training set has no float targets.", nameof(data));
        }

        if (validation is not null && (validation.Targets is null || validation.Count == 0))
        {
            throw new ArgumentException("The validation set needs samples and float targets.", nameof(validation));
        }
    }

    /// <inheritdoc />
    public BatchTargets Targets(TrainingSet data, ReadOnlySpan<int> rows)
    {
        ArgumentNullException.ThrowIfNull(data);
        var size = rows.Length;
        var width = data.Classes;
        var teacher = data.TeacherLogits is null || Alpha <= 0 ? null : torch.tensor(InputArray.Gather(data.TeacherLogits, rows, width), [size, width]);
        if (data.Targets is not { } all || Alpha >= 1)
        {
            return new BatchTargets(null, teacher, null);
        }

        // A row is labelled when its first value is a number (WithUnlabelled fills whole rows with NaN).
        var labelled = new List<int>(size);
        for (var i = 0; i < size; i++)
        {
            if (!float.IsNaN(all[(long)rows[i] * width]))
            {
                labelled.Add(rows[i]);
            }
        }

        if (labelled.Count == 0)
        {
            return new BatchTargets(null, teacher, false);
        }

        var y = torch.tensor(InputArray.Gather(all, labelled, width), [labelled.Count, width]);
        if (labelled.Count == size)
        {
            return new BatchTargets(y, teacher, true);
        }

        var positions = new long[labelled.Count];
        for (int i = 0, j = 0; i < size; i++)
        {
            if (!float.IsNaN(all[(long)rows[i] * width]))
            {
                positions[j++] = i;
            }
        }

        return new BatchTargets(y, teacher, true, torch.tensor(positions, [positions.Length]));
    }

    /// <inheritdoc />
    public Tensor Loss(Tensor outputs, BatchTargets targets)
    {
        ArgumentNullException.ThrowIfNull(outputs);
        ArgumentNullException.ThrowIfNull(targets);
        var predictions = outputs.reshape(outputs.shape[0], -1);
        Tensor? soft = null;
        if (Alpha > 0)
        {
            var teacher = targets.Teacher ?? throw new ArgumentException("alpha > 0 needs the teacher's outputs.", nameof(targets));
            soft = nn.functional.mse_loss(predictions, teacher);
        }

        Tensor? hard = null;
        if (Alpha < 1 && targets.Labels is { } y)
        {
            var labelled = targets.Labelled is { } rows ? predictions.index_select(0, rows) : predictions;
            hard = nn.functional.mse_loss(labelled, y);
        }

        return (soft, hard) switch
        {
            (Tensor s, Tensor h) => s.Times(Alpha).Plus(h.Times(1 - Alpha)),
            (Tensor s, null) => s.Times(Alpha),
            (null, Tensor h) => h,
            _ => outputs.sum().Times(0), // No target and no teacher in this batch: nothing to learn from it.
        };
    }

    /// <inheritdoc />
    /// <remarks>Both sums are the squared errors (averaged over the output columns): the loss is the MSE and the score its square root.</remarks>
    public (double Score, double Loss) ValidationSums(Tensor outputs, TrainingSet data, ReadOnlySpan<int> rows, bool withLoss)
    {
        ArgumentNullException.ThrowIfNull(outputs);
        ArgumentNullException.ThrowIfNull(data);
        var targets = data.Targets ?? throw new ArgumentException("RMSE needs float targets.", nameof(data));
        var y = torch.tensor(InputArray.Gather(targets, rows, data.Classes), [rows.Length, data.Classes]);
        var error = outputs.reshape(rows.Length, -1).to_type(ScalarType.Float64) - y.to_type(ScalarType.Float64);
        // error * error, not square(): square makes a temporary Scalar (see ScalarLifetimeTests).
        var squared = (error * error).sum().item<double>() / data.Classes;
        return (squared, withLoss ? squared : 0);
    }

    /// <inheritdoc />
    public (double Score, double Loss) ValidationResult(double scoreSum, double lossSum, int count) =>
        (Math.Sqrt(scoreSum / Math.Max(1, count)), lossSum / Math.Max(1, count));
}
