using System.Diagnostics;
using System.Reflection;
using System.Text;
using ModelCompression.Common;
using ModelCompression.Diagnostics;

namespace ModelCompression.Cache.Tests;

/// <summary>A fresh folder under the system temp folder, deleted with everything in it on dispose.</summary>
public sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateDirectory(System.IO.Path.Join(System.IO.Path.GetTempPath(), "mc-cache-tests-" + Guid.NewGuid().ToString("N"))).FullName;

    public string File(string name) => System.IO.Path.Join(Path, name);

    public string Dir(string name) => Directory.CreateDirectory(File(name)).FullName;

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // Best effort on shared machines.
        }
    }
}

/// <summary>The repository's files the tests read (the sample's data and teacher).</summary>
internal static class Repo
{
    public static string Root { get; } = Find();

    public static string Sample => System.IO.Path.Join(Root, "samples", "FashionMnist");

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(System.IO.Path.Join(dir.FullName, "samples", "FashionMnist", "fashion.compress.yaml")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"No repository root above {AppContext.BaseDirectory}.");
    }
}

/// <summary>
/// The small recipe every run here uses: the sample's teacher distilled into a 16-unit MLP for one epoch on the sample's
/// 2,000 test images, then quantized to int8 (with the labels-only twin, the teacher's logits and every evaluation: each
/// kind of entry a real run makes). A few seconds of training; the point is where each entry comes from, not the model.
/// </summary>
internal static class TinyRecipe
{
    public const string ModelName = "tiny.student.onnx";

    /// <summary>Writes the recipe into <paramref name="folder"/>; <paramref name="perChannel"/> changes only the quantize stage's key.</summary>
    public static string Write(string folder, bool perChannel = false, string? cacheSection = null)
    {
        var data = System.IO.Path.Join(Repo.Sample, "data");
        var path = System.IO.Path.Join(folder, "tiny.compress.yaml");
        File.WriteAllText(path, $$"""
            data:
              format: idx
              train: { inputs: {{data}}/t10k-images-idx3-ubyte.gz, labels: {{data}}/t10k-labels-idx1-ubyte.gz }
              test:  { inputs: {{data}}/t10k-images-idx3-ubyte.gz, labels: {{data}}/t10k-labels-idx1-ubyte.gz }
              scale: 0.00392156862745098
            teacher: {{Repo.Sample}}/teacher/teacher.onnx
            student: { architecture: mlp, hidden: [16] }
            stages:
              - distill: { epochs: 1, batch_size: 64 }
              - quantize: { mode: dynamic, per_channel: {{(perChannel ? "true" : "false")}} }
              - evaluate: { measure_latency: false }
            gates:
              - accuracy >= 0.1
            outputs: { model: {{ModelName}}, report: [json, md] }
            {{cacheSection ?? string.Empty}}
            """);
        return path;
    }
}

/// <summary>Keeps what a run reports; <see cref="OnStageStarted"/> lets a test act in the middle of a run.</summary>
public sealed class RecordingReporter : IPipelineReporter
{
    public List<(string Stage, bool Cached)> Stages { get; } = [];

    public List<string> Infos { get; } = [];

    public List<Diagnostic> Diagnostics { get; } = [];

    public int TrainingSteps { get; private set; }

    public Action<string>? OnStageStarted { get; init; }

    public void StageStarted(string stage, bool cached)
    {
        Stages.Add((stage, cached));
        OnStageStarted?.Invoke(stage);
    }

    public void Training(string stage, TrainingProgressInfo progress) => TrainingSteps++;

    public void Info(string message) => Infos.Add(message);

    public void Report(Diagnostic diagnostic)
    {
        lock (Diagnostics)
        {
            Diagnostics.Add(diagnostic);
        }
    }

    public IReadOnlyList<Diagnostic> WithCode(string code)
    {
        lock (Diagnostics)
        {
            return [.. Diagnostics.Where(d => d.Code == code)];
        }
    }
}

/// <summary>Runs the built dotnet-compress in a child process (one "machine" of a fleet), keeping stdout and stderr apart.</summary>
public static class CompressCli
{
    private static readonly string Assembly = typeof(CompressCli).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "CliAssembly").Value!;

    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public string Output => Stdout + Stderr;

        public override string ToString() => $"exit code {ExitCode}\n--- stdout\n{Stdout}\n--- stderr\n{Stderr}";
    }

    public static Result Run(string workingDirectory, IReadOnlyDictionary<string, string>? environment, params string[] arguments) =>
        Start(workingDirectory, environment, arguments).Wait();

    /// <summary>Starts the CLI and returns at once: two of them race as two CI agents would.</summary>
    public static Running Start(string workingDirectory, IReadOnlyDictionary<string, string>? environment, params string[] arguments)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(Assembly);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment.Remove("GITHUB_STEP_SUMMARY");
        start.Environment.Remove(RemoteCacheOptions.DefaultCredentialVariable);
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        return new Running(start, arguments);
    }

    public sealed class Running
    {
        private readonly Process _process;
        private readonly StringBuilder _stdout = new();
        private readonly StringBuilder _stderr = new();
        private readonly string[] _arguments;

        public Running(ProcessStartInfo start, string[] arguments)
        {
            _arguments = arguments;
            _process = new Process { StartInfo = start };
            _process.OutputDataReceived += (_, e) => Append(_stdout, e.Data);
            _process.ErrorDataReceived += (_, e) => Append(_stderr, e.Data);
            _process.Start();
            _process.BeginOutputReadLine();
            _process.BeginErrorReadLine();
        }

        public Result Wait()
        {
            using (_process)
            {
                if (!_process.WaitForExit(TimeSpan.FromMinutes(5)))
                {
                    _process.Kill(entireProcessTree: true);
                    throw new TimeoutException($"dotnet-compress {string.Join(' ', _arguments)} took over 5 minutes:\n{_stdout}\n{_stderr}");
                }

                _process.WaitForExit();
                return new Result(_process.ExitCode, _stdout.ToString(), _stderr.ToString());
            }
        }

        private static void Append(StringBuilder text, string? line)
        {
            if (line is null)
            {
                return;
            }

            lock (text)
            {
                text.AppendLine(line);
            }
        }
    }
}
