using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;
using ModelCompression.Text;
using ModelCompression.Torch.Training;

namespace ModelCompression.Generation;

/// <summary>
/// Measures a decoder on a test split of chat records, as the generation task's quality: each record's prompt (its
/// messages but the final answer) is rendered with <see cref="ChatTemplate.RenderForGeneration"/>, answered in batches
/// with the KV cache (<see cref="Generator"/>), decoded up to the template's end marker or end of text, parsed and scored
/// as the <see cref="GenerativeTask"/> says (<see cref="GenerationScoring"/>); and, teacher-forced, the perplexity of the
/// gold assistant tokens at the positions <see cref="ChatTemplate.RenderForTraining"/> trains. This is in
/// ModelCompression.Generation, not Evaluation, so that Generation may use Evaluation's metrics and never the reverse.
/// </summary>
public static class GenerationEvaluator
{
    /// <summary>The maximum length when neither the options nor the model's position table say one.</summary>
    public const int DefaultMaxLength = 2048;

    /// <summary>
    /// Evaluates the decoder at <paramref name="modelPath"/> on <paramref name="test"/> (every record must end on an
    /// assistant answer: the gold). <paramref name="template"/> renders with its tokenizer. <paramref name="teacherAnswers"/>,
    /// when given, are the teacher's answers to the same records in the same order.
    /// </summary>
    /// <exception cref="CompressionException">
    /// MC2087 for an empty test split or a record without a final answer (all such records named with file and line);
    /// MC2095 for gold answers the task's parser refuses (file and line); MC2088 for task options that make no parser;
    /// MC2080 when the model is not a decoder of the convention (MC2001-MC2005 when it is no readable ONNX file);
    /// MC2085 when the tokenizer's ids exceed the model's vocabulary.
    /// </exception>
    public static GenerationEvaluation Evaluate(
        string modelPath,
        ChatTemplate template,
        IReadOnlyList<ChatRecord> test,
        GenerativeTask task,
        GenerationEvaluationOptions? options = null,
        IReadOnlyList<string>? teacherAnswers = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(modelPath);
        ArgumentNullException.ThrowIfNull(template);
        ArgumentNullException.ThrowIfNull(test);
        ArgumentNullException.ThrowIfNull(task);
        options ??= new GenerationEvaluationOptions();
        if (teacherAnswers is not null && teacherAnswers.Count != test.Count)
        {
            throw new ArgumentException($"{teacherAnswers.Count} teacher answers for {test.Count} test records; give one per record, in order.", nameof(teacherAnswers));
        }

        CheckTestSplit(test);
        var parser = task.CreateParser();
        if (test.Select((r, i) => (r, i)).SelectMany(x => GenerationMetrics.GoldAnswerProblems([x.r.Answer!], parser, x.r.File, _ => x.r.Line)).ToList() is { Count: > 0 } bad)
        {
            throw new CompressionException(bad);
        }

        using var session = DecoderSession.Open(modelPath, options.Threads);
        var tokenizer = template.Tokenizer;
        if (session.Signature.Vocabulary is { } vocabulary && tokenizer.VocabularySize > vocabulary)
        {
            throw CompressionException.Error(
                DiagnosticCodes.DecoderVocabularyMismatch,
                $"The {tokenizer.Kind} tokenizer has {tokenizer.VocabularySize} ids; '{modelPath}' has logits for {vocabulary}. Evaluate a model with the tokenizer it was trained with.",
                modelPath);
        }

        // A model is never given more than its position table: a teacher with fewer positions than the recipe's
        // max_length is evaluated on the end of each prompt, as a student is.
        var positions = session.Signature.MaxPositions;
        var maxLength = options.MaxLength is { } asked ? Math.Min(asked, positions ?? asked) : positions ?? DefaultMaxLength;
        var generation = AnswerOptions(template, task, options.Generation);
        var promptLimit = PromptLimit(template, maxLength, generation.MaxNewTokens);
        var prompts = test.Select(r => template.RenderForGeneration(r.Prompt, promptLimit)).ToList();
        var generated = new Generator(session).Generate([.. prompts.Select(p => (IReadOnlyList<int>)p.Ids)], generation, cancellationToken);
        var endText = EndText(template);
        var predictions = generated.Select(g => Answer(tokenizer.Decode(g.ContentTokens), endText)).ToList();
        var golds = test.Select(r => r.Answer!).ToList();
        var scores = GenerationScoring.Score(task, predictions, golds, teacherAnswers);

        var (nll, counts, excluded) = GoldLikelihood(session, template, test, maxLength, generation.BatchSize, cancellationToken);
        var tokens = counts.Sum(c => (long)c);
        if (tokens == 0)
        {
            throw CompressionException.Error(
                DiagnosticCodes.GenerationTestSplitInvalid,
                $"No test record's answer fits {maxLength} tokens, so perplexity has no token to score ({test[0].Location} and {test.Count - 1} more).",
                test[0].File,
                test[0].Line);
        }

        var samples = Enumerable.Range(0, Math.Min(options.Samples, test.Count)).Select(i => new GenerationSample(
            i, test[i].Location, template.RenderText(test[i].Prompt, generationPrompt: true), golds[i], predictions[i], teacherAnswers?[i], scores.Failures[i])).ToList();
        return new GenerationEvaluation(
            scores,
            Math.Exp(nll.Where(double.IsFinite).Sum() / tokens),
            tokens,
            nll,
            counts,
            excluded,
            predictions,
            [.. generated.Select(g => g.FinishReason)],
            prompts.Count(p => p.CutTokens > 0),
            generated.Sum(g => (long)g.Tokens.Count),
            samples,
            maxLength);
    }

