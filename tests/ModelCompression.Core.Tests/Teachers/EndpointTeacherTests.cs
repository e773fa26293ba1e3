using System.Globalization;
using System.Text.Json.Nodes;
using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;
using ModelCompression.Generation;
using ModelCompression.Teachers;
using ModelCompression.Text;
using static ModelCompression.Core.Tests.Teachers.EndpointTestSupport;

namespace ModelCompression.Core.Tests.Teachers;

/// <summary>
/// The endpoint teacher against a scripted OpenAI-shaped server on 127.0.0.1: what is sent, how answers are judged and
/// assembled in prompt order, exact retry counts for every fault, failures, the success ratio, the budget, the cache
/// (resume, offline, damage), chain of thought, multi-turn rewriting, samples and logprobs.
/// </summary>
public sealed class EndpointTeacherTests
{
    [Fact]
    public async Task Answers_come_back_in_prompt_order_judged_by_the_task_and_a_second_run_sends_nothing()
    {
        using var dir = new TempDir();
        // Replies arrive out of order: the lower the number, the slower the reply.
        using var server = new ScriptedChatServer(r =>
        {
            var k = NumberOf(r);
            var reply = k == 3 ? ScriptedChatServer.Ok("I do not know.") : ScriptedChatServer.Ok(RightAnswer(k));
            return new ScriptedReply.Slow(TimeSpan.FromMilliseconds(50 * (5 - k)), reply);
        });
        var options = Options(server) with { RequestBatchSize = 4, Stop = ["\n\n\n"], Seed = 7 };
        var prompts = MathPrompts(1, 2, 3, 4);

        var first = await EndpointTeacher.AnswerAsync(prompts, MathTask, options, dir.Dir("cache"));

        Assert.Equal(["#### 2", "#### 4", "#### 8"], first.Answers.Answers.Select(a => a.Text[a.Text.IndexOf('#', StringComparison.Ordinal)..]));
        Assert.Equal([1, 2, 4], first.Answers.Answers.Select(a => a.Record.Line));
        Assert.Equal(Question(1), first.Answers.Answers[0].Record.Messages[0].Content);
        var dropped = Assert.Single(first.Answers.Dropped);
        Assert.Equal((3, TeacherAnswerDropReason.NoFinalNumber, "I do not know."), (dropped.Line, dropped.Reason, dropped.Text));
        Assert.Equal((4, 1, 4, 3), (first.Answers.Stats.Prompts, first.Answers.Stats.SamplesPerPrompt, first.Answers.Stats.Generated, first.Answers.Stats.Kept));
        Assert.Equal(20, first.Answers.Stats.GeneratedTokens);

        var usage = first.Usage;
        Assert.Equal((4, 0, 4, 4, 0, 0), (usage.Requests, usage.CacheHits, usage.Sent, usage.Attempts, usage.RetryCount, usage.FailureCount));
        Assert.Equal((40L, 20L, 40L, 20L), (usage.PromptTokens, usage.CompletionTokens, usage.SentPromptTokens, usage.SentCompletionTokens));
        Assert.Equal((4, 3, 0.75), (usage.Answers, usage.UsableAnswers, usage.SuccessRatio));
        Assert.Equal(1, usage.Unusable["no_final_number"]);

        // The request as sent: the path, the template, Azure's sampling defaults, and our options.
        var sent = server.Requests.Single(r => NumberOf(r) == 2);
        Assert.Equal("/v1/chat/completions", sent.Target);
        Assert.Equal("application/json", sent.Headers["content-type"].Split(';')[0]);
        Assert.False(sent.Headers.ContainsKey("authorization"));
        var body = JsonNode.Parse(sent.Body)!;
        Assert.Equal("teacher-model", body["model"]!.GetValue<string>());
        Assert.Equal(0.2, body["temperature"]!.GetValue<double>());
        Assert.Equal(0.1, body["top_p"]!.GetValue<double>());
        Assert.Equal(128, body["max_tokens"]!.GetValue<int>());
        Assert.Equal(7, body["seed"]!.GetValue<int>());
        Assert.Equal("\n\n\n", body["stop"]![0]!.GetValue<string>());
        Assert.Null(body["n"]);
        Assert.Null(body["logprobs"]);
        Assert.Equal(TeacherPrompts.DefaultTemplate(MathTask).Replace("{content}", Question(2), StringComparison.Ordinal), sent.LastMessage);

        var requestsBefore = server.Requests.Count;
        var second = await EndpointTeacher.AnswerAsync(prompts, MathTask, options, Path.Join(dir.Path, "cache"));
        Assert.Equal(requestsBefore, server.Requests.Count);
        Assert.Equal((4, 0, 0), (second.Usage.CacheHits, second.Usage.Sent, second.Usage.Attempts));
        Assert.Equal(Flat(first.Answers.Answers), Flat(second.Answers.Answers));
        Assert.Equal(first.Answers.Dropped, second.Answers.Dropped);
        Assert.Equal((40L, 20L, 0L), (second.Usage.PromptTokens, second.Usage.CompletionTokens, second.Usage.SentPromptTokens));
    }

