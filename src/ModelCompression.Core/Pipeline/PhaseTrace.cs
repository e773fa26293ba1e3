using System.Diagnostics;
using System.Globalization;

namespace ModelCompression.Pipeline;

/// <summary>
/// Where a run's time goes, for finding out why a run with nothing to do is slow: with
/// <c>MODELCOMPRESSION_TRACE=1</c> each <see cref="Mark"/> writes one line to stderr with the time since the process
/// started, the time since the previous mark, and the JIT's compilation time and method count so far (so JIT can be
/// told from work). Off, a mark costs one static read.
/// </summary>
public static class PhaseTrace
{
    /// <summary>The environment variable that turns the trace on (value 1).</summary>
    public const string Variable = "MODELCOMPRESSION_TRACE";

    private static readonly bool On = Environment.GetEnvironmentVariable(Variable) == "1";

    private static TimeSpan _last;

    /// <summary>Writes a trace line that <paramref name="phase"/> just ended, when the trace is on.</summary>
    public static void Mark(string phase)
    {
        if (!On)
        {
            return;
        }

        // The process start time includes the host and runtime start, which a Stopwatch started in Main would miss.
        var sinceStart = DateTime.Now - Process.GetCurrentProcess().StartTime;
        var delta = sinceStart - _last;
        _last = sinceStart;
        Console.Error.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"trace: {sinceStart.TotalMilliseconds,7:0} ms  +{delta.TotalMilliseconds,5:0} ms  jit {System.Runtime.JitInfo.GetCompilationTime().TotalMilliseconds,5:0} ms / {System.Runtime.JitInfo.GetCompiledMethodCount(),5} methods  {phase}"));
    }
}
