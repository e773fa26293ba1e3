using System.Diagnostics;
using System.Globalization;
using ModelCompression.Diagnostics;
using ModelCompression.Generation;
using ModelCompression.Text;

namespace ModelCompression.Teachers;

/// <summary>One text for the endpoint to classify, and where it is (for the offline error's list of what is missing).</summary>
/// <param name="Text">The text as its file holds it.</param>
/// <param name="File">Its file.</param>
/// <param name="Line">Its line in the file, when the format has lines.</param>
public sealed record TextToLabel(string Text, string File, int? Line)
{
    /// <summary>"file:line", or the file alone.</summary>
    public string Location => Line is { } line ? string.Create(CultureInfo.InvariantCulture, $"{File}:{line}") : File;
}

/// <summary>What the endpoint said of each text: its soft targets as logits, its parsed label, and what it cost.</summary>
/// <param name="Logits">Row-major, <paramref name="Classes"/> per text: the log of each text's target distribution.</param>
/// <param name="Labels">The class each reply named, or -1 for a reply that named none (failed, cut, empty, not a label, not asked).</param>
/// <param name="Classes">Classes per text.</param>
/// <param name="Usage">Requests, cache hits, retries, failures, tokens, and the unusable replies by reason (not_a_label, …).</param>
/// <param name="Warnings">Damaged cache entries (MC2093), each treated as missing.</param>
public sealed record EndpointLabels(float[] Logits, int[] Labels, int Classes, EndpointUsage Usage, IReadOnlyList<Diagnostic> Warnings);

/// <summary>
/// A classifier behind an OpenAI-compatible endpoint: one request per text asks the model for one of the class names,
/// and its reply becomes the text's soft target, which a student learns as it learns an ONNX teacher's logits. The
/// requests go through the endpoint teacher's machinery (<see cref="EndpointExchange"/>: the answer cache, offline
/// replay, request_batch_size at once, retries, budgets, usage), so a second run asks nothing.
/// <para>
/// <b>The request.</b> The user message is the template (<see cref="EndpointTeacherOptions.PromptTemplate"/> or
/// <see cref="DefaultTemplate"/>) with <see cref="LabelsPlaceholder"/> replaced by the class names, comma-separated, and
/// <see cref="TeacherPrompts.ContentPlaceholder"/> by the text, cut to its first <see cref="MaxContentCharacters"/>
/// characters (never half a surrogate pair) with "…" appended when it was cut. system_prompt, when set, goes first.
/// max_tokens defaults to <see cref="DefaultMaxTokens"/>, enough for a label; the other sampling settings are the
/// teacher mapping's.
/// </para>
/// <para>
/// <b>The label.</b> The class whose name equals the trimmed reply, ignoring case and one trailing period; any other reply
/// is not_a_label. A reply cut by max_tokens is unfinished; an empty one empty.
/// </para>
/// <para>
/// <b>The soft target.</b> With top_logprobs: the first answer token and its alternatives (the chosen token counts when
/// the server left it out of them) each add their probability to the one class whose name its trimmed, non-empty text
/// starts (ignoring case); a token that starts no name, or several, adds nothing. The sums are normalised over the
/// classes, a class with no mass gets <see cref="MinimumProbability"/>, and the whole is normalised again. Without
/// top_logprobs (or when no alternative starts a name) the parsed label is smoothed: 1 - <see cref="LabelSmoothing"/> on
/// it plus <see cref="LabelSmoothing"/> spread evenly over all classes. A text without a usable reply gets the uniform
/// distribution (it teaches nothing) and is counted; below min_success_ratio the run fails. The logits are the natural
/// log of the target, so the student's softmax at temperature 1 is the target itself.
/// </para>
/// </summary>
public static class EndpointLabeler
{
    /// <summary>Where a template puts the class names, comma-separated.</summary>
    public const string LabelsPlaceholder = "{labels}";

    /// <summary>The user message when the recipe gives no prompt_template.</summary>
    public const string DefaultTemplate = "Classify the text as exactly one of: {labels}. Reply with the label only.\n\nText: {content}";

    /// <summary>The most characters of a text sent (about a thousand tokens of English): enough to classify, bounded in cost.</summary>
    public const int MaxContentCharacters = 4000;

    /// <summary>max_tokens when the teacher mapping gives none: a class name, with room for a stray space or period.</summary>
    public const int DefaultMaxTokens = 16;

    /// <summary>The share of a parsed label's target spread evenly over every class when no top_logprobs shape it.</summary>
    public const double LabelSmoothing = 0.1;

    /// <summary>The probability a class gets when no alternative token of the reply gave it any (the target is renormalised after).</summary>
    public const double MinimumProbability = 1e-4;

