using System.Globalization;

namespace ModelCompression.Reports;

/// <summary>How the reports write numbers: invariant culture, the same text in markdown and HTML.</summary>
internal static class ReportFormat
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    /// <summary>A fraction as a percentage with two decimals ("91.90 %").</summary>
    public static string Percent(double fraction) => fraction.ToString("P2", Invariant);

    /// <summary>An interval of fractions as percentages ("91.36 – 92.43 %").</summary>
    public static string PercentInterval(double low, double high) =>
        $"{(low * 100).ToString("0.00", Invariant)} – {(high * 100).ToString("0.00", Invariant)} %";

    /// <summary>
    /// A measurement with three significant digits (0.407, 0.0261, 1.50, 102), so a 26 kB model and a
    /// 400 MB one are both shown with useful precision.
    /// </summary>
    public static string Significant(double value)
    {
        if (value == 0 || !double.IsFinite(value))
        {
            return value.ToString(Invariant);
        }

        var decimals = Math.Clamp(2 - (int)Math.Floor(Math.Log10(Math.Abs(value))), 0, 10);
        return value.ToString("F" + decimals.ToString(Invariant), Invariant);
    }

    /// <summary>A count with thousands separators ("101,770").</summary>
    public static string Count(double value) => value.ToString("N0", Invariant);

    /// <summary>A gate's value or threshold, as the gate messages write them.</summary>
    public static string GateNumber(double value) => value.ToString("0.####", Invariant);

    /// <summary>Any other number: up to six significant digits.</summary>
    public static string Plain(double value) => value.ToString("G6", Invariant);
}