    /// <summary>
    /// The most tokens a prompt keeps (its start is cut, as training cuts a conversation) so that an answer of
    /// <paramref name="answerTokens"/> still fits <paramref name="maxLength"/>: a prompt that filled the maximum would get
    /// no answer at all and be scored as an empty one. Never less than the generation prompt and one token.
    /// </summary>
    public static int PromptLimit(ChatTemplate template, int maxLength, int answerTokens)
    {
        ArgumentNullException.ThrowIfNull(template);
        return Math.Max(template.GenerationPromptLength + 1, maxLength - answerTokens);
    }

    /// <summary>
    /// The options answers are generated with: <paramref name="given"/> (or greedy, the task's new tokens, batches of 8)
    /// with one sample per prompt, end of text and the template's end marker as stop tokens, or the end marker's text as
    /// a stop string when it is plain text.
    /// </summary>
    public static GenerationOptions AnswerOptions(ChatTemplate template, GenerativeTask task, GenerationOptions? given = null)
    {
        ArgumentNullException.ThrowIfNull(template);
        ArgumentNullException.ThrowIfNull(task);
        var options = (given ?? new GenerationOptions { MaxNewTokens = task.DefaultMaxNewTokens }) with { SamplesPerPrompt = 1 };
        return StopAtEndMarker(template, options);
    }

    /// <summary>
    /// <paramref name="options"/> that also stop at the end of text and at the template's end marker (its special token,
    /// or its text as a stop string when it is plain text): where an answer ends, as training taught the model; and
    /// that choose only ids the tokenizer has (<see cref="GenerationOptions.TokenLimit"/>). Every
    /// consumer of a chat model (the evaluation, a published folder's generation.json and genai_config.json,
    /// <see cref="GenerativeModel"/>, <c>serve</c>) stops there.
    /// </summary>
    public static GenerationOptions StopAtEndMarker(ChatTemplate template, GenerationOptions options)
    {
        ArgumentNullException.ThrowIfNull(template);
        ArgumentNullException.ThrowIfNull(options);
        var tokenizer = template.Tokenizer;
        var stops = new List<int>(options.StopTokenIds) { tokenizer.EndOfTextId };
        var strings = new List<string>(options.StopStrings);
        var end = EndMarker(template);
        if (end is { Special: true })
        {
            stops.Add(tokenizer.SpecialTokens[end.Value.Text]);
        }
        else if (end is { } text)
        {
            strings.Add(text.Text);
        }

        return options with
        {
            StopTokenIds = [.. stops.Distinct()],
            StopStrings = [.. strings.Distinct(StringComparer.Ordinal)],
            Decode = strings.Count > 0 ? options.Decode ?? (ids => tokenizer.Decode(ids)) : options.Decode,
            PadTokenId = options.PadTokenId ?? tokenizer.PadId,
            TokenLimit = tokenizer.VocabularySize,
        };
    }

    /// <summary>
    /// The end marker of an assistant message: what its template puts right after the content, up to the first special
    /// token of the tokenizer (that token, when only whitespace comes before it), with trailing whitespace dropped from
    /// plain text (a newline after the marker is layout, not the marker). Null when nothing but whitespace follows the
    /// content.
    /// </summary>
    public static (string Text, bool Special)? EndMarker(ChatTemplate template)
    {
        ArgumentNullException.ThrowIfNull(template);
        var assistant = template.Options.Assistant;
        var after = assistant[(assistant.IndexOf(ChatTemplateOptions.Placeholder, StringComparison.Ordinal) + ChatTemplateOptions.Placeholder.Length)..];
        var specials = template.Tokenizer.SpecialTokens.Keys;
        var leading = after.TrimStart();
        if (specials.Where(s => leading.StartsWith(s, StringComparison.Ordinal)).MaxBy(s => s.Length) is { } special)
        {
            return (special, true);
        }

        var cut = specials.Select(s => after.IndexOf(s, StringComparison.Ordinal)).Where(i => i > 0).DefaultIfEmpty(after.Length).Min();
        var text = after[..cut].TrimEnd();
        return text.Length == 0 ? null : (text, false);
    }

