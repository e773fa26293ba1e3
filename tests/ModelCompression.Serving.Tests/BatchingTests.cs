using System.Text.Json;
using ModelCompression.Generation;
using Xunit.Abstractions;

namespace ModelCompression.Serving.Tests;

/// <summary>
/// Concurrent requests run together in one generator call when their decoding settings match, and an answer at
/// temperature 0 does not depend on what it was batched with: eight concurrent requests get the eight answers they get
/// alone. The statistics show the batch sizes.
/// </summary>
public sealed class BatchingTests(ITestOutputHelper output) : IDisposable
{
    private static readonly string[] Prompts = ["The red fox", "abcdefg", "Hello", "1 2 3 4", "5 6", "Ben has", "q", "Anna has 3"];

    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Eight_concurrent_requests_run_as_one_batch_and_get_the_answers_they_get_alone()
    {
        var folder = Folders.Chat(_dir);
        var alone = await AnswersAlone(folder);

        // A batch waits up to 30 s for company and starts as soon as it is full: all eight share one generator call.
        await using var server = OpenAiServer.Start(new ServeOptions { Models = [new(folder)], MaxBatch = 8, BatchWait = TimeSpan.FromSeconds(30) });
        using var http = Http.Client(server);
        var together = await Task.WhenAll(Prompts.Select(p => Chat(http, p)));

        Assert.Equal(alone, together);
        var stats = server.Stats;
        Assert.Equal(1, stats.Batches);
        Assert.Equal(1, stats.BatchedRequests[8]);
        Assert.Equal(1, stats.BatchedSequences[8]);
        output.WriteLine(string.Join("\n", Prompts.Zip(together, (p, a) => $"{p} -> {a}")));
    }

    [Fact]
    public async Task Requests_that_arrive_while_a_batch_runs_join_the_next_and_answer_the_same()
    {
        var folder = Folders.Chat(_dir);
        var alone = await AnswersAlone(folder);
        await using var server = OpenAiServer.Start(new ServeOptions { Models = [new(folder)], MaxBatch = 8 });
        using var http = Http.Client(server);

        var together = await Task.WhenAll(Prompts.Concat(Prompts).Select(p => Chat(http, p)));

        Assert.Equal(alone.Concat(alone), together);
        var stats = server.Stats;
        Assert.Equal(16, stats.BatchedRequests.Sum(b => b.Key * b.Value));
        output.WriteLine($"{stats.Batches} batches: {string.Join(", ", stats.BatchedRequests.OrderBy(b => b.Key).Select(b => $"{b.Value} of {b.Key}"))}");
    }

    [Fact]
    public async Task Requests_with_different_settings_are_not_batched_together()
    {
        var folder = Folders.Text(_dir);
        await using var server = OpenAiServer.Start(new ServeOptions { Models = [new(folder)], MaxBatch = 4, BatchWait = TimeSpan.FromSeconds(30) });
        using var http = Http.Client(server);

        // Four with max_tokens 5 and four with 7, arriving mixed: each batch waits until four of one kind fill it (a batch
        // of the first four to arrive would decode half of them with the other's max_tokens).
        var answers = await Task.WhenAll(Prompts.Select((p, i) => Http.Post(http, "/v1/completions", $$"""{"model": "text", "prompt": "{{p}}", "max_tokens": {{(i % 2 == 0 ? 5 : 7)}}}""")));

        Assert.All(answers, a => Assert.Equal(200, a.Status));
        using var model = GenerativeModel.Open(folder);
        for (var i = 0; i < Prompts.Length; i++)
        {
            Assert.Equal(model.Answer(Prompts[i], model.Defaults with { MaxNewTokens = i % 2 == 0 ? 5 : 7 }), answers[i].Body.GetProperty("choices")[0].GetProperty("text").GetString());
        }

        Assert.Equal(2, server.Stats.Batches);
        Assert.Equal(2, server.Stats.BatchedRequests[4]);
    }

    [Fact]
    public async Task A_full_queue_refuses_with_503_and_Retry_After()
    {
        var server = OpenAiServer.Start(new ServeOptions { Models = [new(Folders.Text(_dir))], MaxQueuedRequests = 1, BatchWait = TimeSpan.FromSeconds(30) });
        using var http = Http.Client(server);
        // The first request waits for company (30 s) and fills the queue.
        const string First = """{"model": "text", "prompt": "Hello"}""";
        var waiting = http.PostAsync("/v1/completions", Http.Json(First));
        while (!server.Stats.Bodies.ContainsKey(RequestHash.Of(First)))
        {
            await Task.Delay(20);
        }

        await Task.Delay(300);
        using var refused = await http.PostAsync("/v1/completions", Http.Json("""{"model": "text", "prompt": "q"}"""));
        Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(1), refused.Headers.RetryAfter?.Delta);
        Assert.Equal("server_overloaded", Http.Error(JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement).GetProperty("code").GetString());
        Assert.Equal(1, server.Stats.Rejected);

        // Stopping fails the waiting request rather than waiting out its batch.
        await server.StopAsync();
        var outcome = await Record.ExceptionAsync(async () => Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, (await waiting).StatusCode));
        Assert.True(outcome is null or HttpRequestException, outcome?.ToString());
    }

    /// <summary>Each prompt's answer from a server that batches nothing, one request at a time.</summary>
    private static async Task<string[]> AnswersAlone(string folder)
    {
        await using var server = OpenAiServer.Start(new ServeOptions { Models = [new(folder)], MaxBatch = 1 });
        using var http = Http.Client(server);
        var answers = new List<string>();
        foreach (var prompt in Prompts)
        {
            answers.Add(await Chat(http, prompt));
        }

        Assert.Equal(Prompts.Length, server.Stats.BatchedRequests[1]);
        return [.. answers];
    }

    private static async Task<string> Chat(HttpClient http, string prompt)
    {
        var (status, body) = await Http.Post(http, "/v1/chat/completions", JsonSerializer.Serialize(new { model = "chat", messages = new[] { new { role = "user", content = prompt } }, temperature = 0 }));
        Assert.Equal(200, status);
        return body.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;
    }
}
