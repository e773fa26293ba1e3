using System.CommandLine;
using ModelCompression.Inference;

namespace ModelCompression.Cli;

/// <summary>The command line's side of execution providers: <c>--execution-provider</c>, and what <c>doctor</c> says about them.</summary>
internal static class ExecutionProviderCommandLine
{
    /// <summary><c>--execution-provider cpu|cuda</c>; null when not given (the recipe's choice stands).</summary>
    public static Option<ExecutionProvider?> Option(string description)
    {
        var option = new Option<ExecutionProvider?>("--execution-provider") { Description = description, HelpName = string.Join('|', ExecutionProviderNames.All) };
        option.CustomParser = result =>
        {
            // A parser rather than a validator: System.CommandLine's own enum parsing would take "Cuda" but say nothing useful for "gpu".
            var text = result.Tokens.Count == 1 ? result.Tokens[0].Value : string.Empty;
            if (ExecutionProviderNames.TryParse(text, out var provider))
            {
                return provider;
            }

            result.AddError($"--execution-provider must be one of {string.Join(", ", ExecutionProviderNames.All)}, not '{text}'.");
            return null;
        };
        return option;
    }

    /// <summary>
    /// Prints the providers ONNX Runtime offers here and, when <paramref name="requested"/> is cuda, what CUDA needs and
    /// what was found; then checks it as a run would (MC4008/MC4009 when it cannot be used). Must come before
    /// anything else in the process touches ONNX Runtime: asking for cuda loads the GPU build.
    /// </summary>
    public static void Doctor(ExecutionProvider? requested, TextWriter output)
    {
        if (requested == ExecutionProvider.Cuda)
        {
            var folders = OnnxRuntimeGpuBuild.PackageFolders(Environment.GetEnvironmentVariable);
            var found = folders.Select(OnnxRuntimeGpuBuild.NativeDirectory).FirstOrDefault(Directory.Exists);
            output.WriteLine($"cuda: GPU build         {found ?? $"not found in {string.Join(", ", folders)}; '{OnnxRuntimeGpuBuild.DownloadCommand(folders[0])}' gets it"}");
            foreach (var library in CudaRuntime.Probe())
            {
                output.WriteLine($"cuda: {library.FileName,-19}{(library.Found ? "found" : "MISSING")}  [{library.Role}]");
            }

            var gpus = CudaRuntime.Gpus();
            output.WriteLine($"cuda: GPUs              {(gpus.Count == 0 ? "none listed by a driver (/proc/driver/nvidia/gpus)" : string.Join(", ", gpus))}");
            // The build's own list first (it names CUDA wherever the build has it), then the check a run makes.
            OnnxRuntimeGpuBuild.Load(folders);
            output.WriteLine($"execution providers {string.Join(", ", ExecutionProviders.Available())}  [GPU build]");
            output.Flush();
            ExecutionProviders.Use(ExecutionProvider.Cuda, folders);
            output.WriteLine("cuda: checked          a one-node model ran on the GPU");
            return;
        }

        output.WriteLine($"execution providers {string.Join(", ", ExecutionProviders.Available())}  [CPU build; 'doctor --execution-provider cuda' checks CUDA]");
    }
}
