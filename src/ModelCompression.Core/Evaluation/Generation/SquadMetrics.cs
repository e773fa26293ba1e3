using System.Text;
using System.Text.RegularExpressions;

namespace ModelCompression.Evaluation;

/// <summary>
/// Exact match and token F1 of extractive QA as the official SQuAD v1.1 evaluation script computes them. Both sides
/// are normalised first: lower-cased, ASCII punctuation (Python's <c>string.punctuation</c>) removed, the articles
/// a/an/the removed as whole words, whitespace collapsed. With several gold answers a prediction scores its best.
/// As in v1.1, F1 is 0 when the two share no token, so an empty prediction scores 0 even against an empty gold.
/// </summary>
public static class SquadMetrics
{
    private const string Punctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

    private static readonly Regex Articles = new(@"\b(a|an|the)\b", RegexOptions.CultureInvariant);

    /// <summary>SQuAD's normal form of an answer: lower case, no punctuation, no articles, single spaces.</summary>
    public static string Normalize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var builder = new StringBuilder(text.Length);
        foreach (var c in text.ToLowerInvariant())
        {
            if (!Punctuation.Contains(c, StringComparison.Ordinal))
            {
                builder.Append(c);
            }
        }

        var withoutArticles = Articles.Replace(builder.ToString(), " ");
        return string.Join(' ', Tokens(withoutArticles));
    }

    /// <summary>1 when the normalised prediction equals the normalised gold answer, else 0; the best over <paramref name="golds"/>.</summary>
    public static double ExactMatch(string prediction, IReadOnlyList<string> golds)
    {
        CheckGolds(golds);
        var normal = Normalize(prediction);
        return golds.Any(g => string.Equals(Normalize(g), normal, StringComparison.Ordinal)) ? 1 : 0;
    }

    /// <summary>
    /// Token F1 between the normalised prediction and gold answer (common tokens counted with multiplicity,
    /// F1 = 2PR / (P + R)); the best over <paramref name="golds"/>.
    /// </summary>
    public static double F1(string prediction, IReadOnlyList<string> golds)
    {
        CheckGolds(golds);
        var predicted = Tokens(Normalize(prediction));
        return golds.Max(g => F1(predicted, Tokens(Normalize(g))));
    }

    private static double F1(string[] predicted, string[] gold)
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var token in gold)
        {
            counts[token] = counts.GetValueOrDefault(token) + 1;
        }

        var same = 0;
        foreach (var token in predicted)
        {
            if (counts.GetValueOrDefault(token) > 0)
            {
                counts[token]--;
                same++;
            }
        }

        if (same == 0)
        {
            return 0;
        }

        var precision = (double)same / predicted.Length;
        var recall = (double)same / gold.Length;
        return 2 * precision * recall / (precision + recall);
    }

    // Python's str.split(): runs of whitespace separate, leading and trailing whitespace gives no empty token.
    private static string[] Tokens(string text) =>
        text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);

    private static void CheckGolds(IReadOnlyList<string> golds)
    {
        ArgumentNullException.ThrowIfNull(golds);
        if (golds.Count == 0)
        {
            throw new ArgumentException("At least one gold answer is needed.", nameof(golds));
        }
    }
}
