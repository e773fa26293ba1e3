using System.Diagnostics;
using System.Runtime.InteropServices;

namespace ModelCompression.Torch.Training;

/// <summary>The parts of a training step that <see cref="StepProfile"/> times apart.</summary>
internal enum StepPhase
{
    /// <summary>Per call of Train, before the first step: fingerprint, optimizer state, seeding.</summary>
    SetUp,

    /// <summary>Gathering the batch's inputs, labels and teacher logits into tensors.</summary>
    Batch,

    /// <summary>The model's forward pass.</summary>
    Forward,

    /// <summary>The loss on the forward's output.</summary>
    Loss,

    /// <summary>Autograd's backward pass.</summary>
    Backward,

    /// <summary>Zeroing gradients, clipping and the optimizer's update.</summary>
    Optimizer,

    /// <summary>Reading the loss back to the host and freeing the step's tensors.</summary>
    Finish,

    /// <summary>Everything else in the loop: shuffling, the schedule, progress, logs, checkpoints.</summary>
    Other,
}

/// <summary>
/// Wall time, the calling thread's CPU time and the whole process's CPU time per <see cref="StepPhase"/>, summed
/// over steps, for the benchmark's profile mode. Torch's CPU ops run synchronously, so the time between two marks is
/// the time of the ops issued between them. Wall time on a loaded machine includes waiting for a core; CPU time does
/// not. With one torch thread the thread's CPU time is all the work of the step; the process's adds torch's other
/// threads (and their spinning at the end of each parallel op), the garbage collector and the JIT.
/// </summary>
/// <remarks>
/// The trainer reads <see cref="Current"/> once per call; when nobody profiles it is null and a mark costs a null
/// check. Per thread, so a profiled benchmark does not see another thread's training.
/// </remarks>
internal sealed class StepProfile
{
    [ThreadStatic]
    private static StepProfile? _current;

    private const int ProcessCpuClock = 2; // CLOCK_PROCESS_CPUTIME_ID (Linux)
    private const int ThreadCpuClock = 3; // CLOCK_THREAD_CPUTIME_ID

    private readonly long[] _ticks = new long[Enum.GetValues<StepPhase>().Length];
    private readonly long[] _cpuNanoseconds = new long[Enum.GetValues<StepPhase>().Length];
    private readonly long[] _processNanoseconds = new long[Enum.GetValues<StepPhase>().Length];
    private long _last;
    private long _lastCpu;
    private long _lastProcess;

    /// <summary>The profile the trainer on this thread records into, or null.</summary>
    public static StepProfile? Current
    {
        get => _current;
        set => _current = value;
    }

    /// <summary>Steps recorded (one per <see cref="StepPhase.Finish"/> mark).</summary>
    public long Steps { get; private set; }

    /// <summary>
    /// Native tensors the steps made in their own dispose scope (inputs, every intermediate, the loss; not the
    /// optimizer's temporaries, which its own scope frees), summed over steps. Each is a managed object, a native
    /// allocation and often a kernel launch, so on small models their number is much of the step's overhead.
    /// </summary>
    public long Tensors { get; private set; }

    /// <summary>Adds the tensors one step made.</summary>
    public void CountTensors(long count) => Tensors += count;

    /// <summary>Starts the clock: the next mark's phase began now.</summary>
    public void Start()
    {
        _last = Stopwatch.GetTimestamp();
        _lastCpu = CpuNanoseconds(ThreadCpuClock);
        _lastProcess = CpuNanoseconds(ProcessCpuClock);
    }

    /// <summary>Charges the time since the last mark (or <see cref="Start"/>) to <paramref name="phase"/>.</summary>
    public void Mark(StepPhase phase)
    {
        var now = Stopwatch.GetTimestamp();
        var cpu = CpuNanoseconds(ThreadCpuClock);
        var process = CpuNanoseconds(ProcessCpuClock);
        _ticks[(int)phase] += now - _last;
        _cpuNanoseconds[(int)phase] += cpu - _lastCpu;
        _processNanoseconds[(int)phase] += process - _lastProcess;
        _last = now;
        _lastCpu = cpu;
        _lastProcess = process;
        if (phase == StepPhase.Finish)
        {
            Steps++;
        }
    }

    /// <summary>Total wall seconds charged to <paramref name="phase"/>.</summary>
    public double Seconds(StepPhase phase) => (double)_ticks[(int)phase] / Stopwatch.Frequency;

    /// <summary>Total CPU seconds of the recording thread charged to <paramref name="phase"/>.</summary>
    public double CpuSeconds(StepPhase phase) => _cpuNanoseconds[(int)phase] / 1e9;

    /// <summary>Total CPU seconds of all the process's threads charged to <paramref name="phase"/>.</summary>
    public double ProcessCpuSeconds(StepPhase phase) => _processNanoseconds[(int)phase] / 1e9;

    private static long CpuNanoseconds(int clock) =>
        clock_gettime(clock, out var time) == 0 ? (time.Seconds * 1_000_000_000L) + time.Nanoseconds : 0;

    // DllImport rather than LibraryImport: the source generator would need unsafe code enabled for the project.
    [DllImport("libc", ExactSpelling = true)]
    private static extern int clock_gettime(int clock, out TimeSpec time);

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }
}
