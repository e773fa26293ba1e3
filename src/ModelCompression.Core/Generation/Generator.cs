using System.Globalization;
using ModelCompression.Diagnostics;

namespace ModelCompression.Generation;

/// <summary>
/// Batched generation with a <see cref="DecoderSession"/>. Prompts (with their samples) run in batches of
/// <see cref="GenerationOptions.BatchSize"/>, left-padded to the longest: the attention mask covers past and new
/// tokens, and position ids are the cumulative sum of the mask minus 1, 0 on pads, as Hugging Face makes them, so a
/// padded prompt sees the positions it would see alone. With the cache the first step runs the prompts and every
/// later step only the new token, its past being the previous step's present in ONNX Runtime's memory; without it
/// (a model without cache inputs, or <see cref="GenerationOptions.UseCache"/> false) every step runs the whole
/// sequence again. Finished rows keep being fed a pad token until the batch is done, so no row's inputs depend on
/// another's.
/// </summary>
public sealed class Generator
{
    private readonly DecoderSession _session;

    /// <summary>A generator over <paramref name="session"/> (not owned: the caller disposes it).</summary>
    public Generator(DecoderSession session)
    {
        ArgumentNullException.ThrowIfNull(session);
        _session = session;
    }

    /// <summary>
    /// Continues every prompt of <paramref name="prompts"/> (token ids) <see cref="GenerationOptions.SamplesPerPrompt"/>
    /// times. The result lists prompt 0's samples, then prompt 1's, and so on. An empty prompt or a token id outside
    /// the vocabulary is MC2081, a prompt longer than the position table MC2082, both naming the model; options with
    /// <see cref="GenerationOptions.Problems"/> are an <see cref="ArgumentException"/>.
    /// </summary>
    public IReadOnlyList<GeneratedSequence> Generate(IReadOnlyList<IReadOnlyList<int>> prompts, GenerationOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(options);
        if (options.Problems() is { Count: > 0 } problems)
        {
            throw new ArgumentException("Generation options: " + string.Join("; ", problems) + ".", nameof(options));
        }

        CheckPrompts(prompts);
        var rows = new List<(int Prompt, int Sample)>(prompts.Count * options.SamplesPerPrompt);
        for (var p = 0; p < prompts.Count; p++)
        {
            for (var s = 0; s < options.SamplesPerPrompt; s++)
            {
                rows.Add((p, s));
            }
        }

        var results = new List<GeneratedSequence>(rows.Count);
        for (var start = 0; start < rows.Count; start += options.BatchSize)
        {
            var chunk = rows.GetRange(start, Math.Min(options.BatchSize, rows.Count - start));
            results.AddRange(GenerateBatch([.. chunk.Select(r => new SequenceState(r.Prompt, r.Sample, prompts[r.Prompt], options))], options, cancellationToken));
        }

        return results;
    }

    private void CheckPrompts(IReadOnlyList<IReadOnlyList<int>> prompts)
    {
        var signature = _session.Signature;
        var problems = new List<Diagnostic>();
        for (var p = 0; p < prompts.Count; p++)
        {
            var prompt = prompts[p];
            string? why = prompt is null || prompt.Count == 0
                ? "is empty; a decoder needs at least one token to continue"
                : signature.Vocabulary is { } vocabulary && prompt.FirstOrDefault(t => t < 0 || t >= vocabulary, -1) is var bad and >= 0
                    ? $"holds token id {bad}, outside the model's vocabulary of {vocabulary}"
                    : prompt.Any(t => t < 0) ? "holds a negative token id" : null;
            if (why is not null)
            {
                problems.Add(Diagnostic.Error(DiagnosticCodes.GenerationPromptInvalid, Invariant($"Prompt {p} for '{_session.ModelPath}' {why}."), _session.ModelPath));
            }
            else if (signature.MaxPositions is { } positions && prompt!.Count > positions)
            {
                problems.Add(Diagnostic.Error(DiagnosticCodes.GenerationPromptTooLong, Invariant($"Prompt {p} for '{_session.ModelPath}' has {prompt.Count} tokens; the model has {positions} positions."), _session.ModelPath));
            }
        }

        if (problems.Count > 0)
        {
            throw new CompressionException(problems);
        }
    }

