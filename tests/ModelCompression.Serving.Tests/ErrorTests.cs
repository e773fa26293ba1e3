using System.Net;
using System.Text.Json;
using ModelCompression.Diagnostics;

namespace ModelCompression.Serving.Tests;

/// <summary>
/// Bad requests get OpenAI's error shape with the right status, the field at fault and the code: unreadable bodies
/// (MC2065), bad fields (MC2066), unknown models (MC2067); unknown fields are ignored; unknown routes are 404. Models that
/// cannot be served and bad fault rules fail at start with their codes.
/// </summary>
public sealed class ErrorTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly RunningServer _server;
    private readonly HttpClient _http;

    public ErrorTests()
    {
        _server = OpenAiServer.Start(new ServeOptions { Models = [new(Folders.Text(_dir)), new(Folders.Chat(_dir))], MaxRequestBodyBytes = 4096 });
        _http = Http.Client(_server);
    }

    public void Dispose()
    {
        _http.Dispose();
        _server.Dispose();
        _dir.Dispose();
    }

    [Theory]
    [InlineData("/v1/chat/completions", """{"model": "chat", "messages": [""", 400, "MC2065", null)]
    [InlineData("/v1/chat/completions", """[1, 2]""", 400, "MC2065", null)]
    [InlineData("/v1/chat/completions", """{"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}""", 404, "MC2067", "model")]
    [InlineData("/v1/chat/completions", """{"messages": [{"role": "user", "content": "Hi"}]}""", 400, "MC2066", "model")]
    [InlineData("/v1/chat/completions", """{"model": "chat", "messages": [{"role": "user", "content": "Hi"}], "temperature": 3}""", 400, "MC2066", "temperature")]
    [InlineData("/v1/chat/completions", """{"model": "chat", "messages": [{"role": "user", "content": "Hi"}], "temperature": "hot"}""", 400, "MC2066", "temperature")]
    [InlineData("/v1/chat/completions", """{"model": "chat", "messages": [{"role": "user", "content": "Hi"}], "top_p": 0}""", 400, "MC2066", "top_p")]
    [InlineData("/v1/chat/completions", """{"model": "chat", "messages": [{"role": "user", "content": "Hi"}], "n": 0}""", 400, "MC2066", "n")]
    [InlineData("/v1/chat/completions", """{"model": "chat", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1000}""", 400, "MC2066", "max_tokens")]
    [InlineData("/v1/chat/completions", """{"model": "chat", "messages": [{"role": "user", "content": "Hi"}], "max_completion_tokens": 0}""", 400, "MC2066", "max_completion_tokens")]
    [InlineData("/v1/chat/completions", """{"model": "chat", "messages": [{"role": "user", "content": "Hi"}], "stop": ["a", 1]}""", 400, "MC2066", "stop")]
    [InlineData("/v1/chat/completions", """{"model": "chat", "messages": [{"role": "user", "content": "Hi"}], "stop": ""}""", 400, "MC2066", "stop")]
    [InlineData("/v1/chat/completions", """{"model": "chat", "messages": [{"role": "user", "content": "Hi"}], "seed": 1.5}""", 400, "MC2066", "seed")]
    [InlineData("/v1/chat/completions", """{"model": "chat", "messages": [{"role": "user", "content": "Hi"}], "frequency_penalty": -3}""", 400, "MC2066", "frequency_penalty")]
    [InlineData("/v1/chat/completions", """{"model": "chat", "messages": [{"role": "user", "content": "Hi"}], "top_logprobs": 2}""", 400, "MC2066", "top_logprobs")]
    [InlineData("/v1/chat/completions", """{"model": "chat", "messages": [{"role": "user", "content": "Hi"}], "logprobs": true, "top_logprobs": 21}""", 400, "MC2066", "top_logprobs")]
    [InlineData("/v1/chat/completions", """{"model": "chat", "messages": [{"role": "user", "content": "Hi"}], "stream": "yes"}""", 400, "MC2066", "stream")]
    [InlineData("/v1/chat/completions", """{"model": "chat", "messages": [{"role": "user", "content": "Hi"}], "stream_options": {"include_usage": 1}}""", 400, "MC2066", "stream_options.include_usage")]
    [InlineData("/v1/chat/completions", """{"model": "chat", "messages": []}""", 400, "MC2066", "messages")]
    [InlineData("/v1/chat/completions", """{"model": "chat", "messages": [{"role": "tool", "content": "42"}]}""", 400, "MC2066", "messages[0].role")]
    [InlineData("/v1/chat/completions", """{"model": "chat", "messages": [{"role": "user", "content": 42}]}""", 400, "MC2066", "messages[0].content")]
    [InlineData("/v1/chat/completions", """{"model": "chat", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}""", 400, "MC2066", "messages[0].content")]
    [InlineData("/v1/chat/completions", """{"model": "chat", "messages": [{"role": "user", "content": "Hi"}], "tools": [{"type": "function"}]}""", 400, "MC2066", "tools")]
    [InlineData("/v1/chat/completions", """{"model": "chat", "messages": [{"role": "user", "content": "Hi"}], "response_format": {"type": "json_object"}}""", 400, "MC2066", "response_format")]
    [InlineData("/v1/chat/completions", """{"model": "chat", "messages": [{"role": "user", "content": "Hi"}], "logit_bias": {"50": 10}}""", 400, "MC2066", "logit_bias")]
    [InlineData("/v1/chat/completions", """{"model": "text", "messages": [{"role": "user", "content": "Hi"}]}""", 400, "MC2066", "model")]
    [InlineData("/v1/completions", """{"model": "text"}""", 400, "MC2066", "prompt")]
    [InlineData("/v1/completions", """{"model": "text", "prompt": ""}""", 400, "MC2066", "prompt")]
    [InlineData("/v1/completions", """{"model": "text", "prompt": [72, 300]}""", 400, "MC2066", "prompt")]
    [InlineData("/v1/completions", """{"model": "text", "prompt": [[72], ["a"]]}""", 400, "MC2066", "prompt[1]")]
    [InlineData("/v1/completions", """{"model": "text", "prompt": "Hi", "logprobs": 21}""", 400, "MC2066", "logprobs")]
    [InlineData("/v1/completions", """{"model": "text", "prompt": "Hi", "echo": true}""", 400, "MC2066", "echo")]
    [InlineData("/v1/completions", """{"model": "text", "prompt": "Hi", "suffix": "end"}""", 400, "MC2066", "suffix")]
    [InlineData("/v1/completions", """{"model": "text", "prompt": "Hi", "best_of": 3}""", 400, "MC2066", "best_of")]
    public async Task A_bad_request_is_refused_in_OpenAIs_shape_naming_the_field(string path, string body, int status, string code, string? param)
    {
        var (actual, response) = await Http.Post(_http, path, body);
        Assert.Equal(status, actual);
        var error = Http.Error(response);
        Assert.Equal(code, error.GetProperty("code").GetString());
        Assert.Equal(param, error.GetProperty("param").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.True(error.GetProperty("message").GetString()!.Length > 20);
    }

    [Fact]
    public async Task Messages_say_what_is_wrong()
    {
        var (_, body) = await Http.Post(_http, "/v1/chat/completions", """{"model": "chat", "messages": [{"role": "user", "content": "Hi"}], "temperature": 3}""");
        Assert.Equal("'temperature' must be a number from 0 to 2, not 3.", Http.Error(body).GetProperty("message").GetString());
        (_, body) = await Http.Post(_http, "/v1/chat/completions", """{"model": "chat", "messages": [""");
        Assert.StartsWith("The request body is not JSON: ", Http.Error(body).GetProperty("message").GetString(), StringComparison.Ordinal);
        (_, body) = await Http.Post(_http, "/v1/chat/completions", """{"model": "gpt-4o", "messages": []}""");
        Assert.Equal("The model 'gpt-4o' does not exist here; GET /v1/models lists the served models.", Http.Error(body).GetProperty("message").GetString());
    }

    [Fact]
    public async Task Unknown_fields_are_ignored_as_OpenAI_servers_do()
    {
        var (status, body) = await Http.Post(_http, "/v1/completions", """{"model": "text", "prompt": "Hello", "user": "me", "metadata": {"a": 1}, "some_future_field": [1, 2], "tool_choice": "none", "response_format": {"type": "text"}, "logit_bias": {}}""");
        Assert.Equal(200, status);
        Assert.Equal(", world!", body.GetProperty("choices")[0].GetProperty("text").GetString());
    }

    [Fact]
    public async Task A_body_over_the_limit_is_413()
    {
        var prompt = new string('a', 5000);
        var (status, body) = await Http.Post(_http, "/v1/completions", $$"""{"model": "text", "prompt": "{{prompt}}"}""");
        Assert.Equal(413, status);
        Assert.Equal(DiagnosticCodes.ServeRequestUnreadable, Http.Error(body).GetProperty("code").GetString());
    }

    [Fact]
    public async Task Unknown_routes_are_404_and_wrong_methods_405()
    {
        var (status, body) = await Http.Get(_http, "/v1/embeddings");
        Assert.Equal(404, status);
        Assert.Equal("unknown_url", Http.Error(body).GetProperty("code").GetString());
        (status, body) = await Http.Get(_http, "/v1/chat/completions");
        Assert.Equal(405, status);
        (status, body) = await Http.Get(_http, "/v1/models/nope");
        Assert.Equal(404, status);
        Assert.Equal("MC2067", Http.Error(body).GetProperty("code").GetString());
        (status, body) = await Http.Get(_http, "/v1/models/chat");
        Assert.Equal(200, status);
        Assert.Equal("chat", body.GetProperty("id").GetString());
        Assert.Equal(64, body.GetProperty("max_model_len").GetInt32());
    }

    [Fact]
    public void Models_that_cannot_be_served_are_refused_at_start_with_a_code()
    {
        var missing = Assert.Throws<CompressionException>(() => OpenAiServer.Start(new ServeOptions { Models = [new(_dir.File("nothing"))] }));
        Assert.Equal(DiagnosticCodes.ServeModelUnusable, missing.Diagnostics[0].Code);

        // A bare decoder needs a tokenizer: there is none beside the fixture.
        var noTokenizer = Assert.Throws<CompressionException>(() => OpenAiServer.Start(new ServeOptions { Models = [new(Folders.Decoder)] }));
        Assert.Contains("--tokenizer byte", noTokenizer.Diagnostics[0].Message, StringComparison.Ordinal);

        var twice = Assert.Throws<CompressionException>(() => OpenAiServer.Start(new ServeOptions { Models = [new(Folders.Decoder) { Tokenizer = "byte", Name = "m" }, new(Folders.Text(_dir, "other")) { Name = "m" }] }));
        Assert.Equal(DiagnosticCodes.ServeModelUnusable, twice.Diagnostics[0].Code);
        Assert.Contains("'m'", twice.Diagnostics[0].Message, StringComparison.Ordinal);

        var host = Assert.Throws<CompressionException>(() => OpenAiServer.Start(new ServeOptions { Models = [new(Folders.Decoder) { Tokenizer = "byte" }], Host = "example.com" }));
        Assert.Equal(DiagnosticCodes.ServeModelUnusable, host.Diagnostics[0].Code);

        // The port is taken by the running server.
        var taken = Assert.Throws<CompressionException>(() => OpenAiServer.Start(new ServeOptions { Models = [new(Folders.Decoder) { Tokenizer = "byte" }], Port = _server.BaseAddress.Port }));
        Assert.Equal(DiagnosticCodes.ServeModelUnusable, taken.Diagnostics[0].Code);
    }
}
