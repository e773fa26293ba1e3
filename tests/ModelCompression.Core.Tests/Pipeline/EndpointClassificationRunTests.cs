using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;
using ModelCompression.Core.Tests.Teachers;
using ModelCompression.Diagnostics;
using ModelCompression.Pipeline;
using ModelCompression.Recipes;
using ModelCompression.Runs;
using ModelCompression.Teachers;
using Xunit.Abstractions;

namespace ModelCompression.Core.Tests.Pipeline;

/// <summary>
/// task: classification with a teacher behind an endpoint ("label my texts with the big model, ship a small
/// classifier"), through whole runs on real mail (the SpamAssassin slice): a scripted server on 127.0.0.1 answers each
/// mail's true label with top_logprobs, as a large model would; 60 labelled mails train, 160 unlabelled ones are
/// learnt from the teacher alone, 80 test the models. Reruns ask nothing; offline replay from the answer files alone
/// gives the same student bytes; garbage answers fail the run with their counts.
/// </summary>
[Trait("Category", "Slow")] // trains small text classifiers through whole pipeline runs
public sealed class EndpointClassificationRunTests(ITestOutputHelper output) : IDisposable
{
    private const string Template = "Classify the text as exactly one of: ham, spam. Reply with the label only.\n\nText: ";
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void A_student_distils_an_endpoint_teachers_labels_and_reruns_ask_nothing()
    {
        var truth = WriteMail();
        using var server = new ScriptedChatServer(request => TrueLabel(request, truth));

        var run = Run("student.compress.yaml", Recipe(server.BaseUrl, offline: false), "cache");

        // 80 test mails for the teacher's row, 60 training and 160 unlabelled mails for the soft targets: each distinct
        // text asked once (the slice holds 296 distinct mails; a repeated one is answered from the cache).
        var asked = server.Requests.Count;
        Assert.Equal(truth.Count, asked);
        Assert.Equal(asked, server.Requests.Select(r => r.Body).Distinct().Count());
        Assert.Equal(1.0, run.Teacher!.Accuracy);
        Assert.Equal(80, run.Teacher.Samples);
        Assert.Equal(0, run.Teacher.SizeBytes);
        var usage = run.Teacher.Endpoint!;
        Assert.Equal((usage["requests"], "0", "0", "1", "1"), (usage["sent"], usage["cache_hits"], usage["failures"], usage["success_ratio"], usage["label_accuracy"]));
        Assert.Equal(int.Parse(usage["requests"], System.Globalization.CultureInfo.InvariantCulture) * 120, int.Parse(usage["prompt_tokens"], System.Globalization.CultureInfo.InvariantCulture));
        var distilled = run.Stages[0];
        output.WriteLine($"teacher {run.Teacher.Accuracy:P1}; distilled {distilled.Evaluation.Accuracy:P1} (agreement {distilled.Evaluation.AgreementWithTeacher:P1}); labels-only twin {distilled.Baseline!.Accuracy:P1}; {distilled.Evaluation.SizeBytes} bytes");
        Assert.True(distilled.Evaluation.Accuracy >= distilled.Baseline.Accuracy, $"distilled {distilled.Evaluation.Accuracy:P1} below the labels-only twin {distilled.Baseline.Accuracy:P1}");
        Assert.NotNull(distilled.Evaluation.KlToTeacher);
        Assert.Equal(truth.Count, Directory.GetFiles(Path.Join(_dir.Dir("cache"), GenerationPipeline.EndpointAnswersFolder), "*.json", SearchOption.AllDirectories).Length);
        var studentBytes = File.ReadAllBytes(run.OutputModel!);

        // The same recipe again: every stage and the teacher's row from the stage cache, nothing asked.
        var again = Run("student.compress.yaml", Recipe(server.BaseUrl, offline: false), "cache");
        Assert.Equal(asked, server.Requests.Count);
        Assert.True(again.Stages[0].Cached);

        // Offline, with a fresh stage cache and only the answer files: the same student, byte for byte, and nothing sent.
        RecipeTestRuns.CopyEndpointAnswers(_dir, "cache", "cache2");
        var replay = Run("offline.compress.yaml", Recipe(server.BaseUrl, offline: true), "cache2");
        Assert.Equal(asked, server.Requests.Count);
        Assert.False(replay.Stages[0].Cached);
        Assert.Equal((usage["requests"], "0"), (replay.Teacher!.Endpoint!["cache_hits"], replay.Teacher.Endpoint["sent"]));
        Assert.Equal(studentBytes, File.ReadAllBytes(replay.OutputModel!));

        // The report's teacher row carries the usage.
        using var report = JsonDocument.Parse(File.ReadAllText(Directory.GetFiles(_dir.Dir("out"), "student*.report.json").Single()));
        Assert.Equal(usage["requests"], report.RootElement.GetProperty("teacher").GetProperty("endpoint").GetProperty("requests").GetString());
    }

