using ModelCompression.Core.Tests.Generation;
using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;
using ModelCompression.Generation;
using ModelCompression.Teachers;
using ModelCompression.Text;
using ModelCompression.Torch.Training;
using Xunit.Abstractions;

namespace ModelCompression.Core.Tests.Pipeline;

/// <summary>
/// Token-level distillation from a teacher behind an endpoint (<c>dotnet compress serve</c> on 127.0.0.1), declared to
/// share the student's tokenizer: the top_logprobs it sends are the local teacher's own top-k distributions at the same
/// positions; a distill with alpha above 0 learns them at every answer token (and trains another student than learning
/// the answers alone); offline replay of the answer cache trains the same student byte for byte; and a student whose
/// tokenizer splits the answers otherwise stops on the probe request, before the pool is asked.
/// </summary>
[Trait("Category", "Slow")] // trains decoders through whole pipeline runs
public sealed class ServedTeacherTokenTests : IDisposable
{
    private const int TopLogprobs = 5;

    private readonly ITestOutputHelper _output;
    private readonly TempDir _dir;
    private readonly ServedTeacherSupport _served;

    public ServedTeacherTokenTests(ITestOutputHelper output)
    {
        _output = output;
        _dir = new TempDir();
        _served = new ServedTeacherSupport(_dir);
    }

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void A_served_teachers_top_logprobs_teach_the_student_token_by_token()
    {
        _served.TrainTeacher();
        byte[] tokenLevel;
        using (var server = _served.Serve())
        {
            TopLogprobsAreTheLocalTeachersDistributions(server);

            var run = _served.Run("tokens.compress.yaml", Recipe(ServedTeacherSupport.Endpoint(server, $"top_logprobs: {TopLogprobs}, shares_tokenizer: true, "), alpha: 0.5), "cache-tokens");
            var details = run.Stages[1].Result.Details;
            _output.WriteLine(string.Join(", ", details.Where(d => d.Key.StartsWith("endpoint_tokens", StringComparison.Ordinal)).Select(d => $"{d.Key} {d.Value}")));
            var kept = run.Stages[0].Result.Details["kept"];
            // Every kept answer aligns, and each of its 3 letters learns the teacher's distribution (the end of text its label).
            Assert.Equal((kept, kept), (details["endpoint_tokens.answers"], details["endpoint_tokens.aligned"]));
            Assert.Equal(3 * int.Parse(kept, System.Globalization.CultureInfo.InvariantCulture), int.Parse(details["endpoint_tokens.taught"], System.Globalization.CultureInfo.InvariantCulture));
            Assert.Equal("0", details["endpoint_tokens.unmapped_alternatives"]);
            Assert.Contains("token-level from the endpoint's top_logprobs (5)", details["distillation"], StringComparison.Ordinal);
            tokenLevel = File.ReadAllBytes(_dir.File("out/tokens.student.onnx"));

            // The same answers without their tokens (alpha 0) train another student: the distributions were learned.
            _served.Run("answers.compress.yaml", Recipe(ServedTeacherSupport.Endpoint(server, $"top_logprobs: {TopLogprobs}, shares_tokenizer: true, "), alpha: 0), "cache-tokens");
            Assert.NotEqual(tokenLevel, File.ReadAllBytes(_dir.File("out/answers.student.onnx")));
        }

        // Offline, from the answer cache alone (a fresh stage cache, no server): the same student, byte for byte.
        RecipeTestRuns.CopyEndpointAnswers(_dir, "cache-tokens", "cache-replay");
        var offline = Recipe("teacher: { endpoint: \"http://127.0.0.1:9/v1\", model: teacher, top_logprobs: 5, shares_tokenizer: true, temperature: 0, top_p: 1, max_tokens: 6, prompt_template: \"{content}\", offline: true }", alpha: 0.5);
        _served.Run("tokens.compress.yaml", offline, "cache-replay");
        Assert.Equal(tokenLevel, File.ReadAllBytes(_dir.File("out/tokens.student.onnx")));
    }

    [Fact]
    public void A_student_that_splits_the_answers_otherwise_stops_on_the_probe()
    {
        _served.TrainTeacher();
        using var server = _served.Serve();
        var gpt2 = Recipe(ServedTeacherSupport.Endpoint(server, $"top_logprobs: {TopLogprobs}, shares_tokenizer: true, "), alpha: 0.5)
            .Replace("tokenizer: byte", "tokenizer: gpt2\n  compact_vocabulary: true", StringComparison.Ordinal);

        var error = Assert.Throws<CompressionException>(() => _served.Run("gpt2.compress.yaml", gpt2, "cache-gpt2"));

        var diagnostic = Assert.Single(error.Diagnostics);
        _output.WriteLine(diagnostic.Message);
        Assert.Equal(DiagnosticCodes.EndpointTokenizerMismatch, diagnostic.Code);
        Assert.Equal((_dir.File("pool.jsonl"), 1), (diagnostic.File, diagnostic.Line));
        Assert.Contains("the teacher's tokens are [", diagnostic.Message, StringComparison.Ordinal);
        // The teacher row's 36 test prompts, then the probe alone: none of the pool's other 29.
        Assert.Equal(36 + 1, server.Stats.Requests);
    }

