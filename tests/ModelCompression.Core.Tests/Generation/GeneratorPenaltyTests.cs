using ModelCompression.Architectures;
using ModelCompression.Generation;
using ModelCompression.Onnx;
using Xunit.Abstractions;

namespace ModelCompression.Core.Tests.Generation;

/// <summary>
/// OpenAI's frequency and presence penalties in the generator, checked against a reference written out here (the whole
/// sequence run again at every step, the penalty applied to its last logits by OpenAI's formula, arg-max), and the
/// <see cref="GenerationOptions.OnToken"/> stream a server forwards: every token in order, the sequence with its last.
/// </summary>
public sealed class GeneratorPenaltyTests(ITestOutputHelper output) : IDisposable
{
    private static readonly GenerationOptions Greedy = new() { MaxNewTokens = 20, StopTokenIds = [DecoderFixture.Eos] };

    private static readonly string[] Texts = ["abcdefg", "1 2 3 4", "Hello", "The red fox", "q", "zz zz", "Anna has"];

    private readonly TempDir _dir = new();
    private readonly DecoderSession _session = DecoderSession.Open(DecoderFixture.Cached, threads: 1);

    public void Dispose()
    {
        _session.Dispose();
        _dir.Dispose();
    }

    [Theory]
    [InlineData(2.0, 0.0)]
    [InlineData(0.0, 2.0)]
    [InlineData(1.5, 0.5)]
    [InlineData(-1.0, 0.0)]
    public void Penalised_greedy_tokens_equal_the_reference(double frequency, double presence)
    {
        var options = Greedy with { FrequencyPenalty = frequency, PresencePenalty = presence };
        var prompts = Texts.Select(t => (IReadOnlyList<int>)DecoderFixture.Bytes(t)).ToList();
        // The trained fixture is too sure of its texts for a penalty of 2 to change them; an untrained decoder's
        // near-uniform logits are changed by any penalty.
        using var untrained = DecoderSession.Open(Untrained(), threads: 1);
        foreach (var (session, mustChange) in new[] { (_session, false), (untrained, true) })
        {
            var penalised = new Generator(session).Generate(prompts, options);
            var plain = new Generator(session).Generate(prompts, Greedy);
            var changed = 0;
            for (var p = 0; p < prompts.Count; p++)
            {
                Assert.Equal(Reference(session, prompts[p], frequency, presence), penalised[p].Tokens);
                changed += penalised[p].Tokens.SequenceEqual(plain[p].Tokens) ? 0 : 1;
                output.WriteLine($"'{Texts[p]}': [{string.Join(",", plain[p].Tokens)}] -> [{string.Join(",", penalised[p].Tokens)}]");
            }

            Assert.True(!mustChange || changed * 2 > prompts.Count, $"{changed} of {prompts.Count} answers changed");
        }
    }

    [Fact]
    public void Penalties_out_of_OpenAIs_range_are_refused()
    {
        Assert.Contains("frequency_penalty must be in [-2, 2], got 2.5", (Greedy with { FrequencyPenalty = 2.5 }).Problems());
        Assert.Contains("presence_penalty must be in [-2, 2], got NaN", (Greedy with { PresencePenalty = double.NaN }).Problems());
    }

    [Fact]
    public void Every_token_is_reported_as_it_is_chosen_and_the_sequence_with_its_last()
    {
        var prompts = Texts.Select(t => (IReadOnlyList<int>)DecoderFixture.Bytes(t)).ToList();
        var events = new List<GeneratedToken>();
        var options = Greedy with { Temperature = 0.8, Seed = 3, SamplesPerPrompt = 2, TopLogprobs = 2, BatchSize = 5, OnToken = events.Add };

        var sequences = new Generator(_session).Generate(prompts, options);

        Assert.Equal(sequences.Sum(s => s.Tokens.Count), events.Count);
        foreach (var sequence in sequences)
        {
            var mine = events.Where(e => e.PromptIndex == sequence.PromptIndex && e.SampleIndex == sequence.SampleIndex).ToList();
            Assert.Equal(sequence.Tokens, mine.Select(e => e.TokenId));
            Assert.Equal(sequence.Logprobs, mine.Select(e => e.Logprob));
            Assert.Equal(sequence.TopLogprobs!.Select(t => t.Select(x => x.TokenId)), mine.Select(e => e.TopLogprobs!.Select(x => x.TokenId)));
            Assert.All(mine.SkipLast(1), e => Assert.Null(e.Finished));
            var finished = mine[^1].Finished!;
            Assert.Equal(sequence.Tokens, finished.Tokens);
            Assert.Equal((sequence.FinishReason, sequence.StopLength), (finished.FinishReason, finished.StopLength));
        }
    }

    /// <summary>Greedy decoding by whole-sequence runs, with the penalty applied to each step's logits by OpenAI's formula.</summary>
    private static List<int> Reference(DecoderSession session, IReadOnlyList<int> prompt, double frequency, double presence)
    {
        var ids = prompt.ToList();
        var generated = new List<int>();
        while (generated.Count < Greedy.MaxNewTokens)
        {
            var length = ids.Count;
            var logits = session.Forward([.. ids.Select(i => (long)i)], [.. Enumerable.Repeat(1L, length)], [.. Enumerable.Range(0, length).Select(i => (long)i)], 1);
            var vocabulary = logits.Length / length;
            var last = logits.AsSpan((length - 1) * vocabulary, vocabulary).ToArray();
            // In float, as the generator keeps logits: the same numbers, whatever CPU rounds them.
            var scores = last.Select((l, token) => generated.Contains(token) ? (float)(l - (generated.Count(g => g == token) * frequency) - presence) : l).ToArray();
            var next = Array.IndexOf(scores, scores.Max());
            generated.Add(next);
            ids.Add(next);
            if (next == DecoderFixture.Eos || ids.Count >= session.Signature.MaxPositions)
            {
                break;
            }
        }

        return generated;
    }

    /// <summary>A seeded, untrained built-in decoder over the fixture's 257 byte ids, with its cache inputs.</summary>
    private string Untrained()
    {
        var options = new DecoderOptions { VocabSize = 257, MaxLength = 64, Width = 16, Heads = 2, Layers = 1, FeedForward = 32, Dropout = 0, Seed = 11 };
        var path = _dir.File("untrained.onnx");
        OnnxModelFile.Save(DecoderBuilder.Build(options, new ArchitectureInputs([0], 1)), path);
        return path;
    }
}
