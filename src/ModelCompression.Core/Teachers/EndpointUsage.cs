using System.Globalization;
using ModelCompression.Diagnostics;
using ModelCompression.Generation;

namespace ModelCompression.Teachers;

/// <summary>
/// What answering a pool through the endpoint took: requests, cache hits, attempts, retries and failures, tokens, the
/// budget, and the share of usable answers.
/// </summary>
public sealed record EndpointUsage
{
    /// <summary>Distinct requests the prompts need (identical requests are sent once).</summary>
    public int Requests { get; init; }

    /// <summary>Requests answered from the cache.</summary>
    public int CacheHits { get; init; }

    /// <summary>Requests sent in this run (a request and its retries count once).</summary>
    public int Sent { get; init; }

    /// <summary>HTTP attempts in this run, retries included.</summary>
    public int Attempts { get; init; }

    /// <summary>Retries by cause: the HTTP status ("429", "500", …), "timeout", "connection" or "malformed_reply".</summary>
    public IReadOnlyDictionary<string, int> Retries { get; init; } = new Dictionary<string, int>();

    /// <summary>Requests of this run that got no usable reply, by reason: "http_NNN" (after the retries), "timeout", "connection", "malformed_reply".</summary>
    public IReadOnlyDictionary<string, int> Failures { get; init; } = new Dictionary<string, int>();

    /// <summary>Requests not sent because the budget ran out.</summary>
    public int NotAsked { get; init; }

    /// <summary>Whether the budget stopped the run (no new request was sent past it).</summary>
    public bool StoppedOnBudget { get; init; }

    /// <summary>Prompt tokens of every reply used (cached and new), from the replies' usage.</summary>
    public long PromptTokens { get; init; }

    /// <summary>Completion tokens of every reply used (cached and new).</summary>
    public long CompletionTokens { get; init; }

    /// <summary>Prompt tokens of the replies received in this run.</summary>
    public long SentPromptTokens { get; init; }

    /// <summary>Completion tokens of the replies received in this run.</summary>
    public long SentCompletionTokens { get; init; }

    /// <summary>Answers decided: the asked answers (requests times n) of every request that was answered or failed; not those never asked.</summary>
    public int Answers { get; init; }

    /// <summary>Of <see cref="Answers"/>, those that came back usable: a reply, not cut, the JSON asked for with chain of thought, and accepted by the task's parser.</summary>
    public int UsableAnswers { get; init; }

    /// <summary>Why the other answers were not usable, by the teacher-answer drop reason's name (request_failed, unfinished, not_answer_json, no_final_number, …).</summary>
    public IReadOnlyDictionary<string, int> Unusable { get; init; } = new Dictionary<string, int>();

    /// <summary>Wall time of the run, in seconds.</summary>
    public double Seconds { get; init; }

    /// <summary>Retries, all causes together.</summary>
    public int RetryCount => Retries.Values.Sum();

    /// <summary>Failed requests, all reasons together.</summary>
    public int FailureCount => Failures.Values.Sum();

    /// <summary><see cref="UsableAnswers"/> over <see cref="Answers"/>; 1 when nothing was decided.</summary>
    public double SuccessRatio => Answers == 0 ? 1 : UsableAnswers / (double)Answers;

    /// <summary>One line for logs and reports: requests, hits, attempts, retries, failures, tokens, ratio.</summary>
    public string Describe()
    {
        var text = Invariant($"{Requests} requests: {CacheHits} from the cache, {Sent} sent ({Attempts} attempts, {RetryCount} retries{Detail(Retries)}), {FailureCount} failed{Detail(Failures)}");
        if (StoppedOnBudget)
        {
            text += Invariant($", {NotAsked} not asked (budget)");
        }

        return text + Invariant($"; {PromptTokens} prompt + {CompletionTokens} completion tokens ({SentPromptTokens} + {SentCompletionTokens} in this run); {UsableAnswers} of {Answers} answers usable ({SuccessRatio:0.###}){Detail(Unusable)}.");
    }

