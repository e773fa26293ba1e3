using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;
using ModelCompression.Inference;

namespace ModelCompression.Core.Tests.Safety;

/// <summary>
/// The test assembly's entry point, for tests that need a process of their own: ONNX Runtime reads its process
/// environment once, when it starts, so what a fresh process does with it can only be seen in a fresh process.
/// </summary>
public static class ChildProcessProgram
{
    /// <summary>
    /// <c>engine model.onnx</c>: inspect the model as <c>dotnet compress inspect</c> does (sessions and a forward
    /// pass through the engine's runner); <c>bare model.onnx</c>: open an ONNX Runtime session directly, as any
    /// program would without the engine's setup; <c>run recipe cache output</c>: run a recipe and list the native
    /// libraries and the assemblies the process then holds.
    /// </summary>
    public static int Main(string[] args)
    {
        switch (args)
        {
            case ["engine", var model]:
                Console.WriteLine($"{ModelInspector.Inspect(model).Values.Count} values");
                return 0;
            case ["bare", var model]:
                return Bare(model);
            case ["run", var recipe, var cache, var output]:
                var result = ModelCompression.Runs.CompressionRun.Run(
                    ModelCompression.Recipes.RecipeLoader.Load(recipe),
                    new ModelCompression.Pipeline.PipelineOptions(cache, output, ModelCompression.Common.NullPipelineReporter.Instance));
                Console.WriteLine($"cached: {string.Join(", ", result.Stages.Select(s => s.Cached))}");
                // The native libraries mapped into this process: what the run loaded.
                foreach (var library in File.ReadLines("/proc/self/maps").Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[^1]).Where(p => p.Contains(".so", StringComparison.Ordinal)).Distinct())
                {
                    Console.WriteLine($"native: {library}");
                }

                foreach (var assembly in AppDomain.CurrentDomain.GetAssemblies())
                {
                    Console.WriteLine($"assembly: {assembly.GetName().Name}");
                }

                return 0;
            case ["run-on", var provider, var recipe, var cache, var output]:
                return RunOn(provider, recipe, cache, output);
            default:
                Console.Error.WriteLine("usage: engine|bare MODEL | run RECIPE CACHE OUTPUT | run-on cpu|cuda|recipe RECIPE CACHE OUTPUT");
                return 2;
        }
    }

    // Apart from Main: compiling Main would otherwise load the ONNX Runtime assembly in every mode, and "run" lists
    // the assemblies a run loaded.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static int Bare(string model)
    {
        using var session = new InferenceSession(model);
        Console.WriteLine($"{session.InputNames.Count} inputs");
        return 0;
    }

    /// <summary>
    /// Runs a recipe with its teacher on <paramref name="provider"/> as <c>--execution-provider</c> asks; prints the
    /// engine's diagnostic when it fails (exit 1), then the ONNX Runtime libraries the process holds.
    /// </summary>
    private static int RunOn(string provider, string recipe, string cache, string output)
    {
        try
        {
            // "recipe": no command-line choice, the recipe's own.
            ExecutionProvider? chosen = ExecutionProviderNames.TryParse(provider, out var named) ? named : null;
            var result = ModelCompression.Runs.CompressionRun.Run(
                ModelCompression.Recipes.RecipeLoader.Load(recipe),
                new ModelCompression.Pipeline.PipelineOptions(cache, output, ModelCompression.Common.NullPipelineReporter.Instance) { ExecutionProvider = chosen });
            Console.WriteLine($"teacher accuracy: {result.Teacher?.Accuracy}");
            return 0;
        }
        catch (ModelCompression.Diagnostics.CompressionException e)
        {
            Console.WriteLine($"{e.Code}: {e.Message}");
            return 1;
        }
        finally
        {
            foreach (var library in OnnxRuntimeGpuBuild.LoadedOnnxRuntimeLibraries())
            {
                Console.WriteLine($"onnxruntime: {library}");
            }
        }
    }

    /// <summary>Runs this assembly with <paramref name="args"/>, the environment changed as given (null removes a variable).</summary>
    internal static (int ExitCode, string Output, string Errors) Run(IEnumerable<string> args, IReadOnlyDictionary<string, string?> environment)
    {
        var host = Environment.ProcessPath is { } current && Path.GetFileNameWithoutExtension(current) == "dotnet" ? current : "dotnet";
        var start = new ProcessStartInfo(host)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("exec");
        start.ArgumentList.Add(typeof(ChildProcessProgram).Assembly.Location);
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        foreach (var (key, value) in environment)
        {
            if (value is null)
            {
                start.Environment.Remove(key);
            }
            else
            {
                start.Environment[key] = value;
            }
        }

        using var child = Process.Start(start) ?? throw new InvalidOperationException("The child process did not start.");
        var errors = child.StandardError.ReadToEndAsync();
        var output = child.StandardOutput.ReadToEnd();
        if (!child.WaitForExit(TimeSpan.FromMinutes(3)))
        {
            child.Kill();
            throw new TimeoutException("The child process did not finish.");
        }

        return (child.ExitCode, output, errors.Result);
    }
}
