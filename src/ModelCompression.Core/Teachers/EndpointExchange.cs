using ModelCompression.Diagnostics;
using ModelCompression.Generation;

namespace ModelCompression.Teachers;

/// <summary>
/// The sending half every endpoint teacher shares (<see cref="EndpointTeacher"/> for answers, <see cref="EndpointLabeler"/>
/// for classes): the answer cache is read first, offline replay stops with the caller's list of what is missing, the
/// missing requests are sent up to request_batch_size at once with the client's retries while the budget lasts, every
/// reply is cached the moment it arrives, and the usage is counted. What the replies mean is the caller's to judge.
/// </summary>
internal sealed class EndpointExchange
{
    private readonly Run _run;
    private readonly EndpointCounters _counters;

    private EndpointExchange(IReadOnlyDictionary<string, EndpointReply> replies, Run run, EndpointCounters counters, IReadOnlyList<Diagnostic> warnings)
    {
        Replies = replies;
        _run = run;
        _counters = counters;
        Warnings = warnings;
    }

    /// <summary>Every reply there is, cached or new, by request key.</summary>
    public IReadOnlyDictionary<string, EndpointReply> Replies { get; }

    /// <summary>The requests of this run that got no usable reply, by key, with the reason ("http_429", "timeout", …).</summary>
    public IReadOnlyDictionary<string, string> Failures => _run.Failures;

    /// <summary>Damaged cache entries (MC2093), each treated as missing.</summary>
    public IReadOnlyList<Diagnostic> Warnings { get; }

    /// <summary>
    /// Gets a reply for each of <paramref name="requests"/> (distinct keys) from the cache in <paramref name="cacheFolder"/>
    /// or the endpoint. Offline with requests missing, throws <paramref name="missingOffline"/>'s error (given the missing
    /// requests), and sends nothing. MC2090 when the key's variable is unset or the endpoint refuses the key.
    /// </summary>
    public static async Task<EndpointExchange> RunAsync(
        IReadOnlyList<EndpointRequest> requests,
        EndpointTeacherOptions options,
        string cacheFolder,
        RetryWait wait,
        Func<IReadOnlyList<EndpointRequest>, CompressionException> missingOffline,
        IProgress<(int Done, int Total)>? progress,
        CancellationToken cancellationToken)
    {
        var cache = new EndpointAnswerCache(cacheFolder);
        var replies = new Dictionary<string, EndpointReply>(StringComparer.Ordinal);
        var warnings = new List<Diagnostic>();
        foreach (var request in requests)
        {
            if (cache.TryRead(request, out var warning) is { } reply)
            {
                replies[request.Key] = reply;
            }
            else if (warning is not null)
            {
                warnings.Add(warning);
            }
        }

        var cacheHits = replies.Count;
        var missing = requests.Where(r => !replies.ContainsKey(r.Key)).ToList();
        if (options.Offline && missing.Count > 0)
        {
            throw missingOffline(missing);
        }

        var run = new Run(requests.Count, cacheHits, progress);
        run.Spend(replies.Values);
        var counters = new EndpointCounters();
        if (missing.Count > 0)
        {
            EndpointClient.CheckKey(options);
            var client = new EndpointClient(options, wait, counters);
            progress?.Report((cacheHits, requests.Count));
            await Parallel.ForEachAsync(
                run.WithinBudget(missing, options),
                new ParallelOptions { MaxDegreeOfParallelism = options.RequestBatchSize, CancellationToken = cancellationToken },
                async (request, token) =>
                {
                    var outcome = await client.SendAsync(request, token).ConfigureAwait(false);
                    if (outcome.Reply is { } reply)
                    {
                        // Stored before anything else: a run killed after this line does not send it again.
                        cache.Write(request, reply);
                    }

                    run.Finish(request, outcome);
                }).ConfigureAwait(false);
        }
        else
        {
            progress?.Report((requests.Count, requests.Count));
        }

        foreach (var (key, reply) in run.NewReplies)
        {
            replies[key] = reply;
        }

        return new EndpointExchange(replies, run, counters, warnings);
    }