    [Fact]
    public void A_batch_file_answered_elsewhere_fills_the_answer_cache_and_the_teachers_labels_export_as_the_recipes_jsonl()
    {
        var truth = WriteMail();
        var recipe = _dir.Write("batch.compress.yaml", Recipe("http://127.0.0.1:9/v1", offline: true));
        var cache = _dir.Dir("cache");

        // Every distinct test, training and unlabelled mail, once.
        var requests = _dir.File("batch-requests.jsonl");
        Assert.Equal(truth.Count, EndpointTeacherJobs.WriteRequests(recipe, cache, requests));

        // "Elsewhere" (a batch API): each line answered with the mail's true label, in the batch output format.
        var results = File.ReadAllLines(requests).Select(line =>
        {
            var request = JsonNode.Parse(line)!;
            var message = request["body"]!["messages"]!.AsArray()[^1]!["content"]!.GetValue<string>();
            return new JsonObject
            {
                ["custom_id"] = request["custom_id"]!.GetValue<string>(),
                ["response"] = new JsonObject { ["status_code"] = 200, ["body"] = JsonNode.Parse(ScriptedChatServer.Completion([truth[message[Template.Length..]]], completionTokens: 1)) },
                ["error"] = null,
            }.ToJsonString();
        });
        var output = _dir.File("batch-output.jsonl");
        File.WriteAllLines(output, results);
        var imported = EndpointTeacherJobs.ImportResults(recipe, cache, output, requests);
        Assert.Equal((truth.Count, truth.Count, 0), (imported.Lines, imported.Imported, imported.ErrorCount));
        Assert.Equal(0, EndpointTeacherJobs.WriteRequests(recipe, cache, _dir.File("nothing-left.jsonl")));

        // The distilled data set: the 60 labelled training mails, then the 160 unlabelled ones with the teacher's class.
        var exported = _dir.File("labelled.jsonl");
        Assert.Equal((60, 160), EndpointTeacherJobs.ExportData(recipe, cache, exported));
        var lines = File.ReadAllLines(exported).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(220, lines.Count);
        Assert.All(lines, l => Assert.Equal(truth[EndpointLabeler.Content(l["text"]!.GetValue<string>())], l["label"]!.GetValue<string>()));
    }

