using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;

namespace ModelCompression.Inference;

/// <summary>
/// ONNX Runtime's process-wide environment as a build tool needs it: telemetry off. Since 1.29 the Linux build
/// records events (the executable's path, model error texts) in a device id and an event store under
/// <c>~/.cache/Microsoft/DeveloperTools/.onnxruntime/</c> and uploads them. <c>DisableTelemetryEvents</c> alone is
/// not enough: it needs the environment, whose creation already records the process event. The full opt-out is
/// <see cref="TelemetryOptOutVariable"/> set to 1 before ONNX Runtime creates its environment, so that is set first,
/// in the native environment (where ONNX Runtime reads it) and in .NET's (which child processes inherit), and then
/// the API call turns off what remains (the Windows provider).
/// </summary>
public static class OnnxRuntimeEnvironment
{
    /// <summary>The environment variable that turns ONNX Runtime's telemetry off when set to 1 before it starts.</summary>
    public const string TelemetryOptOutVariable = "ORT_DISABLE_TELEMETRY";

    private static readonly Lazy<bool> Configured = new(Configure, LazyThreadSafetyMode.ExecutionAndPublication);
    private static readonly Lazy<bool> OptedOut = new(SetOptOutVariable, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>
    /// Turns ONNX Runtime's telemetry off for this process and the processes it starts. Call it before any ONNX
    /// Runtime object is made (the runner does, before each session; the command line does first thing); calling
    /// it again does nothing.
    /// </summary>
    public static void EnsureTelemetryOff() => _ = Configured.Value;

    /// <summary>
    /// Sets <see cref="TelemetryOptOutVariable"/> for this process and its children without loading ONNX Runtime: what a
    /// process calls first thing when it may never need ONNX Runtime (a run whose every result is cached), so that
    /// whatever starts ONNX Runtime later finds the opt-out in place. <see cref="EnsureTelemetryOff"/> still runs
    /// before each session.
    /// </summary>
    public static void EnsureOptOutVariable() => _ = OptedOut.Value;

    private static bool Configure()
    {
        EnsureOptOutVariable();
        OrtEnv.Instance().DisableTelemetryEvents();
        return true;
    }

    private static bool SetOptOutVariable()
    {
        Environment.SetEnvironmentVariable(TelemetryOptOutVariable, "1");
        if (!OperatingSystem.IsWindows() && setenv(TelemetryOptOutVariable, "1", 1) != 0)
        {
            throw new InvalidOperationException($"setenv({TelemetryOptOutVariable}) failed with errno {Marshal.GetLastPInvokeError()}.");
        }

        return true;
    }

    // .NET keeps its own copy of the environment on Unix; ONNX Runtime reads the C library's, so it is set there too.
    // DllImport rather than LibraryImport: the source generator would need unsafe code enabled for the project.
    [DllImport("libc", CharSet = CharSet.Ansi, ExactSpelling = true, SetLastError = true, BestFitMapping = false, ThrowOnUnmappableChar = true)]
    private static extern int setenv(string name, string value, int overwrite);
}
