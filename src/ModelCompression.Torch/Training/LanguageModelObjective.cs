using ModelCompression.Torch.Graph;
using ModelCompression.Torch.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelCompression.Torch.Training;

/// <summary>
/// Next-token training of a decoder (logits [batch, sequence, vocabulary]) on the labelled tokens of a per-token
/// <see cref="TrainingSet"/>, with token-level distillation from the teacher's stored distributions:
/// loss = (1 - kd_ratio) * CE(labels) + kd_ratio * T^2 * KL(p_teacher^T || p_student^T), both terms averaged over the
/// labelled tokens only (label != <see cref="TrainingSet.NoLabel"/>: prompt tokens and padding teach nothing).
/// </summary>
/// <remarks>
/// The form of torchtune's knowledge-distillation recipe, with the temperature and T^2 factor of
/// <see cref="DistillationLoss"/> (Hinton): T softens teacher and student alike and T^2 keeps the soft term's gradients
/// the same size as T changes; T = 1 is torchtune's. The KL is the true one, sum p_t (log p_t - log p_s), where torchtune
/// computes the cross-entropy -sum p_t log p_s: they differ by the teacher's entropy, a constant, so the gradients are
/// the same, and this value is 0 when the student matches the teacher. With a top-k store the teacher's k entries are
/// renormalised (softmax of their log-probabilities / T) and the sum runs over those k ids, the student's log-probabilities
/// being its full-vocabulary ones at those ids. With kd_ratio 0 (or no teacher) the loss is plain masked cross-entropy.
/// The validation score is the perplexity of the labelled tokens, exp(mean negative log-likelihood), lower being better;
/// <see cref="Evaluate"/> also gives the token accuracy.
/// </remarks>
/// <param name="KdRatio">Weight of the distillation term, in [0, 1]; 0 is fine-tuning on the labels alone.</param>
/// <param name="Temperature">Softening temperature T, greater than 0.</param>
public sealed record LanguageModelObjective(double KdRatio, double Temperature = 1) : ITrainingObjective
{
    private static readonly ValidationScore PerplexityScore = new("perplexity", HigherIsBetter: false);

    /// <inheritdoc />
    /// <remarks>Feature hints do not apply to per-token sets; the value is never read.</remarks>
    public double HintWeight => 0;

    /// <inheritdoc />
    public ValidationScore Validation => PerplexityScore;

    /// <inheritdoc />
    public string Fingerprint => FormattableString.Invariant($"language model kd_ratio {KdRatio:R}|T {Temperature:R}");

    /// <inheritdoc />
    public void CheckData(TrainingSet data, TrainingSet? validation)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (KdRatio is < 0 or > 1 || double.IsNaN(KdRatio))
        {
            throw new ArgumentOutOfRangeException(nameof(KdRatio), KdRatio, "kd_ratio must be in [0, 1].");
        }

        if (Temperature is <= 0 || double.IsNaN(Temperature) || double.IsInfinity(Temperature))
        {
            throw new ArgumentOutOfRangeException(nameof(Temperature), Temperature, "The temperature must be a positive number.");
        }

        CheckSequences(data, nameof(data));
        if (KdRatio > 0)
        {
            var teacher = data.TeacherTokens ?? throw new ArgumentException($"kd_ratio {KdRatio} weighs the teacher's token distributions, but the training set has none.", nameof(data));
            if (teacher.Vocabulary != data.Classes)
            {
                throw new ArgumentException($"The teacher's vocabulary has {teacher.Vocabulary} tokens, the student's {data.Classes}: token-level distillation needs one vocabulary.", nameof(data));
            }

            for (var row = 0; row < data.Count; row++)
            {
                if (teacher.TokensOf(row) != data.TrainedTokens(row))
                {
                    throw new ArgumentException($"Sequence {row} has {data.TrainedTokens(row)} labelled tokens but the teacher store has {teacher.TokensOf(row)} for it: the store was written for other data.", nameof(data));
                }
            }
        }