    private List<GeneratedSequence> GenerateBatch(SequenceState[] batch, GenerationOptions options, CancellationToken cancellationToken)
    {
        var pad = options.PadTokenId ?? (options.StopTokenIds.Count > 0 ? options.StopTokenIds[0] : 0);
        var width = batch.Max(s => s.Prompt.Count);
        var maxPositions = _session.Signature.MaxPositions ?? int.MaxValue;
        // Row-major [batch, width] ids and mask of the left-padded prompts; every step appends one column to the mask.
        var ids = new long[batch.Length * width];
        var mask = new long[batch.Length * width];
        var positions = new long[batch.Length * width];
        for (var row = 0; row < batch.Length; row++)
        {
            var prompt = batch[row].Prompt;
            var offset = width - prompt.Count;
            for (var column = 0; column < width; column++)
            {
                var real = column >= offset;
                ids[(row * width) + column] = real ? prompt[column - offset] : pad;
                mask[(row * width) + column] = real ? 1 : 0;
                positions[(row * width) + column] = real ? column - offset : 0;
            }
        }

        var cached = options.UseCache && _session.Signature.HasCache;
        var step = _session.Run(ids, mask, positions, batch.Length, past: null, fetchPresent: cached);
        try
        {
            for (var generated = 0; ; generated++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var next = new long[batch.Length];
                for (var row = 0; row < batch.Length; row++)
                {
                    var sequence = batch[row];
                    if (sequence.Finished)
                    {
                        next[row] = pad;
                        continue;
                    }

                    next[row] = sequence.Append(step.LastLogits(row), options, maxPositions);
                    options.OnToken?.Invoke(sequence.LastToken());
                }

                if (batch.All(s => s.Finished))
                {
                    break;
                }

                var columns = width + generated + 1;
                mask = AppendColumn(mask, batch.Length, columns - 1, _ => 1);
                var nextPositions = new long[batch.Length];
                for (var row = 0; row < batch.Length; row++)
                {
                    // A finished row is still fed (the batch moves together) but its output is dropped: its position
                    // stays inside the model's table rather than running past it.
                    nextPositions[row] = Math.Min(batch[row].Prompt.Count + generated, maxPositions - 1);
                }

                DecoderStep following;
                if (cached)
                {
                    following = _session.Run(next, mask, nextPositions, batch.Length, step.Present, fetchPresent: true);
                }
                else
                {
                    ids = AppendColumn(ids, batch.Length, columns - 1, row => next[row]);
                    positions = AppendColumn(positions, batch.Length, columns - 1, row => nextPositions[row]);
                    following = _session.Run(ids, mask, positions, batch.Length, past: null, fetchPresent: false);
                }

                step.Dispose();
                step = following;
            }
        }
        finally
        {
            step.Dispose();
        }

        return [.. batch.Select(s => s.Result())];
    }

    /// <summary>A [rows, columns + 1] copy of the row-major [rows, columns] <paramref name="values"/> with <paramref name="value"/>(row) as the last column.</summary>
    private static long[] AppendColumn(long[] values, int rows, int columns, Func<int, long> value)
    {
        var grown = new long[rows * (columns + 1)];
        for (var row = 0; row < rows; row++)
        {
            Array.Copy(values, row * columns, grown, row * (columns + 1), columns);
            grown[(row * (columns + 1)) + columns] = value(row);
        }

        return grown;
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    /// <summary>One row of a batch: its prompt, random stream, tokens so far and whether it has ended.</summary>
    private sealed class SequenceState(int promptIndex, int sampleIndex, IReadOnlyList<int> prompt, GenerationOptions options)
    {
        private readonly SequenceRandom _random = new(options.Seed, sampleIndex);
        private readonly List<int> _tokens = [];
        private readonly List<float> _logprobs = [];
        private readonly List<IReadOnlyList<TokenLogprob>>? _top = options.TopLogprobs > 0 ? [] : null;
        private readonly Dictionary<int, int>? _counts = options.FrequencyPenalty != 0 || options.PresencePenalty != 0 ? [] : null;
        private FinishReason _reason = FinishReason.Length;
        private int _stopLength;

        public IReadOnlyList<int> Prompt { get; } = prompt;

        public bool Finished { get; private set; }

        /// <summary>Chooses the next token from <paramref name="logits"/>, records it and decides whether the sequence ends; returns the token.</summary>
        public int Append(ReadOnlySpan<float> logits, GenerationOptions options, int maxPositions)
        {
            if (options.TokenLimit > 0 && logits.Length > options.TokenLimit)
            {
                logits = logits[..options.TokenLimit];
            }

            var token = TokenSampler.Choose(_counts is { Count: > 0 } ? TokenSampler.Penalize(logits, _counts, options.FrequencyPenalty, options.PresencePenalty) : logits, options, _random);
            if (_counts is not null)
            {
                _counts[token] = _counts.GetValueOrDefault(token) + 1;
            }

            _tokens.Add(token);
            _logprobs.Add(TokenSampler.Logprob(logits, token));
            _top?.Add(TokenSampler.Top(logits, options.TopLogprobs));
            if (options.StopTokenIds.Contains(token))
            {
                End(FinishReason.Eos, 1);
            }
            else if (options.StopSequences.FirstOrDefault(EndsWith) is { } sequence)
            {
                End(FinishReason.Stop, sequence.Count);
            }
            else if (options.StopStrings.Count > 0 && options.Decode!(_tokens) is var text && options.StopStrings.Any(s => text.Contains(s, StringComparison.Ordinal)))
            {
                End(FinishReason.Stop, 0);
            }
            else if (_tokens.Count >= options.MaxNewTokens || Prompt.Count + _tokens.Count >= maxPositions)
            {
                // The next token would need a position the model's table does not have.
                End(FinishReason.Length, 0);
            }

            return token;
        }

        /// <summary>The token <see cref="Append"/> chose last, with the whole sequence when it ended there.</summary>
        public GeneratedToken LastToken() => new(promptIndex, sampleIndex, _tokens[^1], _logprobs[^1], _top?[^1], Finished ? Result() : null);

        public GeneratedSequence Result() => new(promptIndex, sampleIndex, [.. _tokens], _reason, _stopLength, [.. _logprobs], _top is null ? null : [.. _top]);

        private bool EndsWith(IReadOnlyList<int> sequence)
        {
            if (sequence.Count > _tokens.Count)
            {
                return false;
            }

            for (var i = 0; i < sequence.Count; i++)
            {
                if (_tokens[_tokens.Count - sequence.Count + i] != sequence[i])
                {
                    return false;
                }
            }

            return true;
        }

        private void End(FinishReason reason, int stopLength)
        {
            (_reason, _stopLength, Finished) = (reason, stopLength, true);
        }
    }
}
