using System.Globalization;

namespace ModelCompression.Generation;

/// <summary>
/// How <see cref="Generator"/> picks tokens and when it stops. The defaults are greedy decoding of up to 128 new
/// tokens. Sampling applies, in Hugging Face's order, <see cref="Temperature"/>, then <see cref="TopK"/>, then
/// <see cref="TopP"/>, and draws from what is left with a random stream of its own per sequence
/// (<see cref="Seed"/>), so a prompt gives the same tokens whatever batch it runs in.
/// </summary>
public sealed record GenerationOptions
{
    /// <summary>Most tokens to generate per sequence (the stop token or sequence included).</summary>
    public int MaxNewTokens { get; init; } = 128;

    /// <summary>Divides the logits before sampling; 0 is greedy decoding (the most likely token, the lowest id on a tie).</summary>
    public double Temperature { get; init; }

    /// <summary>Keeps only the <see cref="TopK"/> most likely tokens (and any tied with the last of them); 0 keeps all.</summary>
    public int TopK { get; init; }

    /// <summary>Nucleus sampling: keeps the most likely tokens until their probability reaches <see cref="TopP"/> (at least one); 1 keeps all.</summary>
    public double TopP { get; init; } = 1.0;

    /// <summary>The seed of every sequence's random stream; sample s of any prompt draws from the stream of (seed, s).</summary>
    public long Seed { get; init; }

    /// <summary>Sequences generated per prompt (different streams: samples differ unless decoding is greedy).</summary>
    public int SamplesPerPrompt { get; init; } = 1;

    /// <summary>Token ids that end a sequence (end of text); the token is kept in the output and the reason is <see cref="FinishReason.Eos"/>.</summary>
    public IReadOnlyList<int> StopTokenIds { get; init; } = [];

    /// <summary>Token-id sequences that end a sequence when the new tokens end with one (kept in the output; <see cref="FinishReason.Stop"/>).</summary>
    public IReadOnlyList<IReadOnlyList<int>> StopSequences { get; init; } = [];

    /// <summary>Texts that end a sequence when <see cref="Decode"/> of its new tokens contains one (<see cref="FinishReason.Stop"/>).</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];

    /// <summary>Turns new token ids into text, for <see cref="StopStrings"/>; required when there are any.</summary>
    public Func<IReadOnlyList<int>, string>? Decode { get; init; }

    /// <summary>How many of the most likely tokens to record, with their log-probabilities, at every step (0: none).</summary>
    public int TopLogprobs { get; init; }

    /// <summary>Most sequences run together in one ONNX Runtime batch (prompts are left-padded to the longest).</summary>
    public int BatchSize { get; init; } = 8;

    /// <summary>
    /// Whether to keep the keys and values in a cache between steps (a model with cache inputs only). Without it
    /// every step runs the whole sequence again: what a model without cache inputs needs, and the benchmark's baseline.
    /// </summary>
    public bool UseCache { get; init; } = true;

    /// <summary>
    /// Ids at or above this are never chosen (0: any logit's id). The tokenizer's vocabulary size: exports pad their
    /// logits past it (Phi-3's 32,064 logits over 32,011 ids), and a padded id has no text to decode to.
    /// </summary>
    public int TokenLimit { get; init; }

    /// <summary>The token fed where a row has no token (left padding, rows already finished); null: the first stop token id, or 0.</summary>
    public int? PadTokenId { get; init; }

    /// <summary>
    /// OpenAI's frequency penalty (-2 to 2; 0 is off): before each choice, a token's logit is lowered by this times the
    /// number of times the sequence has generated it. Log-probabilities stay the model's own.
    /// </summary>
    public double FrequencyPenalty { get; init; }

    /// <summary>
    /// OpenAI's presence penalty (-2 to 2; 0 is off): before each choice, a token's logit is lowered by this once if the
    /// sequence has generated it at all. Log-probabilities stay the model's own.
    /// </summary>
    public double PresencePenalty { get; init; }

    /// <summary>
    /// Called on the generating thread with every token as it is chosen, in step order (a server streams them); it
    /// must return quickly and not throw. Null: nobody listens.
    /// </summary>
    public Action<GeneratedToken>? OnToken { get; init; }

    /// <summary>Whether decoding is greedy (temperature 0 or top-k 1): no random draw is made.</summary>
    public bool IsGreedy => Temperature == 0 || TopK == 1;