    /// <summary>Synchronous <see cref="LabelAsync(IReadOnlyList{TextToLabel}, IReadOnlyList{string}, EndpointTeacherOptions, string, RetryWait, IProgress{ValueTuple{int, int}}?, CancellationToken)"/> with real waits between retries.</summary>
    public static EndpointLabels Label(
        IReadOnlyList<TextToLabel> texts,
        IReadOnlyList<string> classes,
        EndpointTeacherOptions options,
        string cacheFolder,
        IProgress<(int Done, int Total)>? progress = null,
        CancellationToken cancellationToken = default) =>
        LabelAsync(texts, classes, options, cacheFolder, (delay, token) => Task.Delay(delay, token), progress, cancellationToken).GetAwaiter().GetResult();

    /// <summary>
    /// Asks the endpoint <paramref name="options"/> describe which of <paramref name="classes"/> each text is, caching in
    /// <paramref name="cacheFolder"/>.
    /// </summary>
    /// <exception cref="CompressionException">
    /// MC2089 for options that do not apply to classification; MC2099 for class names replies cannot tell apart; MC2091
    /// offline when the cache lacks requests; MC2090 when the key's variable is unset or the endpoint refuses it; MC2092
    /// when the usable share is below min_success_ratio (after every reply received is cached).
    /// </exception>
    public static async Task<EndpointLabels> LabelAsync(
        IReadOnlyList<TextToLabel> texts,
        IReadOnlyList<string> classes,
        EndpointTeacherOptions options,
        string cacheFolder,
        RetryWait wait,
        IProgress<(int Done, int Total)>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(texts);
        ArgumentNullException.ThrowIfNull(cacheFolder);
        ArgumentNullException.ThrowIfNull(wait);
        var clock = Stopwatch.StartNew();
        var perText = Plan(texts, classes, options);
        var requests = perText.DistinctBy(r => r.Key).ToList();
        var exchange = await EndpointExchange.RunAsync(
            requests, options, cacheFolder, wait, missing => MissingOffline(texts, perText, missing, requests.Count, new EndpointAnswerCache(cacheFolder).Folder), progress, cancellationToken).ConfigureAwait(false);

        var width = classes.Count;
        var logits = new float[texts.Count * width];
        var labels = new int[texts.Count];
        var judged = new Dictionary<string, TeacherAnswerDropReason?>(StringComparer.Ordinal);
        for (var i = 0; i < texts.Count; i++)
        {
            var key = perText[i].Key;
            double[] target;
            TeacherAnswerDropReason? drop;
            if (exchange.Replies.TryGetValue(key, out var reply))
            {
                (drop, target, labels[i]) = Judge(reply.Choices[0], classes, options.TopLogprobs > 0);
            }
            else
            {
                drop = exchange.Failures.ContainsKey(key) ? TeacherAnswerDropReason.RequestFailed : TeacherAnswerDropReason.NotAsked;
                (target, labels[i]) = (Uniform(width), -1);
            }

            judged[key] = drop;
            for (var c = 0; c < width; c++)
            {
                logits[(i * width) + c] = (float)Math.Log(target[c]);
            }
        }

        var usage = exchange.Usage(judged.Values, clock.Elapsed.TotalSeconds);
        if (usage.BelowRatio(options.MinSuccessRatio) is { } tooFew)
        {
            throw tooFew;
        }

        return new EndpointLabels(logits, labels, width, usage, exchange.Warnings);
    }

    /// <summary>The distinct requests <paramref name="texts"/> need, in the order of first use (what the answer cache is keyed by).</summary>
    public static IReadOnlyList<EndpointRequest> Requests(IReadOnlyList<TextToLabel> texts, IReadOnlyList<string> classes, EndpointTeacherOptions options) =>
        [.. Plan(texts, classes, options).DistinctBy(r => r.Key)];

    /// <summary>
    /// What the requests have in common (model, messages around the text, sampling settings): the body of the request
    /// for a text that is the content placeholder itself. Two recipes whose labelers give the same for every text
    /// have the same settings key.
    /// </summary>
    public static string SettingsKey(IReadOnlyList<string> classes, EndpointTeacherOptions options) =>
        Request(TeacherPrompts.ContentPlaceholder, classes, options, cut: false).Key;

    /// <summary>The text as sent: its first <see cref="MaxContentCharacters"/> characters, never half a surrogate pair, with "…" when cut.</summary>
    public static string Content(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length <= MaxContentCharacters)
        {
            return text;
        }

