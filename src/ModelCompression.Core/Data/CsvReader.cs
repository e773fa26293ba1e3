using System.Globalization;
using System.Text;
using ModelCompression.Diagnostics;

namespace ModelCompression.Data;

/// <summary>How a CSV file is read.</summary>
/// <param name="Label">The label column: a header name, or a 0-based column number; null takes the column named "label", else the last one.</param>
/// <param name="Header">True when the first line names the columns, false when it is data, null to tell by whether it holds a non-number.</param>
/// <param name="Delimiter">The field separator.</param>
/// <param name="Ignore">Columns (header names or 0-based numbers) that are neither features nor the label, e.g. an id.</param>
public sealed record CsvOptions(string? Label = null, bool? Header = null, char Delimiter = ',', IReadOnlyList<string>? Ignore = null);

/// <summary>Labels as read from a text format: the text of each sample's label (null when missing) and its line.</summary>
/// <param name="File">The file.</param>
/// <param name="Values">Each sample's label as written (a class number or a class name); null where it is missing.</param>
/// <param name="Lines">Each sample's 1-based line.</param>
internal sealed record RawLabels(string File, string?[] Values, int[] Lines);

/// <summary>
/// Reads numeric CSV: every column but the label (and ignored ones) is a float feature. Ragged rows,
/// non-numbers, NaN or infinite values and missing labels are reported together with file:line (MC2022).
/// </summary>
public static class CsvReader
{
    /// <summary>What a CSV file held.</summary>
    internal sealed record Table(float[] Features, int FeatureCount, string[] FeatureNames, RawLabels? Labels, int[] Lines);

