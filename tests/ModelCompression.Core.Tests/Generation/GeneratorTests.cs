using ModelCompression.Diagnostics;
using ModelCompression.Generation;

namespace ModelCompression.Core.Tests.Generation;

/// <summary>
/// Generation with the PyTorch fixture: greedy tokens equal PyTorch's with and without the cache, batching with left
/// padding changes nothing, seeded sampling is reproducible whatever the batch, and sequences end for the right reason.
/// </summary>
public sealed class GeneratorTests : IDisposable
{
    private static readonly GenerationOptions Greedy = new() { MaxNewTokens = DecoderFixture.GreedyMaxNewTokens, StopTokenIds = [DecoderFixture.Eos] };

    private static readonly GenerationOptions Sampled = Greedy with { Temperature = 1.3, TopK = 20, TopP = 0.95, Seed = 7, MaxNewTokens = 12 };

    private readonly DecoderSession _cached = DecoderSession.Open(DecoderFixture.Cached, threads: 1);

    public void Dispose() => _cached.Dispose();

    private static IReadOnlyList<IReadOnlyList<int>> Prompts => [.. DecoderFixture.Greedy.Select(c => (IReadOnlyList<int>)c.Prompt)];

    [Theory]
    [InlineData("byte_decoder.onnx", true)]
    [InlineData("byte_decoder.onnx", false)]
    [InlineData("byte_decoder_nocache.onnx", true)]
    public void Greedy_tokens_equal_PyTorchs(string file, bool useCache)
    {
        using var session = DecoderSession.Open(Path.Join(DecoderFixture.Folder, file), threads: 1);

        var results = new Generator(session).Generate(Prompts, Greedy with { UseCache = useCache });

        Assert.All(DecoderFixture.Greedy.Zip(results), pair =>
        {
            var ((prompt, tokens, eos), result) = pair;
            Assert.True(tokens.SequenceEqual(result.Tokens), $"'{DecoderFixture.Text(prompt)}': PyTorch '{DecoderFixture.Text(tokens)}', ours '{DecoderFixture.Text(result.Tokens)}'");
            Assert.Equal(eos ? FinishReason.Eos : FinishReason.Length, result.FinishReason);
            Assert.Equal(eos ? 1 : 0, result.StopLength);
        });
        // The fixture learned its text: the case the README shows.
        Assert.Equal(" jumps over the lazy dog.", DecoderFixture.Text(results[4].ContentTokens));
    }

    [Fact]
    public void Cache_and_no_cache_give_the_same_tokens_and_logprobs()
    {
        var generator = new Generator(_cached);

        var withCache = generator.Generate(Prompts, Sampled);
        var without = generator.Generate(Prompts, Sampled with { UseCache = false });

        Assert.Equal(withCache.Select(r => r.Tokens), without.Select(r => r.Tokens));
        Assert.All(withCache.Zip(without), p => Assert.All(p.First.Logprobs.Zip(p.Second.Logprobs), l => Assert.Equal(l.First, l.Second, 1e-4f)));
    }

    [Fact]
    public void A_left_padded_batch_gives_what_each_prompt_gives_alone()
    {
        var generator = new Generator(_cached);
        foreach (var options in new[] { Greedy, Sampled with { SamplesPerPrompt = 2 } })
        {
            var batched = generator.Generate(Prompts, options with { BatchSize = 16 });
            var alone = Prompts.SelectMany((p, i) => generator.Generate([p], options with { BatchSize = 1 }).Select(r => r with { PromptIndex = i })).ToList();

            Assert.Equal(alone.Select(r => (r.PromptIndex, r.SampleIndex, r.FinishReason)), batched.Select(r => (r.PromptIndex, r.SampleIndex, r.FinishReason)));
            Assert.Equal(alone.Select(r => r.Tokens), batched.Select(r => r.Tokens));
            // Batches of 3 cut through a prompt's samples: the order and the tokens stay.
            Assert.Equal(alone.Select(r => (r.PromptIndex, r.SampleIndex, r.Tokens)), generator.Generate(Prompts, options with { BatchSize = 3 }).Select(r => (r.PromptIndex, r.SampleIndex, r.Tokens)));
        }
    }

    [Fact]
    public void A_cancelled_generation_stops()
    {
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();

        Assert.Throws<OperationCanceledException>(() => new Generator(_cached).Generate(Prompts, Greedy, cancelled.Token));
    }

