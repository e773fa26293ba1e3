using System.Globalization;
using System.Text.RegularExpressions;

namespace ModelCompression.Evaluation;

/// <summary>Why a generated answer could not be parsed. Such answers are counted and reported, never guessed.</summary>
public enum AnswerParseFailure
{
    /// <summary>The answer parsed.</summary>
    None,

    /// <summary>Math: no '####' followed by a number (or the configured pattern found no number).</summary>
    NoFinalNumber,

    /// <summary>Label tasks (NLI): the answer is not exactly one of the label words.</summary>
    NotALabel,

    /// <summary>Free-text tasks (QA, summarization, conversation): nothing but whitespace.</summary>
    Empty,
}

/// <summary>The outcome of parsing one answer: the normalised answer, or the reason there is none.</summary>
/// <param name="Value">The normalised answer (a number in invariant form, a label word, trimmed text); null on failure.</param>
/// <param name="Failure">Why parsing failed; <see cref="AnswerParseFailure.None"/> when it did not.</param>
public readonly record struct ParsedAnswer(string? Value, AnswerParseFailure Failure)
{
    /// <summary>True when the answer parsed.</summary>
    public bool Succeeded => Failure == AnswerParseFailure.None;

    /// <summary>A parsed answer.</summary>
    public static ParsedAnswer Of(string value) => new(value, AnswerParseFailure.None);

    /// <summary>A failure.</summary>
    public static ParsedAnswer Failed(AnswerParseFailure reason) => new(null, reason);
}

/// <summary>Turns a generated answer into the value a task scores, or says why it cannot.</summary>
public interface IAnswerParser
{
    /// <summary>Parses <paramref name="answer"/>.</summary>
    ParsedAnswer Parse(string answer);
}

/// <summary>
/// Final answers of math word problems. By default GSM8K's convention: the number after the last <c>####</c>
/// (whitespace and an optional '$' may come first; a full stop, space or unit after the number is ignored, but a
/// letter or digit straight after it, as in "1e5", makes it no number). With a pattern, the capture group of the pattern's last match is the number instead. Numbers are
/// normalised so that equal values compare equal as strings: thousands commas dropped, trailing zeros of the
/// fraction dropped, no '+' and no negative zero ("1,234.50" and "1234.5" both give "1234.5").
/// </summary>
public sealed class MathAnswerParser : IAnswerParser
{
    /// <summary>GSM8K's marker of the final answer.</summary>
    public const string FinalAnswerMarker = "####";

    // Atomic, so that "10.5x" or "1,234x" is no number rather than a shorter one ("10", "1").
    private static readonly Regex AfterMarker = new(@"\G\s*\$?\s*(?<n>(?>[+-]?(?:[0-9][0-9,]*(?:\.[0-9]+)?|\.[0-9]+)))(?![0-9A-Za-z_])", RegexOptions.CultureInvariant);

    // A user's pattern runs on model output of any length: a timeout keeps a pathological pattern from hanging a build.
    private static readonly TimeSpan PatternTimeout = TimeSpan.FromSeconds(1);

    private readonly Regex? _pattern;

    /// <summary>A parser of GSM8K's <c>#### n</c> convention.</summary>
    public MathAnswerParser()
    {
    }

    /// <summary>A parser that takes the number from the one capture group of <paramref name="pattern"/>'s last match.</summary>
    /// <exception cref="ArgumentException">The pattern is not a valid .NET regular expression with exactly one capture group (<see cref="CheckPattern"/> says why).</exception>
    public MathAnswerParser(string pattern)
    {
        var problem = CheckPattern(pattern);
        if (problem is not null)
        {
            throw new ArgumentException(problem, nameof(pattern));
        }

        _pattern = new Regex(pattern, RegexOptions.CultureInvariant, PatternTimeout);
    }

    /// <summary>The configured pattern, or null for the <c>####</c> convention.</summary>
    public string? Pattern => _pattern?.ToString();

    /// <summary>
    /// Why <paramref name="pattern"/> cannot be a final-answer pattern (not a valid regular expression, or not exactly
    /// one capture group), or null when it can. The recipe's plan phase calls this to report the problem with its location.
    /// </summary>
    public static string? CheckPattern(string pattern)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        Regex regex;
        try
        {
            regex = new Regex(pattern, RegexOptions.CultureInvariant, PatternTimeout);
        }
        catch (ArgumentException e)
        {
            return $"'{pattern}' is not a valid regular expression: {e.Message}";
        }

