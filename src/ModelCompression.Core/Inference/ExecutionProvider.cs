namespace ModelCompression.Inference;

/// <summary>Where ONNX Runtime runs the teacher and the evaluations: the CPU (the default) or an NVIDIA GPU through CUDA.</summary>
public enum ExecutionProvider
{
    /// <summary>ONNX Runtime's CPU provider, from the Microsoft.ML.OnnxRuntime package the engine ships with.</summary>
    Cpu,

    /// <summary>
    /// ONNX Runtime's CUDA provider, from the GPU build (Microsoft.ML.OnnxRuntime.Gpu.Linux) in the NuGet packages folder;
    /// needs an NVIDIA driver, CUDA 13 and cuDNN 9 (see <see cref="CudaRuntime"/>).
    /// </summary>
    Cuda,
}

/// <summary>The names recipes, the command line and MSBuild give execution providers.</summary>
public static class ExecutionProviderNames
{
    /// <summary>Every name, in the order help texts list them.</summary>
    public static IReadOnlyList<string> All { get; } = ["cpu", "cuda"];

    /// <summary>The provider called <paramref name="name"/> (case-insensitive); false for any other name.</summary>
    public static bool TryParse(string? name, out ExecutionProvider provider)
    {
        switch (name?.Trim().ToLowerInvariant())
        {
            case "cpu":
                provider = ExecutionProvider.Cpu;
                return true;
            case "cuda":
                provider = ExecutionProvider.Cuda;
                return true;
            default:
                provider = ExecutionProvider.Cpu;
                return false;
        }
    }

    /// <summary>The name of <paramref name="provider"/> as a recipe writes it.</summary>
    public static string Name(this ExecutionProvider provider) => provider == ExecutionProvider.Cuda ? "cuda" : "cpu";
}
