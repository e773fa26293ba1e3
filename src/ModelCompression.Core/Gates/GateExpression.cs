using System.Globalization;
using System.Text.RegularExpressions;
using ModelCompression.Evaluation;

namespace ModelCompression.Gates;

/// <summary>
/// A gate such as <c>accuracy &gt;= 0.85</c>, <c>size_mb &lt;= 1</c>, <c>accuracy &gt;= teacher.accuracy - 0.03</c>
/// (an absolute drop), <c>accuracy &gt;= teacher.accuracy - 2%</c> (a relative drop) or
/// <c>accuracy &gt;= baseline.accuracy - 0.005</c> (a regression against the committed baseline file): a metric of
/// the final model compared with a constant, or with a metric of the teacher or the baseline plus a constant or a
/// percentage of it.
/// </summary>
/// <param name="Metric">The metric of the final model.</param>
/// <param name="Operator">One of &gt;=, &lt;=, &gt;, &lt;.</param>
/// <param name="Reference">"teacher" or "baseline", or null when the right side is a constant.</param>
/// <param name="ReferenceMetric">The reference's metric, or null.</param>
/// <param name="Offset">The constant, added to the reference's metric when there is one.</param>
/// <param name="RelativeOffset">True when <paramref name="Offset"/> is a fraction of the reference's metric (written as a percentage).</param>
public sealed partial record GateExpression(string Metric, string Operator, string? Reference, string? ReferenceMetric, double Offset, bool RelativeOffset = false)
{
    /// <summary>The models a gate can compare with.</summary>
    public static IReadOnlyList<string> References { get; } = ["teacher", "baseline"];

    /// <summary>Metrics measured against the teacher's outputs: a run without a teacher has none of them.</summary>
    public static IReadOnlyList<string> TeacherMetrics { get; } = [.. MetricInfo.All.Where(m => m.NeedsTeacher).Select(m => m.Name)];

    /// <summary>
    /// Metrics a gate can name, with what they mean: those of every task (<see cref="MetricInfo.All"/>). Which of them a
    /// recipe may use is its task's choice (<see cref="GateRules"/>).
    /// </summary>
    public static IReadOnlyDictionary<string, string> Metrics { get; } = MetricInfo.All.ToDictionary(m => m.Name, m => m.Description, StringComparer.Ordinal);

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
            if (!References.Contains(reference))
            {
                error = $"'{reference}.{referenceMetric}': gates compare with {string.Join(" or ", References.Select(r => $"'{r}'"))}";
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

        gate = new GateExpression(metric, match.Groups["op"].Value, reference, referenceMetric, IsPercentage(match) ? offset / 100 : offset, IsPercentage(match));
        error = string.Empty;
        return true;
    }

    /// <summary>The right side's value given the reference's metrics.</summary>
    public double Threshold(IReadOnlyDictionary<string, double>? referenceMetrics)
    {
        if (Reference is null)
        {
            return Offset;
        }

        var reference = (referenceMetrics ?? throw new InvalidOperationException($"No {Reference} metrics to compare with."))[ReferenceMetric!];
        return RelativeOffset ? reference * (1 + Offset) : reference + Offset;
    }

    /// <summary>
    /// Whether the gate reads anything of the teacher: compares with 'teacher.', or names a metric measured
    /// against the teacher's outputs on either side.
    /// </summary>
    public bool NeedsTeacher =>
        Reference == "teacher" || TeacherMetrics.Contains(Metric) || (ReferenceMetric is not null && TeacherMetrics.Contains(ReferenceMetric));

    /// <summary>Whether a smaller value of the metric is the better one (size, latency, errors).</summary>
    public bool LowerIsBetter => Operator is "<=" or "<";

    private static bool IsPercentage(Match match) => match.Groups["percent"].Success;

    /// <summary>Whether <paramref name="value"/> passes against <paramref name="threshold"/>.</summary>
    public bool Passes(double value, double threshold) => Operator switch
    {
        ">=" => value >= threshold,
        "<=" => value <= threshold,
        ">" => value > threshold,
        "<" => value < threshold,
        _ => throw new InvalidOperationException($"Unknown operator {Operator}."),
    };

    [GeneratedRegex(@"^\s*(?<metric>[a-z_][a-z0-9_]*)\s*(?<op>>=|<=|>|<)\s*(?:(?<ref>[a-z]+)\.(?<refmetric>[a-z_][a-z0-9_]*)\s*(?:(?<sign>[+-])\s*(?<offset>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(?<percent>\s*%)?)?|(?<value>[+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?))\s*$")]
    private static partial Regex Grammar();
}
