using System.ClientModel;
using ModelCompression.Generation;
using ModelCompression.Text;
using OpenAI;
using OpenAI.Chat;
using OpenAI.Models;
using Xunit.Abstractions;
using ChatMessage = OpenAI.Chat.ChatMessage;
using EngineMessage = ModelCompression.Text.ChatMessage;

namespace ModelCompression.Serving.Tests;

/// <summary>
/// The official OpenAI .NET client against a server of the fixture's chat folder: a greedy answer is exactly what
/// <see cref="GenerativeModel.Answer(IReadOnlyList{EngineMessage}, GenerationOptions?, CancellationToken)"/> gives on the
/// same folder; a stream joins to it; log-probabilities are the generator's; stop strings and max tokens end answers
/// as OpenAI says.
/// </summary>
public sealed class ChatTests : IDisposable
{
    private static readonly IReadOnlyList<EngineMessage>[] Conversations =
    [
        [new(ChatRole.User, "The red fox")],
        [new(ChatRole.System, "Count."), new(ChatRole.User, "1 2 3 4")],
        [new(ChatRole.User, "Hello"), new(ChatRole.Assistant, ", world!"), new(ChatRole.User, "abcdefg")],
    ];

    private readonly TempDir _dir = new();
    private readonly string _folder;
    private readonly RunningServer _server;
    private readonly GenerativeModel _local;
    private readonly ChatClient _client;

    private readonly ITestOutputHelper _output;