    /// <summary>
    /// Reads <paramref name="path"/>. With <paramref name="labelled"/> every row needs a label; without it a
    /// label column is skipped when the header names it or, headerless, when rows have one column more than
    /// <paramref name="expectedFeatures"/>.
    /// </summary>
    internal static Table Read(string path, CsvOptions options, bool labelled, int? expectedFeatures = null)
    {
        string[] lines;
        try
        {
            lines = File.ReadAllLines(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw CompressionException.Error(DiagnosticCodes.DataUnreadable, $"Cannot read CSV data '{path}': {e.Message}.", path);
        }

        var bad = new BadRows();
        var first = Array.FindIndex(lines, l => l.Trim().Length > 0);
        if (first < 0)
        {
            throw CompressionException.Error(DiagnosticCodes.DataUnreadable, $"CSV data '{path}' is empty.", path);
        }

        var firstFields = Split(lines[first], options.Delimiter, out var firstError);
        if (firstError is not null)
        {
            bad.Add(path, first + 1, $"{path}:{first + 1}", firstError);
            bad.ThrowIfAny(DiagnosticCodes.DataBadRows, $"CSV data '{path}' has bad rows");
        }

        var header = options.Header ?? firstFields.Any(f => !IsNumber(f));
        string[] names = header ? [.. firstFields.Select(f => f.Trim())] : [.. Enumerable.Range(0, firstFields.Length).Select(i => i.ToString(CultureInfo.InvariantCulture))];
        var columns = names.Length;
        var labelColumn = LabelColumn(options, names, header, labelled, expectedFeatures, path);
        var ignored = new HashSet<int>();
        foreach (var name in options.Ignore ?? [])
        {
            ignored.Add(Column(name, names, header, path, "ignore"));
        }

        var featureColumns = Enumerable.Range(0, columns).Where(c => c != labelColumn && !ignored.Contains(c)).ToArray();
        if (featureColumns.Length == 0)
        {
            throw CompressionException.Error(DiagnosticCodes.DataSchemaMismatch, $"CSV data '{path}' has no feature columns (columns: {string.Join(", ", names)}).", path, first + 1);
        }

        var features = new List<float>();
        var labels = new List<string?>();
        var rowLines = new List<int>();
        for (var i = header ? first + 1 : first; i < lines.Length; i++)
        {
            if (lines[i].Trim().Length == 0)
            {
                continue;
            }

            var line = i + 1;
            var where = $"{path}:{line}";
            var fields = Split(lines[i], options.Delimiter, out var error);
            if (error is not null)
            {
                bad.Add(path, line, where, error);
                continue;
            }

            if (fields.Length != columns)
            {
                bad.Add(path, line, where, $"{fields.Length} fields where {(header ? "the header has" : "the first row has")} {columns}");
                continue;
            }

            var rowStart = features.Count;
            var rowOk = true;
            foreach (var c in featureColumns)
            {
                var text = fields[c].Trim();
                if (!float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && !IsNonFiniteWord(text))
                {
                    bad.Add(path, line, where, text.Length == 0 ? $"column '{names[c]}' is empty" : $"'{text}' in column '{names[c]}' is not a number");
                    rowOk = false;
                    break;
                }

                if (!float.IsFinite(value) || IsNonFiniteWord(text))
                {
                    bad.Add(path, line, where, $"column '{names[c]}' is {text}");
                    rowOk = false;
                    break;
                }

                features.Add(value);
            }

            string? label = null;
            if (rowOk && labelColumn >= 0)
            {
                label = fields[labelColumn].Trim();
                if (label.Length == 0)
                {
                    if (labelled)
                    {
                        bad.Add(path, line, where, $"the label (column '{names[labelColumn]}') is missing");
                        rowOk = false;
                    }

                    label = null;
                }
            }

            if (!rowOk)
            {
                features.RemoveRange(rowStart, features.Count - rowStart);
                continue;
            }

            labels.Add(label);
            rowLines.Add(line);
        }

        bad.ThrowIfAny(DiagnosticCodes.DataBadRows, $"CSV data '{path}' has bad rows");
        var lineArray = rowLines.ToArray();
        return new Table(
            [.. features],
            featureColumns.Length,
            [.. featureColumns.Select(c => names[c])],
            labelled ? new RawLabels(path, [.. labels], lineArray) : null,
            lineArray);
    }

    private static int LabelColumn(CsvOptions options, string[] names, bool header, bool labelled, int? expectedFeatures, string path)
    {
        if (options.Label is { } label)
        {
            var found = TryColumn(label, names, header);
            if (found >= 0)
            {
                return found;
            }

            if (!labelled && (header || expectedFeatures == names.Length))
            {
                return -1;
            }

            throw CompressionException.Error(
                DiagnosticCodes.DataSchemaMismatch,
                $"CSV data '{path}' has no label column '{label}'. Columns: {string.Join(", ", names)}{(header ? "" : " (no header: give the label as a 0-based column number)")}.",
                path);
        }

        if (header)
        {
            var named = Array.FindIndex(names, n => n.Equals("label", StringComparison.OrdinalIgnoreCase));
            if (named >= 0 || !labelled)
            {
                return named;
            }

            return names.Length - 1;
        }

        // Headerless: the last column, unless an unlabelled file has exactly the training features.
        return !labelled && expectedFeatures == names.Length ? -1 : names.Length - 1;
    }

    private static int Column(string name, string[] names, bool header, string path, string what)
    {
        var found = TryColumn(name, names, header);
        return found >= 0
            ? found
            : throw CompressionException.Error(DiagnosticCodes.DataSchemaMismatch, $"CSV data '{path}' has no column '{name}' ({what}). Columns: {string.Join(", ", names)}.", path);
    }

    private static int TryColumn(string name, string[] names, bool header)
    {
        if (header)
        {
            var named = Array.IndexOf(names, name);
            if (named >= 0)
            {
                return named;
            }
        }

        return int.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out var index) && index < names.Length ? index : -1;
    }

    /// <summary>numpy and pandas write "inf", "-inf" and "nan", which .NET does not parse: they are still bad values, not text.</summary>
    private static bool IsNonFiniteWord(string text) =>
        text.TrimStart('+', '-').ToLowerInvariant() is "inf" or "infinity" or "nan";

    private static bool IsNumber(string field) =>
        double.TryParse(field.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out _);

    /// <summary>Splits one line into fields; a field may be double-quoted (with "" for a quote inside).</summary>
    private static string[] Split(string line, char delimiter, out string? error)
    {
        error = null;
        var fields = new List<string>();
        var field = new StringBuilder();
        var quoted = false;
        var wasQuoted = false;
        for (var i = 0; i < line.Length; i++)
        {
            var c = line[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < line.Length && line[i + 1] == '"')
                {
                    field.Append('"');
                    i++;
                }
                else if (c == '"')
                {
                    quoted = false;
                }
                else
                {
                    field.Append(c);
                }
            }
            else if (c == '"' && field.ToString().Trim().Length == 0 && !wasQuoted)
            {
                field.Clear();
                quoted = true;
                wasQuoted = true;
            }
            else if (c == delimiter)
            {
                fields.Add(field.ToString());
                field.Clear();
                wasQuoted = false;
            }
            else
            {
                field.Append(c);
            }
        }

        if (quoted)
        {
            error = "a quoted field is not closed on this line";
        }

        fields.Add(field.ToString());
        return [.. fields];
    }
}
