using System.Diagnostics;
using ModelCompression.Diagnostics;
using ModelCompression.Torch.Native;
using TorchSharp;

namespace ModelCompression.Torch.Tests.Native;

/// <summary>
/// The test assembly's entry point, used by tests that need a separate process: loading TorchSharp under another
/// environment (LD_LIBRARY_PATH, a bad MODELCOMPRESSION_LIBTORCH_DIR), and racing processes on the native cache.
/// </summary>
public static class NativeProbeProgram
{
    /// <summary><c>probe</c>: load and run a 2.x-only op; <c>materialize cache source go</c>: race on the cache.</summary>
    public static int Main(string[] args)
    {
        try
        {
            return args switch
            {
                ["probe"] => Probe(),
                ["materialize", var cache, var source, var go] => Materialize(cache, source, go),
                _ => Usage(),
            };
        }
        catch (CompressionException e)
        {
            Console.Error.WriteLine(e.Diagnostics[0].ToString());
            return 1;
        }
    }

    /// <summary>Starts this assembly as a child process with <paramref name="args"/> and extra environment variables.</summary>
    internal static Process StartChild(IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment)
    {
        var assembly = typeof(NativeProbeProgram).Assembly.Location;
        var start = new ProcessStartInfo(DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("exec");
        start.ArgumentList.Add(assembly);
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[key] = value;
        }

        return Process.Start(start) ?? throw new InvalidOperationException("The child process did not start.");
    }

    /// <summary>Runs a child to completion: (exit code, stdout, stderr).</summary>
    internal static (int ExitCode, string Output, string Errors) RunChild(IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment)
    {
        using var child = StartChild(args, environment);
        var errors = child.StandardError.ReadToEndAsync();
        var output = child.StandardOutput.ReadToEnd();
        if (!child.WaitForExit(TimeSpan.FromMinutes(3)))
        {
            child.Kill();
            throw new TimeoutException("The child process did not finish.");
        }

        return (child.ExitCode, output, errors.Result);
    }

    private static string DotnetHost()
    {
        var fromCli = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(fromCli) && File.Exists(fromCli))
        {
            return fromCli;
        }

        var current = Environment.ProcessPath;
        return current is not null && Path.GetFileNameWithoutExtension(current) == "dotnet" ? current : "dotnet";
    }

    private static int Probe()
    {
        var info = TorchNativeLoader.EnsureLoaded();
        Console.WriteLine($"libtorch={info.LibTorchDirectory}");
        Console.WriteLine($"loaded={info.LoadedLibTorchSharpPath}");
        Console.WriteLine($"patched={info.PatchApplied}");
        Console.WriteLine($"version={info.TorchVersion}");
        using (torch.NewDisposeScope())
        {
            var q = torch.ones(1, 1, 2, 4);
            var attention = torch.nn.functional.scaled_dot_product_attention(q, q, q);
            Console.WriteLine($"sdpa={attention.sum().item<float>()}");
        }

        foreach (var mapped in ProcessMaps.MappedFiles().Where(p => Path.GetFileName(p).StartsWith("libtorch", StringComparison.Ordinal)
            || Path.GetFileName(p).StartsWith("libc10", StringComparison.Ordinal)))
        {
            Console.WriteLine($"mapped={mapped}");
        }

        return 0;
    }

    private static int Materialize(string cache, string source, string go)
    {
        var content = File.ReadAllBytes(source);
        var deadline = DateTime.UtcNow.AddMinutes(1);
        while (!File.Exists(go) && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(1);
        }

        Console.WriteLine(NativeFileCache.Materialize(cache, TorchNativeLoader.LibTorchSharpFileName, content, out _));
        return 0;
    }

    private static int Usage()
    {
        Console.Error.WriteLine("usage: probe | materialize <cache> <source> <go-file>");
        return 2;
    }
}
