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
                var result = ModelCompression.Pipeline.CompressionPipeline.Run(
                    ModelCompression.Recipes.RecipeLoader.Load(recipe),
                    new ModelCompression.Pipeline.PipelineOptions(cache, output, ModelCompression.Pipeline.NullPipelineReporter.Instance));
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
            default:
                Console.Error.WriteLine("usage: engine|bare MODEL | run RECIPE CACHE OUTPUT");
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
