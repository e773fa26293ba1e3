using System.Net;
using System.Text.Json;
using ModelCompression.Diagnostics;

namespace ModelCompression.Serving.Tests;

/// <summary>
/// Every fault kind fires where its rule says (on chosen request ordinals, or on the first attempts of each distinct
/// body), does what it says to the response, and is counted by kind; the statistics count every body, so a client's
/// retries are visible exactly.
/// </summary>
public sealed class FaultTests : IDisposable
{
    private const string Hello = """{"model": "text", "prompt": "Hello"}""";
    private const string Fox = """{"model": "text", "prompt": "The red fox"}""";

    private readonly TempDir _dir = new();
    private readonly string _folder;

    public FaultTests() => _folder = Folders.Text(_dir);

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Rate_limiting_on_first_attempts_refuses_each_body_once_with_Retry_After()
    {
        await using var server = Start("429:2@first:1");
        using var http = Http.Client(server);

        foreach (var body in new[] { Hello, Fox, Hello, Fox })
        {
            await Http.Post(http, "/v1/completions", body);
        }

        using var first = await http.PostAsync("/v1/completions", Http.Json("""{"model": "text", "prompt": "q"}"""));
        Assert.Equal(HttpStatusCode.TooManyRequests, first.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(2), first.Headers.RetryAfter?.Delta);
        var error = Http.Error(JsonDocument.Parse(await first.Content.ReadAsStringAsync()).RootElement);
        Assert.Equal("rate_limit_exceeded", error.GetProperty("code").GetString());
        // The same body in another key order and spacing is the same request: its retry goes through.
        var (status, answer) = await Http.Post(http, "/v1/completions", """{ "prompt":"q",  "model":"text" }""");
        Assert.Equal(200, status);
        Assert.Equal("rstuvwxy", answer.GetProperty("choices")[0].GetProperty("text").GetString());

        var stats = server.Stats;
        Assert.Equal(3, stats.Faults["429"]);
        Assert.Equal(3, stats.ByStatus[429]);
        Assert.Equal(3, stats.ByStatus[200]);
        Assert.Equal(2, stats.Bodies[RequestHash.Of(Hello)]);
        Assert.Equal(2, stats.Bodies[RequestHash.Of(Fox)]);
        Assert.Equal(2, stats.Bodies[RequestHash.Of("""{"prompt": "q", "model": "text"}""")]);
        Assert.Equal(3, stats.Bodies.Count);
    }

    [Fact]
    public async Task A_server_error_fires_on_the_chosen_ordinals_only()
    {
        await using var server = Start("500@request:2,4-5");
        using var http = Http.Client(server);

        var statuses = new List<int>();
        for (var i = 0; i < 6; i++)
        {
            statuses.Add((await Http.Post(http, "/v1/completions", Hello)).Status);
        }

        Assert.Equal([200, 500, 200, 500, 500, 200], statuses);
        Assert.Equal(3, server.Stats.Faults["500"]);
        Assert.Equal(6, server.Stats.Bodies[RequestHash.Of(Hello)]);
    }

    [Fact]
    public async Task A_slow_reply_outlasts_a_client_timeout_and_the_retry_is_fast()
    {
        await using var server = Start("slow:2s@first:1");
        using var http = Http.Client(server, timeout: TimeSpan.FromMilliseconds(500));

        await Assert.ThrowsAsync<TaskCanceledException>(() => http.PostAsync("/v1/completions", Http.Json(Hello)));
        using var patient = Http.Client(server);
        var (status, body) = await Http.Post(patient, "/v1/completions", Hello);
        Assert.Equal(200, status);
        Assert.Equal(", world!", body.GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.Equal(1, server.Stats.Faults["slow"]);
    }

    [Fact]
    public async Task A_dropped_connection_cuts_the_body_and_the_stream()
    {
        await using var server = Start("drop@request:1", "drop:40@request:2");
        using var http = Http.Client(server);

        // Whole: the length is promised, half the body comes, the connection closes.
        await Assert.ThrowsAnyAsync<HttpRequestException>(async () =>
        {
            using var response = await http.PostAsync("/v1/completions", Http.Json(Hello));
            await response.Content.ReadAsStringAsync();
        });

        // Streamed: 40 bytes of events, then the connection closes before [DONE].
        var received = new List<string>();
        var failure = await Record.ExceptionAsync(async () =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = Http.Json("""{"model": "text", "prompt": "The red fox", "stream": true}""") };
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            while (await reader.ReadLineAsync() is { } line)
            {
                received.Add(line);
            }
        });
        Assert.True(failure is HttpRequestException or IOException, $"got {failure?.GetType().Name ?? "no failure"}");
        Assert.True(received.Sum(l => l.Length) <= 40, $"received {string.Join("|", received)}");
        Assert.DoesNotContain("data: [DONE]", received);

