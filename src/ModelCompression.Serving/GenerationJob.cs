using System.Globalization;
using System.Threading.Channels;
using ModelCompression.Generation;

namespace ModelCompression.Serving;

/// <summary>
/// One request's generation as the scheduler sees it: its prompts, the options it decodes with, the key that says
/// which other jobs it may share a batch with, and where its tokens and result go.
/// </summary>
internal sealed class GenerationJob
{
    private readonly Channel<GeneratedToken> _tokens = Channel.CreateUnbounded<GeneratedToken>(new UnboundedChannelOptions { SingleReader = true });
    private readonly TaskCompletionSource<IReadOnlyList<GeneratedSequence>> _result = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>A job for <paramref name="prompts"/> decoded with <paramref name="options"/>; <paramref name="aborted"/> fires when the client goes away.</summary>
    public GenerationJob(IReadOnlyList<IReadOnlyList<int>> prompts, GenerationOptions options, CancellationToken aborted)
    {
        Prompts = prompts;
        Options = options;
        Aborted = aborted;
        Key = BatchKey(options);
    }

    /// <summary>The prompts' token ids.</summary>
    public IReadOnlyList<IReadOnlyList<int>> Prompts { get; }

    /// <summary>How the job decodes (its samples per prompt are the request's <c>n</c>).</summary>
    public GenerationOptions Options { get; }

    /// <summary>Fires when the client has gone away.</summary>
    public CancellationToken Aborted { get; }

    /// <summary>Jobs of equal keys decode alike and may run in one generator call.</summary>
    public string Key { get; }

    /// <summary>Sequences the job adds to a batch.</summary>
    public int Sequences => Prompts.Count * Options.SamplesPerPrompt;

    /// <summary>When it was queued.</summary>
    public long QueuedAt { get; set; }

    /// <summary>The tokens as they are chosen (prompt indexes the job's own); completed when the job ends.</summary>
    public ChannelReader<GeneratedToken> Tokens => _tokens.Reader;

    /// <summary>The sequences (prompt indexes the job's own), or the failure.</summary>
    public Task<IReadOnlyList<GeneratedSequence>> Result => _result.Task;

    /// <summary>Passes on a token of the batch that belongs to this job.</summary>
    public void Token(GeneratedToken token) => _tokens.Writer.TryWrite(token);

    /// <summary>Ends the job with its sequences.</summary>
    public void Complete(IReadOnlyList<GeneratedSequence> sequences)
    {
        _result.TrySetResult(sequences);
        _tokens.Writer.TryComplete();
    }

    /// <summary>Ends the job with a failure.</summary>
    public void Fail(Exception exception)
    {
        _result.TrySetException(exception);
        _tokens.Writer.TryComplete();
    }

    /// <summary>
    /// Everything of the options that changes a sequence's tokens, except the prompt: sampling, seed (none when greedy:
    /// no draw is made), samples per prompt, stops and penalties. Top logprobs only add bookkeeping, so jobs that differ
    /// in them still share a batch (it records the most any of them asks for).
    /// </summary>
    private static string BatchKey(GenerationOptions o) => string.Join(
        '\u001f',
        o.MaxNewTokens,
        o.Temperature.ToString("R", CultureInfo.InvariantCulture),
        o.TopK,
        o.TopP.ToString("R", CultureInfo.InvariantCulture),
        o.IsGreedy ? 0 : o.Seed,
        o.SamplesPerPrompt,
        o.FrequencyPenalty.ToString("R", CultureInfo.InvariantCulture),
        o.PresencePenalty.ToString("R", CultureInfo.InvariantCulture),
        string.Join(',', o.StopTokenIds),
        string.Join(';', o.StopSequences.Select(s => string.Join(',', s))),
        string.Join('\u001e', o.StopStrings),
        o.PadTokenId,
        o.TokenLimit);
}
