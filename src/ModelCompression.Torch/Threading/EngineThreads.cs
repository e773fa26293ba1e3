using ModelCompression.Torch.Native;
using TorchSharp;

namespace ModelCompression.Threading;

/// <summary>
/// The one thread budget of this process's compute pools: libtorch's intra-op (OpenMP) and inter-op pools, and
/// every ONNX Runtime session the engine opens without an explicit thread count. Left alone, both libraries size
/// their pools from the machine's cores, ignoring a container's CPU quota; with more threads than CPUs the
/// threads of one parallel loop wait on each other's time slices and a run slows down many times over.
/// </summary>
public static class EngineThreads
{
    private static readonly Lock _gate = new();
    private static CpuBudget? _budget;
    private static bool _interOpSet;

    /// <summary>The budget in force: the last one <see cref="Use"/> set, else <see cref="CpuBudget.Detect"/> (read once).</summary>
    public static CpuBudget Budget
    {
        get
        {
            lock (_gate)
            {
                return _budget ??= CpuBudget.Detect();
            }
        }
    }

    /// <summary>
    /// Makes <paramref name="budget"/> the process's budget: ONNX Runtime sessions opened from now on use it, and
    /// libtorch's intra-op pool is resized now when libtorch is loaded (else when <see cref="TorchNativeLoader.EnsureLoaded"/> loads it).
    /// </summary>
    public static void Use(CpuBudget budget)
    {
        ArgumentNullException.ThrowIfNull(budget);
        ArgumentOutOfRangeException.ThrowIfLessThan(budget.Threads, 1);
        lock (_gate)
        {
            _budget = budget;
        }

        if (TorchNativeLoader.IsLoaded)
        {
            ApplyToTorch();
        }
    }

    /// <summary>Sets libtorch's pools to the budget; called once libtorch is loaded, and again when the budget changes.</summary>
    internal static void ApplyToTorch()
    {
        var threads = Budget.Threads;
        torch.set_num_threads(threads);
        lock (_gate)
        {
            if (_interOpSet)
            {
                return;
            }

            _interOpSet = true;
        }

        try
        {
            // libtorch sizes this pool once, before its first use, and refuses a second call; the engine runs no
            // inter-op work of its own, so the first budget is the one that counts.
            torch.set_num_interop_threads(threads);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // The pool was started already (by a host that used TorchSharp first): it keeps its size.
        }
    }
}
