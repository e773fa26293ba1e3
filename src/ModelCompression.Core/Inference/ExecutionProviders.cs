using Microsoft.ML.OnnxRuntime;
using ModelCompression.Diagnostics;

namespace ModelCompression.Inference;

/// <summary>
/// The execution provider of this process's teacher runs (teacher logits and hint features, a dense model's soft
/// targets, the teacher's evaluation): the CPU unless a run asks for CUDA ('execution_provider: cuda',
/// <c>--execution-provider cuda</c>, CompressModelExecutionProvider). Students are evaluated, calibrated and timed on
/// the CPU either way: their int8 kernels differ between providers, and the CPU's are the ones the gates speak for.
/// Asking for CUDA checks everything it needs before any work and fails with MC4009 (ONNX Runtime's GPU build is not
/// in the NuGet packages folder) or MC4008 (no driver, CUDA or cuDNN library, or no GPU) — never a silent CPU run.
/// </summary>
public static class ExecutionProviders
{
    /// <summary>ONNX Runtime's name of its CUDA provider.</summary>
    public const string CudaProviderName = "CUDAExecutionProvider";

    private static readonly Lock Gate = new();
    private static ExecutionProvider _current = ExecutionProvider.Cpu;

    /// <summary>The provider teacher runs use from now on (<see cref="ExecutionProvider.Cpu"/> until <see cref="Use(ExecutionProvider)"/> says otherwise).</summary>
    public static ExecutionProvider Current
    {
        get
        {
            lock (Gate)
            {
                return _current;
            }
        }
    }

    /// <summary>The command line's choice when it made one, else the recipe's.</summary>
    public static ExecutionProvider Resolve(ExecutionProvider? commandLine, ExecutionProvider recipe) => commandLine ?? recipe;

    /// <summary>
    /// Makes <paramref name="provider"/> the one teacher runs use, after checking that it works here (CUDA: the GPU
    /// build is loaded from the NuGet packages folder NuGet uses by default, the libraries it needs load, and a one-node
    /// model runs on the GPU).
    /// </summary>
    /// <exception cref="CompressionException">MC4009 or MC4008 when CUDA is asked for and cannot be had.</exception>
    public static void Use(ExecutionProvider provider) =>
        Use(provider, OnnxRuntimeGpuBuild.PackageFolders(Environment.GetEnvironmentVariable));

    /// <summary><see cref="Use(ExecutionProvider)"/> with the GPU build looked for in <paramref name="packageFolders"/>, in order.</summary>
    public static void Use(ExecutionProvider provider, IReadOnlyList<string> packageFolders)
    {
        if (provider == ExecutionProvider.Cuda)
        {
            CheckCuda(packageFolders);
        }

        lock (Gate)
        {
            _current = provider;
        }
    }

    /// <summary>The providers the loaded ONNX Runtime build was compiled with (the GPU build lists CUDA even where no GPU is).</summary>
    public static IReadOnlyList<string> Available()
    {
        OnnxRuntimeEnvironment.EnsureTelemetryOff();
        return OrtEnv.Instance().GetAvailableProviders();
    }

    /// <summary>Adds <paramref name="provider"/> to a session's options; the CPU provider is always there as ONNX Runtime's last resort.</summary>
    internal static void Append(SessionOptions options, ExecutionProvider provider)
    {
        if (provider != ExecutionProvider.Cuda)
        {
            return;
        }

        using var cuda = new OrtCUDAProviderOptions();
        // TF32 (on by default on Ampere and later) rounds MatMul and Conv inputs to 10 mantissa bits: teacher logits
        // become training targets and the teacher's accuracy a gate's reference, so they keep float32's precision.
        cuda.UpdateOptions(new Dictionary<string, string>(StringComparer.Ordinal) { ["device_id"] = "0", ["use_tf32"] = "0" });
        options.AppendExecutionProvider_CUDA(cuda);
    }

    private static void CheckCuda(IReadOnlyList<string> packageFolders)
    {
        var directory = OnnxRuntimeGpuBuild.Load(packageFolders);
        var libraries = CudaRuntime.Probe();
        var gpus = CudaRuntime.Gpus();
        var found = $"GPU build {directory}; GPUs the driver lists: {(gpus.Count == 0 ? "none" : string.Join(", ", gpus))}";
        if (libraries.Where(l => !l.Found).ToList() is { Count: > 0 } missing)
        {
            var present = libraries.Where(l => l.Found).Select(l => l.FileName).ToList();
            throw CompressionException.Error(
                DiagnosticCodes.CudaUnavailable,
                $"execution provider cuda: the CUDA provider of ONNX Runtime {OnnxRuntimeGpuBuild.Version} needs {string.Join(", ", missing.Select(l => $"{l.FileName} ({l.Role})"))}, "
                + $"which the loader does not find (LD_LIBRARY_PATH, then the ld.so cache){(present.Count > 0 ? $"; found: {string.Join(", ", present)}" : string.Empty)}. "
                + $"{found}. Install the NVIDIA driver, CUDA 13 and cuDNN 9 (or put their libraries on LD_LIBRARY_PATH), or use execution provider cpu.");
        }

        try
        {
            var y = OnnxRunner.Probe(ExecutionProvider.Cuda, -1f);
            if (y is not [0f])
            {
                throw CompressionException.Error(DiagnosticCodes.CudaUnavailable, $"execution provider cuda: a one-node check model (Relu of -1) gave [{string.Join(", ", y)}] on the GPU, not [0]. {found}.");
            }
        }
        catch (OnnxRuntimeException e)
        {
            throw CompressionException.Error(
                DiagnosticCodes.CudaUnavailable,
                $"execution provider cuda: every library loads, but ONNX Runtime cannot run a one-node check model on the GPU: {e.Message} {found}. "
                + "Check the driver (nvidia-smi) and that it supports CUDA 13, or use execution provider cpu.");
        }
    }
}