        Assert.Equal(200, (await Http.Post(http, "/v1/completions", Hello)).Status);
        Assert.Equal(2, server.Stats.Faults["drop"]);
    }

    [Fact]
    public async Task A_malformed_body_is_200_with_JSON_that_does_not_parse()
    {
        await using var server = Start("malformed@first:1");
        using var http = Http.Client(server);

        using var response = await http.PostAsync("/v1/completions", Http.Json(Hello));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var text = await response.Content.ReadAsStringAsync();
        Assert.StartsWith("{\"id\":\"cmpl-", text, StringComparison.Ordinal);
        Assert.ThrowsAny<JsonException>(() => JsonDocument.Parse(text));

        var events = await Http.Events(http, "/v1/completions", """{"model": "text", "prompt": "Hello", "stream": true}""");
        Assert.ThrowsAny<JsonException>(() => JsonDocument.Parse(events[0]));
        Assert.All(events.Skip(1).SkipLast(1), e => JsonDocument.Parse(e));
        Assert.Equal("[DONE]", events[^1]);
        Assert.Equal(2, server.Stats.Faults["malformed"]);
    }

    [Fact]
    public async Task Answers_that_fail_a_parser_are_well_formed_with_other_content()
    {
        await using var server = Start("unparsable:no number here@request:1", "empty@request:2", "unparsable@request:3");
        using var http = Http.Client(server);

        var (_, first) = await Http.Post(http, "/v1/completions", Hello);
        Assert.Equal("no number here", first.GetProperty("choices")[0].GetProperty("text").GetString());
        var (_, second) = await Http.Post(http, "/v1/completions", Hello);
        Assert.Equal(string.Empty, second.GetProperty("choices")[0].GetProperty("text").GetString());
        var events = await Http.Events(http, "/v1/completions", """{"model": "text", "prompt": "Hello", "stream": true}""");
        var text = string.Concat(events.SkipLast(1).Select(e => JsonDocument.Parse(e).RootElement.GetProperty("choices")[0].GetProperty("text").GetString()));
        Assert.Equal("I cannot tell.", text);
        var (_, fourth) = await Http.Post(http, "/v1/completions", Hello);
        Assert.Equal(", world!", fourth.GetProperty("choices")[0].GetProperty("text").GetString());

        Assert.Equal(2, server.Stats.Faults["unparsable"]);
        Assert.Equal(1, server.Stats.Faults["empty"]);
    }

    [Fact]
    public async Task The_statistics_route_reports_counts_without_counting_itself()
    {
        await using var server = Start("429@request:1");
        using var http = Http.Client(server);
        await Http.Post(http, "/v1/completions", Hello);
        await Http.Post(http, "/v1/completions", Hello);
        await Http.Get(http, "/v1/models");
        await Http.Get(http, "/v1/compress/stats");

        var (status, stats) = await Http.Get(http, "/v1/compress/stats");
        Assert.Equal(200, status);
        Assert.Equal(3, stats.GetProperty("requests").GetInt32());
        Assert.Equal(2, stats.GetProperty("by_route").GetProperty("POST /v1/completions").GetInt32());
        Assert.Equal(1, stats.GetProperty("by_route").GetProperty("GET /v1/models").GetInt32());
        Assert.Equal(1, stats.GetProperty("by_status").GetProperty("429").GetInt32());
        Assert.Equal(2, stats.GetProperty("by_status").GetProperty("200").GetInt32());
        Assert.Equal(1, stats.GetProperty("faults").GetProperty("429").GetInt32());
        var body = stats.GetProperty("bodies").EnumerateObject().Single();
        Assert.Matches("^[0-9a-f]{64}$", body.Name);
        Assert.Equal(2, body.Value.GetInt32());
        Assert.Equal(5, stats.GetProperty("tokens").GetProperty("prompt").GetInt32());
        Assert.Equal(9, stats.GetProperty("tokens").GetProperty("completion").GetInt32());
        Assert.Equal(1, stats.GetProperty("batches").GetProperty("count").GetInt32());
        Assert.Equal(1, stats.GetProperty("batches").GetProperty("requests").GetProperty("1").GetInt32());
        Assert.Equal(0, stats.GetProperty("rejected").GetInt32());
    }

    [Fact]
    public void A_request_hash_ignores_key_order_and_spacing_but_not_values()
    {
        var hash = RequestHash.Of("""{"model": "m", "messages": [{"role": "user", "content": "Hi é"}], "temperature": 0.5}""");
        Assert.Equal(hash, RequestHash.Of("""{"temperature":0.5,"messages":[{"content":"Hi \u00e9","role":"user"}],"model":"m"}"""));
        Assert.NotEqual(hash, RequestHash.Of("""{"model": "m", "messages": [{"role": "user", "content": "Hi é"}], "temperature": 0.6}"""));
        Assert.Equal("""{"messages":[{"content":"Hi é","role":"user"}],"model":"m","temperature":0.5}""", System.Text.Encoding.UTF8.GetString(RequestHash.CanonicalJson(JsonDocument.Parse("""{"model": "m", "messages": [{"role": "user", "content": "Hi é"}], "temperature": 0.5}""").RootElement)));
        // SHA-256 of the canonical text, lowercase hex.
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData("""{"a":1}"""u8)), RequestHash.Of("""{ "a" : 1 }"""));
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData("not json"u8)), RequestHash.Of("not json"));
    }

    [Theory]
    [InlineData("429")]
    [InlineData("429@")]
    [InlineData("418@always")]
    [InlineData("429:x@first:1")]
    [InlineData("500@first:0")]
    [InlineData("500@request:")]
    [InlineData("500@request:3-2")]
    [InlineData("500@sometimes")]
    [InlineData("slow@always")]
    [InlineData("slow:fast@always")]
    [InlineData("malformed:1@always")]
    public void A_rule_that_does_not_parse_is_MC2069_naming_it(string rule)
    {
        var error = Assert.Throws<CompressionException>(() => FaultRule.Parse(rule));
        Assert.Equal(DiagnosticCodes.ServeFaultRuleInvalid, error.Diagnostics[0].Code);
        Assert.StartsWith($"Fault rule '{rule}': ", error.Diagnostics[0].Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Rules_read_their_values_and_select_as_written()
    {
        var rate = FaultRule.Parse("429:7@first:2");
        Assert.Equal((FaultKind.RateLimited, 7, 2), (rate.Kind, rate.RetryAfterSeconds, rate.FirstAttempts));
        Assert.Equal([true, true, false], new[] { 1L, 2, 3 }.Select(attempt => rate.Matches(ordinal: 9, attempt)));
        Assert.Equal(TimeSpan.FromMilliseconds(1500), FaultRule.Parse("slow:1.5s@always").Delay);
        Assert.Equal(TimeSpan.FromMilliseconds(250), FaultRule.Parse("slow:250ms@always").Delay);
        Assert.Equal(12, FaultRule.Parse("drop:12@always").DropAfterBytes);
        Assert.Equal("x: y@z", FaultRule.Parse("unparsable:x: y@z@always").ReplacementText);
        var ordinals = FaultRule.Parse("500@request:2,5-6,9-");
        Assert.Equal([2L, 5, 6, 9, 10, 11], Enumerable.Range(1, 1000).Select(i => (long)i).Where(i => ordinals.Matches(i, attempt: 1)).Take(6));
        Assert.True(ordinals.Matches(1_000_000, attempt: 1));
    }

    private RunningServer Start(params string[] rules) =>
        OpenAiServer.Start(new ServeOptions { Models = [new(_folder)], Faults = [.. rules.Select(FaultRule.Parse)] });
}
