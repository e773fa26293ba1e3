namespace ModelCompression.Evaluation;

/// <summary>Precision, recall and F-measure of one ROUGE variant for one prediction against its reference.</summary>
/// <param name="Precision">Matches over the prediction's n-grams (tokens for ROUGE-L).</param>
/// <param name="Recall">Matches over the reference's n-grams (tokens for ROUGE-L).</param>
/// <param name="FMeasure">2PR / (P + R), 0 when both are 0.</param>
public readonly record struct RougeScore(double Precision, double Recall, double FMeasure);

/// <summary>ROUGE-1, ROUGE-2 and ROUGE-L of one prediction.</summary>
public readonly record struct RougeScores(RougeScore Rouge1, RougeScore Rouge2, RougeScore RougeL);

/// <summary>
/// ROUGE-N and sentence-level ROUGE-L (Lin 2004, "ROUGE: A Package for Automatic Evaluation of Summaries") as
/// Google's rouge-score package computes them with its defaults: text lower-cased, every run of characters other than
/// ASCII letters and digits is a separator, no stemming (rouge-score's <c>use_stemmer=False</c>; ROUGE-1.5.5 without
/// <c>-m</c>) and no stop-word removal. ROUGE-N counts clipped n-gram matches; ROUGE-L uses the longest common
/// subsequence of the whole token lists (not rougeLsum's per-sentence union). An empty side scores 0.
/// </summary>
public static class Rouge
{
    /// <summary>rouge-score's default tokens of <paramref name="text"/>: lower-case runs of [a-z0-9].</summary>
    public static IReadOnlyList<string> Tokenize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var tokens = new List<string>();
        var lower = text.ToLowerInvariant();
        var start = -1;
        for (var i = 0; i <= lower.Length; i++)
        {
            var word = i < lower.Length && lower[i] is (>= 'a' and <= 'z') or (>= '0' and <= '9');
            if (word && start < 0)
            {
                start = i;
            }
            else if (!word && start >= 0)
            {
                tokens.Add(lower[start..i]);
                start = -1;
            }
        }

        return tokens;
    }

    /// <summary>ROUGE-1, ROUGE-2 and ROUGE-L of <paramref name="prediction"/> against <paramref name="reference"/>.</summary>
    public static RougeScores Score(string prediction, string reference)
    {
        var predicted = Tokenize(prediction);
        var target = Tokenize(reference);
        return new RougeScores(NGram(predicted, target, 1), NGram(predicted, target, 2), LongestCommonSubsequence(predicted, target));
    }

    /// <summary>ROUGE-N: n-gram matches clipped to the smaller count on either side.</summary>
    public static RougeScore NGram(IReadOnlyList<string> predicted, IReadOnlyList<string> reference, int n)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        var referenceGrams = Count(reference, n);
        var predictedGrams = Count(predicted, n);
        var matches = 0;
        foreach (var (gram, count) in referenceGrams)
        {
            matches += Math.Min(count, predictedGrams.GetValueOrDefault(gram));
        }

        // rouge-score divides by max(count, 1): a side too short for one n-gram scores 0, not NaN.
        var precision = (double)matches / Math.Max(Math.Max(predicted.Count - n + 1, 0), 1);
        var recall = (double)matches / Math.Max(Math.Max(reference.Count - n + 1, 0), 1);
        return new RougeScore(precision, recall, FMeasure(precision, recall));
    }

    /// <summary>Sentence-level ROUGE-L: the length of the longest common subsequence over each side's token count.</summary>
    public static RougeScore LongestCommonSubsequence(IReadOnlyList<string> predicted, IReadOnlyList<string> reference)
    {
        if (predicted.Count == 0 || reference.Count == 0)
        {
            return new RougeScore(0, 0, 0);
        }

        // One row of the dynamic-programming table at a time: the length is all ROUGE-L needs.
        var previous = new int[predicted.Count + 1];
        var current = new int[predicted.Count + 1];
        foreach (var r in reference)
        {
            for (var j = 1; j <= predicted.Count; j++)
            {
                current[j] = string.Equals(r, predicted[j - 1], StringComparison.Ordinal)
                    ? previous[j - 1] + 1
                    : Math.Max(previous[j], current[j - 1]);
            }

            (previous, current) = (current, previous);
        }

        var length = previous[predicted.Count];
        var precision = (double)length / predicted.Count;
        var recall = (double)length / reference.Count;
        return new RougeScore(precision, recall, FMeasure(precision, recall));
    }

    private static double FMeasure(double precision, double recall) =>
        precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0;

    private static Dictionary<string, int> Count(IReadOnlyList<string> tokens, int n)
    {
        // Tokens are [a-z0-9]+, so a space cannot occur inside one and joins n-grams without ambiguity.
        var grams = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i + n <= tokens.Count; i++)
        {
            var gram = n == 1 ? tokens[i] : string.Join(' ', tokens.Skip(i).Take(n));
            grams[gram] = grams.GetValueOrDefault(gram) + 1;
        }

        return grams;
    }
}