    [Fact]
    public void A_past_that_does_not_fit_the_model_is_refused()
    {
        using var plain = DecoderSession.Open(DecoderFixture.NoCache, threads: 1);
        using var first = _cached.Run([65, 66], [1, 1], [0, 1], 1);

        var wrongCount = Assert.Throws<ArgumentException>(() => _cached.Run([67], [1, 1, 1], [2], 1, [.. first.Present.Take(2)]));
        var noCache = Assert.Throws<ArgumentException>(() => plain.Run([67], [1, 1, 1], [2], 1, first.Present));
        var rows = Assert.Throws<ArgumentException>(() => _cached.Run([65, 66, 67], [1, 1], [0, 1, 2], 2));

        Assert.Contains("The past has 2 values; '" + DecoderFixture.Cached + "' takes 4.", wrongCount.Message, StringComparison.Ordinal);
        Assert.Contains("takes 0", noCache.Message, StringComparison.Ordinal);
        Assert.Contains("do not make 2 rows", rows.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Seeded_sampling_is_reproducible_and_the_seed_matters()
    {
        var generator = new Generator(_cached);
        IReadOnlyList<IReadOnlyList<int>> prompts = [DecoderFixture.Bytes("Anna has"), DecoderFixture.Bytes("The")];
        var hot = Sampled with { Temperature = 2.0, TopK = 0, TopP = 1.0, SamplesPerPrompt = 3, MaxNewTokens = 10 };

        var first = generator.Generate(prompts, hot);
        var again = generator.Generate([prompts[1], prompts[0]], hot with { BatchSize = 2 });
        var otherSeed = generator.Generate(prompts, hot with { Seed = 8 });

        // Prompt "The" alone in a batch of its samples, then first of a reordered call: the same tokens.
        Assert.Equal(first.Skip(3).Select(r => r.Tokens), again.Take(3).Select(r => r.Tokens));
        Assert.Equal(first.Take(3).Select(r => r.Tokens), again.Skip(3).Select(r => r.Tokens));
        // Samples of one prompt draw from different streams, and another seed gives other text.
        Assert.True(first.Take(3).Select(r => DecoderFixture.Text(r.Tokens)).Distinct().Count() > 1);
        Assert.NotEqual(first.Select(r => r.Tokens), otherSeed.Select(r => r.Tokens));
    }

    [Fact]
    public void Top_k_1_is_greedy_whatever_the_temperature_and_seed()
    {
        var generator = new Generator(_cached);

        var greedy = generator.Generate(Prompts, Greedy);
        var topOne = generator.Generate(Prompts, Greedy with { TopK = 1, Temperature = 5, Seed = 123 });

        Assert.Equal(greedy.Select(r => r.Tokens), topOne.Select(r => r.Tokens));
    }

    [Fact]
    public void Ids_at_or_above_the_token_limit_are_never_chosen()
    {
        // A tokenizer narrower than the logits (an export that pads its vocabulary): the limit is put just below the
        // model's own greedy first choice, so greedy and sampled decoding must both pick something else every time.
        var prompt = DecoderFixture.Bytes("The quick brown fox");
        var generator = new Generator(_cached);
        var limit = generator.Generate([prompt], Greedy)[0].Tokens[0];

        var greedy = generator.Generate([prompt], Greedy with { TokenLimit = limit })[0];
        var sampled = generator.Generate([prompt], Sampled with { TokenLimit = limit, TopK = 0, TopP = 1 })[0];

        Assert.All(greedy.Tokens.Concat(sampled.Tokens), t => Assert.True(t < limit, $"token {t} at or above the limit {limit}"));
        long[] ids = [.. prompt.Select(t => (long)t)];
        var logits = _cached.Forward(ids, [.. ids.Select(_ => 1L)], [.. Enumerable.Range(0, ids.Length).Select(i => (long)i)], 1);
        var allowed = logits.AsSpan((ids.Length - 1) * 257, limit).ToArray();
        Assert.Equal(Array.IndexOf(allowed, allowed.Max()), greedy.Tokens[0]);
    }

    [Fact]
    public void Logprobs_are_the_models_own_and_top_logprobs_lead_with_the_greedy_choice()
    {
        var prompt = DecoderFixture.Bytes("abcdefg");
        var result = new Generator(_cached).Generate([prompt], Greedy with { TopLogprobs = 3 })[0];

        Assert.NotNull(result.TopLogprobs);
        Assert.Equal(result.Tokens.Count, result.TopLogprobs.Count);
        Assert.All(result.TopLogprobs.Zip(result.Tokens, result.Logprobs), step =>
        {
            Assert.Equal(3, step.First.Count);
            Assert.Equal((step.Second, step.Third), (step.First[0].TokenId, step.First[0].Logprob));
            Assert.True(step.First[0].Logprob >= step.First[1].Logprob && step.First[1].Logprob >= step.First[2].Logprob);
        });
        // The first chosen token's log-probability from a plain forward pass of the prompt.
        long[] ids = [.. prompt.Select(t => (long)t)];
        var logits = _cached.Forward(ids, [.. ids.Select(_ => 1L)], [.. Enumerable.Range(0, ids.Length).Select(i => (long)i)], 1);
        var last = logits.AsSpan((ids.Length - 1) * 257, 257);
        var logZ = Math.Log(last.ToArray().Sum(v => Math.Exp(v)));
        Assert.Equal(last[result.Tokens[0]] - logZ, result.Logprobs[0], 1e-4);
    }

    [Fact]
    public void Sequences_end_on_eos_on_a_stop_sequence_on_a_stop_string_and_at_the_length()
    {
        var generator = new Generator(_cached);
        // Greedy "The red fox" -> " jumps over the lazy dog." + eos.
        var fox = DecoderFixture.Bytes("The red fox");

        var eos = generator.Generate([fox], Greedy)[0];
        var stopSequence = generator.Generate([fox], Greedy with { StopSequences = [DecoderFixture.Bytes("xx"), DecoderFixture.Bytes("the")] })[0];
        var stopString = generator.Generate([fox], Greedy with { StopStrings = ["lazy"], Decode = DecoderFixture.Text })[0];
        var length = generator.Generate([fox], Greedy with { MaxNewTokens = 5 })[0];

        Assert.Equal((FinishReason.Eos, 1, " jumps over the lazy dog."), (eos.FinishReason, eos.StopLength, DecoderFixture.Text(eos.ContentTokens)));
        Assert.Equal((FinishReason.Stop, 3, " jumps over the", " jumps over "), (stopSequence.FinishReason, stopSequence.StopLength, DecoderFixture.Text(stopSequence.Tokens), DecoderFixture.Text(stopSequence.ContentTokens)));
        Assert.Equal((FinishReason.Stop, 0, " jumps over the lazy"), (stopString.FinishReason, stopString.StopLength, DecoderFixture.Text(stopString.Tokens)));
        Assert.Equal((FinishReason.Length, 0, " jump"), (length.FinishReason, length.StopLength, DecoderFixture.Text(length.Tokens)));
    }

    [Fact]
    public void Generation_stops_at_the_end_of_the_position_table()
    {
        // 60 tokens of the 64 positions: room for 4 new ones, whatever max_new_tokens says.
        var prompt = DecoderFixture.Bytes(string.Concat(Enumerable.Repeat("abcdefghij", 6)));

        var result = new Generator(_cached).Generate([prompt], Greedy with { StopTokenIds = [] })[0];

        Assert.Equal((FinishReason.Length, 4), (result.FinishReason, result.Tokens.Count));
    }

    [Fact]
    public void Bad_prompts_are_reported_together_with_the_model()
    {
        IReadOnlyList<IReadOnlyList<int>> prompts = [[], [65, 300], [.. Enumerable.Repeat(65, 65)], [65]];

        var error = Assert.Throws<CompressionException>(() => new Generator(_cached).Generate(prompts, Greedy));

        Assert.Equal(
            [(DiagnosticCodes.GenerationPromptInvalid, "Prompt 0"), (DiagnosticCodes.GenerationPromptInvalid, "Prompt 1"), (DiagnosticCodes.GenerationPromptTooLong, "Prompt 2")],
            error.Diagnostics.Select(d => (d.Code, d.Message[..8])));
        Assert.All(error.Diagnostics, d => Assert.Equal(DecoderFixture.Cached, d.File));
        Assert.Contains("token id 300, outside the model's vocabulary of 257", error.Diagnostics[1].Message, StringComparison.Ordinal);
        Assert.Contains("65 tokens; the model has 64 positions", error.Diagnostics[2].Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unusable_options_are_refused_with_every_problem()
    {
        var options = new GenerationOptions { TopP = 1.5, Temperature = -1, MaxNewTokens = 0, StopStrings = ["end"] };

        Assert.Equal(
            ["max_new_tokens must be at least 1, got 0", "temperature must be 0 (greedy) or more, got -1", "top_p must be in (0, 1], got 1.5", "stop strings need a decode function to turn tokens into text"],
            options.Problems());
        var error = Assert.Throws<ArgumentException>(() => new Generator(_cached).Generate([[65]], options));
        Assert.Contains("top_p must be in (0, 1], got 1.5", error.Message, StringComparison.Ordinal);
        Assert.Empty(new GenerationOptions().Problems());
    }
}