        var cut = char.IsHighSurrogate(text[MaxContentCharacters - 1]) ? MaxContentCharacters - 1 : MaxContentCharacters;
        return text[..cut] + "…";
    }

    /// <summary>
    /// The class <paramref name="reply"/> names: the one whose name equals the trimmed reply ignoring case, with one
    /// trailing period allowed; null for any other reply.
    /// </summary>
    public static int? ParseLabel(string reply, IReadOnlyList<string> classes)
    {
        ArgumentNullException.ThrowIfNull(reply);
        ArgumentNullException.ThrowIfNull(classes);
        var text = reply.Trim();
        var withoutPeriod = text.EndsWith('.') ? text[..^1].TrimEnd() : text;
        for (var c = 0; c < classes.Count; c++)
        {
            if (string.Equals(classes[c], text, StringComparison.OrdinalIgnoreCase) || string.Equals(classes[c], withoutPeriod, StringComparison.OrdinalIgnoreCase))
            {
                return c;
            }
        }

        return null;
    }

    /// <summary>
    /// The soft target of a reply that named <paramref name="label"/>: from <paramref name="logprobs"/>' first token and its
    /// alternatives when they give any class mass, else the label smoothed (see the class remarks).
    /// </summary>
    public static double[] SoftTarget(int label, IReadOnlyList<TokenLogprob>? logprobs, IReadOnlyList<string> classes)
    {
        ArgumentNullException.ThrowIfNull(classes);
        ArgumentOutOfRangeException.ThrowIfNegative(label);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(label, classes.Count);
        var mass = new double[classes.Count];
        if (logprobs is [var first, ..])
        {
            var alternatives = first.Top.Select(a => (a.Token, a.Logprob)).ToList();
            if (!alternatives.Any(a => a.Token == first.Token))
            {
                alternatives.Add((first.Token, first.Logprob));
            }

            foreach (var (token, logprob) in alternatives)
            {
                if (ClassStartedBy(token, classes) is { } c)
                {
                    mass[c] += Math.Exp(logprob);
                }
            }
        }

        var total = mass.Sum();
        if (!(total > 0))
        {
            var smoothed = Enumerable.Repeat(LabelSmoothing / classes.Count, classes.Count).ToArray();
            smoothed[label] += 1 - LabelSmoothing;
            return smoothed;
        }

        for (var c = 0; c < mass.Length; c++)
        {
            mass[c] = Math.Max(mass[c] / total, MinimumProbability);
        }

        var floored = mass.Sum();
        return [.. mass.Select(m => m / floored)];
    }

    /// <summary>
    /// What is wrong with class names a reply must name (empty after trimming; two equal ignoring case: a reply could not
    /// tell them apart), as one MC2099 error; null when nothing.
    /// </summary>
    public static CompressionException? CheckClasses(IReadOnlyList<string> classes, string? file = null)
    {
        ArgumentNullException.ThrowIfNull(classes);
        var problems = new List<string>();
        if (classes.Count < 2)
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"there are {classes.Count} classes; a classifier needs at least 2"));
        }

        problems.AddRange(classes.Where(c => c.Trim().Length == 0 || c.Trim() != c).Select(c => $"'{c}' is empty or has white space around it, which a trimmed reply never matches"));
        problems.AddRange(classes.GroupBy(c => c, StringComparer.OrdinalIgnoreCase).Where(g => g.Count() > 1).Select(g => $"{string.Join(" and ", g.Select(c => $"'{c}'"))} differ only in case, and a reply is matched ignoring case"));
        return problems.Count == 0
            ? null
            : CompressionException.Error(DiagnosticCodes.EndpointClassNamesAmbiguous, $"The endpoint teacher names classes by their names, and {string.Join("; ", problems)}. Give distinct class names (data: classes: [...]).", file);
    }

    /// <summary>
    /// The teacher mapping's settings that mean nothing for classification (samples_per_prompt above 1, chain_of_thought,
    /// shares_tokenizer, keep_duplicates, a prompt_template without {labels}), each with its key.
    /// </summary>
    public static IEnumerable<(string Key, string Problem)> Problems(EndpointTeacherOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.SamplesPerPrompt > 1)
        {
            yield return ("samples_per_prompt", "a classifying endpoint teacher is asked once per text; its top_logprobs give the spread of its belief (set top_logprobs instead).");
        }

        if (options.ChainOfThought)
        {
            yield return ("chain_of_thought", "a classifying endpoint teacher replies with the label alone, which is what is parsed; remove chain_of_thought.");
        }

        if (options.SharesTokenizer)
        {
            yield return ("shares_tokenizer", "a classifier's student learns class probabilities, not tokens; remove shares_tokenizer.");
        }

        if (options.KeepDuplicates)
        {
            yield return ("keep_duplicates", "a classifying endpoint teacher gives one answer per text; remove keep_duplicates.");
        }

        if (options.PromptTemplate is { } template && !template.Contains(LabelsPlaceholder, StringComparison.Ordinal))
        {
            yield return ("prompt_template", $"a classifying endpoint teacher's prompt_template must contain {LabelsPlaceholder}, where the class names go, as well as {TeacherPrompts.ContentPlaceholder}.");
        }
    }

    /// <summary>One request per text, in text order (repeated texts repeat their request).</summary>
    private static List<EndpointRequest> Plan(IReadOnlyList<TextToLabel> texts, IReadOnlyList<string> classes, EndpointTeacherOptions options)
    {
        ArgumentNullException.ThrowIfNull(texts);
        ArgumentNullException.ThrowIfNull(classes);
        ArgumentNullException.ThrowIfNull(options);
        EndpointTeacher.ThrowIfInvalid(options);
        var problems = Problems(options).ToList();
        if (problems.Count > 0)
        {
            throw CompressionException.Error(DiagnosticCodes.EndpointTeacherOptionsInvalid, "The endpoint teacher's options: " + string.Join(" ", problems.Select(p => $"{p.Key}: {p.Problem}")));
        }

        if (CheckClasses(classes) is { } ambiguous)
        {
            throw ambiguous;
        }

        return [.. texts.Select(t => Request(t.Text, classes, options, cut: true))];
    }

    private static EndpointRequest Request(string text, IReadOnlyList<string> classes, EndpointTeacherOptions options, bool cut)
    {
        var template = options.PromptTemplate ?? DefaultTemplate;
        var content = template
            .Replace(LabelsPlaceholder, string.Join(", ", classes), StringComparison.Ordinal)
            .Replace(TeacherPrompts.ContentPlaceholder, cut ? Content(text) : text, StringComparison.Ordinal);
        List<ChatMessage> messages = options.SystemPrompt is { } system
            ? [new ChatMessage(ChatRole.System, system), new ChatMessage(ChatRole.User, content)]
            : [new ChatMessage(ChatRole.User, content)];
        return EndpointRequest.Create(messages, options, options.MaxTokens > 0 ? options.MaxTokens : DefaultMaxTokens);
    }

    /// <summary>A reply's drop reason (null: usable), its target and its label (-1 when unusable).</summary>
    private static (TeacherAnswerDropReason? Drop, double[] Target, int Label) Judge(EndpointChoice choice, IReadOnlyList<string> classes, bool useLogprobs)
    {
        var uniform = Uniform(classes.Count);
        if (choice.WasCut)
        {
            return (TeacherAnswerDropReason.Unfinished, uniform, -1);
        }

        if (choice.Text.Trim().Length == 0)
        {
            return (TeacherAnswerDropReason.Empty, uniform, -1);
        }

        return ParseLabel(choice.Text, classes) is { } label
            ? (null, SoftTarget(label, useLogprobs ? choice.Logprobs : null, classes), label)
            : (TeacherAnswerDropReason.NotALabel, uniform, -1);
    }

    /// <summary>The one class whose name the token's trimmed text starts (ignoring case), or null (none, several, or an empty token).</summary>
    private static int? ClassStartedBy(string token, IReadOnlyList<string> classes)
    {
        var text = token.Trim();
        if (text.Length == 0)
        {
            return null;
        }

        int? found = null;
        for (var c = 0; c < classes.Count; c++)
        {
            if (classes[c].StartsWith(text, StringComparison.OrdinalIgnoreCase))
            {
                if (found is not null)
                {
                    return null;
                }

                found = c;
            }
        }

        return found;
    }

    private static double[] Uniform(int classes) => Enumerable.Repeat(1.0 / classes, classes).ToArray();

    private static CompressionException MissingOffline(IReadOnlyList<TextToLabel> texts, List<EndpointRequest> perText, IReadOnlyList<EndpointRequest> missing, int total, string folder)
    {
        var missingKeys = missing.Select(r => r.Key).ToHashSet(StringComparer.Ordinal);
        var shown = new List<string>();
        TextToLabel? first = null;
        for (var i = 0; i < texts.Count && shown.Count < EndpointTeacher.MissingShown; i++)
        {
            if (missingKeys.Remove(perText[i].Key))
            {
                first ??= texts[i];
                var start = texts[i].Text.Length > 40 ? texts[i].Text[..40] + "..." : texts[i].Text;
                shown.Add($"{texts[i].Location} \"{start.ReplaceLineEndings(" ")}\"");
            }
        }

        return CompressionException.Error(
            DiagnosticCodes.EndpointAnswersMissingOffline,
            string.Create(CultureInfo.InvariantCulture, $"offline: true, and the answer cache '{folder}' lacks {missing.Count} of the {total} requests the texts need; first: {string.Join("; ", shown)}. Run once online (or import a batch results file) to fill it, then replay offline."),
            first?.File,
            first?.Line);
    }
}
