using System.Text;
using System.Text.Json.Nodes;
using ModelCompression.Diagnostics;
using ModelCompression.Generation;
using ModelCompression.Teachers;
using static ModelCompression.Core.Tests.Teachers.EndpointTestSupport;

namespace ModelCompression.Core.Tests.Teachers;

/// <summary>
/// Batch files (export the missing requests, import a results file into the cache), the distilled-data export, and the
/// secret scan: a recognisable key must be in no file written and no exception message.
/// </summary>
public sealed class EndpointBatchTests
{
    /// <summary>The scripted teacher: one deterministic reply per request body, the same online and in a batch.</summary>
    private static string ReplyFor(ScriptedRequest request) =>
        ScriptedChatServer.Completion([RightAnswer(NumberOf(request))], promptTokens: 11, completionTokens: 6);

    [Fact]
    public async Task Exported_requests_answered_as_a_batch_and_imported_replay_exactly_as_the_online_run()
    {
        using var dir = new TempDir();
        using var server = new ScriptedChatServer(r => new ScriptedReply.Http(200, ReplyFor(r)));
        var options = Options(server) with { TopLogprobs = 0, Seed = 3 };
        var prompts = MathPrompts(1, 2, 3, 2);
        var onlineCache = dir.Dir("online");
        var online = await EndpointTeacher.AnswerAsync(prompts, MathTask, options, onlineCache);

        // Export what a fresh cache lacks: every distinct request, each body byte for byte what the server got online.
        var batchCache = dir.Dir("batch");
        var requestsFile = dir.File("requests.jsonl");
        Assert.Equal(3, EndpointBatch.WriteRequests(prompts, MathTask, options, batchCache, requestsFile));
        var lines = File.ReadAllLines(requestsFile).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.All(lines, l => Assert.Equal(("POST", "/v1/chat/completions"), (l["method"]!.GetValue<string>(), l["url"]!.GetValue<string>())));
        var bodies = File.ReadAllLines(requestsFile).Select(l => l[(l.IndexOf("\"body\":", StringComparison.Ordinal) + 7)..^1]).ToList();
        Assert.Equal(server.Answered.OrderBy(b => b, StringComparer.Ordinal), bodies.OrderBy(b => b, StringComparer.Ordinal));

        // A results file as the batch API writes it, in another order, from the same teacher.
        var results = new StringBuilder();
        foreach (var line in lines.AsEnumerable().Reverse())
        {
            var body = line["body"]!.ToJsonString();
            var request = new ScriptedRequest("/v1/chat/completions", new Dictionary<string, string>(), body, 1);
            results.Append(new JsonObject
            {
                ["id"] = "batch_req_" + line["custom_id"]!.GetValue<string>()[..8],
                ["custom_id"] = line["custom_id"]!.GetValue<string>(),
                ["response"] = new JsonObject { ["status_code"] = 200, ["request_id"] = "r1", ["body"] = JsonNode.Parse(ReplyFor(request)) },
                ["error"] = null,
            }.ToJsonString()).Append('\n');
        }

        var resultsFile = dir.Write("results.jsonl", results.ToString());
        var import = EndpointBatch.ImportResults(resultsFile, requestsFile, batchCache);
        Assert.Equal((3, 3, 0), (import.Lines, import.Imported, import.ErrorCount));

        var replayed = await EndpointTeacher.AnswerAsync(prompts, MathTask, options with { Offline = true }, batchCache);
        Assert.Equal(Flat(online.Answers.Answers), Flat(replayed.Answers.Answers));
        Assert.Equal(online.Turns.SelectMany(t => t), replayed.Turns.SelectMany(t => t));
        Assert.Equal((online.Usage.PromptTokens, online.Usage.CompletionTokens), (replayed.Usage.PromptTokens, replayed.Usage.CompletionTokens));
        // The entries are the very files the online run stored.
        foreach (var file in Directory.GetFiles(onlineCache, "*.json", SearchOption.AllDirectories))
        {
            Assert.Equal(File.ReadAllBytes(file), File.ReadAllBytes(Path.Join(batchCache, Path.GetRelativePath(onlineCache, file))));
        }

        Assert.Equal(0, EndpointBatch.WriteRequests(prompts, MathTask, options, batchCache, dir.File("nothing-left.jsonl")));
        Assert.Equal(string.Empty, File.ReadAllText(dir.File("nothing-left.jsonl")));
    }

