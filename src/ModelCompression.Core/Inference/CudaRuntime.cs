using System.Runtime.InteropServices;

namespace ModelCompression.Inference;

/// <summary>One shared library the CUDA provider needs, and whether this machine's loader finds it.</summary>
/// <param name="FileName">The library's soname, as the loader looks it up.</param>
/// <param name="Role">What it is (what to install when it is missing).</param>
/// <param name="Found">True when dlopen finds and loads it.</param>
public sealed record CudaLibrary(string FileName, string Role, bool Found);

/// <summary>
/// What ONNX Runtime's CUDA provider needs from the machine, checked the way the provider will load it (dlopen by
/// soname: LD_LIBRARY_PATH, then the loader cache), so a run can say what is missing before it starts. The list is
/// that of the provider library in the 1.32 GPU package: its ELF dependencies (the driver's libcuda.so.1, CUDA 13's
/// runtime, cuBLAS, cuBLASLt and cuRAND) and the libraries it opens at run time (cuFFT, cuDNN 9).
/// </summary>
public static class CudaRuntime
{
    /// <summary>The libraries, driver first.</summary>
    public static IReadOnlyList<(string FileName, string Role)> Libraries { get; } =
    [
        ("libcuda.so.1", "the NVIDIA driver"),
        ("libcudart.so.13", "the CUDA 13 runtime"),
        ("libcublas.so.13", "CUDA 13 cuBLAS"),
        ("libcublasLt.so.13", "CUDA 13 cuBLASLt"),
        ("libcurand.so.10", "CUDA 13 cuRAND"),
        ("libcufft.so.12", "CUDA 13 cuFFT"),
        ("libcudnn.so.9", "cuDNN 9"),
    ];

    /// <summary>Each library of <see cref="Libraries"/> and whether it loads here.</summary>
    public static IReadOnlyList<CudaLibrary> Probe() =>
    [
        .. Libraries.Select(l =>
        {
            var found = NativeLibrary.TryLoad(l.FileName, out var handle);
            if (found)
            {
                // Only asked whether it loads: the provider opens it again itself.
                NativeLibrary.Free(handle);
            }

            return new CudaLibrary(l.FileName, l.Role, found);
        }),
    ];

    /// <summary>The NVIDIA GPUs the driver lists (/proc/driver/nvidia/gpus), by their model name; empty without a driver.</summary>
    public static IReadOnlyList<string> Gpus()
    {
        const string Root = "/proc/driver/nvidia/gpus";
        if (!Directory.Exists(Root))
        {
            return [];
        }

        return
        [
            .. Directory.EnumerateDirectories(Root)
                .Order(StringComparer.Ordinal)
                .Select(d => Path.Combine(d, "information"))
                .Select(f => File.Exists(f)
                    ? File.ReadLines(f).FirstOrDefault(l => l.StartsWith("Model:", StringComparison.Ordinal))?["Model:".Length..].Trim() ?? Path.GetFileName(Path.GetDirectoryName(f)!)
                    : Path.GetFileName(Path.GetDirectoryName(f)!)),
        ];
    }
}