    /// <summary>
    /// The counts as report details, each key prefixed with <paramref name="prefix"/>: requests, cache_hits, sent, attempts,
    /// retries, failures, not_asked, stopped_on_budget, prompt_tokens, completion_tokens, sent_prompt_tokens,
    /// sent_completion_tokens, success_ratio, then retries.CAUSE, failures.REASON and unusable.REASON (not_a_label, …).
    /// </summary>
    public IReadOnlyDictionary<string, string> Counts(string prefix = "")
    {
        ArgumentNullException.ThrowIfNull(prefix);
        var invariant = CultureInfo.InvariantCulture;
        var counts = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            [prefix + "requests"] = Requests.ToString(invariant),
            [prefix + "cache_hits"] = CacheHits.ToString(invariant),
            [prefix + "sent"] = Sent.ToString(invariant),
            [prefix + "attempts"] = Attempts.ToString(invariant),
            [prefix + "retries"] = RetryCount.ToString(invariant),
            [prefix + "failures"] = FailureCount.ToString(invariant),
            [prefix + "not_asked"] = NotAsked.ToString(invariant),
            [prefix + "stopped_on_budget"] = StoppedOnBudget ? "true" : "false",
            [prefix + "prompt_tokens"] = PromptTokens.ToString(invariant),
            [prefix + "completion_tokens"] = CompletionTokens.ToString(invariant),
            [prefix + "sent_prompt_tokens"] = SentPromptTokens.ToString(invariant),
            [prefix + "sent_completion_tokens"] = SentCompletionTokens.ToString(invariant),
            [prefix + "success_ratio"] = SuccessRatio.ToString("0.####", invariant),
        };
        foreach (var (cause, count) in Retries)
        {
            counts[$"{prefix}retries.{cause}"] = count.ToString(invariant);
        }

        foreach (var (reason, count) in Failures)
        {
            counts[$"{prefix}failures.{reason}"] = count.ToString(invariant);
        }

        foreach (var (reason, count) in Unusable)
        {
            counts[$"{prefix}unusable.{reason}"] = count.ToString(invariant);
        }

        return counts;
    }

    /// <summary>MC2092 when the usable share is below <paramref name="minSuccessRatio"/> (and something was decided), with the counts.</summary>
    internal CompressionException? BelowRatio(double minSuccessRatio)
    {
        if (Answers == 0 || SuccessRatio >= minSuccessRatio)
        {
            return null;
        }

        return CompressionException.Error(
            DiagnosticCodes.EndpointSuccessRatioTooLow,
            Invariant($"Only {UsableAnswers} of {Answers} endpoint teacher answers were usable ({SuccessRatio:0.###}), below min_success_ratio {minSuccessRatio:0.###}. {Describe()} The answers received are cached: a new run sends only the failed requests."));
    }

    private static string Detail(IReadOnlyDictionary<string, int> counts) =>
        counts.Count == 0 ? string.Empty : " [" + string.Join(", ", counts.Where(c => c.Value > 0).OrderBy(c => c.Key, StringComparer.Ordinal).Select(c => Invariant($"{c.Key} {c.Value}"))) + "]";

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}

/// <summary>One answered turn of a kept answer: what the endpoint replied, for token-level distillation and reports.</summary>
/// <param name="Key">The request's cache key.</param>
/// <param name="RawText">The reply's content as the server gave it (with chain of thought, the whole JSON).</param>
/// <param name="Reason">With chain of thought, the reply's <c>reason</c>; else null.</param>
/// <param name="Reasoning">The server's own <c>reasoning_content</c>, when it gave one; else null.</param>
/// <param name="FinishReason">The server's finish_reason.</param>
/// <param name="Logprobs">The answer tokens with their log-probabilities and alternatives, when top_logprobs asked for them.</param>
/// <param name="Message">The index of the message the turn's answer is in the kept record (the answer slot).</param>
public sealed record EndpointTurn(string Key, string RawText, string? Reason, string? Reasoning, string? FinishReason, IReadOnlyList<TokenLogprob>? Logprobs, int Message);

/// <summary>What answering a pool through an endpoint gave.</summary>
/// <param name="Answers">The kept and dropped answers, as a local teacher gives them (so the generate stage and distillation take them alike).</param>
/// <param name="Turns">For each kept answer (same order as <c>Answers.Answers</c>), its answered turns in conversation order (one for single-turn tasks).</param>
/// <param name="Usage">Requests, retries, failures, tokens, budget and success ratio.</param>
/// <param name="Warnings">Damaged cache entries (MC2093), each treated as missing.</param>
public sealed record EndpointTeacherResult(TeacherAnswerSet Answers, IReadOnlyList<IReadOnlyList<EndpointTurn>> Turns, EndpointUsage Usage, IReadOnlyList<Diagnostic> Warnings);
