using System.Globalization;
using ModelCompression.Diagnostics;

namespace ModelCompression.Serving;

/// <summary>What an injected fault does to a generation request (<see cref="FaultRule"/>).</summary>
public enum FaultKind
{
    /// <summary><c>429</c>: refused with 429 Too Many Requests and a Retry-After header; nothing is generated.</summary>
    RateLimited,

    /// <summary><c>500</c>: refused with 500 Internal Server Error; nothing is generated.</summary>
    ServerError,

    /// <summary><c>slow</c>: the answer is generated, then held back for the rule's delay before the first byte is written.</summary>
    Slow,

    /// <summary><c>drop</c>: the answer is generated and part of the response written, then the connection is aborted.</summary>
    Drop,

    /// <summary><c>malformed</c>: 200 with a body that is not JSON (the answer's JSON cut in half; in a stream, one event cut).</summary>
    Malformed,

    /// <summary><c>unparsable</c>: a well-formed answer whose content is replaced by the rule's text (no final number, no label word).</summary>
    Unparsable,

    /// <summary><c>empty</c>: a well-formed answer whose content is empty.</summary>
    Empty,
}

/// <summary>
/// One fault-injection rule of <c>dotnet compress serve --fault RULE</c> (<see cref="ServeOptions.Faults"/>), written
/// <c>KIND[:VALUE]@WHEN</c>:
/// <list type="bullet">
/// <item>KIND: <c>429[:SECONDS]</c> (Retry-After, default 1), <c>500</c>, <c>slow:DELAY</c> (<c>250ms</c>, <c>3s</c>),
/// <c>drop[:BYTES]</c> (bytes of the body written before the abort, default half of it), <c>malformed</c>,
/// <c>unparsable[:TEXT]</c> (default "I cannot tell."), <c>empty</c>.</item>
/// <item>WHEN: <c>first:K</c> fires on the first K attempts of each distinct request body (by <see cref="RequestHash"/>);
/// <c>request:LIST</c> on those ordinals of generation requests (1 is the first; <c>3</c>, <c>1,4</c>, <c>2-5</c>,
/// <c>6-</c>); <c>always</c> on every one.</item>
/// </list>
/// Rules apply to <c>POST /v1/chat/completions</c> and <c>/v1/completions</c> only, in the order given: the first that
/// matches fires, and the others are not consulted. <c>429@first:1</c> is "every request's first attempt is refused,
/// its retry succeeds", so a client's retry count can be asserted exactly.
/// </summary>
public sealed class FaultRule
{
    private static readonly string[] Kinds = ["429", "500", "slow", "drop", "malformed", "unparsable", "empty"];

    private readonly (long From, long To)[] _ordinals;

    private FaultRule(string text, FaultKind kind, int firstAttempts, (long, long)[] ordinals)
    {
        Text = text;
        Kind = kind;
        FirstAttempts = firstAttempts;
        _ordinals = ordinals;
    }

    /// <summary>The rule as written.</summary>
    public string Text { get; }

    /// <summary>What it does.</summary>
    public FaultKind Kind { get; }

    /// <summary>The kind's name as the rule and the statistics write it (<c>429</c>, <c>slow</c>, ...).</summary>
    public string KindName => Kinds[(int)Kind];

    /// <summary>429: the Retry-After header's seconds.</summary>
    public int RetryAfterSeconds { get; private init; } = 1;

    /// <summary>slow: how long the answer is held back.</summary>
    public TimeSpan Delay { get; private init; }

    /// <summary>drop: bytes of the response body written before the connection is aborted; null is half of it.</summary>
    public int? DropAfterBytes { get; private init; }

    /// <summary>unparsable: the content that replaces the answer.</summary>
    public string ReplacementText { get; private init; } = "I cannot tell.";

    /// <summary>first:K: the attempts of each body it fires on (0 when the rule selects by ordinal).</summary>
    public int FirstAttempts { get; }

    /// <summary>Whether the rule fires on the generation request with ordinal <paramref name="ordinal"/> (from 1) that is attempt <paramref name="attempt"/> (from 1) of its body.</summary>
    public bool Matches(long ordinal, long attempt) =>
        FirstAttempts > 0 ? attempt <= FirstAttempts : _ordinals.Any(r => ordinal >= r.From && ordinal <= r.To);

