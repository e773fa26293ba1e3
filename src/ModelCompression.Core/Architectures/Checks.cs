using System.Globalization;

namespace ModelCompression.Architectures;

/// <summary>Option checks shared by the options records; messages name the recipe key.</summary>
internal static class Checks
{
    public static void AtLeast(List<string> problems, string option, long value, long min)
    {
        if (value < min)
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"{option} must be at least {min} (got {value})"));
        }
    }

    public static void NotNegative(List<string> problems, string option, long value) => AtLeast(problems, option, value, 0);

    public static void Probability(List<string> problems, string option, double value)
    {
        // 1 would zero every activation; NaN compares false everywhere, so test the good range.
        if (!(value >= 0 && value < 1))
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"{option} must be in [0, 1) (got {value})"));
        }
    }

    public static void List(List<string> problems, string option, int[]? values, int min, bool allowEmpty)
    {
        if (values is null || (!allowEmpty && values.Length == 0))
        {
            problems.Add($"{option} must list at least one value");
        }
        else if (values.Any(v => v < min))
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"{option} values must be at least {min} (got [{string.Join(", ", values)}])"));
        }
    }
}