    [Fact]
    public async Task Statuses_are_retried_waiting_what_the_server_asks_for_and_otherwise_backing_off()
    {
        using var dir = new TempDir();
        var retryAt = DateTimeOffset.UtcNow.AddSeconds(40);
        using var server = new ScriptedChatServer(r => r.Attempt switch
        {
            1 => new ScriptedReply.Http(429, "{\"error\":{\"message\":\"slow down\"}}", new Dictionary<string, string> { ["Retry-After"] = "7" }),
            2 => new ScriptedReply.Http(500, "{\"error\":{\"message\":\"boom\"}}"),
            3 => new ScriptedReply.Http(503, "{}", new Dictionary<string, string> { ["retry-after-ms"] = "1500" }),
            4 => new ScriptedReply.Http(429, "{}", new Dictionary<string, string> { ["Retry-After"] = retryAt.ToString("r", CultureInfo.InvariantCulture) }),
            5 => new ScriptedReply.Http(408, "{}", new Dictionary<string, string> { ["x-ms-retry-after-ms"] = "250" }),
            _ => ScriptedChatServer.Ok(RightAnswer(NumberOf(r))),
        });
        var waits = new RecordedWaits();
        var options = Options(server) with { MaxRetries = 5, RetryDelaySeconds = 0.1, RetryMaxDelaySeconds = 10 };

        var result = await EndpointTeacher.AnswerAsync(MathPrompts(5), MathTask, options, dir.Dir("cache"), waits.Wait);

        Assert.Equal("#### 10", result.Answers.Answers.Single().Text.Split('\n')[^1]);
        Assert.Equal((1, 6, 5, 0), (result.Usage.Sent, result.Usage.Attempts, result.Usage.RetryCount, result.Usage.FailureCount));
        Assert.Equal(new Dictionary<string, int> { ["408"] = 1, ["429"] = 2, ["500"] = 1, ["503"] = 1 }, result.Usage.Retries);
        var delays = waits.Delays;
        Assert.Equal(5, delays.Count);
        Assert.Equal(TimeSpan.FromSeconds(7), delays[0]);
        // Retry 2 has no server delay: backoff 0.1 s x 2^(2-1) = 0.2 s, with jitter between half and all of it.
        Assert.InRange(delays[1].TotalSeconds, 0.1, 0.2);
        Assert.Equal(TimeSpan.FromMilliseconds(1500), delays[2]);
        Assert.InRange(delays[3].TotalSeconds, 30, 41);
        Assert.Equal(TimeSpan.FromMilliseconds(250), delays[4]);
    }

