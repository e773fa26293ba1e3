using System.Globalization;
using System.Text.RegularExpressions;

namespace ModelCompression.Gates;

/// <summary>
/// A gate such as <c>accuracy &gt;= 0.85</c>, <c>size_mb &lt;= 1</c> or
/// <c>accuracy &gt;= teacher.accuracy - 0.03</c>: a metric of the final model compared with a constant, or
/// with a metric of the teacher plus a constant.
/// </summary>
/// <param name="Metric">The metric of the final model.</param>
/// <param name="Operator">One of &gt;=, &lt;=, &gt;, &lt;.</param>
/// <param name="Reference">"teacher", or null when the right side is a constant.</param>
/// <param name="ReferenceMetric">The reference's metric, or null.</param>
/// <param name="Offset">The constant, added to the reference's metric when there is one.</param>
public sealed partial record GateExpression(string Metric, string Operator, string? Reference, string? ReferenceMetric, double Offset)
{
    /// <summary>Metrics a gate can name, with what they mean.</summary>
    public static IReadOnlyDictionary<string, string> Metrics { get; } = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["accuracy"] = "fraction of held-out samples classified correctly (0 to 1)",
        ["size_mb"] = "model file size in MB (10^6 bytes), external data included",
        ["parameters"] = "number of weights (initializer elements)",
    };

    /// <summary>Parses a gate; on failure <paramref name="error"/> says why.</summary>
    public static bool TryParse(string text, out GateExpression? gate, out string error)
    {
        gate = null;
        var match = Grammar().Match(text);
        if (!match.Success)
        {
            error = $"'{text}' is not a gate. Write 'metric >= value' or 'metric >= teacher.metric - value', with a metric of: {string.Join(", ", Metrics.Keys)}";
            return false;
        }

        var metric = match.Groups["metric"].Value;
        if (!Metrics.ContainsKey(metric))
        {
            error = $"unknown metric '{metric}'. Metrics: {string.Join(", ", Metrics.Keys)}";
            return false;
        }

        string? reference = null;
        string? referenceMetric = null;
        var offset = 0.0;
        if (match.Groups["ref"].Success)
        {
            reference = match.Groups["ref"].Value;
            referenceMetric = match.Groups["refmetric"].Value;
            if (reference != "teacher")
            {
                error = $"'{reference}.{referenceMetric}': gates compare with 'teacher' only in this version";
                return false;
            }

            if (!Metrics.ContainsKey(referenceMetric))
            {
                error = $"unknown metric '{referenceMetric}'. Metrics: {string.Join(", ", Metrics.Keys)}";
                return false;
            }

            if (match.Groups["offset"].Success)
            {
                offset = double.Parse(match.Groups["offset"].Value, CultureInfo.InvariantCulture);
                if (match.Groups["sign"].Value == "-")
                {
                    offset = -offset;
                }
            }
        }
        else
        {
            offset = double.Parse(match.Groups["value"].Value, CultureInfo.InvariantCulture);
        }

        gate = new GateExpression(metric, match.Groups["op"].Value, reference, referenceMetric, offset);
        error = string.Empty;
        return true;
    }

    /// <summary>The right side's value given the reference's metrics.</summary>
    public double Threshold(IReadOnlyDictionary<string, double>? referenceMetrics) =>
        Reference is null
            ? Offset
            : (referenceMetrics ?? throw new InvalidOperationException($"No {Reference} metrics to compare with."))[ReferenceMetric!] + Offset;

    /// <summary>Whether <paramref name="value"/> passes against <paramref name="threshold"/>.</summary>
    public bool Passes(double value, double threshold) => Operator switch
    {
        ">=" => value >= threshold,
        "<=" => value <= threshold,
        ">" => value > threshold,
        "<" => value < threshold,
        _ => throw new InvalidOperationException($"Unknown operator {Operator}."),
    };

    [GeneratedRegex(@"^\s*(?<metric>[a-z_]+)\s*(?<op>>=|<=|>|<)\s*(?:(?<ref>[a-z]+)\.(?<refmetric>[a-z_]+)\s*(?:(?<sign>[+-])\s*(?<offset>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?))?|(?<value>[+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?))\s*$")]
    private static partial Regex Grammar();
}