    /// <summary>The end marker's text when it is plain text (a stop string), null when it is a special token or absent.</summary>
    internal static string? EndText(ChatTemplate template) => EndMarker(template) is { Special: false } end ? end.Text : null;

    /// <summary>The answer: the text before a plain-text end marker (a special marker is not decoded at all).</summary>
    internal static string Answer(string text, string? endText)
    {
        var at = endText is null ? -1 : text.IndexOf(endText, StringComparison.Ordinal);
        return at < 0 ? text : text[..at];
    }

    private static void CheckTestSplit(IReadOnlyList<ChatRecord> test)
    {
        if (test.Count == 0)
        {
            throw CompressionException.Error(DiagnosticCodes.GenerationTestSplitInvalid, "The test split is empty: a generative model is evaluated on at least one record with a gold answer.");
        }

        var problems = test.Where(r => !r.HasAnswer || r.Prompt.Count == 0).Select(r => Diagnostic.Error(
            DiagnosticCodes.GenerationTestSplitInvalid,
            r.HasAnswer ? "The test record has an answer but no prompt before it." : "The test record does not end on an assistant answer: a test record needs the gold answer last.",
            r.File,
            r.Line)).ToList();
        if (problems.Count > 0)
        {
            throw new CompressionException(problems);
        }
    }

    /// <summary>
    /// Per record, the summed negative log-likelihood of its trained (gold assistant) tokens, teacher-forced with an
    /// empty past: log-softmax of the logits at each position whose label <see cref="ChatTemplate.RenderForTraining"/>
    /// sets, and how many tokens that is. Records are right-padded into batches (the mask hides the pads, and a causal model's real positions never
    /// see what follows them). A record whose answer does not fit is NaN and counted.
    /// </summary>
    private static (double[] Nll, int[] Tokens, int Excluded) GoldLikelihood(
        DecoderSession session, ChatTemplate template, IReadOnlyList<ChatRecord> test, int maxLength, int batchSize, CancellationToken cancellationToken)
    {
        var sequences = test.Select(r => template.RenderForTraining(r.Messages, maxLength)).ToList();
        var nll = new double[test.Count];
        var tokens = new int[test.Count];
        var excluded = 0;
        var usable = new List<int>();
        for (var i = 0; i < sequences.Count; i++)
        {
            if (sequences[i].Fit is ChatFit.Whole or ChatFit.PromptCut && sequences[i].Labels.Any(l => l != TrainingSet.NoLabel))
            {
                usable.Add(i);
            }
            else
            {
                nll[i] = double.NaN;
                excluded++;
            }
        }

        var pad = template.Tokenizer.PadId;
        for (var start = 0; start < usable.Count; start += batchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var batch = usable.GetRange(start, Math.Min(batchSize, usable.Count - start));
            var width = batch.Max(i => sequences[i].Ids.Length);
            var ids = new long[batch.Count * width];
            var mask = new long[batch.Count * width];
            var positions = new long[batch.Count * width];
            for (var row = 0; row < batch.Count; row++)
            {
                var sequence = sequences[batch[row]].Ids;
                for (var t = 0; t < width; t++)
                {
                    var real = t < sequence.Length;
                    ids[(row * width) + t] = real ? sequence[t] : pad;
                    mask[(row * width) + t] = real ? 1 : 0;
                    positions[(row * width) + t] = real ? t : 0;
                }
            }

            var logits = session.Forward(ids, mask, positions, batch.Count);
            var vocabulary = logits.Length / (batch.Count * width);
            for (var row = 0; row < batch.Count; row++)
            {
                var labels = sequences[batch[row]].Labels;
                var sum = 0.0;
                for (var t = 0; t < labels.Length; t++)
                {
                    if (labels[t] != TrainingSet.NoLabel)
                    {
                        sum -= LogSoftmax(logits.AsSpan(((row * width) + t) * vocabulary, vocabulary), (int)labels[t]);
                        tokens[batch[row]]++;
                    }
                }

                nll[batch[row]] = sum;
            }
        }

        return (nll, tokens, excluded);
    }

    /// <summary>log-softmax of <paramref name="logits"/> at <paramref name="token"/>, in double.</summary>
    private static double LogSoftmax(ReadOnlySpan<float> logits, int token)
    {
        double max = float.NegativeInfinity;
        foreach (var value in logits)
        {
            max = Math.Max(max, value);
        }

        var sum = 0.0;
        foreach (var value in logits)
        {
            sum += Math.Exp(value - max);
        }

        return logits[token] - max - Math.Log(sum);
    }
}