    /// <summary>
    /// Every problem with these options, in the options' own words ('top_p must be in (0, 1], got 1.5'); empty when they
    /// are usable. The recipe layer reports these at the option's location; <see cref="Generator"/> refuses them.
    /// </summary>
    public IReadOnlyList<string> Problems()
    {
        var problems = new List<string>();
        Check(MaxNewTokens >= 1, $"max_new_tokens must be at least 1, got {MaxNewTokens}");
        Check(double.IsFinite(Temperature) && Temperature >= 0, $"temperature must be 0 (greedy) or more, got {Temperature}");
        Check(TopK >= 0, $"top_k must be 0 (off) or more, got {TopK}");
        Check(TopP > 0 && TopP <= 1, $"top_p must be in (0, 1], got {TopP}");
        Check(SamplesPerPrompt >= 1, $"samples per prompt must be at least 1, got {SamplesPerPrompt}");
        Check(TopLogprobs >= 0, $"top_logprobs must be 0 (none) or more, got {TopLogprobs}");
        Check(BatchSize >= 1, $"batch size must be at least 1, got {BatchSize}");
        Check(double.IsFinite(FrequencyPenalty) && Math.Abs(FrequencyPenalty) <= 2, $"frequency_penalty must be in [-2, 2], got {FrequencyPenalty}");
        Check(double.IsFinite(PresencePenalty) && Math.Abs(PresencePenalty) <= 2, $"presence_penalty must be in [-2, 2], got {PresencePenalty}");
        Check(StopSequences.All(s => s.Count > 0), $"a stop sequence is empty");
        Check(StopStrings.All(s => s.Length > 0), $"a stop string is empty");
        Check(StopStrings.Count == 0 || Decode is not null, $"stop strings need a decode function to turn tokens into text");
        return problems;

        void Check(bool ok, FormattableString problem)
        {
            if (!ok)
            {
                problems.Add(problem.ToString(CultureInfo.InvariantCulture));
            }
        }
    }
}

/// <summary>Why a sequence ended.</summary>
public enum FinishReason
{
    /// <summary>It produced one of <see cref="GenerationOptions.StopTokenIds"/>.</summary>
    Eos,

    /// <summary>It produced a stop sequence or a stop string.</summary>
    Stop,

    /// <summary>It reached <see cref="GenerationOptions.MaxNewTokens"/> or the end of the model's position table.</summary>
    Length,
}

/// <summary>A token and its log-probability under the model (log-softmax of the raw logits, before temperature and filtering).</summary>
public readonly record struct TokenLogprob(int TokenId, float Logprob);

/// <summary>A token as <see cref="Generator"/> chooses it (<see cref="GenerationOptions.OnToken"/>).</summary>
/// <param name="PromptIndex">The prompt its sequence continues.</param>
/// <param name="SampleIndex">Which of the prompt's samples.</param>
/// <param name="TokenId">The token.</param>
/// <param name="Logprob">Its log-probability under the model (as <see cref="GeneratedSequence.Logprobs"/>).</param>
/// <param name="TopLogprobs">The step's most likely tokens; null when not asked for.</param>
/// <param name="Finished">The whole sequence when this token ended it (as <see cref="Generator.Generate"/> returns it); null while it goes on.</param>
public sealed record GeneratedToken(int PromptIndex, int SampleIndex, int TokenId, float Logprob, IReadOnlyList<TokenLogprob>? TopLogprobs, GeneratedSequence? Finished);

/// <summary>One generated sequence.</summary>
/// <param name="PromptIndex">The prompt it continues.</param>
/// <param name="SampleIndex">Which of the prompt's samples it is (0 to <see cref="GenerationOptions.SamplesPerPrompt"/> - 1).</param>
/// <param name="Tokens">The new token ids, the stop token or stop sequence included.</param>
/// <param name="FinishReason">Why it ended.</param>
/// <param name="StopLength">How many of the last <paramref name="Tokens"/> are the stop token or stop sequence (0 for a stop string and for <see cref="FinishReason.Length"/>).</param>
/// <param name="Logprobs">The log-probability of each chosen token under the model (log-softmax of the raw logits).</param>
/// <param name="TopLogprobs">Per step, the most likely tokens with their log-probabilities (most likely first); null when not asked for.</param>
public sealed record GeneratedSequence(
    int PromptIndex,
    int SampleIndex,
    IReadOnlyList<int> Tokens,
    FinishReason FinishReason,
    int StopLength,
    IReadOnlyList<float> Logprobs,
    IReadOnlyList<IReadOnlyList<TokenLogprob>>? TopLogprobs)
{
    /// <summary>The new tokens without the stop token or stop sequence: the answer.</summary>
    public IReadOnlyList<int> ContentTokens => Tokens.Take(Tokens.Count - StopLength).ToArray();
}