    public ChatTests(ITestOutputHelper output)
    {
        _output = output;
        _folder = Folders.Chat(_dir);
        _server = OpenAiServer.Start(new ServeOptions { Models = [new(_folder)] });
        _local = GenerativeModel.Open(_folder);
        _client = new ChatClient("chat", new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = _server.OpenAiEndpoint });
    }

    public void Dispose()
    {
        _server.Dispose();
        _local.Dispose();
        _dir.Dispose();
    }

    [Fact]
    public async Task The_model_list_names_the_folder()
    {
        var models = new OpenAIModelClient(new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = _server.OpenAiEndpoint });
        var list = (await models.GetModelsAsync()).Value;
        Assert.Equal(["chat"], list.Select(m => m.Id));
        Assert.Equal("modelcompression", list[0].OwnedBy);
        Assert.Equal("chat", (await models.GetModelAsync("chat")).Value.Id);
    }

    [Fact]
    public async Task A_greedy_answer_is_the_engines_answer_on_the_same_folder()
    {
        foreach (var conversation in Conversations)
        {
            var completion = (await _client.CompleteChatAsync(Messages(conversation), new ChatCompletionOptions { Temperature = 0 })).Value;
            var expected = _local.Generate([_local.PromptIds(conversation)])[0];
            Assert.Equal(_local.Answer(conversation), completion.Content[0].Text);
            _output.WriteLine($"{string.Join(" | ", conversation.Select(m => m.Content))} -> '{completion.Content[0].Text}' ({completion.FinishReason})");
            Assert.Equal(expected.FinishReason == FinishReason.Length ? ChatFinishReason.Length : ChatFinishReason.Stop, completion.FinishReason);
            Assert.Equal(_local.PromptIds(conversation).Count, completion.Usage.InputTokenCount);
            Assert.Equal(expected.Tokens.Count, completion.Usage.OutputTokenCount);
            Assert.Equal(completion.Usage.InputTokenCount + completion.Usage.OutputTokenCount, completion.Usage.TotalTokenCount);
            Assert.Equal("chat", completion.Model);
            Assert.StartsWith("chatcmpl-", completion.Id, StringComparison.Ordinal);
        }

        // The fixture learnt "The red fox jumps over the lazy dog." and keeps to it after the template's " ".
        Assert.Equal("jumps over the lazy dog.", _local.Answer(Conversations[0]));
    }

    [Fact]
    public async Task A_stream_joins_to_the_whole_answer_and_ends_with_usage()
    {
        foreach (var conversation in Conversations)
        {
            var whole = (await _client.CompleteChatAsync(Messages(conversation))).Value;
            var text = new System.Text.StringBuilder();
            var updates = 0;
            ChatFinishReason? finish = null;
            ChatTokenUsage? usage = null;
            await foreach (var update in _client.CompleteChatStreamingAsync(Messages(conversation)))
            {
                updates++;
                text.Append(string.Concat(update.ContentUpdate.Select(p => p.Text)));
                finish ??= update.FinishReason;
                usage ??= update.Usage;
            }

            Assert.Equal(whole.Content[0].Text, text.ToString());
            Assert.True(updates > 3, $"{updates} updates: the answer came in one piece");
            Assert.Equal(whole.FinishReason, finish);
            Assert.NotNull(usage);
            Assert.Equal(whole.Usage.OutputTokenCount, usage.OutputTokenCount);
            Assert.Equal(whole.Usage.InputTokenCount, usage.InputTokenCount);
        }
    }

    [Fact]
    public async Task Logprobs_are_the_generators_with_the_most_likely_tokens_first()
    {
        var conversation = Conversations[1];
        var options = new ChatCompletionOptions { IncludeLogProbabilities = true, TopLogProbabilityCount = 3 };
        var completion = (await _client.CompleteChatAsync(Messages(conversation), options)).Value;
        var expected = _local.Generate([_local.PromptIds(conversation)], _local.Defaults with { TopLogprobs = 3 })[0];

        // One entry per token of the answer; the stop token (end of text) is not part of the content.
        var entries = completion.ContentTokenLogProbabilities;
        Assert.Equal(expected.ContentTokens.Count, entries.Count);
        for (var i = 0; i < entries.Count; i++)
        {
            var entry = entries[i];
            Assert.Equal([(byte)expected.Tokens[i]], entry.Utf8Bytes!.Value.ToArray());
            Assert.Equal(expected.Logprobs[i], entry.LogProbability, 1e-5f);
            Assert.Equal(3, entry.TopLogProbabilities.Count);
            Assert.Equal(expected.TopLogprobs![i].Select(t => (byte)t.TokenId), entry.TopLogProbabilities.Select(t => t.Utf8Bytes!.Value.ToArray().Single()));
            for (var k = 0; k < 3; k++)
            {
                Assert.Equal(expected.TopLogprobs[i][k].Logprob, entry.TopLogProbabilities[k].LogProbability, 1e-5f);
            }

            // Greedy: the chosen token leads the list.
            Assert.Equal(entry.Token, entry.TopLogProbabilities[0].Token);
            Assert.True(entry.LogProbability <= 0);
        }

        Assert.Equal(completion.Content[0].Text, string.Concat(entries.Select(e => e.Token)));

        // Streamed, the same entries arrive spread over the chunks.
        var streamed = new List<ChatTokenLogProbabilityDetails>();
        await foreach (var update in _client.CompleteChatStreamingAsync(Messages(conversation), options))
        {
            streamed.AddRange(update.ContentTokenLogProbabilities);
        }

        Assert.Equal(entries.Select(e => (e.Token, e.LogProbability)), streamed.Select(e => (e.Token, e.LogProbability)));
    }

    [Fact]
    public async Task A_stop_string_ends_the_answer_before_it_and_max_tokens_ends_it_for_length()
    {
        var conversation = Conversations[0];
        var answer = _local.Answer(conversation);
        var stop = answer.Substring(answer.IndexOf("lazy", StringComparison.Ordinal), 4);

        var stopped = (await _client.CompleteChatAsync(Messages(conversation), new ChatCompletionOptions { StopSequences = { "zzz", stop } })).Value;
        Assert.Equal(answer[..answer.IndexOf(stop, StringComparison.Ordinal)], stopped.Content[0].Text);
        Assert.Equal(ChatFinishReason.Stop, stopped.FinishReason);

        var streamed = new System.Text.StringBuilder();
        await foreach (var update in _client.CompleteChatStreamingAsync(Messages(conversation), new ChatCompletionOptions { StopSequences = { stop } }))
        {
            streamed.Append(string.Concat(update.ContentUpdate.Select(p => p.Text)));
        }

        Assert.Equal(stopped.Content[0].Text, streamed.ToString());

        var cut = (await _client.CompleteChatAsync(Messages(conversation), new ChatCompletionOptions { MaxOutputTokenCount = 3 })).Value;
        Assert.Equal(ChatFinishReason.Length, cut.FinishReason);
        Assert.Equal(3, cut.Usage.OutputTokenCount);
        Assert.Equal(answer[..3], cut.Content[0].Text);
    }

    [Fact]
    public async Task Raw_chat_responses_and_chunks_have_OpenAIs_shape_and_n_with_a_seed_repeats()
    {
        using var http = Http.Client(_server);
        const string Request = """{"model": "chat", "messages": [{"role": "user", "content": "The red fox"}], "n": 3, "temperature": 1.5, "seed": 5, "logprobs": true, "top_logprobs": 1}""";
        var (status, body) = await Http.Post(http, "/v1/chat/completions", Request);
        Assert.Equal(200, status);
        Assert.Equal("chat.completion", body.GetProperty("object").GetString());
        Assert.True(body.GetProperty("created").GetInt64() > 1_700_000_000);
        var choices = body.GetProperty("choices").EnumerateArray().ToList();
        Assert.Equal([0, 1, 2], choices.Select(c => c.GetProperty("index").GetInt32()));
        Assert.All(choices, c => Assert.Equal("assistant", c.GetProperty("message").GetProperty("role").GetString()));
        var answers = choices.Select(c => c.GetProperty("message").GetProperty("content").GetString()).ToList();
        // The entries' bytes make the content (a sampled byte that is no character alone decodes as U+FFFD in both).
        Assert.All(choices, c => Assert.Equal(
            c.GetProperty("message").GetProperty("content").GetString(),
            System.Text.Encoding.UTF8.GetString([.. c.GetProperty("logprobs").GetProperty("content").EnumerateArray().SelectMany(t => t.GetProperty("bytes").EnumerateArray().Select(b => (byte)b.GetInt32()))])));
        var usage = body.GetProperty("usage");
        Assert.Equal(usage.GetProperty("prompt_tokens").GetInt32() + usage.GetProperty("completion_tokens").GetInt32(), usage.GetProperty("total_tokens").GetInt32());

        // The same seed draws the same samples; the stream sends them too.
        var (_, again) = await Http.Post(http, "/v1/chat/completions", Request);
        Assert.Equal(answers, again.GetProperty("choices").EnumerateArray().Select(c => c.GetProperty("message").GetProperty("content").GetString()));
        var events = await Http.Events(http, "/v1/chat/completions", Request.Replace("\"n\": 3", "\"n\": 3, \"stream\": true", StringComparison.Ordinal));
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events.SkipLast(1).Select(e => System.Text.Json.JsonDocument.Parse(e).RootElement).ToList();
        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", c.GetProperty("object").GetString()));
        for (var i = 0; i < 3; i++)
        {
            var mine = chunks.Select(c => c.GetProperty("choices")[0]).Where(c => c.GetProperty("index").GetInt32() == i).ToList();
            Assert.Equal("assistant", mine[0].GetProperty("delta").GetProperty("role").GetString());
            Assert.Equal(answers[i], string.Concat(mine.Select(c => c.GetProperty("delta").TryGetProperty("content", out var content) ? content.GetString() : "")));
            Assert.Equal(choices[i].GetProperty("finish_reason").GetString(), mine[^1].GetProperty("finish_reason").GetString());
            Assert.Empty(mine[^1].GetProperty("delta").EnumerateObject());
        }
    }

    private static List<ChatMessage> Messages(IEnumerable<EngineMessage> conversation) =>
    [
        .. conversation.Select<EngineMessage, ChatMessage>(m => m.Role switch
        {
            ChatRole.System => new SystemChatMessage(m.Content),
            ChatRole.User => new UserChatMessage(m.Content),
            _ => new AssistantChatMessage(m.Content),
        }),
    ];
}