    [Fact]
    public async Task A_slow_reply_a_dropped_connection_and_malformed_json_are_retried_and_counted_by_cause()
    {
        using var dir = new TempDir();
        using var server = new ScriptedChatServer(r => r.Attempt switch
        {
            1 => new ScriptedReply.Slow(TimeSpan.FromSeconds(20), ScriptedChatServer.Ok(RightAnswer(NumberOf(r)))),
            2 => new ScriptedReply.DropMidBody(ScriptedChatServer.Completion([RightAnswer(NumberOf(r))])),
            3 => new ScriptedReply.Http(200, "{\"id\": \"x\", \"choices\": [{\"message\": "),
            4 => new ScriptedReply.Http(200, "{\"id\": \"x\", \"object\": \"chat.completion\"}"),
            _ => ScriptedChatServer.Ok(RightAnswer(NumberOf(r))),
        });
        // Long enough that no quick reply times out on a loaded machine, short enough for a test.
        var options = Options(server) with { TimeoutSeconds = 2, MaxRetries = 4 };

        var result = await EndpointTeacher.AnswerAsync(MathPrompts(6), MathTask, options, dir.Dir("cache"), new RecordedWaits().Wait);

        Assert.Single(result.Answers.Answers);
        Assert.Equal((5, 4, 0), (result.Usage.Attempts, result.Usage.RetryCount, result.Usage.FailureCount));
        Assert.Equal(new Dictionary<string, int> { ["connection"] = 1, ["malformed_reply"] = 2, ["timeout"] = 1 }, result.Usage.Retries);
        Assert.Equal(5, server.Requests.Count);
    }

    [Fact]
    public async Task Requests_that_fail_are_counted_by_reason_dropped_not_cached_and_sent_again_next_run()
    {
        using var dir = new TempDir();
        using var server = new ScriptedChatServer(r => NumberOf(r) switch
        {
            1 => new ScriptedReply.Http(503, "{}"),
            2 => new ScriptedReply.Http(400, "{\"error\":{\"message\":\"context too long\"}}"),
            var k => ScriptedChatServer.Ok(RightAnswer(k)),
        });
        var options = Options(server) with { MaxRetries = 2, MinSuccessRatio = 0.3 };
        var prompts = MathPrompts(1, 2, 3);

        var result = await EndpointTeacher.AnswerAsync(prompts, MathTask, options, dir.Dir("cache"), new RecordedWaits().Wait);

        Assert.Equal([3], result.Answers.Answers.Select(a => a.Record.Line));
        Assert.Equal([TeacherAnswerDropReason.RequestFailed, TeacherAnswerDropReason.RequestFailed], result.Answers.Dropped.Select(d => d.Reason));
        Assert.Equal(new Dictionary<string, int> { ["http_400"] = 1, ["http_503"] = 1 }, result.Usage.Failures);
        Assert.Equal(new Dictionary<string, int> { ["503"] = 2 }, result.Usage.Retries);
        Assert.Equal((3, 5), (result.Usage.Sent, result.Usage.Attempts));
        Assert.Equal(2, result.Usage.Unusable["request_failed"]);
        Assert.Contains("request_failed", result.Answers.DroppedDiagnostic()!.Message, StringComparison.Ordinal);

        var again = await EndpointTeacher.AnswerAsync(prompts, MathTask, options, Path.Join(dir.Path, "cache"), new RecordedWaits().Wait);
        Assert.Equal((1, 2, 4), (again.Usage.CacheHits, again.Usage.Sent, again.Usage.Attempts));
        Assert.Equal(1, server.Requests.Count(r => NumberOf(r) == 3));
        Assert.Equal(2, server.Requests.Count(r => NumberOf(r) == 2));
    }

