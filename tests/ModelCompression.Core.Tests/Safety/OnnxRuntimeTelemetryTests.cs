using ModelCompression.Inference;

namespace ModelCompression.Core.Tests.Safety;

/// <summary>
/// ONNX Runtime on Linux (1.31, 1.32) keeps a device id and an event store (the executable's path, model error texts) under
/// <c>$HOME/.cache/Microsoft/DeveloperTools/.onnxruntime/</c>. A build tool must leave the user's home alone: a
/// process that runs the engine writes nothing there. Each run gets its own HOME, and the variables that would
/// silence ONNX Runtime anyway (CI, the opt-out itself) are removed, so the bare session shows the detector works.
/// </summary>
[Trait("Category", "Slow")] // starts child processes
public sealed class OnnxRuntimeTelemetryTests : IDisposable
{
    private static readonly string Model = Path.Join(Repo.Root, "tests", "fixtures", "pytorch", "bert_opset13.onnx");

    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void A_process_that_runs_the_engine_writes_nothing_under_the_home_folder()
    {
        var bare = Run("bare");
        var engine = Run("engine");

        // Without the engine's setup ONNX Runtime writes its telemetry files: the detector works on this machine.
        Assert.NotEmpty(bare);
        Assert.Empty(engine);
    }

    /// <summary>Runs the child with a fresh HOME; returns the files ONNX Runtime's telemetry left under it.</summary>
    private string[] Run(string mode)
    {
        var home = _dir.Dir($"home-{mode}");
        var (exitCode, output, errors) = ChildProcessProgram.Run([mode, Model], new Dictionary<string, string?>
        {
            ["HOME"] = home,
            ["XDG_CACHE_HOME"] = null,
            ["CI"] = null,
            ["TF_BUILD"] = null,
            ["GITHUB_ACTIONS"] = null,
            ["ORT_RUNNING_UNIT_TESTS"] = null,
            [OnnxRuntimeEnvironment.TelemetryOptOutVariable] = null,
        });
        Assert.True(exitCode == 0, $"{mode}: exit {exitCode}\n{output}\n{errors}");
        var telemetry = Path.Join(home, ".cache", "Microsoft", "DeveloperTools", ".onnxruntime");
        return Directory.Exists(telemetry) ? Directory.GetFiles(telemetry, "*", SearchOption.AllDirectories) : [];
    }
}