    /// <summary>
    /// The usage of the exchange, with the caller's judgement of every asked answer: <paramref name="judged"/> holds each
    /// answer's drop reason (null: usable); answers never asked (<see cref="TeacherAnswerDropReason.NotAsked"/>) are not decided.
    /// </summary>
    public EndpointUsage Usage(IEnumerable<TeacherAnswerDropReason?> judged, double seconds)
    {
        var decided = judged.Where(j => j != TeacherAnswerDropReason.NotAsked).ToList();
        var replies = Replies.Values.ToList();
        return new EndpointUsage
        {
            Requests = _run.Total,
            CacheHits = _run.CacheHits,
            Sent = _run.Sent,
            Attempts = _counters.Attempts,
            Retries = _counters.Retries,
            Failures = _run.Failures.Values.GroupBy(f => f, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal),
            NotAsked = _run.NotAsked,
            StoppedOnBudget = _run.NotAsked > 0,
            PromptTokens = replies.Sum(r => r.PromptTokens),
            CompletionTokens = replies.Sum(r => r.CompletionTokens),
            SentPromptTokens = _run.SentPromptTokens,
            SentCompletionTokens = _run.SentCompletionTokens,
            Answers = decided.Count,
            UsableAnswers = decided.Count(j => j is null),
            Unusable = decided.OfType<TeacherAnswerDropReason>().GroupBy(TeacherAnswers.ReasonName, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal),
            Seconds = seconds,
        };
    }

    /// <summary>One run's sending: the budget, progress, new replies and failures (shared by the concurrent requests).</summary>
    private sealed class Run(int total, int cacheHits, IProgress<(int Done, int Total)>? progress)
    {
        private readonly Lock _gate = new();
        private readonly Dictionary<string, EndpointReply> _newReplies = new(StringComparer.Ordinal);
        private readonly Dictionary<string, string> _failures = new(StringComparer.Ordinal);
        private int _done = cacheHits;
        private int _spentRequests;
        private long _spentTokens;

        public int Total => total;

        public int CacheHits { get; } = cacheHits;

        public int Sent { get; private set; }

        public int NotAsked { get; private set; }

        public long SentPromptTokens { get; private set; }

        public long SentCompletionTokens { get; private set; }

        public IReadOnlyDictionary<string, EndpointReply> NewReplies => _newReplies;

        public IReadOnlyDictionary<string, string> Failures => _failures;

        /// <summary>Cached replies cost what they cost when they were sent: they count against the budget.</summary>
        public void Spend(IEnumerable<EndpointReply> cached)
        {
            foreach (var reply in cached)
            {
                _spentRequests++;
                _spentTokens += reply.TotalTokens;
            }
        }

        /// <summary>
        /// The missing requests, in order, while the budget lasts. Parallel.ForEachAsync takes items one at a time from
        /// this enumerator, so the requests a request budget lets through are always the first ones.
        /// </summary>
        public IEnumerable<EndpointRequest> WithinBudget(IReadOnlyList<EndpointRequest> missing, EndpointTeacherOptions options)
        {
            for (var i = 0; i < missing.Count; i++)
            {
                bool stop;
                lock (_gate)
                {
                    stop = (options.BudgetRequests > 0 && _spentRequests >= options.BudgetRequests) || (options.BudgetTokens > 0 && _spentTokens >= options.BudgetTokens);
                    if (stop)
                    {
                        NotAsked = missing.Count - i;
                        _done += NotAsked;
                        progress?.Report((_done, total));
                    }
                    else
                    {
                        _spentRequests++;
                        Sent++;
                    }
                }

                if (stop)
                {
                    yield break;
                }

                yield return missing[i];
            }
        }

        public void Finish(EndpointRequest request, EndpointOutcome outcome)
        {
            lock (_gate)
            {
                if (outcome.Reply is { } reply)
                {
                    _newReplies[request.Key] = reply;
                    _spentTokens += reply.TotalTokens;
                    SentPromptTokens += reply.PromptTokens;
                    SentCompletionTokens += reply.CompletionTokens;
                }
                else
                {
                    _failures[request.Key] = outcome.Failure!;
                }

                _done++;
                progress?.Report((_done, total));
            }
        }
    }
}