        // Group 0 is the whole match; named groups count as capture groups too.
        var groups = regex.GetGroupNumbers().Length - 1;
        return groups == 1 ? null : $"'{pattern}' has {groups} capture groups; a final-answer pattern needs exactly one, around the number.";
    }

    /// <inheritdoc />
    public ParsedAnswer Parse(string answer)
    {
        ArgumentNullException.ThrowIfNull(answer);
        string? number;
        if (_pattern is null)
        {
            var marker = answer.LastIndexOf(FinalAnswerMarker, StringComparison.Ordinal);
            var match = marker < 0 ? Match.Empty : AfterMarker.Match(answer, marker + FinalAnswerMarker.Length);
            number = match.Success ? match.Groups["n"].Value : null;
        }
        else
        {
            var matches = _pattern.Matches(answer);
            number = matches.Count == 0 ? null : matches[^1].Groups[1].Value.Trim();
        }

        var normalised = number is null ? null : NormaliseNumber(number);
        return normalised is null ? ParsedAnswer.Failed(AnswerParseFailure.NoFinalNumber) : ParsedAnswer.Of(normalised);
    }

    /// <summary>
    /// The invariant form of a number written with optional thousands commas, sign and decimals ("-1,234.50" gives
    /// "-1234.5"), or null when <paramref name="text"/> is not such a number.
    /// </summary>
    public static string? NormaliseNumber(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var plain = text.Trim().Replace(",", string.Empty, StringComparison.Ordinal);
        if (plain.Length == 0 || plain.Contains('e', StringComparison.OrdinalIgnoreCase)
            || !decimal.TryParse(plain, NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value))
        {
            return null;
        }

        // decimal keeps trailing zeros ("1234.50" has scale 2) and a sign on zero; "0.#…" prints the shortest exact form.
        if (value == 0)
        {
            value = 0m;
        }

        return value.ToString("0.############################", CultureInfo.InvariantCulture);
    }
}

/// <summary>
/// Label answers (NLI by default): after trimming whitespace, lower-casing and dropping surrounding quotes and a final
/// full stop, the answer must be exactly one of the label words. Nothing else is accepted: "entailment, I think" is
/// not a label.
/// </summary>
public sealed class LabelAnswerParser : IAnswerParser
{
    /// <summary>The NLI labels used when none are configured.</summary>
    public static readonly IReadOnlyList<string> NliLabels = ["entailment", "neutral", "contradiction"];

    private static readonly char[] Decoration = ['"', '\'', '`', '.', '!', ' ', '\t', '\r', '\n'];

    private readonly HashSet<string> _labels;

    /// <summary>A parser of the NLI labels (<see cref="NliLabels"/>).</summary>
    public LabelAnswerParser()
        : this(NliLabels)
    {
    }

    /// <summary>A parser of the given label words (at least two; compared after the same normalisation as answers).</summary>
    public LabelAnswerParser(IEnumerable<string> labels)
    {
        ArgumentNullException.ThrowIfNull(labels);
        Labels = [.. labels.Select(Normalise)];
        if (Labels.Count < 2 || Labels.Any(l => l.Length == 0))
        {
            throw new ArgumentException("A label task needs at least two non-empty label words.", nameof(labels));
        }

        _labels = new HashSet<string>(Labels, StringComparer.Ordinal);
        if (_labels.Count != Labels.Count)
        {
            throw new ArgumentException($"The label words repeat after normalisation: {string.Join(", ", Labels)}.", nameof(labels));
        }
    }

    /// <summary>The label words, normalised, in the order given.</summary>
    public IReadOnlyList<string> Labels { get; }

    /// <inheritdoc />
    public ParsedAnswer Parse(string answer)
    {
        ArgumentNullException.ThrowIfNull(answer);
        var word = Normalise(answer);
        return _labels.Contains(word) ? ParsedAnswer.Of(word) : ParsedAnswer.Failed(AnswerParseFailure.NotALabel);
    }

    private static string Normalise(string text) => text.Trim(Decoration).ToLowerInvariant();
}

/// <summary>Free-text answers (QA, summarization, conversation): anything that is not empty after trimming, trimmed.</summary>
public sealed class TextAnswerParser : IAnswerParser
{
    /// <summary>The one instance (the parser has no options).</summary>
    public static readonly TextAnswerParser Instance = new();

    /// <inheritdoc />
    public ParsedAnswer Parse(string answer)
    {
        ArgumentNullException.ThrowIfNull(answer);
        var text = answer.Trim();
        return text.Length == 0 ? ParsedAnswer.Failed(AnswerParseFailure.Empty) : ParsedAnswer.Of(text);
    }
}
