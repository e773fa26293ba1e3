using ModelCompression.Core.Tests.Generation;
using ModelCompression.Pipeline;
using ModelCompression.Recipes;
using ModelCompression.Runs;
using ModelCompression.Serving;
using Xunit.Abstractions;

namespace ModelCompression.Core.Tests.Pipeline;

/// <summary>
/// The endpoint teacher against the real server: a teacher decoder published by a finetune recipe is distilled once as
/// a local file and once served by <c>dotnet compress serve</c>'s library on 127.0.0.1. At temperature 0 the two runs
/// get the same answers and train byte-identical students; with faults injected (429 with Retry-After, 500, dropped
/// connections, malformed bodies, replies past the timeout) every request still gets its answer, the client's retry
/// counts equal the server's fault counts, and the student is again the same; a run killed part-way through the pool
/// resumes and the server sees no request body twice.
/// </summary>
[Trait("Category", "Slow")] // trains decoders through whole pipeline runs
public sealed class ServedTeacherRunTests : IDisposable
{
    private const string StudentAndStages = """
        student: { architecture: decoder, width: 32, heads: 2, layers: 1, feed_forward: 64, dropout: 0, seed: 5 }
        stages:
          - generate: { prompts: pool }
          - distill: { epochs: 6, batch_size: 16, learning_rate: 3e-3, alpha: 0, baseline: false, seed: 4 }
        outputs: { report: [json] }
        """;

    private readonly ITestOutputHelper _output;
    private readonly TempDir _dir;
    private readonly ServedTeacherSupport _served;

    public ServedTeacherRunTests(ITestOutputHelper output)
    {
        _output = output;
        _dir = new TempDir();
        _served = new ServedTeacherSupport(_dir);
    }

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void A_served_teacher_teaches_the_student_the_local_file_teaches_even_through_faults_and_a_kill()
    {
        var teacher = _served.TrainTeacher();
        _output.WriteLine($"teacher exact match {teacher.Stages[^1].Evaluation.Metrics["exact_match"]:P0}");

        var local = Run("local.compress.yaml", Student("teacher: out/teacher.onnx"), "cache-local");
        var localStudent = File.ReadAllBytes(_dir.File("out/local.student.onnx"));

        // Served, no faults: the same answers, so the same student, byte for byte.
        using (var server = Serve())
        {
            var served = Run("served.compress.yaml", Student(Endpoint(server)), "cache-served");
            Assert.Equal(localStudent, File.ReadAllBytes(_dir.File("out/served.student.onnx")));
            Assert.Equal(local.Stages[0].Result.Details["kept"], served.Stages[0].Result.Details["kept"]);
            Assert.Equal(local.Teacher!.Metrics["exact_match"], served.Teacher!.Metrics["exact_match"]);
            Assert.Equal(66L, server.Stats.Requests);
            Assert.All(server.Stats.Bodies.Values, count => Assert.Equal(1L, count));
        }

        // Faults on chosen requests, and a 429 on every other request's first attempt: nothing lost, retries counted.
        using (var server = Serve("500@request:1-4", "drop@request:5-8", "malformed@request:9-12", "slow:6s@request:13-14", "429:0@first:1"))
        {
            var faulty = Run("faulty.compress.yaml", Student(Endpoint(server, timeoutSeconds: 2)), "cache-faulty");
            Assert.Equal(localStudent, File.ReadAllBytes(_dir.File("out/faulty.student.onnx")));
            var stats = server.Stats;
            _output.WriteLine($"faults {string.Join(", ", stats.Faults.Select(f => $"{f.Key} {f.Value}"))}; requests {stats.Requests}");
            // Each rule fired as written (the ordinal rules on exactly their ordinals, 429 on the other first attempts), and
            // every request body was answered. (Exact retry counts per fault are the unit tests' job, on a scripted server:
            // here a reply that takes longer than the 2 s timeout on a loaded machine is retried too.)
            Assert.Equal((4L, 4L, 4L, 2L), (stats.Faults["500"], stats.Faults["drop"], stats.Faults["malformed"], stats.Faults["slow"]));
            Assert.InRange(stats.Faults["429"], 66 - 14, 66);
            Assert.Equal(66, stats.Bodies.Count);
            // The client's retries of the pool (the teacher row's are the rest): as many as the server's faults on them.
            var details = faulty.Stages[0].Result.Details;
            Assert.Equal("30", details["endpoint.sent"]);
            Assert.Equal("0", details["endpoint.failures"]);
            Assert.True(int.Parse(details["endpoint.retries"], System.Globalization.CultureInfo.InvariantCulture) >= 30, details["endpoint.retries"]);
        }

        // Killed part-way through the pool (one request in flight at a time, so none is cut mid-way), then run again:
        // every request body reached the server once.
        using (var server = Serve())
        {
            using var kill = new CancellationTokenSource();
            var recipe = Write("resumed.compress.yaml", Student(Endpoint(server, "request_batch_size: 1, ")));
            var killer = new KillWhen(kill, () => server.Stats.Requests >= 36 + 10);
            Assert.ThrowsAny<OperationCanceledException>(() => CompressionRun.Run(RecipeLoader.Load(recipe), new PipelineOptions(_dir.Dir("cache-resumed"), _dir.Dir("out"), killer) { Threads = 1 }, kill.Token));
            var before = server.Stats.Requests;
            Assert.InRange(before, 46, 65);

            Run("resumed.compress.yaml", null, "cache-resumed");
            Assert.Equal(localStudent, File.ReadAllBytes(_dir.File("out/resumed.student.onnx")));
            Assert.Equal(66, server.Stats.Bodies.Count);
            Assert.All(server.Stats.Bodies.Values, count => Assert.Equal(1L, count));
            _output.WriteLine($"killed after {before} requests; the rerun sent {server.Stats.Requests - before}");
        }
    }

    private static string Endpoint(RunningServer server, string more = "", int timeoutSeconds = 60) => ServedTeacherSupport.Endpoint(server, more, timeoutSeconds);

    private static string Student(string teacher) => $$"""
        task: generation
        data: { format: chat, train: train.jsonl, test: test.jsonl, unlabelled: pool.jsonl }
        {{ChatTrainSupport.ReversalGeneration}}
        {{teacher}}
        {{StudentAndStages}}
        """;

    private RunningServer Serve(params string[] faults) => _served.Serve(faults);

    private string Write(string name, string yaml) => _served.Write(name, yaml);

    private PipelineResult Run(string name, string? yaml, string cache) => _served.Run(name, yaml, cache);

    /// <summary>A reporter that cancels the run at the first progress report after <paramref name="enough"/> holds.</summary>
    private sealed class KillWhen(CancellationTokenSource kill, Func<bool> enough) : Common.IPipelineReporter
    {
        public void StageStarted(string stage, bool cached)
        {
        }

        public void Training(string stage, Common.TrainingProgressInfo progress)
        {
        }

        public void Info(string message)
        {
        }

        public void Report(Diagnostics.Diagnostic diagnostic)
        {
        }

        public void Progress(string task, double fraction, TimeSpan elapsed)
        {
            if (enough())
            {
                kill.Cancel();
            }
        }
    }
}
