using System.Diagnostics;
using System.Text;

namespace ModelCompression.EndToEnd.Tests;

/// <summary>Runs the real dotnet CLI in a child process and captures everything it prints.</summary>
internal static class DotnetCli
{
    public sealed record Result(int ExitCode, string Output)
    {
        public override string ToString() => $"exit code {ExitCode}\n{Output}";
    }

    public static Result Run(string workingDirectory, IReadOnlyDictionary<string, string>? environment, params string[] arguments) =>
        Start("dotnet", workingDirectory, environment, arguments);

    // xunit runs test classes in parallel, and every pack restores the shared src projects (their
    // obj/project.assets.json): two packs at once fail with "project.assets.json already exists".
    private static readonly Lock PackLock = new();

    /// <summary>Packs a src project into <paramref name="feed"/> at <paramref name="version"/>, one pack at a time.</summary>
    public static Result Pack(string repoRoot, string project, string feed, string version)
    {
        lock (PackLock)
        {
            return Run(repoRoot, null, "pack", Path.Combine(repoRoot, "src", project), "-c", "Release", "-o", feed, $"-p:Version={version}", "--disable-build-servers", "-nologo");
        }
    }

    /// <summary>Runs another program (an installed tool) the same way.</summary>
    public static Result RunProgram(string program, string workingDirectory, params string[] arguments) =>
        Start(program, workingDirectory, null, arguments);

    /// <summary>Runs another program with <paramref name="environment"/> added to (or, with a null value, removed from) this process's.</summary>
    public static Result RunProgram(string program, string workingDirectory, IReadOnlyDictionary<string, string> environment, params string[] arguments) =>
        Start(program, workingDirectory, environment, arguments);

    private static Result Start(string program, string workingDirectory, IReadOnlyDictionary<string, string>? environment, string[] arguments)
    {
        var start = new ProcessStartInfo(program)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        // The test host runs under `dotnet test`, whose MSBuild variables would leak into the child build.
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase) || k.StartsWith("VSTEST", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            start.Environment.Remove(name);
        }

        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        var output = new StringBuilder();
        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => Append(output, e.Data);
        process.ErrorDataReceived += (_, e) => Append(output, e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!process.WaitForExit(TimeSpan.FromMinutes(10)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', arguments)} took over 10 minutes:\n{output}");
        }

        process.WaitForExit();
        return new Result(process.ExitCode, output.ToString());
    }

    private static void Append(StringBuilder output, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (output)
        {
            output.AppendLine(line);
        }
    }
}
