using System.ClientModel;
using System.Collections.Concurrent;
using System.Net;
using System.Text;
using OpenAI;
using OpenAI.Chat;

namespace ModelCompression.Serving.Tests;

/// <summary>
/// With an API key set, every route wants it (401 in OpenAI's shape otherwise), the OpenAI client gets in with it; the
/// key and request bodies never appear in the log, the statistics or an error; the log has one plain line per request.
/// </summary>
public sealed class ApiKeyTests : IDisposable
{
    private const string Key = "sk-test-7f3a9c1e5b";
    private const string Secret = "the secret prompt 12345";

    private readonly TempDir _dir = new();
    private readonly ConcurrentQueue<string> _log = new();
    private readonly RunningServer _server;

    public ApiKeyTests() =>
        _server = OpenAiServer.Start(new ServeOptions { Models = [new(Folders.Chat(_dir))], ApiKey = Key, Log = _log.Enqueue, Faults = [FaultRule.Parse("500@request:2")] });

    public void Dispose()
    {
        _server.Dispose();
        _dir.Dispose();
    }

    [Fact]
    public async Task Requests_without_the_key_are_401_and_with_it_go_through()
    {
        var everything = new StringBuilder();
        using (var anonymous = Http.Client(_server))
        using (var wrong = Http.Client(_server, key: "sk-wrong"))
        {
            foreach (var client in new[] { anonymous, wrong })
            {
                using var response = await client.PostAsync("/v1/chat/completions", Http.Json(Body));
                Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
                Assert.Equal("Bearer", response.Headers.WwwAuthenticate.Single().Scheme);
                var text = await response.Content.ReadAsStringAsync();
                everything.Append(text);
                Assert.Equal("invalid_api_key", Http.Error(System.Text.Json.JsonDocument.Parse(text).RootElement).GetProperty("code").GetString());
                Assert.Equal(401, (await Http.Get(client, "/v1/models")).Status);
                Assert.Equal(401, (await Http.Get(client, "/v1/compress/stats")).Status);
            }
        }

        using (var keyed = Http.Client(_server, key: Key))
        {
            Assert.Equal(200, (await Http.Post(keyed, "/v1/chat/completions", Body)).Status);
            var (status, error) = await Http.Post(keyed, "/v1/chat/completions", Body);
            Assert.Equal(500, status);
            everything.Append(error.GetRawText());
            var (_, stats) = await Http.Get(keyed, "/v1/compress/stats");
            everything.Append(stats.GetRawText());
        }

        // Azure's header works too.
        using (var azure = new HttpClient { BaseAddress = _server.BaseAddress })
        {
            azure.DefaultRequestHeaders.Add("api-key", Key);
            Assert.Equal(200, (await Http.Get(azure, "/v1/models")).Status);
        }

        var chat = new ChatClient("chat", new ApiKeyCredential(Key), new OpenAIClientOptions { Endpoint = _server.OpenAiEndpoint });
        Assert.Equal("jumps over the lazy dog.", (await chat.CompleteChatAsync([new UserChatMessage("The red fox")])).Value.Content[0].Text);
        var refused = await Assert.ThrowsAsync<ClientResultException>(() => new ChatClient("chat", new ApiKeyCredential("sk-wrong"), new OpenAIClientOptions { Endpoint = _server.OpenAiEndpoint }).CompleteChatAsync([new UserChatMessage("Hi")]));
        Assert.Equal(401, refused.Status);

        // Neither the key nor what was asked is written anywhere the server writes.
        var lines = _log.ToList();
        everything.AppendJoin('\n', lines).Append(Encoding.UTF8.GetString(_server.Stats.ToJson()));
        Assert.DoesNotContain(Key, everything.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain(Secret, everything.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("sk-wrong", everything.ToString(), StringComparison.Ordinal);

        // One line per request: method, path, status, model, tokens, milliseconds, and the fault when one fired.
        Assert.Equal(_server.Stats.Requests, lines.Count);
        Assert.Matches(@"^POST /v1/chat/completions 401 - 0\+0 tokens \d+ ms$", lines[0]);
        Assert.Contains(lines, l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^POST /v1/chat/completions 200 chat \d+\+\d+ tokens \d+ ms$"));
        Assert.Contains(lines, l => l.StartsWith("POST /v1/chat/completions 500 - 0+0 tokens ", StringComparison.Ordinal) && l.EndsWith(" fault 500@request:2", StringComparison.Ordinal));
    }

    private static string Body => $$"""{"model": "chat", "messages": [{"role": "user", "content": "{{Secret}}"}]}""";
}