    /// <summary>
    /// The endpoint's answers to the pool with top_logprobs, stored as the distill stage stores them, against the local
    /// teacher's top k over the same rows (<see cref="TeacherTokenCache.Write"/>): at every answer letter the same k ids
    /// with the same log-probabilities (both fp16); at the end of text the label.
    /// </summary>
    private void TopLogprobsAreTheLocalTeachersDistributions(Serving.RunningServer server)
    {
        var options = new EndpointTeacherOptions
        {
            Endpoint = server.OpenAiEndpoint.ToString(),
            Model = "teacher",
            Temperature = 0,
            TopP = 1,
            MaxTokens = 6,
            PromptTemplate = "{content}",
            TopLogprobs = TopLogprobs,
            SharesTokenizer = true,
            RetryDelaySeconds = 0,
        };
        var prompts = ChatReader.Read(_dir.File("pool.jsonl")).Unlabelled;
        var answered = EndpointTeacher.Answer(prompts, new GenerativeTask(GenerativeTaskType.Qa), options, _dir.Dir("answers-direct"));
        var kept = answered.Answers.Kept;
        Assert.Equal(prompts.Count, kept.Count);
        var train = ChatTrainingSet.Render(kept, ChatTrainSupport.Template(), 24, origin: "teacher");
        var tokens = answered.Turns.Select(turns => (IReadOnlyList<EndpointTurnTokens>)[.. turns.Select(t => new EndpointTurnTokens(t.Message, t.Logprobs!))]).ToList();

        var coverage = EndpointTeacherTokens.Write(train, kept, tokens, new EndpointTokenAlignment(ChatTrainSupport.Bytes()), _dir.File("endpoint.tokens"), TopLogprobs + 1);
        using (var session = DecoderSession.Open(_dir.File("out/teacher.onnx"), threads: 1))
        {
            TeacherTokenCache.Write(session, train, _dir.File("local.tokens"), TeacherTokenForm.TopK, TopLogprobs);
        }

        Assert.Equal(kept.Count, coverage.AlignedTurns);
        using var endpoint = TeacherTokenStore.Open(_dir.File("endpoint.tokens"));
        using var local = TeacherTokenStore.Open(_dir.File("local.tokens"));
        var compared = 0;
        for (var row = 0; row < train.Count; row++)
        {
            var fromEndpoint = Entries(endpoint, row);
            var fromLocal = Entries(local, row);
            Assert.Equal(fromLocal.Count, fromEndpoint.Count);
            for (var t = 0; t < fromLocal.Count - 1; t++)
            {
                Assert.Equal(fromLocal[t].Keys.Order(), fromEndpoint[t].Keys.Order());
                Assert.All(fromLocal[t], e => Assert.InRange(fromEndpoint[t][e.Key] - e.Value, -0.02, 0.02));
                compared++;
            }

            Assert.Equal(256, Assert.Single(fromEndpoint[^1]).Key);
        }

        Assert.Equal(3 * kept.Count, compared);
    }

    /// <summary>Each stored position of <paramref name="row"/> as id → log-probability, without the padding that carries none.</summary>
    private static List<Dictionary<int, double>> Entries(TeacherTokenStore store, int row)
    {
        var count = store.TokensOf(row);
        var (values, ids) = (new Half[count * store.K], new int[count * store.K]);
        store.Read(row, values, ids);
        return [.. Enumerable.Range(0, count).Select(t => Enumerable.Range(t * store.K, store.K)
            .Where(i => values[i] != Half.MinValue)
            .ToDictionary(i => ids[i], i => (double)values[i]))];
    }

    private static string Recipe(string teacher, double alpha) => $$"""
        task: generation
        data: { format: chat, train: train.jsonl, test: test.jsonl, unlabelled: pool.jsonl }
        {{ChatTrainSupport.ReversalGeneration}}
        {{teacher}}
        student: { architecture: decoder, width: 32, heads: 2, layers: 1, feed_forward: 64, dropout: 0, seed: 5 }
        stages:
          - generate: { prompts: pool }
          - distill: { epochs: 6, batch_size: 16, learning_rate: 3e-3, alpha: {{alpha.ToString(System.Globalization.CultureInfo.InvariantCulture)}}, baseline: false, seed: 4 }
        outputs: { report: [json] }
        """;
}