    [Fact]
    public void Failed_results_are_counted_not_cached_and_mismatched_files_are_refused_with_their_line()
    {
        using var dir = new TempDir();
        var options = new EndpointTeacherOptions { Endpoint = "http://127.0.0.1:1/v1", Model = "teacher-model" };
        var cache = dir.Dir("cache");
        var requestsFile = dir.File("requests.jsonl");
        EndpointBatch.WriteRequests(MathPrompts(1, 2, 3, 4), MathTask, options, cache, requestsFile);
        var ids = File.ReadAllLines(requestsFile).Select(l => JsonNode.Parse(l)!["custom_id"]!.GetValue<string>()).ToList();
        string Line(string id, int status, string body, string error = "null") =>
            $"{{\"id\":\"b\",\"custom_id\":\"{id}\",\"response\":{{\"status_code\":{status},\"body\":{body}}},\"error\":{error}}}";
        var results = dir.Write("results.jsonl", string.Join('\n', [
            Line(ids[0], 200, ScriptedChatServer.Completion(["#### 2"])),
            Line(ids[1], 429, "{\"error\":{\"message\":\"rate\"}}"),
            Line(ids[2], 200, "{\"object\":\"chat.completion\"}"),
            $"{{\"id\":\"b\",\"custom_id\":\"{ids[3]}\",\"response\":null,\"error\":{{\"code\":\"batch_expired\",\"message\":\"expired\"}}}}",
            string.Empty]));

        var import = EndpointBatch.ImportResults(results, requestsFile, cache);

        Assert.Equal((4, 1), (import.Lines, import.Imported));
        Assert.Equal(new Dictionary<string, int> { ["error_batch_expired"] = 1, ["http_429"] = 1, ["malformed_reply"] = 1 }, import.Errors);
        Assert.Single(Directory.GetFiles(cache, "*.json", SearchOption.AllDirectories));

        var stranger = dir.Write("stranger.jsonl", Line(ids[0], 200, "{}") + "\n" + Line(new string('a', 64), 200, "{}") + "\n");
        var unknown = Assert.Throws<CompressionException>(() => EndpointBatch.ImportResults(stranger, requestsFile, cache));
        Assert.Equal((DiagnosticCodes.EndpointBatchFileInvalid, stranger, 2), (unknown.Code, unknown.Diagnostics[0].File, unknown.Diagnostics[0].Line));

        var edited = dir.Write("edited.jsonl", File.ReadAllText(requestsFile).Replace("What is 3 plus 3?", "What is 3 plus 4?", StringComparison.Ordinal));
        var tampered = Assert.Throws<CompressionException>(() => EndpointBatch.ImportResults(results, edited, cache));
        Assert.Equal((DiagnosticCodes.EndpointBatchFileInvalid, 3), (tampered.Code, tampered.Diagnostics[0].Line));
        Assert.Contains("does not hash to its custom_id", tampered.Message, StringComparison.Ordinal);

        var broken = dir.Write("broken.jsonl", "{\"custom_id\": \n");
        Assert.Equal(1, Assert.Throws<CompressionException>(() => EndpointBatch.ImportResults(broken, requestsFile, cache)).Diagnostics[0].Line);
    }

    [Fact]
    public async Task The_distilled_export_is_the_chat_fine_tuning_file_the_generate_stage_writes()
    {
        using var dir = new TempDir();
        using var server = new ScriptedChatServer(r => NumberOf(r) == 2 ? ScriptedChatServer.Ok("no idea") : ScriptedChatServer.Ok(RightAnswer(NumberOf(r))));
        var result = await EndpointTeacher.AnswerAsync(MathPrompts(1, 2, 3), MathTask, Options(server) with { MinSuccessRatio = 0.5 }, dir.Dir("cache"));
        var path = dir.File("distilled.jsonl");

        EndpointTeacher.ExportDistilled(result, path);

        var read = TeacherAnswers.Read(path);
        Assert.Equal(Flat(result.Answers.Answers), Flat(read.Answers));
        Assert.Equal(1, read.Stats.Dropped[TeacherAnswerDropReason.NoFinalNumber]);
        Assert.Equal(0, read.Stats.Dropped[TeacherAnswerDropReason.RequestFailed]);
        var first = JsonNode.Parse(File.ReadLines(path).First())!;
        Assert.Equal(["user", "assistant"], first["messages"]!.AsArray().Select(m => m!["role"]!.GetValue<string>()));
    }