    [Fact]
    public void Soft_targets_with_failed_requests_are_not_kept_and_a_stage_run_again_asks_only_the_failed_ones()
    {
        var truth = WriteMail();
        var failing = true;
        using var server = new ScriptedChatServer(request => failing && request.LastMessage.Length % 7 == 0
            ? new ScriptedReply.Http(500, "{\"error\":{\"message\":\"overloaded\"}}")
            : TrueLabel(request, truth));
        var yaml = Recipe(server.BaseUrl, offline: false).Replace("timeout_seconds: 30", "timeout_seconds: 30, max_retries: 0, min_success_ratio: 0.5", StringComparison.Ordinal);

        var first = Run("flaky.compress.yaml", yaml, "cache");
        var failed = server.Requests.Where(r => r.LastMessage.Length % 7 == 0).Select(r => r.Body).ToHashSet();
        Assert.NotEmpty(failed);
        Assert.NotEqual("0", first.Teacher!.Endpoint!["failures"]);
        Assert.True(first.Teacher.Accuracy < 1.0, $"teacher {first.Teacher.Accuracy:P1} with failed requests");
        var asked = server.Requests.Count;

        // The endpoint recovers. A stage that learnt from partial soft targets is cached like any other (as a generate
        // stage is), so the distill here changes its epochs: the rerun sends exactly the requests that failed, once
        // each, for the teacher's row and the soft targets, and the row is whole.
        failing = false;
        var second = Run("flaky.compress.yaml", yaml.Replace("epochs: 12", "epochs: 13", StringComparison.Ordinal), "cache");
        var resent = server.Requests.Skip(asked).Select(r => r.Body).ToList();
        Assert.Equal(failed.Count, resent.Count);
        Assert.True(failed.SetEquals(resent));
        Assert.Equal(("0", 1.0), (second.Teacher!.Endpoint!["failures"], second.Teacher.Accuracy));
        Assert.False(second.Stages[0].Cached);
    }

