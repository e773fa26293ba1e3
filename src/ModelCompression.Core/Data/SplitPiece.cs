using System.Globalization;
using ModelCompression.Diagnostics;

namespace ModelCompression.Data;

/// <summary>A split as read from its file(s): numeric labels attached, text labels kept raw.</summary>
internal sealed class SplitPiece(Dataset data, RawLabels? raw, int? features)
{
    public Dataset Data { get; private set; } = data;

    public RawLabels? Raw { get; } = raw;

    /// <summary>Values per sample of a CSV file's features (to tell whether an unlabelled file has a label column).</summary>
    public int? Features { get; } = features;

    public void AttachLabels(IReadOnlyList<string>? names, bool namesGiven)
    {
        if (Raw is null)
        {
            return;
        }

        var labels = new long[Raw.Values.Length];
        var bad = new BadRows();
        for (var i = 0; i < labels.Length; i++)
        {
            var text = Raw.Values[i]!;
            if (names is null)
            {
                labels[i] = long.Parse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
                continue;
            }

            var index = IndexOf(names, text);
            if (index < 0)
            {
                bad.Add(Raw.File, Raw.Lines[i], $"{Raw.File}:{Raw.Lines[i]}", $"label '{text}' is not one of the classes ({string.Join(", ", names)})");
            }

            labels[i] = index;
        }

        bad.ThrowIfAny(DiagnosticCodes.DataBadRows, namesGiven ? $"Labels in '{Raw.File}' are not in the recipe's classes" : $"Labels in '{Raw.File}' are not class names");
        Data = Data.WithLabels(labels, new DataOrigin(Raw.File, Raw.Lines));
    }

    /// <summary>Parses text labels as float targets (invariant culture); every one that is not a finite number is reported with its line.</summary>
    public void AttachTargets()
    {
        if (Raw is null)
        {
            return;
        }

        var targets = new float[Raw.Values.Length];
        var bad = new BadRows();
        for (var i = 0; i < targets.Length; i++)
        {
            var text = Raw.Values[i]!;
            if (!float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out targets[i]) || !float.IsFinite(targets[i]))
            {
                bad.Add(Raw.File, Raw.Lines[i], $"{Raw.File}:{Raw.Lines[i]}", $"target '{text}' is not a finite number");
            }
        }

        bad.ThrowIfAny(DiagnosticCodes.DataBadRows, $"Targets in '{Raw.File}' are not all numbers (task: regression reads each label as a real number)");
        Data = Data.WithTargets(targets, new DataOrigin(Raw.File, Raw.Lines));
    }

    private static int IndexOf(IReadOnlyList<string> names, string text)
    {
        for (var i = 0; i < names.Count; i++)
        {
            if (names[i] == text)
            {
                return i;
            }
        }

        return -1;
    }
}