    [Fact]
    public async Task A_stats_file_written_before_the_endpoint_drop_reasons_reads_them_as_none()
    {
        using var dir = new TempDir();
        using var server = new ScriptedChatServer(r => ScriptedChatServer.Ok(RightAnswer(NumberOf(r))));
        var result = await EndpointTeacher.AnswerAsync(MathPrompts(1, 2), MathTask, Options(server), dir.Dir("cache"));
        var path = dir.File("answers.jsonl");
        EndpointTeacher.ExportDistilled(result, path);
        var statsPath = TeacherAnswers.StatsPath(path);
        var stats = JsonNode.Parse(File.ReadAllText(statsPath))!;
        var counts = stats["dropped"]!.AsObject();
        Assert.True(counts.Remove("request_failed") && counts.Remove("not_answer_json") && counts.Remove("not_asked"));
        File.WriteAllText(statsPath, stats.ToJsonString());

        var read = TeacherAnswers.Read(path);

        Assert.Equal(2, read.Stats.Kept);
        Assert.Equal(0, read.Stats.Dropped[TeacherAnswerDropReason.NotAsked]);
        counts.Remove("duplicate");
        File.WriteAllText(statsPath, stats.ToJsonString());
        Assert.Equal(DiagnosticCodes.TeacherAnswersFileInvalid, Assert.Throws<CompressionException>(() => TeacherAnswers.Read(path)).Code);
    }

    [Fact]
    public async Task The_key_is_in_no_file_written_and_no_exception_message()
    {
        using var dir = new TempDir();
        var variable = "MC_TEST_KEY_" + Guid.NewGuid().ToString("N");
        var key = "sk-SECRET-" + Guid.NewGuid().ToString("N");
        var refuse = false;
        using var server = new ScriptedChatServer(r =>
        {
            if (refuse)
            {
                // Servers echo what they got; a refused key must not come back into our messages.
                return new ScriptedReply.Http(401, $"{{\"error\":{{\"message\":\"Incorrect API key provided: {r.Headers["authorization"]}\"}}}}");
            }

            return (NumberOf(r), r.Attempt) switch
            {
                (1, 1) => new ScriptedReply.Http(429, "{}", new Dictionary<string, string> { ["Retry-After"] = "1" }),
                (2, _) => new ScriptedReply.Http(500, $"{{\"error\":{{\"message\":\"{r.Headers["authorization"]}\"}}}}"),
                (3, 1) => new ScriptedReply.DropMidBody(ScriptedChatServer.Completion(["#### 6"])),
                (var k, _) => ScriptedChatServer.Ok(RightAnswer(k)),
            };
        });
        var messages = new List<string>();
        Environment.SetEnvironmentVariable(variable, key);
        try
        {
            var options = Options(server) with { ApiKeyEnv = variable, MaxRetries = 1, MinSuccessRatio = 0.5 };
            var cache = dir.Dir("cache");
            var result = await EndpointTeacher.AnswerAsync(MathPrompts(1, 2, 3, 4), MathTask, options, cache, new RecordedWaits().Wait);
            Assert.Equal((3, 1), (result.Usage.RetryCount, result.Usage.FailureCount));
            messages.Add(result.Usage.Describe());
            messages.AddRange(result.Warnings.Select(w => w.Message));
            EndpointTeacher.ExportDistilled(result, dir.File("distilled.jsonl"));
            EndpointBatch.WriteRequests(MathPrompts(1, 2, 3, 4, 5), MathTask, options, cache, dir.File("requests.jsonl"));

            var tooFew = await Assert.ThrowsAsync<CompressionException>(() => EndpointTeacher.AnswerAsync(MathPrompts(2, 7), MathTask, options with { MinSuccessRatio = 0.9 }, cache, new RecordedWaits().Wait));
            messages.Add(tooFew.ToString());
            refuse = true;
            var refused = await Assert.ThrowsAsync<CompressionException>(() => EndpointTeacher.AnswerAsync(MathPrompts(8), MathTask, options, cache));
            messages.Add(refused.ToString());
            var offline = await Assert.ThrowsAsync<CompressionException>(() => EndpointTeacher.AnswerAsync(MathPrompts(9), MathTask, options with { Offline = true }, cache));
            messages.Add(offline.ToString());
        }
        finally
        {
            Environment.SetEnvironmentVariable(variable, null);
        }

        // It was sent: the scan below would prove nothing if the key never left.
        Assert.Contains(server.Requests, r => r.Headers.TryGetValue("authorization", out var value) && value == "Bearer " + key);
        var files = Directory.GetFiles(dir.Path, "*", SearchOption.AllDirectories);
        Assert.True(files.Length >= 6, string.Join(", ", files));
        foreach (var file in files)
        {
            Assert.DoesNotContain(key, File.ReadAllText(file), StringComparison.Ordinal);
            Assert.DoesNotContain(key, file, StringComparison.Ordinal);
        }

        Assert.All(messages, m => Assert.DoesNotContain(key, m, StringComparison.Ordinal));
    }
}