    [Fact]
    public void A_teacher_that_answers_garbage_fails_the_run_with_the_counts()
    {
        WriteMail();
        using var server = new ScriptedChatServer(_ => ScriptedChatServer.Ok("I cannot classify emails."));
        var error = Assert.Throws<CompressionException>(() => Run("garbage.compress.yaml", Recipe(server.BaseUrl, offline: false), "cache"));
        Assert.Equal(DiagnosticCodes.EndpointSuccessRatioTooLow, error.Code);
        Assert.Contains("Only 0 of 80 endpoint teacher answers were usable", error.Message, StringComparison.Ordinal);
        Assert.Contains("not_a_label 80", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Numeric_labels_are_refused_before_anything_is_asked()
    {
        File.WriteAllLines(_dir.File("numbers.jsonl"), Enumerable.Range(0, 20).Select(i => JsonSerializer.Serialize(new { text = $"mail number {i}", label = i % 2 })));
        using var server = new ScriptedChatServer(_ => ScriptedChatServer.Ok("1"));
        var yaml = Recipe(server.BaseUrl, offline: false).Replace("spam.jsonl", "numbers.jsonl", StringComparison.Ordinal).Replace("test: 80, unlabelled: 160", "test: 5", StringComparison.Ordinal);
        var error = Assert.Throws<CompressionException>(() => Run("numbers.compress.yaml", yaml, "cache"));
        Assert.Equal(DiagnosticCodes.EndpointTeacherCannotClassify, error.Code);
        Assert.Contains("the data's labels are class numbers", error.Message, StringComparison.Ordinal);
        Assert.Empty(server.Requests);
    }

    [Fact]
    public void The_loader_refuses_what_a_classifying_endpoint_teacher_cannot_give()
    {
        WriteMail();
        var ok = Recipe("http://127.0.0.1:9/v1", offline: false);
        var path = _dir.File("ok.compress.yaml");
        File.WriteAllText(path, ok);
        Assert.Equal("gpt-4o-mini", RecipeLoader.Load(path).EndpointTeacher!.Model);

        var hints = Refused(ok.Replace("alpha: 0.8,", "alpha: 0.8, hints: [penultimate],", StringComparison.Ordinal));
        Assert.Equal(DiagnosticCodes.EndpointTeacherCannotClassify, Assert.Single(hints).Code);
        Assert.Contains("hints match the teacher's intermediate tensors", hints[0].Message, StringComparison.Ordinal);

        var weights = Refused(ok.Replace("  - distill:", "  - finetune: { epochs: 1, init_from_teacher: true }\n  - distill:", StringComparison.Ordinal));
        Assert.Contains("init_from_teacher copies the teacher's weights", Assert.Single(weights).Message, StringComparison.Ordinal);

        var sampling = Refused(ok.Replace("top_logprobs: 3", "top_logprobs: 3,\n    samples_per_prompt: 3, temperature: 1", StringComparison.Ordinal).Replace("temperature: 0, ", string.Empty, StringComparison.Ordinal));
        Assert.Equal(7, Assert.Single(sampling).Line);
        Assert.Contains("teacher.samples_per_prompt", sampling[0].Message, StringComparison.Ordinal);

        var template = Refused(ok.Replace("top_logprobs: 3", "top_logprobs: 3, prompt_template: 'Is this spam? {content}'", StringComparison.Ordinal));
        Assert.Contains("must contain {labels}", Assert.Single(template).Message, StringComparison.Ordinal);

        File.WriteAllText(_dir.File("table.csv"), "a,b,y\n1,2,0\n3,4,1\n");
        var tensors = Refused("""
            data: { train: table.csv, test: table.csv, label: y }
            teacher: { endpoint: "http://127.0.0.1:9/v1", model: oracle }
            student: { architecture: mlp }
            stages: [distill]
            """);
        Assert.Contains(tensors, d => d.Code == DiagnosticCodes.EndpointTeacherCannotClassify && d.Message.Contains("this data is not text", StringComparison.Ordinal));
    }

    /// <summary>The recipe: spam.jsonl carved into 80 test, 160 unlabelled and 60 training mails; a fastText-like student.</summary>
    private static string Recipe(string endpoint, bool offline) => $$"""
        task: classification
        data:
          file: spam.jsonl
          split: { test: 80, unlabelled: 160, seed: 7 }
          text: { tokenizer: cl100k_base, max_length: 96, compact_vocabulary: true }
        teacher: { endpoint: "{{endpoint}}", model: gpt-4o-mini, temperature: 0, top_logprobs: 3,
          offline: {{(offline ? "true" : "false")}}, request_batch_size: 8, timeout_seconds: 30 }
        student: { architecture: embedding_bag, embedding_dim: 16, seed: 5 }
        stages:
          - distill: { epochs: 12, batch_size: 16, learning_rate: 0.02, alpha: 0.8, temperature: 1 }
          - evaluate: { measure_latency: false }
        outputs: { model: student.onnx, report: [json] }
        """;

    /// <summary>The scripted teacher: the mail's true label at 0.9, the other class at 0.08, a stray token at 0.02.</summary>
    private static ScriptedReply TrueLabel(ScriptedRequest request, IReadOnlyDictionary<string, string> truth)
    {
        var message = request.LastMessage;
        Assert.StartsWith(Template, message, StringComparison.Ordinal);
        var label = truth[message[Template.Length..]];
        var other = label == "spam" ? "ham" : "spam";
        return new ScriptedReply.Http(200, ScriptedChatServer.Completion([label], promptTokens: 120, completionTokens: 1, logprobs: EndpointLabelerTests.FirstToken(label, other)));
    }

    /// <summary>Copies the fixture; returns each mail's label by the text the teacher is sent.</summary>
    private IReadOnlyDictionary<string, string> WriteMail()
    {
        File.Copy(Path.Join(Repo.Root, "tests", "fixtures", "text", "spam.jsonl"), _dir.File("spam.jsonl"));
        var truth = new ConcurrentDictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in File.ReadLines(_dir.File("spam.jsonl")))
        {
            using var mail = JsonDocument.Parse(line);
            truth[EndpointLabeler.Content(mail.RootElement.GetProperty("text").GetString()!)] = mail.RootElement.GetProperty("label").GetString()!;
        }

        return truth;
    }

    private PipelineResult Run(string name, string yaml, string cache) => RecipeTestRuns.Run(_dir, name, yaml, cache);

    private IReadOnlyList<Diagnostic> Refused(string yaml) => RecipeTestRuns.Refused(_dir, yaml, output);

}
