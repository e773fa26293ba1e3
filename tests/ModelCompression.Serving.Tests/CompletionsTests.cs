using System.Text.Json;
using ModelCompression.Generation;

namespace ModelCompression.Serving.Tests;

/// <summary>
/// <c>/v1/completions</c> over raw HTTP (the OpenAI .NET client has no legacy completions): the fixture continues plain
/// text as the engine does; stop strings, several prompts and token-id prompts, n with a seed, the legacy logprobs shape,
/// a stream that joins to the whole answer, penalties, and a bare decoder file served with its tokenizer.
/// </summary>
public sealed class CompletionsTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly RunningServer _server;
    private readonly HttpClient _http;
    private readonly GenerativeModel _untrained;

    public CompletionsTests()
    {
        var untrained = Folders.Untrained(_dir);
        _server = OpenAiServer.Start(new ServeOptions { Models = [new(Folders.Text(_dir)), new(untrained), new(Folders.Decoder) { Tokenizer = "byte", Name = "bare" }] });
        _http = Http.Client(_server);
        _untrained = GenerativeModel.Open(untrained);
    }

    public void Dispose()
    {
        _http.Dispose();
        _server.Dispose();
        _untrained.Dispose();
        _dir.Dispose();
    }

    [Fact]
    public async Task The_fixture_continues_its_text_and_stops_where_asked()
    {
        var (status, body) = await Http.Post(_http, "/v1/completions", """{"model": "text", "prompt": "The red fox", "temperature": 0}""");
        Assert.Equal(200, status);
        Assert.Equal("text_completion", body.GetProperty("object").GetString());
        Assert.StartsWith("cmpl-", body.GetProperty("id").GetString(), StringComparison.Ordinal);
        Assert.Equal("text", body.GetProperty("model").GetString());
        var choice = body.GetProperty("choices").EnumerateArray().Single();
        Assert.Equal(" jumps over the lazy dog.", choice.GetProperty("text").GetString());
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(JsonValueKind.Null, choice.GetProperty("logprobs").ValueKind);
        var usage = body.GetProperty("usage");
        // 11 prompt bytes; 25 new bytes and the end of text.
        Assert.Equal((11, 26, 37), (usage.GetProperty("prompt_tokens").GetInt32(), usage.GetProperty("completion_tokens").GetInt32(), usage.GetProperty("total_tokens").GetInt32()));

        (_, body) = await Http.Post(_http, "/v1/completions", """{"model": "text", "prompt": "The red fox", "stop": ["lazy", "cat"]}""");
        Assert.Equal(" jumps over the ", Text(body, 0));
        Assert.Equal("stop", body.GetProperty("choices")[0].GetProperty("finish_reason").GetString());

        (_, body) = await Http.Post(_http, "/v1/completions", """{"model": "text", "prompt": "The red fox", "max_tokens": 6}""");
        Assert.Equal(" jumps", Text(body, 0));
        Assert.Equal("length", body.GetProperty("choices")[0].GetProperty("finish_reason").GetString());

        // A bare decoder file with its tokenizer answers the same.
        (status, body) = await Http.Post(_http, "/v1/completions", """{"model": "bare", "prompt": "The red fox"}""");
        Assert.Equal(200, status);
        Assert.Equal(" jumps over the lazy dog.", Text(body, 0));
    }

    [Fact]
    public async Task Several_prompts_and_token_ids_answer_in_order()
    {
        var (_, body) = await Http.Post(_http, "/v1/completions", """{"model": "text", "prompt": ["abcdefg", "Hello", "1 2 3 4"]}""");
        Assert.Equal(["hijk", ", world!", " 5 6 7"], Enumerable.Range(0, 3).Select(i => Text(body, i)));
        Assert.Equal([0, 1, 2], body.GetProperty("choices").EnumerateArray().Select(c => c.GetProperty("index").GetInt32()));

        // "Hello" as byte ids, alone and in a list.
        (_, body) = await Http.Post(_http, "/v1/completions", """{"model": "text", "prompt": [72, 101, 108, 108, 111]}""");
        Assert.Equal(", world!", Text(body, 0));
        (_, body) = await Http.Post(_http, "/v1/completions", """{"model": "text", "prompt": [[72, 101, 108, 108, 111], [113]]}""");
        Assert.Equal([", world!", "rstuvwxy"], Enumerable.Range(0, 2).Select(i => Text(body, i)));
    }

    [Fact]
    public async Task Several_choices_with_a_seed_are_reproducible_and_the_seed_matters()
    {
        const string Request = """{"model": "untrained", "prompt": "The", "n": 4, "temperature": 1.0, "seed": 7, "max_tokens": 8}""";
        var (status, first) = await Http.Post(_http, "/v1/completions", Request);
        Assert.Equal(200, status);
        var (_, again) = await Http.Post(_http, "/v1/completions", Request);
        var (_, other) = await Http.Post(_http, "/v1/completions", Request.Replace("\"seed\": 7", "\"seed\": 8", StringComparison.Ordinal));

        var answers = Enumerable.Range(0, 4).Select(i => Text(first, i)).ToList();
        Assert.Equal(answers, Enumerable.Range(0, 4).Select(i => Text(again, i)));
        Assert.NotEqual(answers, Enumerable.Range(0, 4).Select(i => Text(other, i)));
        Assert.True(answers.Distinct().Count() > 1, "the four samples are one answer");

        // Each choice is the engine's sample of that index under the seed.
        var local = _untrained.Generate([_untrained.TextIds("The")], _untrained.Defaults with { Temperature = 1.0, Seed = 7, SamplesPerPrompt = 4, MaxNewTokens = 8 });
        Assert.Equal(local.Select(s => _untrained.AnswerText(s)), answers);
    }

    [Fact]
    public async Task Penalties_decode_as_the_engine_does_with_them()
    {
        var (_, body) = await Http.Post(_http, "/v1/completions", """{"model": "untrained", "prompt": "Hello", "frequency_penalty": 1.5, "presence_penalty": 0.5}""");
        var penalised = _untrained.Answer("Hello", _untrained.Defaults with { FrequencyPenalty = 1.5, PresencePenalty = 0.5 });
        Assert.Equal(penalised, Text(body, 0));
        Assert.NotEqual(_untrained.Answer("Hello"), penalised);
    }

    [Fact]
    public async Task Legacy_logprobs_list_tokens_logprobs_top_choices_and_offsets()
    {
        var (_, body) = await Http.Post(_http, "/v1/completions", """{"model": "text", "prompt": "Hello", "logprobs": 2}""");
        var logprobs = body.GetProperty("choices")[0].GetProperty("logprobs");
        var tokens = logprobs.GetProperty("tokens").EnumerateArray().Select(t => t.GetString()!).ToList();
        Assert.Equal([",", " ", "w", "o", "r", "l", "d", "!"], tokens);
        var values = logprobs.GetProperty("token_logprobs").EnumerateArray().Select(v => v.GetSingle()).ToList();
        var top = logprobs.GetProperty("top_logprobs").EnumerateArray().ToList();
        Assert.Equal(tokens.Count, values.Count);
        Assert.Equal(tokens.Count, top.Count);
        for (var i = 0; i < tokens.Count; i++)
        {
            var candidates = top[i].EnumerateObject().ToList();
            Assert.Equal(2, candidates.Count);
            // Greedy: the chosen token is the likeliest, with its own logprob.
            Assert.Equal(tokens[i], candidates[0].Name);
            Assert.Equal(values[i], candidates[0].Value.GetSingle());
            Assert.True(candidates[1].Value.GetSingle() <= values[i]);
        }

        Assert.Equal([0, 1, 2, 3, 4, 5, 6, 7], logprobs.GetProperty("text_offset").EnumerateArray().Select(o => o.GetInt32()));

        // vLLM's return_tokens_as_token_ids names tokens by id.
        (_, body) = await Http.Post(_http, "/v1/completions", """{"model": "text", "prompt": "Hello", "logprobs": 0, "return_tokens_as_token_ids": true}""");
        Assert.Equal("token_id:44", body.GetProperty("choices")[0].GetProperty("logprobs").GetProperty("tokens")[0].GetString());
    }

    [Fact]
    public async Task A_stream_joins_to_the_whole_answer()
    {
        foreach (var request in new[]
        {
            """{"model": "text", "prompt": "The red fox", "stream": true, "stream_options": {"include_usage": true}}""",
            """{"model": "text", "prompt": "The red fox", "stream": true, "stop": "lazy", "logprobs": 1}""",
            """{"model": "untrained", "prompt": ["The", "A"], "n": 2, "temperature": 1, "seed": 3, "stream": true}""",
        })
        {
            var whole = (await Http.Post(_http, "/v1/completions", request.Replace("\"stream\": true", "\"stream\": false", StringComparison.Ordinal))).Body;
            var events = await Http.Events(_http, "/v1/completions", request);
            Assert.Equal("[DONE]", events[^1]);
            var chunks = events.SkipLast(1).Select(e => JsonDocument.Parse(e).RootElement).ToList();
            Assert.All(chunks, c => Assert.Equal("text_completion", c.GetProperty("object").GetString()));
            var choices = whole.GetProperty("choices").EnumerateArray().ToList();
            foreach (var choice in choices)
            {
                var index = choice.GetProperty("index").GetInt32();
                var mine = chunks.SelectMany(c => c.GetProperty("choices").EnumerateArray()).Where(c => c.GetProperty("index").GetInt32() == index).ToList();
                Assert.Equal(choice.GetProperty("text").GetString(), string.Concat(mine.Select(c => c.GetProperty("text").GetString())));
                Assert.Equal(choice.GetProperty("finish_reason").GetString(), mine[^1].GetProperty("finish_reason").GetString());
                Assert.All(mine.SkipLast(1), c => Assert.Equal(JsonValueKind.Null, c.GetProperty("finish_reason").ValueKind));
                if (choice.GetProperty("logprobs").ValueKind == JsonValueKind.Object)
                {
                    var streamed = mine.SelectMany(c => c.GetProperty("logprobs").GetProperty("tokens").EnumerateArray().Select(t => t.GetString()));
                    Assert.Equal(choice.GetProperty("logprobs").GetProperty("tokens").EnumerateArray().Select(t => t.GetString()), streamed);
                }
            }

            if (request.Contains("include_usage", StringComparison.Ordinal))
            {
                Assert.Equal(0, chunks[^1].GetProperty("choices").GetArrayLength());
                Assert.Equal(whole.GetProperty("usage").GetRawText(), chunks[^1].GetProperty("usage").GetRawText());
            }
        }
    }

    private static string Text(JsonElement body, int choice) => body.GetProperty("choices")[choice].GetProperty("text").GetString()!;
}