    /// <inheritdoc />
    public override string ToString() => Text;

    /// <summary>Reads <paramref name="text"/>; MC2069 naming the rule and what is wrong with it.</summary>
    public static FaultRule Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        // The last '@': an unparsable rule's text may hold one.
        var at = text.LastIndexOf('@');
        if (at <= 0 || at == text.Length - 1)
        {
            throw Invalid(text, "write KIND[:VALUE]@WHEN, e.g. 429:2@first:1, slow:3s@request:2, drop@always");
        }

        var (kindName, value) = Split(text[..at]);
        var kindIndex = Array.IndexOf(Kinds, kindName);
        if (kindIndex < 0)
        {
            throw Invalid(text, $"the kind '{kindName}' is not one of {string.Join(", ", Kinds)}");
        }

        var kind = (FaultKind)kindIndex;
        var (firstAttempts, ordinals) = When(text, text[(at + 1)..]);
        return kind switch
        {
            FaultKind.RateLimited => new FaultRule(text, kind, firstAttempts, ordinals) { RetryAfterSeconds = value is null ? 1 : Whole(text, value, "Retry-After seconds", 0) },
            FaultKind.Slow => new FaultRule(text, kind, firstAttempts, ordinals) { Delay = value is null ? throw Invalid(text, "slow needs a delay, e.g. slow:250ms or slow:3s") : Duration(text, value) },
            FaultKind.Drop => new FaultRule(text, kind, firstAttempts, ordinals) { DropAfterBytes = value is null ? null : Whole(text, value, "bytes before the drop", 0) },
            FaultKind.Unparsable => new FaultRule(text, kind, firstAttempts, ordinals) { ReplacementText = value ?? "I cannot tell." },
            _ when value is not null => throw Invalid(text, $"{kindName} takes no value"),
            _ => new FaultRule(text, kind, firstAttempts, ordinals),
        };
    }

    private static (string Kind, string? Value) Split(string kind)
    {
        var colon = kind.IndexOf(':', StringComparison.Ordinal);
        return colon < 0 ? (kind, null) : (kind[..colon], kind[(colon + 1)..]);
    }

    private static (int FirstAttempts, (long, long)[] Ordinals) When(string text, string when)
    {
        if (when == "always")
        {
            return (0, [(1, long.MaxValue)]);
        }

        var (name, value) = Split(when);
        if (name == "first" && value is not null)
        {
            return (Whole(text, value, "attempts of first:K", 1), []);
        }

        if (name != "request" || string.IsNullOrEmpty(value))
        {
            throw Invalid(text, $"'{when}' is not first:K, request:LIST or always");
        }

        var ranges = new List<(long, long)>();
        foreach (var item in value.Split(','))
        {
            var dash = item.IndexOf('-', StringComparison.Ordinal);
            var from = Whole(text, dash < 0 ? item : item[..dash], "request ordinal", 1);
            var to = dash < 0 ? from : dash == item.Length - 1 ? long.MaxValue : Whole(text, item[(dash + 1)..], "request ordinal", 1);
            if (to < from)
            {
                throw Invalid(text, $"the range '{item}' ends before it starts");
            }

            ranges.Add((from, to));
        }

        return (0, [.. ranges]);
    }

    private static int Whole(string text, string value, string what, int minimum) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var number) && number >= minimum
            ? number
            : throw Invalid(text, $"the {what} must be a whole number of at least {minimum}, not '{value}'");

    private static TimeSpan Duration(string text, string value)
    {
        var (digits, scale) = value.EndsWith("ms", StringComparison.Ordinal) ? (value[..^2], 1.0) : value.EndsWith('s') ? (value[..^1], 1000.0) : (value, 0.0);
        return scale > 0 && double.TryParse(digits, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var amount) && amount * scale <= int.MaxValue
            ? TimeSpan.FromMilliseconds(amount * scale)
            : throw Invalid(text, $"the delay '{value}' is not a number of milliseconds or seconds (250ms, 3s)");
    }

    private static CompressionException Invalid(string text, string why) =>
        CompressionException.Error(DiagnosticCodes.ServeFaultRuleInvalid, $"Fault rule '{text}': {why}.");
}