        if (validation is not null)
        {
            CheckSequences(validation, nameof(validation));
            if (ValidationCount(validation) == 0)
            {
                throw new ArgumentException("The validation set needs labelled tokens.", nameof(validation));
            }
        }
    }

    /// <inheritdoc />
    public BatchTargets Targets(TrainingSet data, ReadOnlySpan<int> rows)
    {
        ArgumentNullException.ThrowIfNull(data);
        var (labels, positions) = Labelled(data, rows);
        if (labels.Length == 0)
        {
            return new BatchTargets(null, null, false);
        }

        var y = torch.tensor(labels, [labels.Length]);
        var at = torch.tensor(positions, [positions.Length]);
        if (KdRatio <= 0)
        {
            return new BatchTargets(y, null, true, at);
        }

        var (teacher, ids) = data.TeacherTokens!.Batch(rows);
        return new BatchTargets(y, teacher, true, at) { TeacherIds = ids };
    }

    /// <inheritdoc />
    public Tensor Loss(Tensor outputs, BatchTargets targets)
    {
        ArgumentNullException.ThrowIfNull(outputs);
        ArgumentNullException.ThrowIfNull(targets);
        if (targets.Labels is not { } labels || targets.Labelled is not { } positions)
        {
            return outputs.sum().Times(0); // No labelled token in this batch: nothing to learn from it.
        }

        var logits = outputs.reshape(-1, outputs.shape[^1]).index_select(0, positions);
        var hard = nn.functional.cross_entropy(logits, labels);
        if (KdRatio <= 0)
        {
            return hard;
        }

        var teacher = targets.Teacher ?? throw new ArgumentException($"kd_ratio {KdRatio} needs the teacher's token distributions.", nameof(targets));
        var soft = Divergence(logits, teacher, targets.TeacherIds, Temperature).Times(Temperature * Temperature);
        return soft.Times(KdRatio).Plus(hard.Times(1 - KdRatio));
    }

    /// <summary>
    /// The mean over tokens (rows) of KL(softmax(teacher / T) || softmax(student / T)): <paramref name="teacher"/> is
    /// [tokens, vocabulary] log-probabilities, or [tokens, k] for the ids <paramref name="ids"/> (renormalised over them).
    /// </summary>
    public static Tensor Divergence(Tensor studentLogits, Tensor teacher, Tensor? ids, double temperature)
    {
        ArgumentNullException.ThrowIfNull(studentLogits);
        ArgumentNullException.ThrowIfNull(teacher);
        var student = nn.functional.log_softmax(studentLogits.DividedBy(temperature), 1);
        if (ids is not null)
        {
            student = student.gather(1, ids);
        }

        var t = nn.functional.log_softmax(teacher.DividedBy(temperature), 1);
        return (t.exp() * (t - student)).sum(1).mean();
    }

    /// <inheritdoc />
    /// <remarks>Both sums are the negative log-likelihood of the labelled tokens: the loss is its mean, the score exp of it.</remarks>
    public (double Score, double Loss) ValidationSums(Tensor outputs, TrainingSet data, ReadOnlySpan<int> rows, bool withLoss)
    {
        var (nll, _) = Sums(outputs, data, rows, withAccuracy: false);
        return (nll, withLoss ? nll : 0);
    }

    /// <inheritdoc />
    public (double Score, double Loss) ValidationResult(double scoreSum, double lossSum, int count)
    {
        var tokens = Math.Max(1, count);
        return (Math.Exp(scoreSum / tokens), lossSum / tokens);
    }

    /// <inheritdoc />
    /// <remarks>The labelled tokens: perplexity is per token.</remarks>
    public int ValidationCount(TrainingSet data)
    {
        ArgumentNullException.ThrowIfNull(data);
        var tokens = 0L;
        for (var row = 0; row < data.Count; row++)
        {
            tokens += data.TrainedTokens(row);
        }

        return tokens <= int.MaxValue ? (int)tokens : throw new ArgumentException($"{tokens} labelled tokens are more than a validation set may hold ({int.MaxValue}).", nameof(data));
    }

    /// <summary>
    /// Perplexity, mean negative log-likelihood and argmax accuracy of <paramref name="model"/> on the labelled tokens of
    /// <paramref name="data"/>, in eval mode, <paramref name="batchSize"/> sequences per forward pass.
    /// </summary>
    public static TokenScores Evaluate(TrainableGraph model, TrainingSet data, int batchSize = 16)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        CheckSequences(data, nameof(data));
        TorchNativeLoader.EnsureLoaded();
        var names = new TrainableGraphInputs(model.InputNames);
        var rows = Enumerable.Range(0, data.Count).ToArray();
        var wasTraining = model.training;
        model.eval();
        double nll = 0, correct = 0;
        long tokens = 0;
        try
        {
            using var noGrad = torch.no_grad();
            for (var start = 0; start < data.Count; start += batchSize)
            {
                using var scope = torch.NewDisposeScope();
                var batch = rows.AsSpan(start, Math.Min(batchSize, data.Count - start));
                var outputs = model.Forward(data.Batch(names, batch))[model.OutputNames[0]];
                var (sum, right) = Sums(outputs, data, batch, withAccuracy: true);
                nll += sum;
                correct += right;
                foreach (var row in batch)
                {
                    tokens += data.TrainedTokens(row);
                }
            }
        }
        finally
        {
            model.train(wasTraining);
        }

        var mean = nll / Math.Max(1, tokens);
        return new TokenScores(Math.Exp(mean), mean, correct / Math.Max(1, tokens), tokens);
    }

    /// <summary>The negative log-likelihood sum and (when asked) the count of argmax hits over the batch's labelled tokens.</summary>
    private static (double Nll, double Correct) Sums(Tensor outputs, TrainingSet data, ReadOnlySpan<int> rows, bool withAccuracy)
    {
        ArgumentNullException.ThrowIfNull(outputs);
        ArgumentNullException.ThrowIfNull(data);
        var (labels, positions) = Labelled(data, rows);
        if (labels.Length == 0)
        {
            return (0, 0);
        }

        CheckWidth(outputs, rows.Length, data.BatchWidth(rows));
        var y = torch.tensor(labels, [labels.Length]);
        var logits = outputs.reshape(-1, outputs.shape[^1]).index_select(0, torch.tensor(positions, [positions.Length])).to_type(ScalarType.Float64);
        var nll = nn.functional.cross_entropy(logits, y, reduction: nn.Reduction.Sum).item<double>();
        var correct = withAccuracy ? logits.argmax(1).eq(y).sum().item<long>() : 0;
        return (nll, correct);
    }

    /// <summary>
    /// The labels of the batch's labelled tokens and their flat positions in its [rows, width] logits (width: the batch's
    /// longest labelled prefix, to which <see cref="TrainingSet"/> cut the inputs), row after row: the order of the
    /// teacher store's entries.
    /// </summary>
    private static (long[] Labels, long[] Positions) Labelled(TrainingSet data, ReadOnlySpan<int> rows)
    {
        if (data.TokenLabels is null)
        {
            throw new ArgumentException("The language-model objective needs per-token labels (TrainingSet.TokenLabels).", nameof(data));
        }

        var width = data.BatchWidth(rows);
        var batch = data.BatchTokenLabels(rows, width);
        var count = 0;
        foreach (var label in batch)
        {
            count += label == TrainingSet.NoLabel ? 0 : 1;
        }

        var labels = new long[count];
        var positions = new long[count];
        for (int i = 0, j = 0; i < batch.Length; i++)
        {
            if (batch[i] != TrainingSet.NoLabel)
            {
                labels[j] = batch[i];
                positions[j++] = i;
            }
        }

        return (labels, positions);
    }

    private static void CheckWidth(Tensor outputs, int rows, int width)
    {
        if (outputs.dim() != 3 || outputs.shape[0] != rows || outputs.shape[1] != width)
        {
            throw new ArgumentException($"A decoder's logits for {rows} sequences of {width} tokens are [{rows}, {width}, vocabulary], not [{string.Join(", ", outputs.shape)}].", nameof(outputs));
        }
    }

    private static void CheckSequences(TrainingSet data, string name)
    {
        if (data.TokenLabels is null)
        {
            throw new ArgumentException("The language-model objective needs per-token labels (TrainingSet.TokenLabels).", name);
        }
    }
}

/// <summary>How well a decoder predicts the labelled tokens of a set (<see cref="LanguageModelObjective.Evaluate"/>).</summary>
/// <param name="Perplexity">exp(<paramref name="MeanNll"/>); lower is better.</param>
/// <param name="MeanNll">Mean negative log-likelihood per labelled token (nats).</param>
/// <param name="TokenAccuracy">Fraction of labelled tokens whose argmax is the label.</param>
/// <param name="Tokens">Labelled tokens scored.</param>
public sealed record TokenScores(double Perplexity, double MeanNll, double TokenAccuracy, long Tokens);
