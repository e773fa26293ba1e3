namespace ModelCompression.Tasks;

/// <summary>Soft targets of several classification teachers, averaged by weight as probabilities (see <see cref="ClassificationTask.CombineTeachers"/>).</summary>
public static class Ensemble
{
    /// <summary>
    /// Per sample, logits z with softmax(z / T) = sum_i w_i softmax(t_i / T) (weights normalized): z = T * log of
    /// the averaged probabilities. Averaging probabilities, not logits, keeps each teacher's confidence.
    /// </summary>
    public static float[] SoftTargetLogits(IReadOnlyList<(float[] Logits, double Weight)> teachers, int classes, double temperature)
    {
        var samples = teachers[0].Logits.Length / classes;
        var total = teachers.Sum(t => t.Weight);
        var result = new float[samples * classes];
        var mixed = new double[classes];
        for (var s = 0; s < samples; s++)
        {
            Array.Clear(mixed);
            foreach (var (logits, weight) in teachers)
            {
                var row = logits.AsSpan(s * classes, classes);
                var max = double.NegativeInfinity;
                foreach (var v in row)
                {
                    max = Math.Max(max, v / temperature);
                }

                var sum = 0.0;
                foreach (var v in row)
                {
                    sum += Math.Exp((v / temperature) - max);
                }

                for (var c = 0; c < classes; c++)
                {
                    mixed[c] += weight / total * Math.Exp((row[c] / temperature) - max) / sum;
                }
            }

            for (var c = 0; c < classes; c++)
            {
                // A probability that underflowed to 0 gets a very negative, finite logit.
                result[(s * classes) + c] = (float)(temperature * Math.Log(Math.Max(mixed[c], 1e-30)));
            }
        }

        return result;
    }
}