    [Fact]
    public async Task Below_min_success_ratio_the_run_fails_with_the_counts_and_keeps_what_it_got()
    {
        using var dir = new TempDir();
        using var server = new ScriptedChatServer(r => NumberOf(r) == 4 ? ScriptedChatServer.Ok(RightAnswer(4)) : new ScriptedReply.Http(500, "{}"));
        var options = Options(server) with { MaxRetries = 0 };
        var cache = dir.Dir("cache");

        var error = await Assert.ThrowsAsync<CompressionException>(() => EndpointTeacher.AnswerAsync(MathPrompts(1, 2, 3, 4), MathTask, options, cache));

        Assert.Equal(DiagnosticCodes.EndpointSuccessRatioTooLow, error.Code);
        Assert.Contains("Only 1 of 4 endpoint teacher answers were usable (0.25), below min_success_ratio 0.7", error.Message, StringComparison.Ordinal);
        Assert.Contains("http_500 3", error.Message, StringComparison.Ordinal);
        Assert.Single(Directory.GetFiles(cache, "*.json", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task A_refused_key_stops_the_run_and_an_unset_key_variable_stops_it_before_anything_is_sent()
    {
        using var dir = new TempDir();
        using var server = new ScriptedChatServer(_ => new ScriptedReply.Http(401, "{\"error\":{\"message\":\"bad key\"}}"));
        var variable = "MC_TEST_KEY_" + Guid.NewGuid().ToString("N");
        var options = Options(server) with { ApiKeyEnv = variable, RequestBatchSize = 1 };

        var unset = await Assert.ThrowsAsync<CompressionException>(() => EndpointTeacher.AnswerAsync(MathPrompts(1, 2, 3), MathTask, options, dir.Dir("cache")));
        Assert.Equal(DiagnosticCodes.EndpointTeacherUnreachable, unset.Code);
        Assert.Contains(variable, unset.Message, StringComparison.Ordinal);
        Assert.Empty(server.Requests);

        Environment.SetEnvironmentVariable(variable, "not-the-right-key");
        try
        {
            var refused = await Assert.ThrowsAsync<CompressionException>(() => EndpointTeacher.AnswerAsync(MathPrompts(1, 2, 3), MathTask, options, Path.Join(dir.Path, "cache")));
            Assert.Equal(DiagnosticCodes.EndpointTeacherUnreachable, refused.Code);
            Assert.Contains("refused the key (401)", refused.Message, StringComparison.Ordinal);
            Assert.Single(server.Requests);
        }
        finally
        {
            Environment.SetEnvironmentVariable(variable, null);
        }
    }

    [Fact]
    public async Task A_killed_run_resumes_sending_only_the_requests_it_has_no_answer_for()
    {
        using var dir = new TempDir();
        using var kill = new CancellationTokenSource();
        var killed = false;
        using var server = new ScriptedChatServer(r =>
        {
            // The fourth request is the one in flight when the run is killed: it is never answered.
            if (!killed && NumberOf(r) == 4)
            {
                killed = true;
                kill.Cancel();
                return new ScriptedReply.Hang();
            }

            return ScriptedChatServer.Ok(RightAnswer(NumberOf(r)));
        });
        var options = Options(server) with { RequestBatchSize = 1 };
        var prompts = MathPrompts(1, 2, 3, 4, 5, 6);
        var cache = dir.Dir("cache");

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => EndpointTeacher.AnswerAsync(prompts, MathTask, options, cache, null, kill.Token));
        Assert.Equal(3, Directory.GetFiles(cache, "*.json", SearchOption.AllDirectories).Length);

        var resumed = await EndpointTeacher.AnswerAsync(prompts, MathTask, options, cache);

        Assert.Equal((3, 3), (resumed.Usage.CacheHits, resumed.Usage.Sent));
        Assert.Equal(6, resumed.Answers.Stats.Kept);
        // Each request body was answered once over both runs.
        Assert.Equal(6, server.Answered.Count);
        Assert.Equal(6, server.Answered.Distinct(StringComparer.Ordinal).Count());
        Assert.Equal(7, server.Requests.Count);
    }

    [Fact]
    public async Task Offline_replays_the_cache_and_a_missing_answer_fails_naming_the_prompts()
    {
        using var dir = new TempDir();
        var cache = dir.Dir("cache");
        EndpointTeacherResult online;
        string url;
        using (var server = new ScriptedChatServer(r => ScriptedChatServer.Ok(RightAnswer(NumberOf(r)))))
        {
            url = server.BaseUrl;
            online = await EndpointTeacher.AnswerAsync(MathPrompts(1, 2, 3), MathTask, Options(server), cache);
        }

        // The server is gone: offline needs none.
        var offline = new EndpointTeacherOptions { Endpoint = url, Model = "teacher-model", Offline = true };
        var replayed = await EndpointTeacher.AnswerAsync(MathPrompts(1, 2, 3), MathTask, offline, cache);
        Assert.Equal(Flat(online.Answers.Answers), Flat(replayed.Answers.Answers));
        Assert.Equal(online.Turns.SelectMany(t => t), replayed.Turns.SelectMany(t => t));
        Assert.Equal((3, 0, 0), (replayed.Usage.CacheHits, replayed.Usage.Sent, replayed.Usage.Attempts));

        var error = await Assert.ThrowsAsync<CompressionException>(() => EndpointTeacher.AnswerAsync(MathPrompts(1, 2, 3, 40, 50), MathTask, offline, cache));
        Assert.Equal(DiagnosticCodes.EndpointAnswersMissingOffline, error.Code);
        Assert.Contains("lacks 2 of the 5 requests", error.Message, StringComparison.Ordinal);
        Assert.Contains("pool.jsonl:4 \"What is 40 plus 40?", error.Message, StringComparison.Ordinal);
        Assert.Contains("pool.jsonl:5", error.Message, StringComparison.Ordinal);
        Assert.Equal(("pool.jsonl", 4), (error.Diagnostics[0].File, error.Diagnostics[0].Line));
    }

    [Fact]
    public async Task A_request_budget_stops_cleanly_after_the_first_requests_and_a_bigger_one_goes_on()
    {
        using var dir = new TempDir();
        using var server = new ScriptedChatServer(r => ScriptedChatServer.Ok(RightAnswer(NumberOf(r))));
        var cache = dir.Dir("cache");
        var prompts = MathPrompts(1, 2, 3, 4, 5);

        var stopped = await EndpointTeacher.AnswerAsync(prompts, MathTask, Options(server) with { BudgetRequests = 2, RequestBatchSize = 2 }, cache);

        Assert.True(stopped.Usage.StoppedOnBudget);
        Assert.Equal((2, 3), (stopped.Usage.Sent, stopped.Usage.NotAsked));
        Assert.Equal([1, 2], stopped.Answers.Answers.Select(a => a.Record.Line));
        Assert.Equal([3, 4, 5], stopped.Answers.Dropped.Select(d => d.Line));
        Assert.All(stopped.Answers.Dropped, d => Assert.Equal(TeacherAnswerDropReason.NotAsked, d.Reason));
        // Unasked prompts are not failures: 2 of 2 decided answers are usable.
        Assert.Equal((2, 1.0), (stopped.Usage.Answers, stopped.Usage.SuccessRatio));

        var more = await EndpointTeacher.AnswerAsync(prompts, MathTask, Options(server) with { BudgetRequests = 4 }, cache);
        Assert.Equal((2, 2, 1), (more.Usage.CacheHits, more.Usage.Sent, more.Usage.NotAsked));
        Assert.Equal([1, 2, 3, 4], more.Answers.Answers.Select(a => a.Record.Line));
    }

    [Fact]
    public async Task A_token_budget_counts_the_replies_usage()
    {
        using var dir = new TempDir();
        using var server = new ScriptedChatServer(r => ScriptedChatServer.Ok(RightAnswer(NumberOf(r))));
        var options = Options(server) with { BudgetTokens = 25, RequestBatchSize = 1 };

        var result = await EndpointTeacher.AnswerAsync(MathPrompts(1, 2, 3, 4), MathTask, options, dir.Dir("cache"));

        // 15 tokens a reply: after two, 30 >= 25 and nothing more is sent.
        Assert.Equal((2, 2, 30L), (result.Usage.Sent, result.Usage.NotAsked, result.Usage.PromptTokens + result.Usage.CompletionTokens));
        Assert.True(result.Usage.StoppedOnBudget);
    }

    [Fact]
    public async Task Chain_of_thought_keeps_the_answer_field_and_counts_replies_that_are_not_the_json()
    {
        using var dir = new TempDir();
        using var server = new ScriptedChatServer(r => NumberOf(r) switch
        {
            1 => ScriptedChatServer.Ok("```json\n{\"reason\": \"1 and 1 make 2\", \"answer\": \"#### 2\"}\n```"),
            2 => ScriptedChatServer.Ok("2 plus 2 is 4.\n#### 4"),
            _ => ScriptedChatServer.Ok("{\"answer\": \"#### 6\", \"reason\": \"twice 3\", \"confidence\": 0.9}"),
        });
        var options = Options(server) with { ChainOfThought = true, ReasoningWords = 30, MinSuccessRatio = 0.5 };

        var result = await EndpointTeacher.AnswerAsync(MathPrompts(1, 2, 3), MathTask, options, dir.Dir("cache"));

        Assert.Equal(["#### 2", "#### 6"], result.Answers.Answers.Select(a => a.Text));
        Assert.Equal(["1 and 1 make 2", "twice 3"], result.Turns.Select(t => t.Single().Reason));
        Assert.StartsWith("```json", result.Turns[0][0].RawText, StringComparison.Ordinal);
        var dropped = Assert.Single(result.Answers.Dropped);
        Assert.Equal((2, TeacherAnswerDropReason.NotAnswerJson), (dropped.Line, dropped.Reason));
        Assert.Equal(1, result.Usage.Unusable["not_answer_json"]);
        var asked = server.Requests.First().LastMessage;
        Assert.Contains("at most 30 words", asked, StringComparison.Ordinal);
        Assert.Contains("{\"reason\":", asked, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_conversation_has_every_trained_assistant_turn_rewritten_from_its_own_context()
    {
        using var dir = new TempDir();
        using var server = new ScriptedChatServer(r =>
            ScriptedChatServer.Ok(string.Create(CultureInfo.InvariantCulture, $"Re: {r.LastMessage} ({JsonNode.Parse(r.Body)!["messages"]!.AsArray().Count} messages)")));
        var conversation = new GenerativeTask(GenerativeTaskType.Conversation);
        ChatRecord[] records =
        [
            new([new(ChatRole.System, "Be brief."), new(ChatRole.User, "Hi"), new(ChatRole.Assistant, "Hello"), new(ChatRole.User, "How are you?"), new(ChatRole.Assistant, "Fine")], "chat.jsonl", 1),
            new([new(ChatRole.User, "Q1"), new(ChatRole.Assistant, "context only", Trained: false), new(ChatRole.User, "Q2")], "chat.jsonl", 2),
        ];
        var options = Options(server) with { SystemPrompt = "You are a teacher." };

        var result = await EndpointTeacher.AnswerAsync(records, conversation, options, dir.Dir("cache"));

        Assert.Equal(3, result.Usage.Sent);
        var first = result.Answers.Answers[0].Record;
        Assert.Equal(["Be brief.", "Hi", "Re: Hi (2 messages)", "How are you?", "Re: How are you? (4 messages)"], first.Messages.Select(m => m.Content));
        Assert.Equal(("chat.jsonl", 1), (first.File, first.Line));
        var second = result.Answers.Answers[1].Record;
        Assert.Equal(["Q1", "context only", "Q2", "Re: Q2 (4 messages)"], second.Messages.Select(m => m.Content));
        Assert.False(second.Messages[1].Trained);
        Assert.Equal([2, 1], result.Turns.Select(t => t.Count));

        // Each turn's request holds the record's own earlier turns; a record without a system message gets system_prompt.
        var secondTurn = JsonNode.Parse(server.Requests.Single(r => r.LastMessage == "How are you?").Body)!["messages"]!.AsArray();
        Assert.Equal(["Be brief.", "Hi", "Hello", "How are you?"], secondTurn.Select(m => m!["content"]!.GetValue<string>()));
        var withSystem = JsonNode.Parse(server.Requests.Single(r => r.LastMessage == "Q2").Body)!["messages"]!.AsArray();
        Assert.Equal(["system", "user", "assistant", "user"], withSystem.Select(m => m!["role"]!.GetValue<string>()));
        Assert.Equal("You are a teacher.", withSystem[0]!["content"]!.GetValue<string>());
    }

    [Fact]
    public async Task Samples_come_from_n_choices_and_repeats_are_dropped_as_duplicates()
    {
        using var dir = new TempDir();
        using var server = new ScriptedChatServer(r => new ScriptedReply.Http(200, ScriptedChatServer.Completion(["#### 4", " #### 4 ", "four"])));
        var options = Options(server) with { SamplesPerPrompt = 3, Temperature = 0.8, MinSuccessRatio = 0.5 };

        var result = await EndpointTeacher.AnswerAsync(MathPrompts(2), MathTask, options, dir.Dir("cache"));

        Assert.Equal(3, JsonNode.Parse(server.Requests.Single().Body)!["n"]!.GetValue<int>());
        Assert.Equal(("#### 4", 0), (result.Answers.Answers.Single().Text, result.Answers.Answers.Single().Sample));
        Assert.Equal([(1, TeacherAnswerDropReason.Duplicate), (2, TeacherAnswerDropReason.NoFinalNumber)], result.Answers.Dropped.Select(d => (d.Sample, d.Reason)));
        Assert.Equal([0, 1, 0, 0], result.Answers.Stats.KeptPerPrompt);
    }

    [Fact]
    public async Task Top_logprobs_are_asked_for_kept_with_the_answer_and_replayed_from_the_cache()
    {
        using var dir = new TempDir();
        var logprobs = new JsonArray
        {
            new JsonObject
            {
                ["token"] = "####", ["logprob"] = -0.25, ["bytes"] = new JsonArray(35, 35, 35, 35),
                ["top_logprobs"] = new JsonArray(
                    new JsonObject { ["token"] = "####", ["logprob"] = -0.25, ["bytes"] = new JsonArray(35, 35, 35, 35) },
                    new JsonObject { ["token"] = "The", ["logprob"] = -1.5, ["bytes"] = null }),
            },
            new JsonObject { ["token"] = " 4", ["logprob"] = -0.01, ["bytes"] = new JsonArray(32, 52), ["top_logprobs"] = new JsonArray() },
        };
        using var server = new ScriptedChatServer(_ => new ScriptedReply.Http(200, ScriptedChatServer.Completion(["#### 4"], logprobs: logprobs)));
        var options = Options(server) with { TopLogprobs = 2 };
        var cache = dir.Dir("cache");

        var online = await EndpointTeacher.AnswerAsync(MathPrompts(2), MathTask, options, cache);

        var body = JsonNode.Parse(server.Requests.Single().Body)!;
        Assert.True(body["logprobs"]!.GetValue<bool>());
        Assert.Equal(2, body["top_logprobs"]!.GetValue<int>());
        var tokens = online.Turns.Single().Single().Logprobs!;
        Assert.Equal(["####", " 4"], tokens.Select(t => t.Token));
        Assert.Equal([-0.25, -0.01], tokens.Select(t => t.Logprob));
        Assert.Equal((byte[])[32, 52], tokens[1].Bytes);
        Assert.Equal([("####", -0.25), ("The", -1.5)], tokens[0].Top.Select(a => (a.Token, a.Logprob)));
        Assert.Null(tokens[0].Top[1].Bytes);

        var replayed = await EndpointTeacher.AnswerAsync(MathPrompts(2), MathTask, options with { Offline = true }, cache);
        var again = replayed.Turns.Single().Single().Logprobs!;
        Assert.Equal(tokens.Select(t => (t.Token, t.Logprob, t.Top.Count)), again.Select(t => (t.Token, t.Logprob, t.Top.Count)));
        Assert.Equal(tokens[0].Bytes, again[0].Bytes);
    }

    [Fact]
    public async Task A_damaged_cache_entry_is_a_miss_with_a_warning_and_its_request_is_sent_again()
    {
        using var dir = new TempDir();
        using var server = new ScriptedChatServer(r => ScriptedChatServer.Ok(RightAnswer(NumberOf(r))));
        var options = Options(server);
        var cache = dir.Dir("cache");
        var first = await EndpointTeacher.AnswerAsync(MathPrompts(1, 2), MathTask, options, cache);
        var entries = new EndpointAnswerCache(cache);
        var cut = entries.PathOf(first.Turns[0][0].Key);
        var edited = entries.PathOf(first.Turns[1][0].Key);
        File.WriteAllText(cut, File.ReadAllText(cut)[..40]);
        File.WriteAllText(edited, File.ReadAllText(edited).Replace("#### 4", "#### 5", StringComparison.Ordinal));

        var second = await EndpointTeacher.AnswerAsync(MathPrompts(1, 2), MathTask, options, cache);

        Assert.Equal((0, 2), (second.Usage.CacheHits, second.Usage.Sent));
        Assert.Equal(Flat(first.Answers.Answers), Flat(second.Answers.Answers));
        Assert.Equal(2, second.Warnings.Count);
        Assert.All(second.Warnings, w => Assert.Equal((DiagnosticCodes.EndpointCacheEntryInvalid, DiagnosticSeverity.Warning), (w.Code, w.Severity)));
        Assert.Contains("is not valid JSON", second.Warnings.Single(w => w.File == cut).Message, StringComparison.Ordinal);
        Assert.Contains("does not match its sha256", second.Warnings.Single(w => w.File == edited).Message, StringComparison.Ordinal);

        // Repaired: the third run is all hits, without warnings.
        var third = await EndpointTeacher.AnswerAsync(MathPrompts(1, 2), MathTask, options, cache);
        Assert.Equal((2, 0), (third.Usage.CacheHits, third.Warnings.Count));
    }

    [Fact]
    public async Task Identical_prompts_cost_one_request()
    {
        using var dir = new TempDir();
        using var server = new ScriptedChatServer(r => ScriptedChatServer.Ok(RightAnswer(NumberOf(r))));

        var result = await EndpointTeacher.AnswerAsync(MathPrompts(3, 3, 4), MathTask, Options(server), dir.Dir("cache"));

        Assert.Equal((2, 2), (result.Usage.Requests, result.Usage.Sent));
        Assert.Equal([1, 2, 3], result.Answers.Answers.Select(a => a.Record.Line));
        Assert.Equal(2, server.Requests.Count);
    }

    [Fact]
    public async Task Progress_counts_requests_from_the_cache_hits_to_all()
    {
        using var dir = new TempDir();
        using var server = new ScriptedChatServer(r => ScriptedChatServer.Ok(RightAnswer(NumberOf(r))));
        var cache = dir.Dir("cache");
        await EndpointTeacher.AnswerAsync(MathPrompts(1), MathTask, Options(server), cache);
        var reports = new List<(int Done, int Total)>();

        await EndpointTeacher.AnswerAsync(MathPrompts(1, 2, 3), MathTask, Options(server) with { RequestBatchSize = 1 }, cache, new SyncProgress(reports.Add));

        Assert.Equal([(1, 3), (2, 3), (3, 3)], reports);
    }

    [Fact]
    public async Task Azure_style_keys_go_in_the_api_key_header_with_the_api_version_query()
    {
        using var dir = new TempDir();
        using var server = new ScriptedChatServer(r => ScriptedChatServer.Ok(RightAnswer(NumberOf(r))));
        var variable = "MC_TEST_KEY_" + Guid.NewGuid().ToString("N");
        Environment.SetEnvironmentVariable(variable, "azure-key-1");
        try
        {
            var options = Options(server) with { Endpoint = server.BaseUrl + "/", ApiKeyEnv = variable, ApiKeyHeader = "api-key", ApiVersion = "2024-05-01-preview" };
            await EndpointTeacher.AnswerAsync(MathPrompts(1), MathTask, options, dir.Dir("cache"));
            var request = server.Requests.Single();
            Assert.Equal("/v1/chat/completions?api-version=2024-05-01-preview", request.Target);
            Assert.Equal("azure-key-1", request.Headers["api-key"]);
            Assert.False(request.Headers.ContainsKey("authorization"));

            var bearer = options with { ApiKeyHeader = "Authorization", ApiVersion = null };
            await EndpointTeacher.AnswerAsync(MathPrompts(2), MathTask, bearer, Path.Join(dir.Path, "cache"));
            Assert.Equal("Bearer azure-key-1", server.Requests.Single(r => NumberOf(r) == 2).Headers["authorization"]);
        }
        finally
        {
            Environment.SetEnvironmentVariable(variable, null);
        }
    }
}
