using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using ModelCompression.Core.Tests.Generation;
using ModelCompression.Core.Tests.Teachers;
using ModelCompression.Diagnostics;
using ModelCompression.Pipeline;
using ModelCompression.Recipes;
using ModelCompression.Runs;
using ModelCompression.Text;
using Xunit.Abstractions;

namespace ModelCompression.Core.Tests.Pipeline;

/// <summary>
/// task: generation with a teacher behind an OpenAI-compatible endpoint, through whole runs: an "oracle" server on
/// 127.0.0.1 reverses words (what a large model would answer), the generate stage asks it for the pool's answers
/// (cached one file per request), the student learns them sequence-level; the teacher row is the endpoint's own answers
/// to the test prompts. A rerun with an empty stage cache sends nothing; offline replay fails with the list of what is
/// missing; the loader refuses what an endpoint cannot give (logits, weights).
/// </summary>
[Trait("Category", "Slow")] // trains a decoder through whole pipeline runs
public sealed class EndpointTeacherRunTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void A_student_learns_from_an_endpoint_teachers_answers_and_a_rerun_asks_nothing_again()
    {
        WriteData();
        using var server = new ScriptedChatServer(request => ScriptedChatServer.Ok(Reverse(request.LastMessage), completionTokens: 3));
        var recipe = Recipe(server.BaseUrl, offline: false);

        var reporter = new RecordingReporter();
        var run = Run("student.compress.yaml", recipe, "cache", reporter);

        Assert.True(run.GatesPassed, string.Join("; ", run.Gates.Select(g => g.Message)));
        // 36 test prompts for the teacher's row, 30 pool prompts for the generate stage: each asked once.
        Assert.Equal(66, server.Requests.Count);
        Assert.Equal(66, server.Requests.Select(r => r.Body).Distinct().Count());
        Assert.Equal(1.0, run.Teacher!.Metrics["exact_match"]);
        var generate = run.Stages[0].Result.Details;
        Assert.Equal(("30", "30", "30", "0"), (generate["kept"], generate["endpoint.requests"], generate["endpoint.sent"], generate["endpoint.cache_hits"]));
        Assert.Equal("90", generate["endpoint.sent_completion_tokens"]);
        Assert.Equal(66, Directory.GetFiles(Path.Join(_dir.Dir("cache"), GenerationPipeline.EndpointAnswersFolder), "*.json", SearchOption.AllDirectories).Length);
        var distill = run.Stages[1];
        Assert.Equal("30", distill.Result.Details["conversations.teacher"]);
        output.WriteLine($"student: {string.Join(", ", run.Stages[^1].Evaluation.Metrics.Select(m => $"{m.Key} {m.Value:0.###}"))}");

        // Offline, with a fresh stage cache but the same answers: every answer replays and nothing is sent.
        RecipeTestRuns.CopyEndpointAnswers(_dir, "cache", "cache2");
        var replay = Run("offline.compress.yaml", Recipe(server.BaseUrl, offline: true), "cache2");
        Assert.Equal(66, server.Requests.Count);
        Assert.Equal(run.Stages[1].Evaluation.Metrics["exact_match"], replay.Stages[1].Evaluation.Metrics["exact_match"]);
        Assert.Equal("30", replay.Stages[0].Result.Details["endpoint.cache_hits"]);

        // Offline with answers missing: a clear error that names what is missing, and nothing sent.
        File.Delete(Directory.GetFiles(Path.Join(_dir.Dir("cache"), GenerationPipeline.EndpointAnswersFolder), "*.json", SearchOption.AllDirectories)[0]);
        var missing = Assert.Throws<CompressionException>(() => Run("offline2.compress.yaml", Recipe(server.BaseUrl, offline: true), "cache3", copyAnswersFrom: "cache"));
        Assert.Equal(DiagnosticCodes.EndpointAnswersMissingOffline, missing.Code);
        Assert.Contains("1 ", missing.Message, StringComparison.Ordinal);
        Assert.Equal(66, server.Requests.Count);

        // The distilled data set: the 150 gold conversations, then the teacher's 30, replayed from the answer cache.
        var exported = _dir.File("distilled.jsonl");
        Assert.Equal((150, 30), EndpointTeacherJobs.ExportData(_dir.File("student.compress.yaml"), _dir.Dir("cache"), exported));
        var distilled = ChatReader.Read(exported).Labelled;
        Assert.Equal(180, distilled.Count);
        Assert.All(distilled.Skip(150), r => Assert.Equal(Reverse(r.Prompt[^1].Content), r.Answer));
        Assert.Equal(66, server.Requests.Count);
    }

    [Fact]
    public void A_batch_requests_file_answered_elsewhere_fills_the_answer_cache_and_the_run_replays_it_offline()
    {
        WriteData();
        using var server = new ScriptedChatServer(request => ScriptedChatServer.Ok(Reverse(request.LastMessage), completionTokens: 3));
        var recipe = _dir.File("offline.compress.yaml");
        File.WriteAllText(recipe, Recipe(server.BaseUrl, offline: true));

        // What a run would ask: 36 test prompts and 30 pool prompts.
        var requests = _dir.File("batch-requests.jsonl");
        Assert.Equal(66, EndpointTeacherJobs.WriteRequests(recipe, _dir.Dir("cache"), requests));

        // "Elsewhere" (a batch API, vllm run-batch): every line answered by the oracle, in the batch output format.
        var results = File.ReadAllLines(requests).Select(line =>
        {
            var request = JsonNode.Parse(line)!;
            var prompt = request["body"]!["messages"]!.AsArray()[^1]!["content"]!.GetValue<string>();
            return new JsonObject
            {
                ["id"] = "batch_req_" + request["custom_id"]!.GetValue<string>()[..8],
                ["custom_id"] = request["custom_id"]!.GetValue<string>(),
                ["response"] = new JsonObject { ["status_code"] = 200, ["request_id"] = "r", ["body"] = JsonNode.Parse(ScriptedChatServer.Completion([Reverse(prompt)], completionTokens: 3)) },
                ["error"] = null,
            }.ToJsonString();
        });
        var output = _dir.File("batch-output.jsonl");
        File.WriteAllLines(output, results);
        var imported = EndpointTeacherJobs.ImportResults(recipe, _dir.Dir("cache"), output, requests);
        Assert.Equal((66, 66, 0), (imported.Lines, imported.Imported, imported.ErrorCount));
        Assert.Equal(0, EndpointTeacherJobs.WriteRequests(recipe, _dir.Dir("cache"), _dir.File("nothing-left.jsonl")));

        var run = CompressionRun.Run(RecipeLoader.Load(recipe), new PipelineOptions(_dir.Dir("cache"), _dir.Dir("out"), new RecordingReporter()) { Threads = 1 });
        Assert.True(run.GatesPassed, string.Join("; ", run.Gates.Select(g => g.Message)));
        Assert.Equal(("30", "0"), (run.Stages[0].Result.Details["endpoint.cache_hits"], run.Stages[0].Result.Details["endpoint.sent"]));
        Assert.Empty(server.Requests);
    }

    [Fact]
    public void The_api_key_goes_in_the_header_and_nowhere_else_even_when_requests_fail()
    {
        WriteData();
        const string Key = "sk-test-7f3a9c1e5d2b8046-SECRET";
        var variable = "MC_TEST_KEY_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        Environment.SetEnvironmentVariable(variable, Key);
        try
        {
            // Every request's first attempt gets a 500 whose message echoes the Authorization header (servers do such
            // things); the retry answers.
            var attempts = new System.Collections.Concurrent.ConcurrentDictionary<string, int>();
            using var server = new ScriptedChatServer(request => attempts.AddOrUpdate(request.Body, 1, (_, n) => n + 1) == 1
                ? new ScriptedReply.Http(500, "{\"error\":{\"message\":\"busy: " + request.Headers["authorization"] + "\"}}")
                : ScriptedChatServer.Ok(Reverse(request.LastMessage)));
            var yaml = Recipe(server.BaseUrl, offline: false).Replace("model: oracle,", $"model: oracle, api_key_env: {variable},", StringComparison.Ordinal);
            var reporter = new RecordingReporter();
            var run = Run("keyed.compress.yaml", yaml, "cache", reporter);

            Assert.All(server.Requests, r => Assert.Equal($"Bearer {Key}", r.Headers["authorization"]));
            Assert.NotEqual("0", run.Stages[0].Result.Details["endpoint.retries"]);
            var written = Directory.GetFiles(_dir.Path, "*", SearchOption.AllDirectories);
            Assert.True(written.Length > 70, $"{written.Length} files");
            Assert.All(written, f => Assert.DoesNotContain(Key, File.ReadAllText(f), StringComparison.Ordinal));
            Assert.All(reporter.Infos.Concat(reporter.Diagnostics.Select(d => d.ToString())), m => Assert.DoesNotContain(Key, m, StringComparison.Ordinal));
        }
        finally
        {
            Environment.SetEnvironmentVariable(variable, null);
        }
    }

    [Fact]
    public void The_loader_refuses_what_an_endpoint_teacher_cannot_give()
    {
        WriteData();
        const string Head = """
            task: generation
            data: { format: chat, train: train.jsonl, test: test.jsonl, unlabelled: pool.jsonl }
            generation: { task_type: qa, tokenizer: byte }
            teacher: { endpoint: "http://127.0.0.1:9/v1", model: oracle, temperature: 0 }
            student: { architecture: decoder }
            """;
        var tokenLevel = Refused(Head + "\nstages:\n  - generate\n  - distill: { epochs: 1,\n      alpha: 0.5 }\n");
        Assert.Equal(9, Assert.Single(tokenLevel).Line);
        Assert.Contains("this endpoint teacher gives answers as text", tokenLevel[0].Message, StringComparison.Ordinal);
        Assert.Contains("shares_tokenizer: true and top_logprobs", tokenLevel[0].Message, StringComparison.Ordinal);

        // Token-level needs the declaration with top_logprobs, and k is the endpoint's.
        var shared = Head.Replace("temperature: 0 }", "temperature: 0, shares_tokenizer: true }", StringComparison.Ordinal);
        Assert.Contains("set top_logprobs", Assert.Single(Refused(shared + "\nstages: [generate, { distill: { alpha: 0.5 } }]\n")).Message, StringComparison.Ordinal);
        var withTop = shared.Replace("shares_tokenizer: true", "shares_tokenizer: true, top_logprobs: 5", StringComparison.Ordinal);
        Assert.Contains("teacher_top_k is how many of a local teacher's tokens", Assert.Single(Refused(withTop + "\nstages: [generate, { distill: { alpha: 0.5, teacher_top_k: 8 } }]\n")).Message, StringComparison.Ordinal);
        var tokenRecipe = _dir.File("tokens.compress.yaml");
        File.WriteAllText(tokenRecipe, withTop + "\nstages: [generate, { distill: { alpha: 0.5 } }]\n");
        Assert.True(RecipeLoader.Load(tokenRecipe).EndpointTeacher!.SharesTokenizer);

        // It learns from the answers' tokens, so a generate stage must come first (checked before anything is asked).
        File.WriteAllText(tokenRecipe, withTop + "\nstages: [{ distill: { alpha: 0.5 } }]\n");
        var plan = Assert.Throws<CompressionException>(() => CompressionRun.Run(RecipeLoader.Load(tokenRecipe), new PipelineOptions(_dir.Dir("cache-plan"), _dir.Dir("out-plan"), new RecordingReporter()) { Threads = 1 }));
        Assert.Contains("no generate stage comes before it", Assert.Single(plan.Diagnostics).Message, StringComparison.Ordinal);

        var weights = Refused(Head + "\nstages:\n  - finetune: { init_from_teacher: true }\n");
        Assert.Contains("init_from_teacher copies the teacher's weights", Assert.Single(weights).Message, StringComparison.Ordinal);

        var sampling = Refused(Head + "\nstages:\n  - generate: { temperature: 0.7 }\n  - distill: { alpha: 0 }\n");
        Assert.Contains("temperature is the local teacher's", Assert.Single(sampling).Message, StringComparison.Ordinal);

        var noModel = Refused(Head.Replace("model: oracle, ", string.Empty, StringComparison.Ordinal) + "\nstages: [generate, { distill: { alpha: 0 } }]\n");
        Assert.Contains("model is missing", Assert.Single(noModel).Message, StringComparison.Ordinal);

        var classification = Refused("""
            data: { train: train.csv, test: train.csv, label: y }
            teacher: { endpoint: "http://127.0.0.1:9/v1", model: oracle }
            student: { architecture: mlp }
            stages: [finetune]
            """);
        Assert.Contains(classification, d => d.Code == DiagnosticCodes.EndpointTeacherCannotClassify && d.Message.Contains("An endpoint teacher answers with text", StringComparison.Ordinal) && d.Message.Contains("this data is not text", StringComparison.Ordinal));

        // Sequence-level distillation from an endpoint loads, with its options bound.
        var path = _dir.File("ok.compress.yaml");
        File.WriteAllText(path, Head + "\nstages: [generate, { distill: { alpha: 0 } }]\n");
        var recipe = RecipeLoader.Load(path);
        Assert.Equal(("http://127.0.0.1:9/v1", "oracle", 0.0), (recipe.EndpointTeacher!.Endpoint, recipe.EndpointTeacher.Model, recipe.EndpointTeacher.Temperature));
        Assert.DoesNotContain(recipe.InputFiles(), f => f.Contains("127.0.0.1", StringComparison.Ordinal));
    }

    /// <summary>The oracle: the reversed word of the prompt's last line.</summary>
    private static string Reverse(string prompt) => new([.. prompt.Split('\n')[0].Trim().Reverse()]);

    private static string Recipe(string url, bool offline) => $$"""
        task: generation
        data: { format: chat, train: train.jsonl, test: test.jsonl, unlabelled: pool.jsonl }
        {{ChatTrainSupport.ReversalGeneration}}
        teacher: { endpoint: "{{url}}", model: oracle, temperature: 0, top_p: 1, prompt_template: "{content}", retry_delay_seconds: 0, offline: {{(offline ? "true" : "false")}} }
        student: { architecture: decoder, width: 32, heads: 2, layers: 1, feed_forward: 64, dropout: 0, seed: 5 }
        stages:
          - generate: { prompts: pool }
          - distill: { epochs: 12, batch_size: 16, learning_rate: 3e-3, alpha: 0, baseline: false, seed: 4 }
        gates:
          - exact_match >= 0.3
        outputs: { model: student.onnx, report: [json] }
        """;

    private IReadOnlyList<Diagnostic> Refused(string yaml) => RecipeTestRuns.Refused(_dir, yaml, output);

    private PipelineResult Run(string name, string yaml, string cache, RecordingReporter? reporter = null, string? copyAnswersFrom = null)
    {
        if (copyAnswersFrom is not null)
        {
            RecipeTestRuns.CopyEndpointAnswers(_dir, copyAnswersFrom, cache);
        }

        return RecipeTestRuns.Run(_dir, name, yaml, cache, reporter);
    }

    /// <summary>The reversal splits, and a CSV for the classification refusal.</summary>
    private void WriteData()
    {
        ChatTrainSupport.WriteReversalSplits(_dir);
        File.WriteAllLines(_dir.File("train.csv"), ["a,b,y", "1,2,0", "3,4,1"]);
    }
}
